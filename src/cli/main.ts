#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
// The small young generation keeps an idle agent's RSS ~15 MB lower at no CPU
// cost, and one V8 worker thread instead of four another ~5 MB (an agent is
// mostly idle; docs/benchmarks.md); scripts/build-deb.sh and the lab harness
// read these flags from this line, units that run `node` directly pass them too.
//
// This file loads nothing but node:module before enabling Node's compile cache
// (Node >= 22.1; absent on Node 20, where this is a no-op): every module loaded
// after it, the command's own included, starts from cached V8 code. Commands
// are imported lazily by ./run.ts, so `--version` and `--help` load no library.
import * as nodeModule from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

enableCompileCache();
// Node's deprecation notices are for developers, not for an operator's terminal or journal: gRPC's TLS to
// an etcd addressed by IP made every `status` print DEP0123 ("TLS ServerName to an IP address").
process.noDeprecation = true;

/** How long a finished one-shot command may take to drain before it exits anyway. */
const CLI_EXIT_GRACE_MS = 300;

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  // The one answer scripts ask for in loops: nothing but the version file.
  process.stdout.write(`${(await import("../version.js")).VERSION}\n`);
} else {
  const { main } = await import("./run.js");
  const { processIo } = await import("./io.js");
  process.exitCode = await main(argv, processIo());
  // A one-shot command has printed its answer: nothing it left behind may hold the terminal.
  // gRPC cannot abort a TCP connect to an etcd that drops packets (minutes until the kernel
  // gives up). The agent has its own backstop, after its graceful stop (./local.ts).
  if (argv[0] !== "agent") {
    const { armExitBackstop } = await import("../platform/exit-backstop.js");
    armExitBackstop(CLI_EXIT_GRACE_MS, () => undefined, Number(process.exitCode ?? 0));
  }
}

/**
 * A per-user cache directory (never the shared /tmp default: V8 code read from
 * a directory another user can write would be code that user chose).
 * NODE_DISABLE_COMPILE_CACHE=1 turns it off; any failure only costs speed.
 * Not for the agent: it starts once, and a service should not write its home.
 */
function enableCompileCache(): void {
  if (process.argv[2] === "agent") return; // a service: no cache files in its home
  const enable = (nodeModule as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
  if (typeof enable !== "function") return;
  try {
    const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
    enable(join(base, "understudy", "node-compile-cache"));
  } catch {
    /* no home, read-only file system: run uncached */
  }
}
