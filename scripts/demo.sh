#!/usr/bin/env bash
# The demo cluster on a fresh Debian machine, as root: 3 nodes + etcd + a
# client in network namespaces, OpenSSH serving SFTP behind a floating IP; it
# shows the cluster, fails the primary over, proves SFTP still answers with the
# same host key, then tears everything down. `--keep` leaves it running.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "understudy: run the demo as root (network namespaces)" >&2; exit 1; fi
bash scripts/install-deps.sh demo
case ":$PATH:" in *:/usr/local/bin:*) ;; *) export PATH="/usr/local/bin:$PATH" ;; esac
exec node --import tsx deploy/demo/run.ts "$@"
