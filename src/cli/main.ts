#!/usr/bin/env -S node --max-semi-space-size=2
// The small young generation keeps an idle agent's RSS ~15 MB lower at no CPU
// cost (docs/benchmarks.md); units and scripts that run `node` directly pass it too.
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.js";
import { EtcdCoordinator } from "../coordinator/etcd.js";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import { SystemClock } from "../platform/clock.js";
import { silentLogger } from "../platform/logger.js";
import { VERSION } from "../version.js";
import { renderStatus } from "./status.js";
import { ban, history, move, simple } from "./control.js";
import { authorizedKey, resync, rsyncdConf, syncStatus } from "./sync.js";

const USAGE = `understudy ${VERSION}: high availability for file-transfer servers

Usage:
  understudy agent --config FILE            run the agent (SIGTERM: graceful handover)
  understudy status --config FILE [--json]  show the cluster as etcd sees it
  understudy status --etcd URL[,URL] --cluster NAME [--prefix /understudy] [--json]
  understudy status ... --watch             redraw every 2 s until Ctrl-C
  understudy config check FILE [--no-host-checks]
                                            validate a config file (exit 0 valid, 2 invalid)

Operator commands, through any node's REST API (--api URL, or --config FILE of a node;
token from --token-file, UNDERSTUDY_API_TOKEN, or the config's api.token_file):
  understudy switchover [--to NODE] [--at TIME] [--reason R] [--wait SECONDS]
  understudy failback [--to NODE]           to failback.preferred unless named
  understudy failover --to NODE [--force]   forced: also to an unhealthy or stale node, or with no primary
  understudy pause | resume [--reason R]    maintenance: no automatic failover while paused
  understudy ban NODE --for 30m | unban NODE
  understudy history [--limit N]
  understudy sync status                    per node: sync generation, lag, last success, last error
  understudy resync [--node NODE]           re-pull every sync root (standby) or republish (primary)
  All take --json. --requested-by NAME is recorded in history (default user@host).
  understudy sync authorized-key --config FILE --public-key FILE [--from ADDR,...]
                                            print the sync key's authorized_keys line (forced read-only rsync daemon)
  understudy sync rsyncd-conf --config FILE print the rsync daemon config the agent writes to sync.serve_config
  understudy vip release --config FILE      drop this node's floating IP now (systemd ExecStopPost)
  understudy keepalived render --config FILE [--out FILE]
                                            keepalived.conf for vip.backend keepalived (only the etcd primary may be MASTER)
  understudy --version

Exit codes: 0 success, 1 runtime failure (etcd or API unreachable, timed out), 2 invalid usage
or config, 3 refused by the cluster (not possible now), 4 unauthorized.`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "agent":
      return runAgent(rest);
    case "status":
      return status(rest);
    case "switchover":
    case "failback":
    case "failover":
      return move(command, rest, print);
    case "pause":
    case "resume":
      return simple(command, rest, print);
    case "ban":
    case "unban":
      return ban(command, rest, print);
    case "history":
      return history(rest, print);
    case "resync":
      return resync(rest, print);
    case "vip":
      if (rest[0] === "release") return vipRelease(rest.slice(1));
      throw usage(`unknown vip subcommand ${JSON.stringify(rest[0] ?? "")}`);
    case "keepalived":
      if (rest[0] === "render") return keepalivedRender(rest.slice(1));
      throw usage(`unknown keepalived subcommand ${JSON.stringify(rest[0] ?? "")}`);
    case "sync":
      if (rest[0] === "status") return syncStatus(rest.slice(1), print);
      if (rest[0] === "authorized-key") return authorizedKey(rest.slice(1), print);
      if (rest[0] === "rsyncd-conf") return rsyncdConf(rest.slice(1), print);
      throw usage(`unknown sync subcommand ${JSON.stringify(rest[0] ?? "")}`);

    case "config":
      if (rest[0] === "check") return configCheck(rest.slice(1));
      throw usage(`unknown config subcommand ${JSON.stringify(rest[0] ?? "")}`);
    case "--version":
    case "version":
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw usage(`unknown command ${JSON.stringify(command)}`);
  }
}

const print = (line: string) => void process.stdout.write(`${line}\n`);

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

function parse<T extends Record<string, { type: "string" | "boolean" }>>(args: readonly string[], options: T, positionals = false) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: positionals, strict: true });
  } catch (e) {
    throw usage(describeError(e));
  }
}

