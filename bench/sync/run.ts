/**
 * File-sync benchmark: understudy's sync (3 real agents in the namespace lab,
 * real etcd, the sync sshd with the forced read-only command, rsync over SSH)
 * against lsyncd (Debian 2.2.x, default settings and `delay = 0`) and a plain
 * `rsync -a` over the same SSH link, all in one run on one lab.
 *
 *   npm run bench:sync                           # full run (~5.5 min), writes bench/sync/results-latest.json
 *   npm run bench:sync -- --quick                # 1,000 files / 100 MiB, 20 changes (smoke check)
 *   UNDERSTUDY_LAB_LOGS=/tmp/synclogs npm run bench:sync   # keep agent/sshd/lsyncd logs
 *
 * Options: --iterations N (small-file changes for understudy and lsyncd
 * delay=0, default 60), --lsyncd-default-changes N (default 5: each takes
 * ~15 s), --files N, --mib N (tree size), --large-files N, --rsync-runs N
 * (default 2: one before understudy, one after), --no-fsync-reference,
 * --wait-load X (wait ≤ 10 min for the 1-min load average < X), --only
 * understudy,lsyncd,rsync, --json FILE, --no-json.
 *
 * What is measured (details in README.md beside this file):
 *  1. plain `rsync -a` of the big tree (10,000 files, 1 GiB) pulled from the
 *     primary into an empty directory on one standby, then on both standbys
 *     in parallel (run in the standbys' namespaces, over SSH to a plain sshd
 *     on the primary), half the runs before understudy and half after; plus
 *     one `rsync -a --fsync` to both as a reference (understudy fsyncs);
 *  2. understudy first full sync: the primary's agent starts with the tree,
 *     publishes its first generation; then both standby agents start with
 *     empty roots: time until both logged "in sync", trees then compared
 *     byte for byte;
 *  3. understudy small-file latency: write on the primary's root -> identical
 *     content and mode on both standbys (files polled every 3 ms on the
 *     shared filesystem), every 5th change also a chmod to 0600;
 *  4. lsyncd delay=0: startup full sync of the big tree to both standbys, and
 *     the same small-file latency test; lsyncd default: ≥ 5 small changes.
 *
 * Needs root, `npm run build`, rsync and /usr/bin/lsyncd. Traffic stays inside
 * the lab namespaces (198.18.0.0/15); every wait is bounded; the lab (and
 * lsyncd) is torn down in `finally`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { type Lab, LabCluster, type LabNode, REPO, pollUntil, run, sleep } from "../../test/lab/harness/index.js";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { agentLog, firstLog, now, procSample, quantile, forEachArg, table } from "../failover/lib.js";
import { type LatencyResult, type Summary, measureLatency } from "./latency.js";
import { LSYNCD, Lsyncd, lsyncdVersion } from "./lsyncd.js";
import { PLAIN_SSH_PORT, plainSsh, startPlainSshds } from "./plain-ssh.js";
import { bigRootSweeps, duringSweeps, type DuringSweeps } from "./sweeps.js";
import { GiB, MiB, type TreeDiff, type TreeFacts, compareTrees, describeDiff, makeBigTree, prepareSmallRoot } from "./tree.js";

// ------------------------------------------------------------------ options

interface Options {
  iterations: number;
  lsyncdDefaultChanges: number;
  files: number;
  bytes: number;
  largeFiles: number;
  rsyncRuns: number;
  only: Set<string> | undefined;
  json: string | undefined;
  quick: boolean;
  /** Before starting, wait (at most 10 min) until the 1-minute load average is below this. */
  waitLoad: number | undefined;
  /** Also time `rsync -a --fsync` to both standbys (a reference for understudy's per-file fsync). */
  fsyncReference: boolean;
  /** sync.reconcile_interval for the agents, in seconds (default: the product's, 1m). */
  reconcileSeconds: number | undefined;
}

const DEFAULT_JSON = "bench/sync/results-latest.json";

