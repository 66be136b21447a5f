#!/usr/bin/env bash
# Puts `understudy` on PATH from this checkout's build, as root: builds the .deb
# from dist/ with scripts/build-deb.sh and installs it with apt-get, so its
# Depends are resolved (/usr/bin/understudy, bundled Node runtime, systemd
# units, the understudy user); not its Recommends (systemd, polkitd: a real
# deployment has them, the demo and the lab do not use them). Skipped when the installed package was built
# from the same dist/, packaging/, systemd/ and package files (a stamp in
# /var/lib/understudy-setup/). Needs `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ -f dist/cli/main.js ] || { echo "understudy: dist/cli/main.js missing: run npm run build first" >&2; exit 1; }

STAMP_DIR=/var/lib/understudy-setup
STAMP=$STAMP_DIR/deb.stamp

if [ ! -f scripts/build-deb.sh ]; then
  echo "understudy: WARNING: no scripts/build-deb.sh in this checkout: the understudy command is not installed" >&2
  exit 0
fi

version=$(node -p 'require("./package.json").version')
stamp=$( { find dist packaging systemd -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum package.json package-lock.json scripts/build-deb.sh; } | sha256sum | cut -d' ' -f1)
installed=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' understudy 2>/dev/null || true)
if [ "$installed" = "ii $version" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$stamp" ] && [ -x /usr/bin/understudy ]; then
  echo "understudy: the understudy $version package is installed and up to date (/usr/bin/understudy)"
  exit 0
fi

echo "understudy: building the .deb (scripts/build-deb.sh)"
deb=$(bash scripts/build-deb.sh | tail -n 1)
case "$deb" in /*) ;; *) deb="./$deb" ;; esac
[ -f "$deb" ] || { echo "understudy: scripts/build-deb.sh printed '$deb', which is not a file" >&2; exit 1; }
echo "understudy: installing $deb with apt-get (resolves its Depends)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends --reinstall "$deb" >/dev/null
mkdir -p "$STAMP_DIR"
echo "$stamp" > "$STAMP"
echo "understudy: installed $(dpkg-query -W -f='${Package} ${Version}' understudy): $(command -v understudy)"
