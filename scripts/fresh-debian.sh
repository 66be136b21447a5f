#!/usr/bin/env bash
# Checks the set-up on a fresh Debian 12 (bookworm, minbase) made with
# debootstrap, in a chroot, as root. Not part of the test suite: it downloads
# from the Debian mirror in this machine's apt sources and the npm registry.
#
#   bash scripts/fresh-debian.sh node            # scripts/install-node.sh twice: Node >= 20.19 + npm, then "nothing to do"
#   bash scripts/fresh-debian.sh deps PROFILE    # time apt-get install of `install-deps.sh --list PROFILE` (demo|test|bench)
#   bash scripts/fresh-debian.sh deps list PKG...  # the same for a given package list
#   bash scripts/fresh-debian.sh setup PROFILE   # the whole `install-deps.sh PROFILE` on a copy of this checkout
#                                                # (git ls-files), then `understudy --version` on PATH
#
# The debootstrapped tree is cached in /var/cache/understudy-test/bookworm-minbase
# (made once, ~2.5 min); every check runs on a throw-away overlay of it with
# /proc mounted, and unmounts and deletes the overlay at the end (also on error
# or Ctrl-C). Each check is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ "$(id -u)" = 0 ] || { echo "fresh-debian: run as root (debootstrap, chroot, mount)" >&2; exit 1; }
mode=${1:-node}
case "$mode" in
  node) [ $# -le 1 ] || exit 2 ;;
  setup) [ $# -eq 2 ] || exit 2 ;;
  deps) [ $# -ge 2 ] || { echo "usage: bash scripts/fresh-debian.sh node | deps demo|test|bench | deps list PKG..." >&2; exit 2; } ;;
  *) echo "usage: bash scripts/fresh-debian.sh node | deps demo|test|bench" >&2; exit 2 ;;
esac

CACHE=/var/cache/understudy-test
BASE=$CACHE/bookworm-minbase
LIMIT=${FRESH_DEBIAN_TIMEOUT:-900}
[ "$mode" = setup ] && LIMIT=${FRESH_DEBIAN_TIMEOUT:-2700}   # node, packages, npm ci, build, .deb in one go
mirror=$(grep -hoE 'https?://deb\.debian\.org/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -x "$BASE/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  echo "fresh-debian: debootstrap --variant=minbase bookworm $BASE $mirror (once)"
  t=$SECONDS
  rm -rf "$BASE.tmp"
  timeout "$LIMIT" debootstrap --variant=minbase bookworm "$BASE.tmp" "$mirror" > "$CACHE/debootstrap.log" 2>&1 ||
    { echo "fresh-debian: debootstrap failed, see $CACHE/debootstrap.log" >&2; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "${mirror%/}" "${mirror%/}" "${mirror%/}" > "$BASE.tmp/etc/apt/sources.list"
  rm -rf "$BASE.tmp/var/cache/apt/archives/"*.deb
  mv "$BASE.tmp" "$BASE"
  echo "fresh-debian: debootstrap took $((SECONDS - t)) s"
fi

run=$(mktemp -d "$CACHE/run.XXXXXX")
root=$run/root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  umount "$root" 2>/dev/null || { sleep 2; umount "$root" 2>/dev/null; } || umount -l "$root" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$run/upper" "$run/work" "$root"
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$run/upper,workdir=$run/work" "$root"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's own extra CAs (an HTTPS-inspecting egress proxy), as a fresh
# machine on the same network would be given them; none on a plain network.
extra_ca=()
for f in /usr/local/share/ca-certificates/*.crt; do
  if [ -f "$f" ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp "$f" "$root/usr/local/share/ca-certificates/"
    extra_ca=(NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
  fi
done
mkdir -p "$root/root/understudy"
if [ "$mode" = setup ]; then
  git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -cf - | tar -C "$root/root/understudy" -xf -
else
  tar -C "$repo" -cf - scripts packaging/node-version | tar -C "$root/root/understudy" -xf -
fi

in_chroot() {
  timeout "$LIMIT" chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 "${extra_ca[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

if [ "$mode" = node ]; then
  echo "fresh-debian: node before: $(in_chroot sh -c 'command -v node || echo none')"
  t=$SECONDS
  in_chroot bash /root/understudy/scripts/install-node.sh
  first=$((SECONDS - t))
  t=$SECONDS
  in_chroot bash /root/understudy/scripts/install-node.sh
  second=$((SECONDS - t))
  v=$(in_chroot node --version)
  n=$(in_chroot npm --version)
  in_chroot node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    { echo "fresh-debian: FAILED: node $v is older than 20.19" >&2; exit 1; }
  left=$( { in_chroot dpkg-query -W -f="\${db:Status-Abbrev} \${Package}\\n" nodejs npm 2>/dev/null || true; } | awk '$1=="ii"{print $2}' | xargs)
  [ -z "$left" ] || { echo "fresh-debian: FAILED: bootstrap packages left installed: $left" >&2; exit 1; }
  echo "fresh-debian: ok: node $v ($(in_chroot readlink -f /usr/local/bin/node)), npm $n; Debian's nodejs/npm purged; first run ${first} s, second run ${second} s"
elif [ "$mode" = setup ]; then
  t=$SECONDS
  rc=0
  in_chroot bash /root/understudy/scripts/install-deps.sh "$2" || rc=$?
  [ "$rc" = 0 ] || { echo "fresh-debian: FAILED: install-deps.sh $2 exited $rc after $((SECONDS - t)) s (124: the ${LIMIT} s timeout)" >&2; exit 1; }
  secs=$((SECONDS - t))
  got=$(in_chroot sh -c 'echo "$(command -v understudy) $(understudy --version)"')
  n=$(in_chroot dpkg-query -W -f='${db:Status-Abbrev}\n' | grep -c '^ii')
  echo "fresh-debian: ok: install-deps.sh $2 in ${secs} s; understudy on PATH: $got; $n Debian packages installed in all"
else
  profile=$2
  if [ "$profile" = list ]; then pkgs=("${@:3}"); else mapfile -t pkgs < <(bash scripts/install-deps.sh --list "$profile"); fi
  t=$SECONDS
  in_chroot apt-get update -qq
  in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" > "$run/apt.log" 2>&1 ||
    { tail -20 "$run/apt.log" >&2; echo "fresh-debian: FAILED: apt-get install for $profile" >&2; exit 1; }
  secs=$((SECONDS - t))
  added=$(grep -c '^Setting up ' "$run/apt.log" || true)
  echo "fresh-debian: ok: $profile: ${#pkgs[@]} listed packages (${added} installed with their dependencies) in ${secs} s"
fi
