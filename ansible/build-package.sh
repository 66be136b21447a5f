#!/usr/bin/env bash
# Builds the .deb the Ansible role installs: `npm run build`, then
# scripts/build-deb.sh (understudy_<version>_amd64.deb with its own Node.js,
# the production node_modules, the unit; see docs/operations.md, "Installing").
#
# Usage: ansible/build-package.sh [OUTDIR]      (default: ansible/dist)
# Prints the .deb's path. UNDERSTUDY_SKIP_BUILD=1 packs the existing dist/.
# The role installs a .deb whose version differs from the installed one: give
# a new build a new version (UNDERSTUDY_DEB_VERSION, passed as --version).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out="${1:-$repo/ansible/dist}"

if [ "${UNDERSTUDY_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && npm run --silent build)
fi
bash "$repo/scripts/build-deb.sh" ${UNDERSTUDY_DEB_VERSION:+--version "$UNDERSTUDY_DEB_VERSION"} --out "$out" | tail -n 1
