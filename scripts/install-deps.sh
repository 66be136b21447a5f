#!/usr/bin/env bash
# Installs everything understudy's demo, tests and benchmarks need on a fresh
# Debian 12 machine, as root: Debian packages, then the npm dependencies and the build.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  etcd-server etcd-client          # the DCS (etcd 3.4)
  openssh-server openssh-client    # the transfer daemon in the lab, and the SFTP client
  rsync                            # file sync (primary -> standbys)
  iproute2 iputils-arping iputils-ping  # ip addr / gratuitous ARP / reachability
  nftables                         # lab partitions (bridge filtering)
  keepalived                       # the peer in bench/failover, and the keepalived backend
  proftpd-core                     # FTP daemon for the ftp probe / ProFTPD clusters
  prometheus haproxy               # the lab's monitoring and load balancer (GET /primary checks)
  wrk                              # bench/api load generator
  openssl                          # test certificates (API TLS, FTPS and TLS-file probes)
  procps psmisc util-linux         # pgrep/ps, setpriv --pdeathsig in the lab
  python3                          # the lab's raw-socket ARP observer (stdlib only)
  systemd                          # systemd-analyze verify/security on systemd/ units
  ansible ansible-lint             # the Ansible role, run for real against the lab (ansible/)
  # test/lab/watchdog-device.lab.test.ts boots a Debian kernel under qemu with softdog.
  # The kernel itself (linux-image-6.1.0-N-amd64) is fetched by the test on first
  # use with `apt-get download` and cached in /var/cache/understudy-test/kernel/.
  qemu-system-x86 busybox-static
  lsyncd                           # the peer in bench/sync
  ca-certificates
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "understudy: installing Debian packages: ${missing[*]}"
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

if ! command -v node >/dev/null; then
  echo "understudy: Node.js >= 20.19 is required (not found)" >&2
  exit 1
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("understudy: Node.js >= 20.19 required, found "+process.versions.node); process.exit(1) }'

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "understudy: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
