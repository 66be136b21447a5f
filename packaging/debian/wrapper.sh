#!/bin/sh
# understudy: runs the CLI (and the agent) with the Node.js runtime bundled in
# the package. --max-semi-space-size=2 is the flag of src/cli/main.ts's
# shebang: a smaller young generation, ~15 MB less RSS for the agent.
exec /usr/lib/understudy/node/bin/node --max-semi-space-size=2 /usr/lib/understudy/dist/cli/main.js "$@"