async function configCheck(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { "no-host-checks": { type: "boolean" }, json: { type: "boolean" } }, true);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw usage("config check takes exactly one FILE");
  const config = await loadConfigFile(file, { hostChecks: !values["no-host-checks"] });
  if (values.json) process.stdout.write(`${JSON.stringify({ valid: true, file, config }, null, 2)}\n`);
  else process.stdout.write(`${file}: valid (cluster ${config.cluster}, node ${config.node.name}, ttl ${config.election.ttlMs}ms, fence margin ${config.election.fenceMarginMs}ms)\n`);
  return 0;
}

/**
 * Drop this node's floating IP (keepalived: FAULT first). For systemd's
 * ExecStopPost: after a kill -9 of the agent nothing else would. Never needs
 * etcd; exit 0 when the address is gone (or was never here).
 */
async function vipRelease(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: "string" } });
  if (!values.config) throw usage("vip release needs --config FILE");
  const config = await loadConfigFile(values.config, { hostChecks: false });
  if (!config.vip || config.vip.backend === "none") return 0;
  const [{ createFloatingIp }, { SpawnCommandRunner }] = await Promise.all([import("../vip/index.js"), import("../platform/command.js")]);
  const fip = createFloatingIp(config.vip, { runner: new SpawnCommandRunner(), clock: new SystemClock(), logger: silentLogger() });
  await fip.remove();
  process.stderr.write(`understudy: floating IP ${config.vip.address} released on ${config.vip.interface}\n`);
  return 0;
}

async function keepalivedRender(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: "string" }, out: { type: "string" } });
  if (!values.config) throw usage("keepalived render needs --config FILE");
  const config = await loadConfigFile(values.config, { hostChecks: false });
  const { renderKeepalivedConf } = await import("../vip/keepalived-conf.js");
  const text = renderKeepalivedConf(config);
  if (!values.out) {
    process.stdout.write(text);
    return 0;
  }
  const { writeFileAtomic } = await import("../sync/durable.js");
  await writeFileAtomic(values.out, text, 0o644);
  return 0;
}

async function runAgent(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: "string" } });
  if (!values.config) throw usage("agent needs --config FILE");
  // Validate everything before touching anything: a bad config starts nothing.
  const config = await loadConfigFile(values.config, { hostChecks: true });
  const { startAgent } = await import("../agent.js");
  const agent = await startAgent(config);
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        process.stderr.write(`second ${sig}: exiting without a graceful handover\n`);
        process.exit(1);
      }
      agent.stop().then(resolve, (e: unknown) => {
        process.stderr.write(`graceful stop failed: ${describeError(e)}\n`);
        resolve();
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  return 0;
}

async function status(args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: "string" },
    etcd: { type: "string" },
    cluster: { type: "string" },
    prefix: { type: "string" },
    json: { type: "boolean" },
    watch: { type: "boolean" },
  });
  let endpoints: string[];
  let cluster: string;
  let prefix = values.prefix ?? "/understudy";
  if (values.config) {
    const config = await loadConfigFile(values.config, { hostChecks: false });
    endpoints = config.etcd.endpoints;
    cluster = config.cluster;
    prefix = values.prefix ?? config.etcd.prefix;
  } else if (values.etcd && values.cluster) {
    endpoints = values.etcd.split(",");
    cluster = values.cluster;
  } else {
    throw usage("status needs --config FILE, or --etcd URL and --cluster NAME");
  }
  const clock = new SystemClock();
  const coordinator = new EtcdCoordinator({ endpoints, prefix, cluster, requestTimeoutMs: 3000, dialTimeoutMs: 3000, clock, log: silentLogger() });
  const show = async () => {
    const snap = await coordinator.snapshot();
    process.stdout.write(values.json ? `${JSON.stringify({ cluster, ...snap }, null, 2)}\n` : `${renderStatus(cluster, snap)}\n`);
  };
  try {
    if (!values.watch) {
      await show();
      return 0;
    }
    // Until Ctrl-C; an etcd error is shown and retried, not fatal.
    let stop = false;
    process.once("SIGINT", () => (stop = true));
    while (!stop) {
      process.stdout.write("\x1b[2J\x1b[H");
      await show().catch((e: unknown) => process.stdout.write(`${describeError(e)}\n`));
      process.stdout.write(`\n${new Date(clock.wallMs()).toISOString()}  (Ctrl-C to stop)\n`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    return 0;
  } finally {
    await coordinator.close();
  }
}

function exitCodeFor(e: unknown): number {
  if (isUnderstudyError(e)) return e.code.startsWith("US_E_CONFIG") || e.code === "US_E_CLI_USAGE" || e.code === "US_E_API_TOKEN" ? 2 : 1;
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`understudy: ${describeError(e)}\n`);
    process.exitCode = exitCodeFor(e);
  },
);
