#!/usr/bin/env bash
# Builds the release tarball the Ansible role installs: `npm run build`, then
# `npm pack` of a staged copy that carries the repository's lockfile as
# npm-shrinkwrap.json, so nodes install exactly the tested dependency tree
# with `npm ci --omit=dev` (and can do so offline from an npm cache or mirror).
#
# Usage: ansible/build-package.sh [OUTDIR]      (default: ansible/dist)
# Prints the tarball's path. UNDERSTUDY_SKIP_BUILD=1 packs the existing dist/.
# npm pack normalises timestamps, so the same sources give the same tarball
# (and the role, which keys releases on its checksum, sees no change).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/ansible/dist}" && cd "${1:-$repo/ansible/dist}" && pwd)

if [ "${UNDERSTUDY_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && npm run --silent build)
fi
[ -f "$repo/dist/cli/main.js" ] || { echo "build-package: $repo/dist is missing (run npm run build)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -a "$repo/package.json" "$repo/README.md" "$repo/dist" "$stage/"
cp "$repo/package-lock.json" "$stage/npm-shrinkwrap.json"
# npm pack only ships what package.json "files" lists (plus package.json and README).
node -e '
  const fs = require("fs");
  const file = process.argv[1];
  const p = JSON.parse(fs.readFileSync(file, "utf8"));
  p.files = [...new Set([...(p.files || []), "npm-shrinkwrap.json"])];
  fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
' "$stage/package.json"
name=$(cd "$stage" && npm pack --silent --pack-destination "$out" 2>/dev/null | tail -n 1)
echo "$out/$name"