function parseArgs(argv: string[]): Options {
  let iterations = 60;
  let lsyncdDefaultChanges = 5;
  let files = 10_000;
  let mib = 1024;
  let largeFiles = 10;
  let rsyncRuns = 2;
  let only: Set<string> | undefined;
  let json: string | undefined = DEFAULT_JSON;
  let quick = false;
  let waitLoad: number | undefined;
  let fsyncReference = true;
  let reconcileSeconds: number | undefined;
  const set = { iterations: false, files: false, mib: false, large: false, lsd: false, rsync: false };
  forEachArg(argv, (a, val) => {
    if (a === "--iterations") ((iterations = Number(val())), (set.iterations = true));
    else if (a === "--lsyncd-default-changes") ((lsyncdDefaultChanges = Number(val())), (set.lsd = true));
    else if (a === "--files") ((files = Number(val())), (set.files = true));
    else if (a === "--mib") ((mib = Number(val())), (set.mib = true));
    else if (a === "--large-files") ((largeFiles = Number(val())), (set.large = true));
    else if (a === "--rsync-runs") ((rsyncRuns = Number(val())), (set.rsync = true));
    else if (a === "--only")
      only = new Set(
        val()
          .split(",")
          .map((s) => s.trim()),
      );
    else if (a === "--json") json = val();
    else if (a === "--no-json") json = undefined;
    else if (a === "--quick") quick = true;
    else if (a === "--wait-load") waitLoad = Number(val());
    else if (a === "--no-fsync-reference") fsyncReference = false;
    else if (a === "--reconcile-interval") reconcileSeconds = Number(val());
    else if (a === "--help" || a === "-h") {
      console.log(
        "usage: bench/sync/run.ts [--quick] [--iterations 60] [--lsyncd-default-changes 5] [--files 10000] [--mib 1024] [--large-files 10] [--rsync-runs 2] [--only understudy,lsyncd,rsync] [--wait-load 1.0] [--no-fsync-reference] [--reconcile-interval SECONDS] [--json FILE | --no-json]",
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (quick) {
    if (!set.iterations) iterations = 20;
    if (!set.files) files = 1000;
    if (!set.mib) mib = 100;
    if (!set.large) largeFiles = 2;
    if (!set.lsd) lsyncdDefaultChanges = 2;
    if (!set.rsync) rsyncRuns = 1;
    if (json === DEFAULT_JSON) json = undefined;
  }
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 1000) throw new Error("--iterations must be 1..1000");
  if (!Number.isInteger(lsyncdDefaultChanges) || lsyncdDefaultChanges < 0 || lsyncdDefaultChanges > 20) throw new Error("--lsyncd-default-changes must be 0..20");
  if (!Number.isInteger(files) || files < 10 || files > 200_000) throw new Error("--files must be 10..200000");
  if (!(mib >= 1 && mib <= 8192)) throw new Error("--mib must be 1..8192");
  if (!Number.isInteger(largeFiles) || largeFiles < 0 || largeFiles >= files) throw new Error("--large-files must be 0..files-1");
  if (!Number.isInteger(rsyncRuns) || rsyncRuns < 1 || rsyncRuns > 10) throw new Error("--rsync-runs must be 1..10");
  if (only) for (const o of only) if (!["understudy", "lsyncd", "rsync"].includes(o)) throw new Error(`--only: unknown ${o}`);
  if (waitLoad !== undefined && !(waitLoad > 0 && waitLoad < 100)) throw new Error("--wait-load takes a load average like 1.0");
  if (reconcileSeconds !== undefined && !(Number.isInteger(reconcileSeconds) && reconcileSeconds >= 1 && reconcileSeconds <= 3600)) throw new Error("--reconcile-interval must be 1..3600 seconds");
  return { iterations, lsyncdDefaultChanges, files, bytes: Math.round(mib * MiB), largeFiles, rsyncRuns, only, json, quick, waitLoad, fsyncReference, reconcileSeconds };
}

// ------------------------------------------------------------------ helpers

const t00 = Date.now();
const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)} +${((Date.now() - t00) / 1000).toFixed(0).padStart(3)}s] ${msg}\n`);
};
const small = (n: LabNode): string => join(n.dir, "bench-small");
const big = (n: LabNode): string => join(n.dir, "bench-big");
const sec = (ms: number | null | undefined): string => (ms === null || ms === undefined || !Number.isFinite(ms) ? "-" : `${(ms / 1000).toFixed(2)} s`);
const msf = (ms: number | null | undefined): string => (ms === null || ms === undefined || !Number.isFinite(ms) ? "-" : `${ms.toFixed(0)} ms`);
const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a && b && Number.isFinite(a) && Number.isFinite(b) ? a / b : null);
const xf = (r: number | null): string => (r === null ? "-" : `${r.toFixed(2)}×`);
const median = (v: number[]): number | null => (v.length ? quantile(v, 0.5) : null);

/** Flush dirty pages so a timed transfer does not pay for the previous step's write-back. */
async function flush(): Promise<void> {
  await run(["sync"], { timeoutMs: 120_000 });
}

function distFreshness(): Results["dist"] {
  const main = join(REPO, "dist", "cli", "main.js");
  if (!existsSync(main)) return { builtAt: null, srcNewer: [] };
  const built = statSync(main).mtimeMs;
  const newer: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && statSync(p).mtimeMs > built) newer.push(relative(REPO, p));
    }
  };
  walk(join(REPO, "src"));
  return { builtAt: new Date(built).toISOString(), srcNewer: newer };
}

function tool(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 5000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n")[0]?.trim() ?? "?";
}

// ------------------------------------------------------------------ records

interface RsyncRun {
  run: number;
  /** "before understudy" or "after understudy". */
  when: string;
  singleMs: number | null;
  parallelMs: number | null;
  parallelEachMs: (number | null)[];
  /** The `sync` right after the parallel run: writing back what plain rsync left in the page cache. */
  flushAfterMs?: number;
  error?: string;
}

interface RsyncResult {
  command: string;
  runs: RsyncRun[];
  singleMs: number | null;
  parallelMs: number | null;
  /** Median of parallel run + the `sync` after it: plain rsync made as durable as understudy's apply. */
  durableParallelMs?: number | null;
  verify?: TreeDiff;
  /** Reference: `rsync -a --fsync` to both standbys at once. */
  fsyncParallelMs?: number;
  fsyncError?: string;
}

interface UnderstudyFull {
  /** n1's agent started (epoch ms) -> its "published a new generation" log line. */
  publishMs: number | null;
  publishedFiles: number | null;
  /** Standby agents started (after the publication) -> both logged "in sync" (max of the two). */
  joinMs: number | null;
  /** Per standby: agent started -> its first log line (Node start-up, config load). */
  bootMs: Record<string, number | null>;
  perStandbyJoinMs: Record<string, number | null>;
  /** The standbys' "sync: applied" line for the big root: rsync pull and apply (verify + rename into place). */
  applied: Record<string, { pullMs: number | null; checkMs: number | null; applyMs: number | null; bytes: number | null }>;
  /** CPU of each agent's process (all its threads) from the standbys' start to both in sync; the standbys' includes their start-up. */
  agentCpuMs: Record<string, number | null>;
  /** publishMs + joinMs: a cold cluster start with the tree on the primary only. */
  coldMs: number | null;
  verify: Record<string, TreeDiff>;
  syncStatus?: string;
  error?: string;
}

interface LsyncdFull {
  /** lsyncd spawned -> both "Startup of ... finished" lines. */
  ms: number | null;
  perTargetMs: number[];
  verify: Record<string, TreeDiff>;
  error?: string;
}

interface AgentIssues {
  node: string;
  warn: number;
  error: number;
  messages: Record<string, number>;
  examples: string[];
}

interface Results {
  date: string;
  options: Omit<Options, "only"> & { only: string[] | null };
  machine: { cores: number; memGiB: number; kernel: string; node: string; rsync: string; openssh: string; lsyncd: string | null; loadavgStart: string; loadavgEnd?: string };
  /** dist/ build time and src/ files newer than it (a stale build benchmarks old code). */
  dist: { builtAt: string | null; srcNewer: string[] };
  /** 1-minute load average when each phase started (other work on the 2-core host skews the figures). */
  phaseLoad: Record<string, number>;
  tree?: TreeFacts;
  rsync?: RsyncResult;
  understudy?: { full?: UnderstudyFull; latency?: LatencyResult; duringSweeps?: DuringSweeps; agentIssues: AgentIssues[]; agentIssuesAtShutdown?: AgentIssues[]; syncSettings: string; error?: string };
  lsyncd?: { full?: LsyncdFull; delay0?: LatencyResult; default?: LatencyResult; settings: string; error?: string };
  /** Wall time including the --wait-load wait. */
  wallSeconds?: number;
  waitedForLoadSeconds?: number;
  report?: string[];
}

// -------------------------------------------------------------- scenarios

/**
 * Plain `rsync -a` runs `first..last` (1-based): each pulls the tree into an
 * empty directory on n2, then on n2 and n3 at once. Called twice in a full
 * run (before understudy, and after its agents stopped) so drift in the
 * host's load over the run hits both sides; the report takes the median.
 */
async function plainRsyncBaseline(c: LabCluster, res: Results, first: number, last: number, when: string): Promise<void> {
  const lab = c.lab;
  const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
  const ssh = plainSsh(lab);
  const dst = (n: LabNode) => join(n.dir, "rsync-big");
  const pull = (n: LabNode) => lab.exec(n, ["rsync", "-a", "-e", ssh, `root@${n1.address}:${big(n1)}/`, `${dst(n)}/`], { timeoutMs: 600_000 });
  res.rsync ??= {
    command: `rsync -a -e "ssh … -p ${PLAIN_SSH_PORT}" root@n1:<n1 dir>/bench-big/ <standby dir>/rsync-big/ (run in the standby's namespace)`,
    runs: [],
    singleMs: null,
    parallelMs: null,
  };
  const out = res.rsync;
  log(`=== plain rsync -a baseline (${when}): run${last > first ? "s" : ""} ${first}${last > first ? `-${last}` : ""}, one standby then two in parallel`);
  for (let i = first; i <= last; i++) {
    const r: RsyncRun = { run: i, when, singleMs: null, parallelMs: null, parallelEachMs: [] };
    out.runs.push(r);
    try {
      for (const n of [n2, n3]) rmSync(dst(n), { recursive: true, force: true });
      await flush();
      const s = await pull(n2);
      if (s.code !== 0) throw new Error(`rsync on n2 failed (${s.code}): ${s.stderr.trim().slice(-300)}`);
      r.singleMs = s.ms;
      if (!out.verify) out.verify = compareTrees(big(n1), dst(n2));
      rmSync(dst(n2), { recursive: true, force: true });
      await flush();
      const t0 = performance.now();
      const both = await Promise.all(
        [n2, n3].map(async (n) => {
          const x = await pull(n);
          return { x, end: performance.now() };
        }),
      );
      r.parallelMs = Math.max(...both.map((b) => b.end)) - t0;
      r.parallelEachMs = both.map((b) => (b.x.code === 0 ? b.x.ms : null));
      const bad = both.find((b) => b.x.code !== 0);
      if (bad) throw new Error(`parallel rsync failed (${bad.x.code}): ${bad.x.stderr.trim().slice(-300)}`);
      const f0 = performance.now();
      await flush();
      r.flushAfterMs = performance.now() - f0;
    } catch (e) {
      r.error = (e as Error).message;
    }
    log(
      `  rsync run ${i}: one standby ${sec(r.singleMs)}, two in parallel ${sec(r.parallelMs)} (${r.parallelEachMs.map(sec).join(" / ")}), then sync ${sec(r.flushAfterMs ?? null)}${r.error ? ` ERROR ${r.error}` : ""}`,
    );
  }
  for (const n of [n2, n3]) rmSync(dst(n), { recursive: true, force: true });
  out.singleMs = median(out.runs.map((r) => r.singleMs).filter((x): x is number => x !== null));
  out.parallelMs = median(out.runs.map((r) => r.parallelMs).filter((x): x is number => x !== null));
  out.durableParallelMs = median(out.runs.flatMap((r) => (r.parallelMs !== null && r.flushAfterMs !== undefined ? [r.parallelMs + r.flushAfterMs] : [])));
  if (out.verify && first === 1) log(`  rsync -a copy vs the source: ${describeDiff(out.verify)}`);
}

