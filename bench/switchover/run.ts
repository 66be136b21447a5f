/**
 * Planned-switchover benchmark: the client-visible gap of `understudy
 * switchover --to NODE` (through the CLI, as an operator runs it) in COLD mode
 * (the daemon runs on the primary only: the old one stops sshd, the new one
 * starts it) and in WARM mode (sshd runs on every node: only the floating IP
 * moves), against keepalived's planned switchover on the same lab topology
 * (the MASTER's priority lowered below a BACKUP's by a config reload, SIGHUP).
 *
 *   node --import tsx bench/switchover/run.ts --quick
 *   node --import tsx bench/switchover/run.ts --runs 10 --json bench/switchover/results-latest.json
 *
 * Options: --runs N (switchovers per mode, default 10; --quick: 3),
 * --only cold,warm,keepalived (subset), --json FILE.
 *
 * The gap is measured by the failover benchmark's banner prober
 * (bench/failover/prober.mjs) in the client namespace: last SSH banner through
 * the VIP before the move -> first banner after it. Also reported: the CLI's
 * own "handover took N ms", the history event's durations.handover_ms, and
 * where the time goes (agent logs, an etcdctl watch on the leader key, the ARP
 * observer).
 *
 * Needs root, `npm run build` and /usr/sbin/keepalived. Traffic stays inside
 * the lab namespaces (198.18.0.0/15); every wait is bounded; every lab is torn
 * down in `finally` (and on signals, by the harness).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { CLI, Lab, LabCluster, type LabNode, type Observer, pollUntil, sleep } from "../../test/lab/harness/index.js";
import { ApiTrigger } from "./api-trigger.js";
import { KEEPALIVED, KEEPALIVED_PRIORITIES, startKeepalived } from "../failover/keepalived.js";
import { cpuBetween, cpuSnapshot } from "./cpu.js";
import { FineProber as Prober, gapAround } from "./probe.js";
import { LeaderWatch, type Stats, allReady, agentLog, failureReasons, firstLog, longestGap, now, quantile, stats, steadyResolution, forEachArg, table } from "../failover/lib.js";

// ------------------------------------------------------------------ options

type ModeName = "cold" | "warm";

interface Options {
  runs: number;
  json: string | undefined;
  only: Set<string> | undefined;
  /** Prober --slow-ms (15: a new attempt every 20 ms tick from the first hang; 50: the failover prober's cadence). */
  slowMs: number;
  /** Before each mode, wait (at most 10 min) until the 1-minute load average is below this. */
  waitLoad: number | undefined;
  /** How the switchover is requested: the CLI (a Node process started per run, as an operator types it) or one POST from a resident client. */
  trigger: "cli" | "api";
}

