#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: installs what it
# needs, builds, runs the unit tests, then the end-to-end lab tests (network
# namespaces, real etcd, sshd, ip/arping). Leftover lab namespaces from an
# interrupted earlier run are swept first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "understudy: run the tests as root (network namespaces)" >&2; exit 1; fi
bash scripts/install-deps.sh test
case ":$PATH:" in *:/usr/local/bin:*) ;; *) export PATH="/usr/local/bin:$PATH" ;; esac
node --import tsx test/lab/harness/sweep-cli.ts --stale >/dev/null 2>&1 || true
npm run --silent typecheck
npm run --silent lint            # typescript-eslint: no floating or misused promises
npm run --silent format:check    # prettier
npm run --silent test:unit
npm run --silent test:lab