/**
 * Reference, not the target's baseline: `rsync -a --fsync` to both standbys
 * at once. understudy fsyncs every file it applies (and plain rsync and
 * lsyncd do not), so this shows how much of the gap is durability.
 */
async function rsyncFsyncReference(c: LabCluster, res: Results): Promise<void> {
  const lab = c.lab;
  const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
  const ssh = plainSsh(lab);
  const dst = (n: LabNode) => join(n.dir, "rsync-fsync-big");
  if (!res.rsync) return;
  log("=== reference: rsync -a --fsync, two standbys in parallel (understudy fsyncs every applied file)");
  try {
    for (const n of [n2, n3]) rmSync(dst(n), { recursive: true, force: true });
    await flush();
    const t0 = performance.now();
    const both = await Promise.all([n2, n3].map((n) => lab.exec(n, ["rsync", "-a", "--fsync", "-e", ssh, `root@${n1.address}:${big(n1)}/`, `${dst(n)}/`], { timeoutMs: 600_000 })));
    const bad = both.find((b) => b.code !== 0);
    if (bad) throw new Error(`rsync --fsync failed (${bad.code}): ${bad.stderr.trim().slice(-300)}`);
    res.rsync.fsyncParallelMs = performance.now() - t0;
    log(`  rsync -a --fsync, two in parallel: ${sec(res.rsync.fsyncParallelMs)} (${both.map((b) => sec(b.ms)).join(" / ")})`);
  } catch (e) {
    res.rsync.fsyncError = (e as Error).message;
    log(`  ERROR ${res.rsync.fsyncError}`);
  } finally {
    for (const n of [n2, n3]) rmSync(dst(n), { recursive: true, force: true });
  }
}