function parseArgs(argv: string[]): Options {
  let runs = 10;
  let json: string | undefined;
  let only: Set<string> | undefined;
  let quick = false;
  let slowMs = 15;
  let waitLoad: number | undefined;
  let trigger: "cli" | "api" = "cli";
  forEachArg(argv, (a, val) => {
    if (a === "--runs") runs = Number(val());
    else if (a === "--quick") quick = true;
    else if (a === "--json") json = val();
    else if (a === "--only")
      only = new Set(
        val()
          .split(",")
          .map((s) => s.trim()),
      );
    else if (a === "--prober-slow-ms") slowMs = Number(val());
    else if (a === "--wait-load") waitLoad = Number(val());
    else if (a === "--trigger") {
      const t = val();
      if (t !== "cli" && t !== "api") throw new Error(`--trigger takes cli or api, got ${t}`);
      trigger = t;
    } else if (a === "--help" || a === "-h") {
      console.log("usage: bench/switchover/run.ts [--runs N] [--quick] [--json FILE] [--only cold,warm,keepalived] [--prober-slow-ms 15] [--wait-load 1.0] [--trigger cli|api]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (quick) runs = 3;
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs must be 1..50");
  if (only) for (const o of only) if (!["cold", "warm", "keepalived"].includes(o)) throw new Error(`--only: unknown ${o}`);
  if (!(slowMs >= 0 && slowMs <= 1000)) throw new Error("--prober-slow-ms must be 0..1000");
  if (waitLoad !== undefined && !(waitLoad > 0 && waitLoad < 100)) throw new Error("--wait-load takes a load average like 1.0");
  return { runs, json, only, slowMs, waitLoad, trigger };
}

/** Target medians of the client-visible gap (issue 16 part 3). */
const TARGET_MS: Record<ModeName, number> = { cold: 100, warm: 50 };
const LEADER_KEY = "/understudy/lab/leader";

// ------------------------------------------------------------------ records

/** Milliseconds after the old primary's "stepping down to standby" log line (null: not seen). */
interface Breakdown {
  /** Old primary: decision "switchover: handing over to …" (the request seen), relative to stepping down (negative). */
  requestSeen: number | null;
  /** Old primary: the reconciler's `ip -j addr show` done, `ip addr del` starts ("held but not desired: removing"). */
  removeStarted: number | null;
  vipRemoved: number | null;
  daemonStopped: number | null;
  released: number | null;
  /** etcdctl watch in the etcd namespace: the leader key's DELETE and the new PUT. */
  keyDeleted: number | null;
  /** New primary: decision "campaigning: switchover to me". */
  campaigning: number | null;
  won: number | null;
  /** New primary: "fence guard started" (a guard process spawned on promotion), when it happened in this run. */
  guardStarted: number | null;
  daemonStarted: number | null;
  /** New primary: the reconciler's `ip -j addr show` done, `ip addr add` starts ("desired but not held: adding"). */
  addStarted: number | null;
  vipAdded: number | null;
  /** `ip addr add` itself (the agent's "floating IP added" ms field). */
  vipAddTook: number | null;
  acting: number | null;
  keyPut: number | null;
  /** ARP observer (20 ms samples): first sample in which the new primary answered for the VIP. */
  arpAnswer: number | null;
  lastBannerBefore: number | null;
  /** Start of the attempt that brought the first banner after the gap (its end minus this = sshd's banner latency then). */
  firstOkStarted: number | null;
  firstBannerAfter: number | null;
}

interface SwitchRun {
  run: number;
  from: string;
  to: string;
  ok: boolean;
  /** Client-visible gap: last banner before -> first banner after, ms. */
  gapMs: number | null;
  /** The CLI's "handover took N ms". */
  cliHandoverMs: number | null;
  /** durations.handover_ms of the history event of this switchover. */
  historyHandoverMs: number | null;
  /** Wall time of the CLI process (node start, POST, following until done). */
  cliWallMs: number | null;
  /** For reference: the longest banner gap anywhere after the command (may be an unrelated hiccup). */
  longestGapAfterCommandMs?: number | null;
  /** The old primary sees the request (its decision log line) -> first banner from the new primary. */
  requestToBannerMs: number | null;
  cliLine: string;
  failures: Record<string, number>;
  proberResolutionMs: number | null;
  breakdown?: Breakdown;
  /** CPU ms per process group (bench/switchover/cpu.ts) in the second before the request and the second from it. */
  cpuBefore?: Record<string, number>;
  cpuAfter?: Record<string, number>;
  error?: string;
}

interface ObserverCount {
  samples: number;
  twoHolder: number;
  maxHolders: number;
}

interface ModeResult {
  mode: ModeName;
  /** How each switchover was requested (--trigger). */
  trigger: "cli" | "api";
  runs: SwitchRun[];
  gap?: Stats | undefined;
  cliHandover?: Stats | undefined;
  historyHandover?: Stats | undefined;
  requestToBanner?: Stats | undefined;
  observer?: ObserverCount;
  loadavg: { start: string; end: string };
  wallSeconds: number;
  /** mtime of dist/ha/role.js when the mode started (other engineers may rebuild meanwhile). */
  build: string;
  error?: string;
}

interface KaRun {
  run: number;
  from: string;
  to: string;
  ok: boolean;
  gapMs: number | null;
  /** SIGHUP -> first ARP answer from the new master (observer). */
  arpAnswerMs: number | null;
  /** SIGHUP -> first banner after. */
  hupToBannerMs: number | null;
  failures: Record<string, number>;
  error?: string;
}

interface KaResult {
  version: string;
  method: string;
  runs: KaRun[];
  gap?: Stats | undefined;
  hupToBanner?: Stats | undefined;
  observer?: ObserverCount;
  loadavg: { start: string; end: string };
  wallSeconds: number;
  error?: string;
}

// ------------------------------------------------------------------ helpers

const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};
const la = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

/** Wait (bounded: 10 min) until the 1-minute load average is below `max`; other work on a 2-core host skews the figures. */
async function waitForLoad(max: number | undefined): Promise<void> {
  if (max === undefined) return;
  const started = Date.now();
  while (loadavg()[0]! >= max && Date.now() - started < 600_000) await sleep(5000);
  const waited = Math.round((Date.now() - started) / 1000);
  log(`load average ${la()} after waiting ${waited} s for the 1-minute figure to fall below ${max}${loadavg()[0]! >= max ? " (gave up after 10 min)" : ""}`);
}
const r0 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x));
const jitter = (maxMs: number): Promise<void> => sleep(Math.floor(Math.random() * maxMs));

function countObserver(obs: Observer, samples: ReturnType<Observer["samples"]>): ObserverCount {
  return { samples: samples.length, twoHolder: samples.filter((s) => s.macs.length >= 2).length, maxHolders: obs.maxSimultaneousHolders(samples) };
}

/** Next node after `from` in n1, n2, n3 order: targets rotate through every node. */
function nextNode(nodes: readonly { name: string }[], from: string): string {
  const i = nodes.findIndex((n) => n.name === from);
  return nodes[(i + 1) % nodes.length]!.name;
}

// ------------------------------------------------------------ understudy

async function understudyMode(mode: ModeName, opts: Options): Promise<ModeResult> {
  await waitForLoad(opts.waitLoad);
  const t0w = Date.now();
  const res: ModeResult = { mode, trigger: opts.trigger, runs: [], loadavg: { start: la(), end: "" }, wallSeconds: 0, build: distTime() };
  log(`=== understudy ${mode}: ${opts.runs} planned switchovers ${opts.trigger === "api" ? "requested by one POST from a resident client" : "through the CLI"} (load average ${res.loadavg.start})`);
  let c: LabCluster | undefined;
  let watch: LeaderWatch | undefined;
  let api: ApiTrigger | undefined;
  try {
    // Harness defaults (ttl 2s, fence_margin 500ms, LAN-tuned etcd); agents started
    // after the config is patched, so the harness itself needs no mode option.
    c = await LabCluster.create({ start: false });
    const lab = c.lab;
    for (const n of lab.nodes) {
      const f = c.configPath(n.name);
      const text = readFileSync(f, "utf8");
      if (!/^ {2}mode: cold$/m.test(text)) throw new Error(`no "  mode: cold" line in ${f}`);
      writeFileSync(f, text.replace(/^ {2}mode: cold$/m, `  mode: ${mode}`));
    }
    for (const n of lab.nodes) c.startAgent(n.name);
    const first = await c.waitForLeader({ timeoutMs: 20_000 });
    if (!first || !(await c.waitServing(first.node, 15_000))) throw new Error("no primary serving within 35 s");
    if (!(await allReady(c, 30_000, { warm: mode === "warm" }))) throw new Error("cluster not ready (3 healthy members, VIP on the leader) within 30 s");
    if (mode === "warm") {
      const listening = await Promise.all(lab.nodes.map((n) => lab.waitForListen(n, 22, 5000)));
      if (!listening.every(Boolean)) throw new Error("warm mode: sshd is not listening on every node");
    }
    log(`  cluster up: ${lab.prefix}, leader ${(await c.leader())?.node}; sshd ${mode === "warm" ? "on every node" : "on the primary only"}`);
    watch = LeaderWatch.start(lab, LEADER_KEY);
    const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 900 });
    try {
      for (let i = 1; i <= opts.runs; i++) {
        api ??= opts.trigger === "api" ? ApiTrigger.start(c) : undefined;
        const r = await switchRun(c, mode, watch, obs, i, opts.slowMs, api);
        res.runs.push(r);
        const b = r.breakdown;
        log(
          `  ${mode} ${i}/${opts.runs}: ${r.from} -> ${r.to} gap ${r.gapMs ?? "?"} ms; CLI handover ${r.cliHandoverMs ?? "?"} ms, history ${r.historyHandoverMs ?? "?"} ms, CLI wall ${r.cliWallMs ?? "?"} ms` +
            (b
              ? ` [after stepping down: VIP removed +${b.vipRemoved ?? "?"}${mode === "cold" ? `, sshd stopped +${b.daemonStopped ?? "?"}` : ""}, released +${b.released ?? "?"}, key DELETE +${b.keyDeleted ?? "?"},` +
                ` campaign +${b.campaigning ?? "?"}, won +${b.won ?? "?"}${mode === "cold" ? `, sshd started +${b.daemonStarted ?? "?"}` : ""}, VIP added +${b.vipAdded ?? "?"} (add ${b.vipAddTook ?? "?"} ms), ARP seen +${b.arpAnswer ?? "?"},` +
                ` last banner ${b.lastBannerBefore ?? "?"}, first banner +${b.firstBannerAfter ?? "?"}]`
              : "") +
            ` ${JSON.stringify(r.failures)}${r.error ? ` ERROR ${r.error}` : ""}`,
        );
        const top = (c: Record<string, number> | undefined) =>
          Object.entries(c ?? {})
            .slice(0, 8)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ");
        log(`    CPU ms, second before the request: ${top(r.cpuBefore)}; second from it: ${top(r.cpuAfter)}`);
      }
    } finally {
      res.observer = countObserver(obs, await obs.stop());
    }
  } catch (e) {
    res.error = (e as Error).message;
    log(`  ERROR ${res.error}`);
  } finally {
    watch?.stop();
    api?.stop();
    await c?.teardown();
    res.wallSeconds = (Date.now() - t0w) / 1000;
    res.loadavg.end = la();
  }
  const ok = res.runs.filter((r) => r.ok);
  res.gap = stats(ok.map((r) => r.gapMs!));
  res.cliHandover = stats(ok.map((r) => r.cliHandoverMs ?? NaN));
  res.historyHandover = stats(ok.map((r) => r.historyHandoverMs ?? NaN));
  res.requestToBanner = stats(ok.map((r) => r.requestToBannerMs ?? NaN));
  return res;
}

