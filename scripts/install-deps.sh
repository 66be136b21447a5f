#!/usr/bin/env bash
# Installs what one use of this checkout needs on a fresh Debian 12 machine, as
# root, then builds and installs the understudy .deb (`understudy` on PATH):
#
#   bash scripts/install-deps.sh demo    # scripts/demo.sh: the namespace lab with agents, OpenSSH, etcd
#   bash scripts/install-deps.sh test    # scripts/test.sh: unit + every lab test (the default)
#   bash scripts/install-deps.sh bench   # bench/: the test list + the benchmarks' peers
#   bash scripts/install-deps.sh --list PROFILE   # print the Debian packages, install nothing
#
# Steps: Node.js >= 20.19 (scripts/install-node.sh), the profile's Debian
# packages, `npm ci`, `npm run build`, the .deb (scripts/build-deb.sh, installed
# with apt-get so its Depends are resolved). Idempotent: a second run installs
# nothing new and skips the .deb when neither it nor what it holds changed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash scripts/install-deps.sh [--list] [demo|test|bench]" >&2; exit 2; }
list_only=0
[ "${1:-}" = --list ] && { list_only=1; shift; }
[ $# -le 1 ] || usage
profile=${1:-test}

# What the demo runs (deploy/demo/run.ts on test/lab/harness): the lab's
# network, etcd, OpenSSH as the transfer daemon and the client, the agents'
# VIP commands, the ARP observer; and what building the checkout takes.
DEMO=(
  etcd-server etcd-client          # the DCS (etcd 3.4); etcdctl reads the leader key
  openssh-server openssh-client    # sshd = the transfer daemon; ssh-keygen, ssh-keyscan, sftp
  iproute2 iputils-arping          # namespaces, veths, the VIP (ip addr), gratuitous ARP
  util-linux                       # setpriv --pdeathsig for every lab process
  inotify-tools                    # inotifywait: the data watcher on the primary (data.inotifywait_path), data lab tests
  python3                          # the lab's raw-socket ARP observer (stdlib only)
  gcc libc6-dev make binutils      # npm run build compiles the native fence guard (make, objcopy)
  dpkg-dev                         # scripts/build-deb.sh (dpkg-deb, dpkg-shlibdeps)
  ca-certificates                  # npm ci over HTTPS
)
# What the whole suite runs on top (test/lab/*.lab.test.ts, test/unit).
TEST=(
  rsync                            # file sync (primary -> standbys), sync lab tests
  iputils-ping                     # reachability checks in the lab tests
  nftables                         # lab partitions (bridge filtering)
  keepalived                       # the keepalived backend's lab test
  proftpd-core                     # FTP daemon for the ftp probe / ProFTPD clusters
  proftpd-mod-crypto               # mod_tls (FTPS) + mod_sftp for the ProFTPD lab and bench/proftpd
  prometheus haproxy               # the lab's monitoring and load balancer (GET /primary checks)
  openssl                          # test certificates (API TLS, FTPS and TLS-file probes)
  procps psmisc                    # pgrep/ps, fuser in the lab tests
  systemd                          # systemd-analyze verify/security on systemd/ units
  ansible ansible-lint             # the Ansible role, run for real against the lab (ansible/)
  lintian                          # the .deb's lab test (test/lab/package.lab.test.ts)
  # test/lab/watchdog-device.lab.test.ts boots a Debian kernel under qemu with softdog.
  # The kernel itself (linux-image-6.1.0-N-amd64) is fetched below with
  # `apt-get download` and cached in /var/cache/understudy-test/kernel/.
  qemu-system-x86 busybox-static
  # test/lab/vip-truth.lab.test.ts runs Habets' arping (the Debian package "arping",
  # which conflicts with iputils-arping), unpacked below with `apt-get download` +
  # `dpkg -x`, never installed; only its libraries are.
  libnet1 libpcap0.8
)
# The benchmarks' load generator and peers (bench/).
BENCH=(
  wrk                              # bench/api load generator
  lsyncd                           # the peer in bench/sync
  time                             # GNU time: bench/cli's CPU column
)

case "$profile" in
  demo) DEB_PACKAGES=("${DEMO[@]}") ;;
  test) DEB_PACKAGES=("${DEMO[@]}" "${TEST[@]}") ;;
  bench) DEB_PACKAGES=("${DEMO[@]}" "${TEST[@]}" "${BENCH[@]}") ;;
  *) usage ;;
esac
if ((list_only)); then printf '%s\n' "${DEB_PACKAGES[@]}"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "understudy: install-deps.sh installs Debian packages: run it as root" >&2; exit 1; fi

bash scripts/install-node.sh
case ":$PATH:" in *:/usr/local/bin:*) ;; *) export PATH="/usr/local/bin:$PATH" ;; esac
hash -r

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "understudy: installing ${#missing[@]} Debian packages for the $profile: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian enables the packaged services; the lab runs its own instances in namespaces.
for svc in etcd keepalived proftpd prometheus haproxy lsyncd; do
  if command -v systemctl >/dev/null && systemctl is-enabled "$svc" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
mkdir -p /run/sshd

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "understudy: installing npm dependencies"
  npm ci --no-audit --no-fund --no-update-notifier --loglevel=error
fi
npm run --silent build

# Test artefacts fetched here, never by the tests (they talk only to loopback and
# to namespaces they create): Habets' arping unpacked, and the watchdog VM's kernel.
if [ "$profile" != demo ]; then
  arping_dir=/var/cache/understudy-test/arping
  if [ ! -x "$arping_dir/usr/sbin/arping" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq arping 2>/dev/null)
    mkdir -p "$arping_dir"
    dpkg -x "$tmp"/arping_*.deb "$arping_dir"
    rm -rf "$tmp"
  fi
  node --import tsx -e 'await (await import("./test/vm/vm.ts")).obtainKernel()' >/dev/null
fi

bash scripts/install-deb.sh