function agentIssues(lab: Lab): AgentIssues[] {
  return lab.nodes.map((n) => {
    const lines = agentLog(lab, n.name).filter((l) => typeof l.level === "number" && (l.level as number) >= 40);
    const messages: Record<string, number> = {};
    for (const l of lines) messages[l.msg] = (messages[l.msg] ?? 0) + 1;
    return {
      node: n.name,
      warn: lines.filter((l) => l.level === 40).length,
      error: lines.filter((l) => (l.level as number) >= 50).length,
      messages,
      examples: lines.slice(0, 5).map((l) => JSON.stringify({ level: l.level, msg: l.msg, err: l.err, code: l.code }).slice(0, 400)),
    };
  });
}

async function understudyScenario(c: LabCluster, opts: Options, res: Results): Promise<void> {
  const lab = c.lab;
  const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
  const standbys = [n2, n3];
  const reconcile = opts.reconcileSeconds === undefined ? "reconcile_interval 1m" : `reconcile_interval ${opts.reconcileSeconds}s (--reconcile-interval)`;
  const u: NonNullable<Results["understudy"]> = { agentIssues: [], syncSettings: `defaults (debounce 20ms, max_delay 250ms, ${reconcile}); roots small + big (max_file_size 256MiB)` };
  res.understudy = u;
  try {
    // ---- first full sync
    log("=== understudy: first full sync (n1 publishes the tree, then n2 and n3 join with empty roots)");
    const full: UnderstudyFull = { publishMs: null, publishedFiles: null, joinMs: null, bootMs: {}, perStandbyJoinMs: {}, applied: {}, agentCpuMs: {}, coldMs: null, verify: {} };
    u.full = full;
    await flush();
    const tA = now();
    c.startAgent(n1.name);
    const leader = await c.waitForLeader({ timeoutMs: 20_000 });
    if (leader?.node !== n1.name) throw new Error(`n1 did not become the primary within 20 s (leader: ${leader?.node ?? "none"})`);
    const pub = await pollUntil(() => firstLog(agentLog(lab, n1.name), tA - 5, /^sync: published a new generation/), { timeoutMs: 180_000, intervalMs: 50 });
    if (!pub) throw new Error("n1 did not publish a generation within 180 s");
    full.publishMs = pub.time - tA;
    full.publishedFiles = typeof pub.files === "number" ? pub.files : null;
    log(`  n1 primary, generation published ${sec(full.publishMs)} after its agent started (${full.publishedFiles ?? "?"} files)`);
    await flush();
    // utime + stime of an agent's process, in ms (USER_HZ 100).
    const agentCpu = async (n: LabNode): Promise<number | null> => {
      const pid = await c.agentPid(n.name);
      const p = pid === undefined ? undefined : procSample(pid);
      return p ? p.selfTicks * 10 : null;
    };
    const primaryCpu0 = await agentCpu(n1);
    const tB = now();
    for (const n of standbys) c.startAgent(n.name);
    const synced = await pollUntil(
      () => {
        const at = standbys.map((n) => firstLog(agentLog(lab, n.name), tB - 5, /^sync: in sync with the primary's generation/)?.time);
        return at.every((x) => x !== undefined) ? (at as number[]) : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 50 },
    );
    const primaryCpu1 = await agentCpu(n1);
    full.agentCpuMs[n1.name] = primaryCpu0 !== null && primaryCpu1 !== null ? primaryCpu1 - primaryCpu0 : null;
    for (const n of standbys) full.agentCpuMs[n.name] = await agentCpu(n);
    for (const [i, n] of standbys.entries()) {
      full.perStandbyJoinMs[n.name] = synced ? synced[i]! - tB : null;
      const first = agentLog(lab, n.name).find((x) => x.time >= tB - 5);
      full.bootMs[n.name] = first ? first.time - tB : null;
      const ap = agentLog(lab, n.name).find((l) => l.time >= tB - 5 && l.msg === "sync: applied" && l.root === "big");
      full.applied[n.name] = {
        pullMs: typeof ap?.pull_ms === "number" ? ap.pull_ms : null,
        checkMs: typeof ap?.check_ms === "number" ? ap.check_ms : null,
        applyMs: typeof ap?.apply_ms === "number" ? ap.apply_ms : null,
        bytes: typeof ap?.bytes === "number" ? ap.bytes : null,
      };
    }
    if (!synced) throw new Error(`the standbys were not both in sync within 300 s of joining (${JSON.stringify(full.perStandbyJoinMs)})`);
    full.joinMs = Math.max(...synced) - tB;
    full.coldMs = full.publishMs + full.joinMs;
    log(
      `  both standbys in sync ${sec(full.joinMs)} after they started (${standbys.map((n) => `${n.name} ${sec(full.perStandbyJoinMs[n.name])}: first log line +${sec(full.bootMs[n.name])}, rsync pull ${msf(full.applied[n.name]?.pullMs)}, check ${msf(full.applied[n.name]?.checkMs)}, apply ${msf(full.applied[n.name]?.applyMs)}`).join("; ")})`,
    );
    log(`  agents' CPU over the join (all threads): ${[n1, ...standbys].map((n) => `${n.name} ${sec(full.agentCpuMs[n.name] ?? null)}`).join(", ")} (the standbys' from their start)`);
    for (const n of standbys) {
      full.verify[n.name] = compareTrees(big(n1), big(n));
      full.verify[`${n.name}/small`] = compareTrees(small(n1), small(n));
      log(`  ${n.name} big root vs n1: ${describeDiff(full.verify[n.name]!)}`);
    }
    const st = await c.cli(["sync", "status", "--json"], { timeoutMs: 15_000 });
    full.syncStatus = st.stdout.slice(0, 4000);
    try {
      const s = JSON.parse(st.stdout) as { published: { generation: number } | null; members: { node: string; generation: number }[] };
      const behind = s.members.filter((m) => m.generation !== s.published?.generation);
      log(
        `  understudy sync status: published generation ${s.published?.generation ?? "?"}, members ${s.members.map((m) => `${m.node}=${m.generation}`).join(" ")}${behind.length ? " (SOME BEHIND)" : ""}`,
      );
    } catch {
      log(`  understudy sync status: unparsable (${st.stderr.trim().slice(0, 200)})`);
    }

    // ---- small-file latency
    log(`=== understudy: small-file latency, ${opts.iterations} changes (every 5th with a chmod 0600), write on n1 -> identical on n2 and n3`);
    await flush(); // the full sync's 3 GiB written back first, as before every other phase
    await sleep(1000);
    u.latency = await measureLatency({
      label: "understudy",
      primaryRoot: small(n1),
      standbyRoots: standbys.map(small),
      iterations: opts.iterations,
      timeoutMs: 10_000,
      spacingMs: 300,
      log,
    });
    const L = u.latency;
    log(
      `  understudy: p50 ${msf(L.identical?.p50)}, p95 ${msf(L.identical?.p95)}, p99 ${msf(L.identical?.p99)}, max ${msf(L.identical?.max)}; misses ${L.misses}; chmods ${L.chmodsPropagated}/${L.chmods}`,
    );
    u.duringSweeps = duringSweeps(L.iterations, bigRootSweeps(Object.fromEntries(lab.nodes.map((n) => [n.name, agentLog(lab, n.name)]))));
    const D = u.duringSweeps;
    log(
      `  while an agent swept the big root (${D.sweeps} sweeps, walk p50 ${msf(D.sweepMsP50)}): ${D.changes} changes, p50 ${msf(D.identical?.p50)}, p99 ${msf(D.identical?.p99)}, max ${msf(D.identical?.max)}`,
    );
  } catch (e) {
    u.error = (e as Error).message;
    log(`  ERROR ${u.error}`);
  } finally {
    u.agentIssues = agentIssues(lab);
    for (const a of u.agentIssues) if (a.warn + a.error > 0) log(`  ${a.node} agent log: ${a.warn} warnings, ${a.error} errors: ${JSON.stringify(a.messages)}`);
    // Standbys first, so stopping does not hand the primary role around.
    log("  stopping the understudy agents (SIGTERM: n2, n3, then n1)");
    for (const n of [n2, n3, n1]) await c.signalAgent(n.name, "SIGTERM", 10_000);
    u.agentIssuesAtShutdown = agentIssues(lab).map((a, i) => {
      const runtime = u.agentIssues[i]!;
      const messages: Record<string, number> = {};
      for (const [m, k] of Object.entries(a.messages)) if (k > (runtime.messages[m] ?? 0)) messages[m] = k - (runtime.messages[m] ?? 0);
      return { ...a, warn: a.warn - runtime.warn, error: a.error - runtime.error, messages, examples: [] };
    });
  }
}

async function lsyncdScenario(c: LabCluster, opts: Options, res: Results): Promise<void> {
  const lab = c.lab;
  const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
  const standbys = [n2, n3];
  const rsh = plainSsh(lab);
  const l: NonNullable<Results["lsyncd"]> = { settings: `default.rsync, one sync{} per standby, rsync = { rsh = "ssh … -p ${PLAIN_SSH_PORT}" }; default (delay 15 s) and delay = 0` };
  res.lsyncd = l;
  let current: Lsyncd | undefined;
  try {
    // ---- full sync, delay = 0 (its startup sync)
    log("=== lsyncd delay = 0: startup full sync of the big tree to n2 and n3");
    const dst = (n: LabNode) => join(n.dir, "lsyncd-big");
    for (const n of standbys) rmSync(dst(n), { recursive: true, force: true });
    await flush();
    const full: LsyncdFull = { ms: null, perTargetMs: [], verify: {} };
    l.full = full;
    current = Lsyncd.start(lab, n1, { tag: "big-delay0", source: big(n1), targets: standbys.map((n) => ({ node: n, dir: dst(n) })), delay: 0, rsh });
    const done = await current.waitStartups(2, 600_000);
    if (!done) full.error = `lsyncd startup did not finish within 600 s:\n${current.tail()}`;
    else {
      full.perTargetMs = done.map((t) => t - current!.started);
      full.ms = Math.max(...full.perTargetMs);
    }
    await current.stop();
    current = undefined;
    log(`  lsyncd delay=0 startup sync: ${sec(full.ms)} (${full.perTargetMs.map(sec).join(" / ")})${full.error ? ` ERROR ${full.error}` : ""}`);
    for (const n of standbys) {
      if (!existsSync(dst(n))) continue;
      full.verify[n.name] = compareTrees(big(n1), dst(n));
      log(`  ${n.name} lsyncd copy vs n1: ${describeDiff(full.verify[n.name]!)}`);
      rmSync(dst(n), { recursive: true, force: true });
    }

    // ---- small-file latency, delay = 0
    const runLatency = async (tag: string, delay: number | undefined, iterations: number, timeoutMs: number, modeGraceMs: number, progressEvery: number): Promise<LatencyResult> => {
      prepareSmallRoot(small(n1), `lsyncd ${tag}`);
      const tdir = (n: LabNode) => join(n.dir, `lsyncd-small-${tag}`);
      for (const n of standbys) rmSync(tdir(n), { recursive: true, force: true });
      current = Lsyncd.start(lab, n1, { tag: `small-${tag}`, source: small(n1), targets: standbys.map((n) => ({ node: n, dir: tdir(n) })), ...(delay !== undefined ? { delay } : {}), rsh });
      const up = await current.waitStartups(2, 30_000);
      if (!up) throw new Error(`lsyncd (${tag}) startup did not finish within 30 s:\n${current.tail()}`);
      await sleep(1000);
      try {
        return await measureLatency({
          label: `lsyncd ${tag}`,
          primaryRoot: small(n1),
          standbyRoots: standbys.map(tdir),
          iterations,
          timeoutMs,
          modeGraceMs,
          spacingMs: 300,
          progressEvery,
          log,
        });
      } finally {
        await current.stop();
        current = undefined;
      }
    };
    log(`=== lsyncd delay = 0: small-file latency, ${opts.iterations} changes (every 5th with a chmod 0600)`);
    l.delay0 = await runLatency("delay0", 0, opts.iterations, 10_000, 2000, 10);
    const D = l.delay0;
    log(
      `  lsyncd delay=0: content p50 ${msf(D.content?.p50)}, p95 ${msf(D.content?.p95)}, p99 ${msf(D.content?.p99)}; identical (content + mode) in ${D.iterations.length - D.misses}/${D.iterations.length}; chmods ${D.chmodsPropagated}/${D.chmods}`,
    );
    if (opts.lsyncdDefaultChanges > 0) {
      log(`=== lsyncd default settings (delay 15 s): ${opts.lsyncdDefaultChanges} small changes (every 5th with a chmod 0600), one at a time`);
      l.default = await runLatency("default", undefined, opts.lsyncdDefaultChanges, 40_000, 5000, 1);
      const F = l.default;
      log(`  lsyncd default: content p50 ${sec(F.content?.p50)}, max ${sec(F.content?.max)}; chmods ${F.chmodsPropagated}/${F.chmods}`);
    }
  } catch (e) {
    l.error = (e as Error).message;
    log(`  ERROR ${l.error}`);
  } finally {
    await (current as Lsyncd | undefined)?.stop();
  }
}

// ----------------------------------------------------------------- report

function report(res: Results, opts: Options): string {
  const out: string[] = [];
  const u = res.understudy;
  const L = u?.latency;
  const D = res.lsyncd?.delay0;
  const F = res.lsyncd?.default;
  const rs = res.rsync;
  const lat = (r: LatencyResult | undefined, k: keyof Summary, asSec = false) => {
    const s = r ? (r.misses === 0 ? r.identical : r.content) : null;
    const v = s?.[k];
    return v === undefined ? "-" : asSec ? sec(v) : msf(v);
  };
  const counted = (r: LatencyResult | undefined) => (r ? `${r.iterations.length - r.misses}/${r.iterations.length}` : "-");
  const head = ["small file → 2 standbys", "understudy", "lsyncd default", "lsyncd delay=0", "plain rsync -a"];
  const rows: string[][] = [head];
  rows.push(["changes identical (content + mode)", counted(L), counted(F), counted(D), "-"]);
  for (const k of ["p50", "p95", "p99", "max"] as const) rows.push([`latency ${k}`, lat(L, k), lat(F, k, true), lat(D, k), "-"]);
  rows.push(["chmod 0600 propagated", L ? `${L.chmodsPropagated}/${L.chmods}` : "-", F ? `${F.chmodsPropagated}/${F.chmods}` : "-", D ? `${D.chmodsPropagated}/${D.chmods}` : "-", "-"]);
  out.push(table(rows));
  out.push("(understudy: write -> content and mode identical on both standbys, chmods included; lsyncd: where a chmod never arrived, the row shows content-only latency over all changes)");

  const t = res.tree;
  const full = u?.full;
  const lf = res.lsyncd?.full;
  const rows2: string[][] = [[`first full sync${t ? ` (${t.files} files, ${(t.bytes / GiB).toFixed(2)} GiB)` : ""}`, "time", "vs rsync -a ×2 parallel", "vs rsync -a, one standby", "identical"]];
  const ident = (v: Record<string, TreeDiff> | undefined) => {
    const d = Object.entries(v ?? {}).filter(([k]) => !k.includes("/"));
    return d.length ? (d.every(([, x]) => x.identical) ? "yes" : d.map(([k, x]) => `${k}: ${describeDiff(x).slice(0, 60)}`).join("; ")) : "-";
  };
  rows2.push(["plain rsync -a, one standby", sec(rs?.singleMs), xf(ratio(rs?.singleMs, rs?.parallelMs)), "1.00×", rs?.verify ? (rs.verify.identical ? "yes" : describeDiff(rs.verify)) : "-"]);
  rows2.push(["plain rsync -a, two standbys in parallel", sec(rs?.parallelMs), "1.00×", xf(ratio(rs?.parallelMs, rs?.singleMs)), ""]);
  if (rs?.durableParallelMs != null)
    rows2.push(["(reference) the same + one sync after it (durable)", sec(rs.durableParallelMs), xf(ratio(rs.durableParallelMs, rs.parallelMs)), xf(ratio(rs.durableParallelMs, rs.singleMs)), ""]);
  if (rs?.fsyncParallelMs !== undefined)
    rows2.push(["(reference) rsync -a --fsync, two in parallel", sec(rs.fsyncParallelMs), xf(ratio(rs.fsyncParallelMs, rs.parallelMs)), xf(ratio(rs.fsyncParallelMs, rs.singleMs)), ""]);
  rows2.push(["understudy: standbys join -> both in sync", sec(full?.joinMs), xf(ratio(full?.joinMs, rs?.parallelMs)), xf(ratio(full?.joinMs, rs?.singleMs)), ident(full?.verify)]);
  rows2.push(["understudy: + primary publish (cold start)", sec(full?.coldMs), xf(ratio(full?.coldMs, rs?.parallelMs)), xf(ratio(full?.coldMs, rs?.singleMs)), ""]);
  rows2.push(["lsyncd delay=0 startup sync, 2 standbys", sec(lf?.ms), xf(ratio(lf?.ms, rs?.parallelMs)), xf(ratio(lf?.ms, rs?.singleMs)), ident(lf?.verify)]);
  out.push("", table(rows2));
  if (rs) out.push(`plain rsync runs (median used): ${rs.runs.map((r) => `#${r.run} ${r.when}: ${sec(r.singleMs)} / ${sec(r.parallelMs)}`).join("; ")}`);
  if (full) {
    out.push(
      `understudy breakdown: primary publish (agent start, election, manifest of the tree) ${sec(full.publishMs)}; per standby join -> in sync ${Object.entries(full.perStandbyJoinMs)
        .map(([k, v]) => `${k} ${sec(v)}`)
        .join(", ")}` +
        ` (agent start-up to its first log line ${Object.entries(full.bootMs)
          .map(([k, v]) => `${k} ${sec(v)}`)
          .join(", ")}); ` +
        `rsync pull ${Object.entries(full.applied)
          .map(([k, v]) => `${k} ${msf(v.pullMs)}`)
          .join(", ")}; apply (verify + rename) ${Object.entries(full.applied)
          .map(([k, v]) => `${k} ${msf(v.applyMs)}`)
          .join(", ")}`,
    );
  }

  const verdict = (ok: boolean | undefined) => (ok === undefined ? "not measured" : ok ? "met" : "NOT MET");
  const idOk = L && L.misses === 0 ? L.identical : null;
  out.push("");
  out.push("targets:");
  out.push(`  small file p50 ≤ 150 ms on 2 standbys: ${verdict(L ? (idOk ? idOk.p50 <= 150 : false) : undefined)} (${msf(idOk?.p50)})`);
  out.push(`  small file p99 ≤ 500 ms on 2 standbys: ${verdict(L ? (idOk ? idOk.p99 <= 500 : false) : undefined)} (${msf(idOk?.p99)})`);
  out.push(`  mode changes propagated: ${verdict(L ? L.chmodsPropagated === L.chmods && L.chmods > 0 : undefined)} (${L ? `${L.chmodsPropagated}/${L.chmods}` : "-"})`);
  const fr = ratio(full?.joinMs, rs?.parallelMs);
  out.push(
    `  full sync ≤ 1.5× plain rsync (2 standbys, join -> in sync vs rsync ×2 parallel): ${verdict(fr === null ? undefined : fr <= 1.5)} (${xf(fr)}; cold start incl. publish ${xf(ratio(full?.coldMs, rs?.parallelMs))})`,
  );
  out.push("");
  out.push("ratios:");
  const dl = D?.content?.p50;
  const fl = F?.content?.p50;
  const ul = L?.identical?.p50;
  out.push(`  small-file p50: lsyncd default / understudy ${xf(ratio(fl, ul))}; lsyncd delay=0 / understudy ${xf(ratio(dl, ul))}; lsyncd default / lsyncd delay=0 ${xf(ratio(fl, dl))}`);
  out.push(`  small-file p99: lsyncd delay=0 / understudy ${xf(ratio(D?.content?.p99, L?.identical?.p99))}`);
  out.push(`  full sync: understudy / plain rsync ×2 ${xf(fr)}; lsyncd delay=0 / plain rsync ×2 ${xf(ratio(lf?.ms, rs?.parallelMs))}; understudy / lsyncd delay=0 ${xf(ratio(full?.joinMs, lf?.ms))}`);
  if (u) {
    const issues = u.agentIssues.filter((a) => a.warn + a.error > 0);
    out.push("");
    out.push(
      `understudy agent logs (level ≥ warn) while measuring: ${issues.length ? issues.map((a) => `${a.node}: ${a.warn} warn / ${a.error} error ${JSON.stringify(a.messages)}`).join("; ") : "none"}`,
    );
    const down = (u.agentIssuesAtShutdown ?? []).filter((a) => a.warn + a.error > 0);
    if (down.length) out.push(`  at shutdown: ${down.map((a) => `${a.node}: ${JSON.stringify(a.messages)}`).join("; ")}`);
  }
  if (t) {
    out.push(
      `tree: ${t.files} files (${t.files - t.largeFiles} of ${(t.smallMin / 1024).toFixed(0)}-${(t.smallMax / 1024).toFixed(0)} KiB in ${t.dirs} dirs = ${(t.smallBytes / MiB).toFixed(0)} MiB, ${t.largeFiles} of ~${(t.largeBytes / Math.max(1, t.largeFiles) / MiB).toFixed(0)} MiB), ${(t.bytes / MiB).toFixed(0)} MiB random data, ${t.mode0600} files 0600, ${t.mode0755} 0755`,
    );
  }
  out.push(
    `host: ${res.machine.cores} cores, ${res.machine.memGiB} GiB, Linux ${res.machine.kernel}, Node ${res.machine.node}, ${res.machine.rsync}, ${res.machine.openssh}, lsyncd ${res.machine.lsyncd ?? "-"}; load ${res.machine.loadavgStart} -> ${res.machine.loadavgEnd ?? "?"}; wall ${res.wallSeconds?.toFixed(0) ?? "?"} s${res.waitedForLoadSeconds ? ` (${res.waitedForLoadSeconds} s of it waiting for the load to drop)` : ""}` +
      (opts.quick ? " (QUICK RUN: not the issue sizes)" : ""),
  );
  out.push(
    `1-min load when each phase started: ${
      Object.entries(res.phaseLoad)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(", ") || "-"
    }${res.dist.srcNewer.length ? `; WARNING dist/ older than ${res.dist.srcNewer.length} src file(s)` : ""}`,
  );
  return out.join("\n");
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const want = (name: string) => !opts.only || opts.only.has(name);
  if (process.getuid?.() !== 0) throw new Error("the sync benchmark needs root (network namespaces)");
  if (want("lsyncd") && !existsSync(LSYNCD)) throw new Error(`${LSYNCD} is missing: apt-get install -y lsyncd (or --only understudy,rsync)`);
  const started = Date.now();
  const la = () =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(" ");
  const res: Results = {
    date: new Date().toISOString(),
    options: { ...opts, only: opts.only ? [...opts.only] : null },
    machine: {
      cores: cpus().length,
      memGiB: Math.round(totalmem() / GiB),
      kernel: release(),
      node: process.version,
      rsync: tool(["rsync", "--version"])
        .replace(/\s+protocol.*$/, "")
        .replace(/\s+/g, " "),
      openssh: tool(["ssh", "-V"]).split(",")[0] ?? "?",
      lsyncd: existsSync(LSYNCD) ? (lsyncdVersion() ?? null) : null,
      loadavgStart: la(),
    },
    dist: distFreshness(),
    phaseLoad: {},
  };
  if (opts.waitLoad !== undefined) {
    const t = Date.now();
    while (loadavg()[0]! >= opts.waitLoad && Date.now() - t < 600_000) {
      log(`  waiting for the 1-minute load average (${loadavg()[0]!.toFixed(2)}) to drop below ${opts.waitLoad}`);
      await sleep(10_000);
    }
    res.machine.loadavgStart = la();
    res.waitedForLoadSeconds = Math.round((Date.now() - t) / 1000);
    res.dist = distFreshness();
  }
  if (res.dist.srcNewer.length)
    log(`WARNING: dist/ (built ${res.dist.builtAt}) is older than ${res.dist.srcNewer.length} src file(s) (${res.dist.srcNewer.slice(0, 5).join(", ")}): run \`npm run build\``);
  log(
    `sync benchmark: ${opts.files} files / ${(opts.bytes / MiB).toFixed(0)} MiB, ${opts.iterations} small changes, lsyncd default ${opts.lsyncdDefaultChanges} changes, rsync runs ${opts.rsyncRuns}${opts.quick ? " (quick)" : ""}; load ${res.machine.loadavgStart}`,
  );
  let c: LabCluster | undefined;
  try {
    c = await LabCluster.create({
      start: false,
      priorities: [300, 100, 200],
      sync: {
        rootPaths: (n) => [small(n), big(n)],
        authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
        rootsYaml: (n) => [`    - { name: small, path: ${small(n)} }`, `    - { name: big, path: ${big(n)}, max_file_size: 256MiB }`].join("\n"),
        ...(opts.reconcileSeconds !== undefined ? { extraYaml: `  reconcile_interval: ${opts.reconcileSeconds}s` } : {}),
      },
    });
    const lab = c.lab;
    const [n1] = lab.nodes as [LabNode, LabNode, LabNode];
    log(`lab ${lab.prefix}, subnet ${lab.subnet}; sync sshd on :2222 (forced command), plain sshd on :${PLAIN_SSH_PORT} for rsync/lsyncd`);
    await startPlainSshds(lab);
    prepareSmallRoot(small(n1), "understudy");
    res.tree = makeBigTree(big(n1), { files: opts.files, bytes: opts.bytes, largeFiles: opts.largeFiles, smallMin: 1024, smallMax: 64 * 1024, dirs: Math.max(1, Math.round(opts.files / 100)) });
    log(
      `tree on n1: ${res.tree.files} files, ${(res.tree.bytes / MiB).toFixed(0)} MiB (${res.tree.files - res.tree.largeFiles} small = ${(res.tree.smallBytes / MiB).toFixed(0)} MiB, ${res.tree.largeFiles} large = ${(res.tree.largeBytes / MiB).toFixed(0)} MiB) written in ${sec(res.tree.generateMs)}`,
    );
    const phase = (name: string) => (res.phaseLoad[name] = Number(loadavg()[0]!.toFixed(2)));
    // Half the rsync runs before understudy, the rest after its agents stopped (before lsyncd).
    const before = want("understudy") || want("lsyncd") ? Math.ceil(opts.rsyncRuns / 2) : opts.rsyncRuns;
    if (want("rsync")) {
      phase("rsync");
      await plainRsyncBaseline(c, res, 1, before, "before understudy");
    }
    if (want("understudy")) {
      phase("understudy");
      await understudyScenario(c, opts, res);
    }
    if (want("rsync") && before < opts.rsyncRuns) {
      phase("rsync2");
      await plainRsyncBaseline(c, res, before + 1, opts.rsyncRuns, "after understudy");
    }
    if (want("rsync") && opts.fsyncReference) await rsyncFsyncReference(c, res);
    if (want("lsyncd")) {
      phase("lsyncd");
      await lsyncdScenario(c, opts, res);
    }
  } catch (e) {
    log(`ERROR ${(e as Error).stack ?? (e as Error).message}`);
    process.exitCode = 1;
  } finally {
    await c?.teardown();
  }
  res.machine.loadavgEnd = la();
  res.wallSeconds = (Date.now() - started) / 1000;
  const text = report(res, opts);
  res.report = text.split("\n");
  console.log(`\n${text}`);
  if (opts.json) {
    const file = resolve(opts.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(res, null, 2)}\n`);
    log(`results written to ${file}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