interface HistoryEventJson {
  kind: string;
  to: string | null;
  term: number | null;
  durations?: Record<string, number>;
  reason: string;
}

async function switchRun(c: LabCluster, mode: ModeName, watch: LeaderWatch, obs: Observer, run: number, slowMsOpt: number, api?: ApiTrigger): Promise<SwitchRun> {
  const lab = c.lab;
  const ready = await allReady(c, 30_000, { warm: mode === "warm" });
  if (!ready) throw new Error("cluster not ready (3 healthy members, VIP on the leader) within 30 s");
  const from = ready.leader;
  const to = nextNode(lab.nodes, from);
  const rec: SwitchRun = {
    run,
    from,
    to,
    ok: false,
    gapMs: null,
    cliHandoverMs: null,
    historyHandoverMs: null,
    cliWallMs: null,
    requestToBannerMs: null,
    cliLine: "",
    failures: {},
    proberResolutionMs: null,
  };
  const prober = await Prober.start(lab, `${mode}-${run}`, { maxSeconds: 90, slowMs: slowMsOpt });
  try {
    if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner before the switchover");
    await jitter(300); // random phase against the keepalive / cycle schedule
    // CPU of the lab's processes in the second before the request and the second after it.
    const cpu0 = cpuSnapshot(lab);
    await sleep(1000);
    const cpu1 = cpuSnapshot(lab);
    const t0 = now();
    const reason = `bench/switchover ${mode} ${run}`;
    if (api) {
      // The CLI's own POST goes to the first node's API; so does this one.
      const r = await api.post(lab.nodes[0]!.name, "/switchover", { to, reason, requested_by: "bench/switchover" });
      rec.cliWallMs = r.ms ?? null;
      rec.cliLine = r.error ?? `HTTP ${r.status}: ${(r.body ?? "").slice(0, 200)}`;
      if (r.status === undefined || r.status < 200 || r.status > 299) throw new Error(`POST /switchover: ${rec.cliLine}`);
      // Done once the leader key is written again (the watch already runs: no process started in the window); who holds it is checked below.
      if (!(await pollUntil(() => watch.first("PUT", t0), { timeoutMs: 30_000, intervalMs: 20 }))) throw new Error("the leader key was not written again within 30 s");
    } else {
      const r = await c.cli(["switchover", "--to", to, "--reason", reason], { timeoutMs: 45_000 });
      rec.cliWallMs = r0(now() - t0);
      rec.cliLine = (r.stdout + r.stderr).trim().split("\n").pop() ?? "";
      const m = /handover took (\d+) ms/.exec(r.stdout);
      rec.cliHandoverMs = m ? Number(m[1]) : null;
      if (r.code !== 0) throw new Error(`CLI exit ${r.code}: ${rec.cliLine}`);
    }
    await sleep(Math.max(0, t0 + 1000 - now()));
    rec.cpuBefore = cpuBetween(cpu0, cpu1);
    rec.cpuAfter = cpuBetween(cpu1, cpuSnapshot(lab));
    const firstOk = await prober.waitSuccess(t0, 10_000);
    if (!firstOk || !(await prober.waitSteady(now(), 5000))) throw new Error("no steady banner after the switchover");
    const attempts = prober.attempts();
    // The gap of this move: the one overlapping [old primary steps down, new primary added the VIP + 50 ms]
    // (agent logs); the longest gap after the command only when the logs lack either line.
    const sdAt = firstLog(agentLog(lab, from), t0 - 5, /^stepping down to standby/)?.time;
    const addAt = firstLog(agentLog(lab, to), t0 - 5, /^floating IP added/)?.time;
    const gap = sdAt !== undefined && addAt !== undefined ? gapAround(attempts, sdAt, addAt + 50) : longestGap(attempts, t0);
    if (!gap) throw new Error("no gap found");
    const anyGap = longestGap(attempts, t0);
    rec.longestGapAfterCommandMs = anyGap ? r0(anyGap.gapMs) : null;
    const leader = await c.leader();
    if (leader?.node !== to) throw new Error(`leader is ${leader?.node ?? "none"} after the switchover, expected ${to}`);
    rec.ok = true;
    rec.gapMs = r0(gap.gapMs);
    rec.failures = gap.reasons;
    rec.proberResolutionMs = r0(steadyResolution(attempts, t0));
    // The history event of this switchover (the CLI reads the same field).
    const h = await c.cli(["history", "--json", "--limit", "20"], { timeoutMs: 15_000 });
    try {
      const events = JSON.parse(h.stdout) as HistoryEventJson[];
      const ev = [...events].reverse().find((e) => e.kind === "switchover" && e.to === to && e.term === leader.term);
      rec.historyHandoverMs = typeof ev?.durations?.handover_ms === "number" ? ev.durations.handover_ms : null;
    } catch {
      /* leave null */
    }
    // Where the time goes: relative to the old primary's "stepping down".
    const oldLog = agentLog(lab, from);
    const newLog = agentLog(lab, to);
    const since = t0 - 5;
    const sd = firstLog(oldLog, since, /^stepping down to standby/)?.time;
    if (sd !== undefined) {
      const rel = (t: number | undefined) => (t === undefined ? null : r0(t - sd));
      const added = firstLog(newLog, since, /^floating IP added/);
      rec.breakdown = {
        requestSeen: rel(firstLog(oldLog, since, /^switchover: handing over/)?.time),
        removeStarted: rel(firstLog(oldLog, sd, /^floating IP held but not desired/)?.time),
        vipRemoved: rel(firstLog(oldLog, sd, /^floating IP removed/)?.time),
        daemonStopped: mode === "cold" ? rel(firstLog(oldLog, sd, /^daemon stopped/)?.time) : null,
        released: rel(firstLog(oldLog, sd, /^released the leader key/)?.time),
        keyDeleted: rel(watch.first("DELETE", t0)?.t),
        campaigning: rel(firstLog(newLog, since, /^campaigning/)?.time),
        won: rel(firstLog(newLog, since, /^won the election/)?.time),
        guardStarted: rel(firstLog(newLog, since, /^fence guard started/)?.time),
        daemonStarted: mode === "cold" ? rel(firstLog(newLog, since, /^daemon started/)?.time) : null,
        addStarted: rel(firstLog(newLog, since, /^floating IP desired but not held/)?.time),
        vipAdded: rel(added?.time),
        vipAddTook: typeof added?.ms === "number" ? added.ms : null,
        acting: rel(firstLog(newLog, since, /^acting as primary/)?.time),
        keyPut: rel(watch.first("PUT", t0)?.t),
        arpAnswer: rel(obs.firstAnsweredBy(to, obs.samples(), t0)),
        lastBannerBefore: rel(gap.from),
        firstOkStarted: rel(attempts.find((a) => a.ok && a.end === gap.to)?.start),
        firstBannerAfter: rel(gap.to),
      };
      const b = rec.breakdown;
      rec.requestToBannerMs = b.requestSeen !== null && b.firstBannerAfter !== null ? b.firstBannerAfter - b.requestSeen : null;
    }
  } catch (e) {
    rec.error = (e as Error).message;
    rec.failures = { ...rec.failures, ...failureReasons(prober.attempts(), 0, Infinity) };
  } finally {
    await prober.stop();
  }
  return rec;
}

