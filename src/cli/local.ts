// Commands that act on this host from its config alone (no etcd, no API).
import type { Parsed } from "./spec.js";
import type { Io } from "./io.js";
import { UnderstudyError, describeError } from "../errors/catalogue.js";

const str = (p: Parsed, name: string) => p.values[name] as string | undefined;

async function load(file: string, hostChecks: boolean) {
  const { loadConfigFile } = await import("../config/load.js");
  return loadConfigFile(file, { hostChecks });
}

export async function configCheck(p: Parsed, io: Io): Promise<number> {
  const file = p.positionals[0]!;
  const hostChecks = !p.values["no-host-checks"];
  const config = await load(file, hostChecks);
  let arping: { path: string; flavour: string } | null = null;
  if (hostChecks) {
    // Every program the config needs, with the package that provides it: all problems at once.
    const [{ checkTools }, { SpawnCommandRunner }] = await Promise.all([import("../tools/check.js"), import("../platform/command.js")]);
    const report = await checkTools(config, new SpawnCommandRunner());
    for (const problem of report.problems) io.err(`understudy: ${problem.message}`);
    if (report.problems.length > 0) return 2;
    arping = report.arping;
  }
  if (p.values.json) io.out(JSON.stringify({ valid: true, file, config, ...(arping ? { arping } : {}) }, null, 2));
  else
    io.out(
      `${file}: valid (cluster ${config.cluster}, node ${config.node.name}, ttl ${config.election.ttlMs}ms, fence margin ${config.election.fenceMarginMs}ms)${arping ? `; arping: ${arping.flavour} at ${arping.path}` : ""}`,
    );
  return 0;
}

/**
 * Drop this node's floating IP (keepalived: FAULT first). For systemd's
 * ExecStopPost: after a kill -9 of the agent nothing else would. Never needs
 * etcd; exit 0 when the address is gone (or was never here).
 */
export async function vipRelease(p: Parsed, io: Io): Promise<number> {
  const config = await load(str(p, "config")!, false);
  if (!config.vip || config.vip.backend === "none") return 0;
  const [{ createFloatingIp }, { SpawnCommandRunner }, { SystemClock }, { silentLogger }] = await Promise.all([
    import("../vip/index.js"),
    import("../platform/command.js"),
    import("../platform/clock.js"),
    import("../platform/logger.js"),
  ]);
  const fip = createFloatingIp(config.vip, { runner: new SpawnCommandRunner(), clock: new SystemClock(), logger: silentLogger() });
  await fip.remove();
  io.err(`understudy: floating IP ${config.vip.address} released on ${config.vip.interface}`);
  return 0;
}

export async function keepalivedRender(p: Parsed, io: Io): Promise<number> {
  const config = await load(str(p, "config")!, false);
  const { renderKeepalivedConf } = await import("../vip/keepalived-conf.js");
  const text = renderKeepalivedConf(config);
  const out = str(p, "out");
  if (!out) {
    io.out(text.replace(/\n$/, ""));
    return 0;
  }
  // The CLI is a composition root (like agent.ts and sync/index.ts): it may bind the DurableFs adapter directly.
  const { writeFileAtomic } = await import("../platform/node-durable-fs.js");
  await writeFileAtomic(out, text, 0o644);
  return 0;
}

export async function agent(p: Parsed, io: Io): Promise<number> {
  // Validate everything before touching anything: a bad config starts nothing.
  const config = await load(str(p, "config")!, true);
  const { startAgent } = await import("../agent.js");
  // The handlers go in before the agent starts: start-up already publishes a member key and may
  // adopt a lease, so a SIGTERM that arrives during it must still end in a graceful stop (found by
  // the stop lab once it reacted within milliseconds), not in Node's default exit.
  let signals = 0;
  let stopNow: (() => void) | undefined;
  let stopRequested = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      io.err(`second ${sig}: exiting without a graceful handover`);
      process.exit(1);
    }
    stopRequested = true;
    stopNow?.();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const running = await startAgent(config, { configFile: str(p, "config")! });
  await new Promise<void>((resolve) => {
    stopNow = () =>
      void running.stop().then(resolve, (e: unknown) => {
        io.err(`graceful stop failed: ${describeError(e)}`);
        resolve();
      });
    if (stopRequested) stopNow();
  });
  // Everything is stopped. The process should now end by itself; if a handle keeps the event loop
  // alive (a library timer re-armed after close was seen), name it and exit anyway, so systemd
  // never waits out TimeoutStopSec. Timers armed from here on are recorded with their stack.
  const { armExitBackstop } = await import("../platform/exit-backstop.js");
  armExitBackstop(STOP_EXIT_GRACE_MS, (r) => {
    const e = new UnderstudyError("US_E_STOP_LINGERING", { resources: r.resources.join(", ") || "nothing", grace_ms: STOP_EXIT_GRACE_MS });
    running.log.debug({ resources: r.resources, handles: r.handles, timers: r.timers }, "stop backstop: what still held the process");
    running.log.warn({ code: e.code, resources: r.resources }, describeError(e));
    io.err(describeError(e));
  });
  return 0;
}

/** After a graceful stop, how long the event loop may take to drain before the process exits anyway. */
const STOP_EXIT_GRACE_MS = 1500;
