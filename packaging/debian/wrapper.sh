#!/bin/sh
# understudy: runs the CLI (and the agent) with the Node.js runtime bundled in
# the package, with the node flags of dist/cli/main.js's shebang
# (--max-semi-space-size=2 --v8-pool-size=1: a smaller young generation and
# one V8 worker thread, less RSS).
exec /usr/lib/understudy/node/bin/node @NODE_FLAGS@ /usr/lib/understudy/dist/cli/main.js "$@"