// ------------------------------------------------------------ keepalived

/**
 * keepalived planned switchover: priorities are normalised before each run
 * (master 150, the target 120, the third node 100; reloads that do not change
 * the master), then the master's config is rewritten with priority 50 and
 * keepalived is sent SIGHUP (a reload); the target (120) takes over.
 */
async function keepalivedPlanned(opts: Options): Promise<KaResult> {
  await waitForLoad(opts.waitLoad);
  const t0w = Date.now();
  const v = spawnSync(KEEPALIVED, ["--version"], { encoding: "utf8", timeout: 5000 });
  const version = `${v.stdout ?? ""}${v.stderr ?? ""}`.split("\n")[0]?.trim() || "keepalived (version unknown)";
  const res: KaResult = {
    version,
    method: "rewrite the MASTER's keepalived.conf with priority 50 (below the target's 120), then SIGHUP (reload)",
    runs: [],
    loadavg: { start: la(), end: "" },
    wallSeconds: 0,
  };
  log(`=== keepalived planned switchover: ${version}; unicast VRRP, advert_int 1, sshd warm on every node (load average ${res.loadavg.start})`);
  const lab = await Lab.create({ nodes: 3, startEtcd: false });
  const prio = new Map<string, number>(lab.nodes.map((n, i) => [n.name, KEEPALIVED_PRIORITIES[i] ?? 10]));
  const confOf = (n: LabNode) => join(n.dir, "keepalived", "keepalived.conf");
  // Re-rendering would rewrite the track script too (ETXTBSY while keepalived runs it): edit the priority line only.
  const render = (n: LabNode) => {
    const text = readFileSync(confOf(n), "utf8");
    if (!/^ {2}priority \d+$/m.test(text)) throw new Error(`no priority line in ${confOf(n)}`);
    return text.replace(/^ {2}priority \d+$/m, `  priority ${prio.get(n.name)!}`);
  };
  const hup = (n: LabNode) => {
    const pid = Number(readFileSync(join(n.dir, "keepalived", "keepalived.pid"), "utf8").trim());
    if (!(pid > 1)) throw new Error(`no keepalived pid for ${n.name}`);
    process.kill(pid, "SIGHUP");
  };
  /** Set priorities; rewrite + reload only the nodes whose priority changed. */
  const setPriorities = (want: Record<string, number>) => {
    const changed = lab.nodes.filter((n) => want[n.name] !== undefined && want[n.name] !== prio.get(n.name));
    for (const n of changed) prio.set(n.name, want[n.name]!);
    for (const n of changed) {
      writeFileSync(confOf(n), render(n));
      hup(n);
    }
    return changed.length;
  };
  try {
    for (const n of lab.nodes) await lab.startSshd(n);
    for (const n of lab.nodes) startKeepalived(lab, n, { priorities: lab.nodes.map((x) => prio.get(x.name)!) });
    const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 900 });
    try {
      const initial = await obs.waitForHolders([lab.nodes[0]!], { timeoutMs: 15_000, consecutive: 5 });
      if (initial === undefined) throw new Error(`${lab.nodes[0]!.name} did not become VRRP master within 15 s`);
      for (let i = 1; i <= opts.runs; i++) {
        const on = await lab.vipConfiguredOn();
        if (on.length !== 1) throw new Error(`VIP on [${on.join()}] before run ${i}`);
        const master = lab.node(on[0]!);
        const to = lab.node(nextNode(lab.nodes, master.name));
        const other = lab.nodes.find((n) => n !== master && n !== to)!;
        const rec: KaRun = { run: i, from: master.name, to: to.name, ok: false, gapMs: null, arpAnswerMs: null, hupToBannerMs: null, failures: {} };
        res.runs.push(rec);
        // Normalise without moving the master, and let the reloads settle.
        if (setPriorities({ [master.name]: 150, [to.name]: 120, [other.name]: 100 }) > 0) await sleep(2500);
        const prober = await Prober.start(lab, `keepalived-planned-${i}`, { maxSeconds: 60, slowMs: opts.slowMs });
        try {
          const still = await lab.vipConfiguredOn();
          if (still.join() !== master.name) throw new Error(`VIP moved to [${still.join()}] while normalising priorities`);
          if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner before the switchover");
          await jitter(1000); // random phase against the advert schedule
          const t0 = now();
          setPriorities({ [master.name]: 50 });
          const firstOk = await prober.waitSuccess(t0, 15_000);
          if (!firstOk) throw new Error("no banner through the VIP within 15 s");
          // The VIP must have moved to the target; then the banner must be steady there.
          const moved = await obs.waitForHolders([to], { timeoutMs: 15_000, consecutive: 5, sinceMs: t0 });
          if (moved === undefined) throw new Error(`VIP did not move to ${to.name} within 15 s`);
          if (!(await prober.waitSteady(now(), 5000))) throw new Error("no steady banner after the switchover");
          // The gap of the move: the one overlapping the new master's first ARP answer (± 100 ms).
          const tMove = obs.firstAnsweredBy(to, obs.samples(), t0);
          if (tMove === undefined) throw new Error("the observer saw no ARP answer from the new master");
          const gap = gapAround(prober.attempts(), tMove - 100, tMove + 100);
          if (!gap) throw new Error("no gap found");
          rec.ok = true;
          rec.gapMs = r0(gap.gapMs);
          rec.failures = gap.reasons;
          rec.hupToBannerMs = r0(gap.to - t0);
          const a = obs.firstAnsweredBy(to, obs.samples(), t0);
          rec.arpAnswerMs = r0(a !== undefined ? a - t0 : null);
        } catch (e) {
          rec.error = (e as Error).message;
        } finally {
          await prober.stop();
        }
        log(
          `  keepalived ${i}/${opts.runs}: ${rec.from} -> ${rec.to} gap ${rec.gapMs ?? "?"} ms (SIGHUP -> first banner ${rec.hupToBannerMs ?? "?"} ms, ARP answer +${rec.arpAnswerMs ?? "?"} ms) ${JSON.stringify(rec.failures)}${rec.error ? ` ERROR ${rec.error}` : ""}`,
        );
        if (!rec.ok) {
          const back = await lab.vipConfiguredOn();
          if (back.length !== 1) throw new Error(`keepalived did not settle (VIP on [${back.join()}]); stopping this scenario`);
        }
        await sleep(1500);
      }
    } finally {
      res.observer = countObserver(obs, await obs.stop());
    }
  } catch (e) {
    res.error = (e as Error).message;
    log(`  ERROR ${res.error}`);
  } finally {
    await lab.teardown();
    res.wallSeconds = (Date.now() - t0w) / 1000;
    res.loadavg.end = la();
  }
  res.gap = stats(res.runs.filter((r) => r.ok).map((r) => r.gapMs!));
  res.hupToBanner = stats(res.runs.filter((r) => r.ok).map((r) => r.hupToBannerMs ?? NaN));
  return res;
}

// ----------------------------------------------------------------- report

function distTime(): string {
  try {
    return statSync(join(CLI, "..", "..", "ha", "role.js")).mtime.toISOString();
  } catch {
    return "?";
  }
}

/** The mode's name in the report, with the trigger when it is not the CLI. */
const label = (m: ModeResult): string => (m.trigger === "api" ? `${m.mode} (API POST)` : m.mode);

const fs3 = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "-" : (ms / 1000).toFixed(3));
const fms = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "-" : String(Math.round(ms)));

function report(modes: ModeResult[], ka: KaResult | undefined, opts: Options, wall: number): string {
  const out: string[] = [];
  const rows: string[][] = [["metric", "n", "median", "p95", "min", "max", "target", "ok"]];
  const verdict = (p: boolean | undefined) => (p === undefined ? "-" : p ? "yes" : "NO");
  for (const m of modes) {
    const s = m.gap;
    rows.push([
      `planned switchover gap, ${label(m)} (s)`,
      `${s?.n ?? 0}/${m.runs.length}`,
      fs3(s?.median),
      fs3(s?.p95),
      fs3(s?.min),
      fs3(s?.max),
      `med <= ${(TARGET_MS[m.mode] / 1000).toFixed(2)}`,
      verdict(s ? s.median <= TARGET_MS[m.mode] && s.n === m.runs.length && m.runs.length > 0 : false),
    ]);
  }
  if (ka) {
    const s = ka.gap;
    rows.push(["planned switchover gap, keepalived (s)", `${s?.n ?? 0}/${ka.runs.length}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reference)", "-"]);
  }
  const ref = (name: string, n: number, s: Stats | undefined) => rows.push([name, `${s?.n ?? 0}/${n}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reported)", "-"]);
  for (const m of modes) ref(`request -> first banner, ${label(m)} (s)`, m.runs.length, m.requestToBanner);
  if (ka) ref("SIGHUP -> first banner, keepalived (s)", ka.runs.length, ka.hupToBanner);
  for (const m of modes) {
    for (const [name, s] of [
      ['CLI "handover took"', m.cliHandover],
      ["history handover_ms", m.historyHandover],
    ] as const) {
      rows.push([`${name}, ${label(m)} (s)`, `${s?.n ?? 0}/${m.runs.length}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reported)", "-"]);
    }
  }
  out.push(table(rows));

  if (ka?.gap) {
    for (const m of modes) {
      if (!m.gap) continue;
      out.push(
        `${label(m)} vs keepalived: median ${(m.gap.median / 1000).toFixed(3)} s vs ${(ka.gap.median / 1000).toFixed(3)} s = ${(m.gap.median / ka.gap.median).toFixed(2)}x;` +
          ` p95 ${(m.gap.p95 / 1000).toFixed(3)} s vs ${(ka.gap.p95 / 1000).toFixed(3)} s = ${(m.gap.p95 / ka.gap.p95).toFixed(2)}x`,
      );
    }
  } else if (!ka && (!opts.only || opts.only.has("keepalived"))) out.push("keepalived peer: not run");

  // Where the time goes (medians over the successful runs).
  const steps: Array<[keyof Breakdown, string]> = [
    ["requestSeen", "old primary sees the request (decision logged)"],
    ["lastBannerBefore", "client: last banner before the gap"],
    ["removeStarted", "old primary: `ip -j addr show` done, `ip addr del` starts"],
    ["vipRemoved", "old primary: floating IP removed"],
    ["daemonStopped", "old primary: sshd stopped (cold)"],
    ["released", "old primary: released the leader key (txn done)"],
    ["keyDeleted", "etcd watch: leader key DELETE"],
    ["campaigning", "new primary: campaigning (decision logged)"],
    ["won", "new primary: won the election (txn done)"],
    ["guardStarted", "new primary: fence guard process spawned"],
    ["keyPut", "etcd watch: leader key PUT"],
    ["daemonStarted", "new primary: sshd started (cold)"],
    ["addStarted", "new primary: `ip -j addr show` done, `ip addr add` starts"],
    ["vipAdded", "new primary: floating IP added"],
    ["acting", "new primary: acting as primary"],
    ["arpAnswer", "ARP observer: first answer from the new primary"],
    ["firstOkStarted", "client: the first successful attempt after the gap started"],
    ["firstBannerAfter", "client: first banner after the gap"],
  ];
  const bd: string[][] = [['where the time goes (ms after "stepping down", median)', ...modes.map((m) => m.mode)]];
  for (const [k, label] of steps) {
    const cells = modes.map((m) => {
      const v = m.runs
        .filter((r) => r.ok && r.breakdown)
        .map((r) => r.breakdown![k])
        .filter((x): x is number => x !== null);
      return v.length ? `${fms(quantile(v, 0.5))}${v.length < m.runs.filter((r) => r.ok).length ? ` (n=${v.length})` : ""}` : "-";
    });
    if (cells.some((x) => x !== "-")) bd.push([label, ...cells]);
  }
  const addTook = modes.map((m) => {
    const v = m.runs.map((r) => r.breakdown?.vipAddTook).filter((x): x is number => typeof x === "number");
    return v.length ? fms(quantile(v, 0.5)) : "-";
  });
  bd.push(['(`ip addr add` alone, the agent\'s "floating IP added" ms)', ...addTook]);
  if (modes.length) out.push("", table(bd));

  const obsRows: string[][] = [["ARP observer (20 ms)", "samples", ">=2 holders", "max holders", "target", "ok"]];
  for (const m of modes)
    if (m.observer) obsRows.push([`understudy ${label(m)}`, String(m.observer.samples), String(m.observer.twoHolder), String(m.observer.maxHolders), "0", verdict(m.observer.twoHolder === 0)]);
  if (ka?.observer) obsRows.push(["keepalived", String(ka.observer.samples), String(ka.observer.twoHolder), String(ka.observer.maxHolders), "(reference)", "-"]);
  if (obsRows.length > 1) out.push("", table(obsRows));

  out.push("");
  const all = modes.flatMap((m) => m.runs).filter((r) => r.ok);
  const resol = all.map((r) => r.proberResolutionMs).filter((x): x is number => x !== null);
  const cliWall = all.map((r) => r.cliWallMs).filter((x): x is number => x !== null);
  out.push(
    `measurement: bench/failover/prober.mjs with --slow-ms ${opts.slowMs} in the client namespace (TCP connect VIP:22 + "SSH-2.0-" line; 20 ms ticks, 200 ms per attempt,` +
      ` a new attempt on every tick once the newest in flight is older than ${opts.slowMs} ms, up to 10 in flight;` +
      ` steady-state resolution median ${resol.length ? Math.round(quantile(resol, 0.5)) : "?"} ms); gap = last banner before -> first banner after;` +
      (opts.trigger === "api"
        ? ` understudy: POST /switchover {to: NODE} from a resident client in the client namespace (bench/switchover/api-client.mjs; request round trip median ${cliWall.length ? Math.round(quantile(cliWall, 0.5)) : "?"} ms), targets rotate n1 -> n2 -> n3;`
        : ` understudy: \`understudy switchover --to NODE\` run in the client namespace (CLI wall time median ${cliWall.length ? Math.round(quantile(cliWall, 0.5)) : "?"} ms incl. node start-up and following), targets rotate n1 -> n2 -> n3;`) +
      ` harness defaults: ttl 2s, fence_margin 500ms, LAN-tuned etcd; warm = daemon.mode warm (sshd on every node)`,
  );
  if (ka) out.push(`keepalived: ${ka.version}; ${ka.method}; unicast VRRP, advert_int 1, track script on sshd, sshd on every node${ka.error ? `; ERROR ${ka.error}` : ""}`);
  for (const m of modes) {
    out.push(
      `${m.mode}: load average at start ${m.loadavg.start}, at end ${m.loadavg.end}; ${m.wallSeconds.toFixed(0)} s; agent build (dist/ha/role.js) ${m.build}${m.error ? `; ERROR ${m.error}` : ""}`,
    );
  }
  if (ka) out.push(`keepalived: load average at start ${ka.loadavg.start}, at end ${ka.loadavg.end}; ${ka.wallSeconds.toFixed(0)} s`);
  out.push(`runs per mode: ${opts.runs}; host: ${cpus().length} cores; total wall time ${wall.toFixed(0)} s`);
  return out.join("\n");
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const want = (name: string) => !opts.only || opts.only.has(name);
  if (process.getuid?.() !== 0) throw new Error("the switchover benchmark needs root (network namespaces)");
  const started = Date.now();
  log(`switchover benchmark: ${opts.runs} runs per mode; load average ${la()}`);
  const modes: ModeResult[] = [];
  for (const m of ["cold", "warm"] as const) if (want(m)) modes.push(await understudyMode(m, opts));
  const ka = want("keepalived") ? await keepalivedPlanned(opts) : undefined;
  const wall = (Date.now() - started) / 1000;
  const text = report(modes, ka, opts, wall);
  console.log(`\n${text}`);
  if (opts.json) {
    const file = resolve(opts.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), options: { runs: opts.runs, only: opts.only ? [...opts.only] : null, trigger: opts.trigger }, node: process.version, cores: cpus().length, wallSeconds: wall, understudy: modes, keepalived: ka ?? null, report: text.split("\n") }, null, 2)}\n`,
    );
    log(`results written to ${file}`);
  }
  if (modes.some((m) => m.error) || ka?.error) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
