/**
 * REST API benchmark: load on GET /primary and GET /metrics of the primary
 * agent and of a standby, from a separate process (wrk, C) in the lab's
 * client namespace, against an idle baseline measured the same way with one
 * connection and one request at a time; and a check that the HA loop does not
 * suffer: the lease's remaining time while the agent is hammered, lease
 * renewal failures / fences / leader changes in the agent logs, and one
 * planned switchover while the primary's /metrics is under load.
 *
 *   node --import tsx bench/api/run.ts --quick
 *   node --import tsx bench/api/run.ts --runs 10 --json bench/api/results-latest.json
 *
 * Options: --runs N (load rounds per endpoint, default 3; --quick: 1),
 * --duration S (seconds of load per round, default 10; --quick: 5),
 * --connections C (default 10), --threads T (default 2), --seq N (requests in
 * the sequential baseline, default 200), --no-switchover, --json FILE.
 *
 * Needs root, `npm run build` and wrk (Debian package `wrk`). Traffic stays
 * inside the lab namespaces (198.18.0.0/15); every phase is bounded in time;
 * the lab is torn down in `finally` (and on signals, by the harness).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChildProcess, spawnSync } from "node:child_process";
import { API_PORT, LabCluster, pollUntil, sleep } from "../../test/lab/harness/index.js";
import { killGroup } from "../../test/lab/harness/exec.js";
import { CLK_TCK, agentLog, allReady, now, procSample, quantile, readJsonLines, forEachArg, table } from "../failover/lib.js";
import { FineProber as Prober, gapAround } from "../switchover/probe.js";

const WRK = "/usr/bin/wrk";
const WRK_SCRIPT = fileURLToPath(new URL("./wrk-report.lua", import.meta.url));
const SAMPLER = fileURLToPath(new URL("./sampler.mjs", import.meta.url));
/** Sanity target: p99 latency of GET /primary under load. */
const P99_TARGET_MS = 50;

// ------------------------------------------------------------------ options

interface Options {
  runs: number;
  durationS: number;
  connections: number;
  threads: number;
  seq: number;
  switchover: boolean;
  json: string | undefined;
  /** Before starting, wait (at most 10 min) until the 1-minute load average is below this. */
  waitLoad: number | undefined;
}

function parseArgs(argv: string[]): Options {
  let runs: number | undefined;
  let durationS: number | undefined;
  let connections = 10;
  let threads = 2;
  let seq = 200;
  let switchover = true;
  let json: string | undefined;
  let quick = false;
  let waitLoad: number | undefined;
  forEachArg(argv, (a, val) => {
    if (a === "--runs") runs = Number(val());
    else if (a === "--quick") quick = true;
    else if (a === "--duration") durationS = Number(val());
    else if (a === "--connections") connections = Number(val());
    else if (a === "--threads") threads = Number(val());
    else if (a === "--seq") seq = Number(val());
    else if (a === "--no-switchover") switchover = false;
    else if (a === "--json") json = val();
    else if (a === "--wait-load") waitLoad = Number(val());
    else if (a === "--help" || a === "-h") {
      console.log("usage: bench/api/run.ts [--runs N] [--quick] [--duration S] [--connections C] [--threads T] [--seq N] [--no-switchover] [--json FILE] [--wait-load 1.0]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  runs ??= quick ? 1 : 3;
  durationS ??= quick ? 5 : 10;
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error("--runs must be 1..20");
  if (!Number.isInteger(durationS) || durationS < 1 || durationS > 60) throw new Error("--duration must be 1..60 seconds");
  if (!Number.isInteger(connections) || connections < 1 || connections > 100) throw new Error("--connections must be 1..100");
  if (!Number.isInteger(threads) || threads < 1 || threads > connections) throw new Error("--threads must be 1..connections");
  if (!Number.isInteger(seq) || seq < 10 || seq > 5000) throw new Error("--seq must be 10..5000");
  if (waitLoad !== undefined && !(waitLoad > 0 && waitLoad < 100)) throw new Error("--wait-load takes a load average like 1.0");
  return { runs, durationS, connections, threads, seq, switchover, json, waitLoad };
}

// ---------------------------------------------------------------------- wrk

interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  bytes: number;
  /** Responses that were not 2xx/3xx (503 is the expected answer of a standby's /primary). */
  non2xx: number;
  /** connect + read + write + timeout errors. */
  socketErrors: number;
  latMs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

interface WrkJson {
  requests: number;
  duration_us: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  lat_us: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

/**
 * Run wrk in the client namespace. `maxRequests` (sequential baseline): each
 * thread stops after that many responses; the duration is then only a cap.
 */
async function wrk(c: LabCluster, url: string, o: { threads: number; connections: number; durationS: number; maxRequests?: number }): Promise<WrkResult> {
  const argv = [WRK, "-t", String(o.threads), "-c", String(o.connections), "-d", `${o.durationS}s`, "--timeout", "2s", "--latency", "-s", WRK_SCRIPT, url];
  const r = await c.lab.exec(c.lab.client, argv, {
    timeoutMs: (o.durationS + 20) * 1000,
    env: { WRK_MAX_REQUESTS: String(o.maxRequests ?? 0) },
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (r.code !== 0 || !line) throw new Error(`wrk failed (code ${r.code}${r.timedOut ? ", timed out" : ""}): ${(r.stderr || r.stdout).slice(-500)}`);
  const j = JSON.parse(line.slice("WRK_JSON ".length)) as WrkJson;
  const us = (x: number) => x / 1000;
  const durationS = j.duration_us / 1e6;
  return {
    requests: j.requests,
    durationS,
    rps: durationS > 0 ? j.requests / durationS : 0,
    bytes: j.bytes,
    non2xx: j.errors.status,
    socketErrors: j.errors.connect + j.errors.read + j.errors.write + j.errors.timeout,
    latMs: {
      min: us(j.lat_us.min),
      mean: us(j.lat_us.mean),
      p50: us(j.lat_us.p50),
      p90: us(j.lat_us.p90),
      p99: us(j.lat_us.p99),
      p999: us(j.lat_us.p999),
      max: us(j.lat_us.max),
    },
  };
}

// ------------------------------------------------------------------ sampler

interface Sample {
  t: number;
  ms?: number;
  status?: number;
  err?: string;
  m?: Record<string, number>;
}

const LEASE = "understudy_lease_remaining_seconds";
const TERM = "understudy_leader_term";
const ROLE = "understudy_role";

/** The metrics sampler (bench/api/sampler.mjs) in the client namespace, polling one agent's /metrics. */
class Sampler {
  private constructor(
    readonly file: string,
    readonly child: ChildProcess,
  ) {}

  static async start(c: LabCluster, node: string, tag: string, maxSeconds: number, intervalMs = 100): Promise<Sampler> {
    const file = join(c.lab.logDir, `sampler-${tag}.jsonl`);
    const argv = [
      process.execPath,
      SAMPLER,
      "--url",
      `${c.apiUrl(node)}/metrics`,
      "--metrics",
      [LEASE, TERM, ROLE].join(","),
      "--interval-ms",
      String(intervalMs),
      "--timeout-ms",
      "2000",
      "--max-seconds",
      String(maxSeconds),
      "--out",
      file,
    ];
    const child = c.lab.spawn(c.lab.client, argv, { stdin: "pipe", logFile: join(c.lab.logDir, `sampler-${tag}.stderr.log`) });
    child.stdin?.on("error", () => undefined);
    const s = new Sampler(file, child);
    const up = await pollUntil(() => (s.samples().length > 0 ? true : undefined), { timeoutMs: 5000, intervalMs: 20 });
    if (!up) {
      await s.stop();
      throw new Error("metrics sampler did not start");
    }
    return s;
  }

  samples(): Sample[] {
    return readJsonLines<Sample>(this.file);
  }

  async stop(): Promise<Sample[]> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.stdin?.end();
      if (!(await Promise.race([exited.then(() => true), sleep(1500).then(() => false)]))) {
        killGroup(child.pid);
        await Promise.race([exited, sleep(500)]);
      }
    }
    return this.samples();
  }
}

interface LeaseWindow {
  samples: number;
  failed: number;
  /** Smallest understudy_lease_remaining_seconds seen, in ms (the deadline is 0). */
  minRemainingMs: number | null;
  medianRemainingMs: number | null;
  /** Samples while the node reported itself primary. */
  primarySamples: number;
  terms: number[];
  /** Latency of the sampler's own scrapes (ms): median / max. */
  scrapeMedianMs: number | null;
  scrapeMaxMs: number | null;
}

function leaseWindow(samples: readonly Sample[]): LeaseWindow {
  const ok = samples.filter((s) => s.status === 200 && s.m);
  const prim = ok.filter((s) => s.m![TERM] !== undefined && s.m![TERM]! > 0);
  const rem = prim.map((s) => (s.m![LEASE] ?? NaN) * 1000).filter((x) => Number.isFinite(x));
  const lat = ok.map((s) => s.ms ?? NaN).filter((x) => Number.isFinite(x));
  return {
    samples: samples.length,
    failed: samples.length - ok.length,
    minRemainingMs: rem.length ? Math.round(Math.min(...rem)) : null,
    medianRemainingMs: rem.length ? Math.round(quantile(rem, 0.5)) : null,
    primarySamples: prim.length,
    terms: [...new Set(prim.map((s) => s.m![TERM]!))],
    scrapeMedianMs: lat.length ? round1(quantile(lat, 0.5)) : null,
    scrapeMaxMs: lat.length ? round1(Math.max(...lat)) : null,
  };
}

// ------------------------------------------------------------------ records

interface Endpoint {
  id: string;
  node: string;
  role: "primary" | "standby";
  path: "/primary" | "/metrics";
  expect: number;
}

interface RoundResult {
  run: number;
  endpoint: string;
  baseline: WrkResult | null;
  load: WrkResult | null;
  /** Agent CPU (own threads) during the load, % of one core. */
  agentCpuPct: number | null;
  /** The primary's lease while this endpoint was loaded. */
  lease: LeaseWindow | null;
  error?: string;
}

interface SwitchoverResult {
  label: string;
  from: string;
  to: string;
  ok: boolean;
  cliExit: number | null;
  cliLine: string;
  handoverMs: number | null;
  gapMs: number | null;
  load?: WrkResult | null;
  leaseBefore?: LeaseWindow | null;
  error?: string;
}

interface HaLogCounts {
  renewalFailed: number;
  deadlinePassed: number;
  fencing: number;
  steppingDown: number;
  cycleFailed: number;
}

// ------------------------------------------------------------------ helpers

const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};
function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
const la = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

function haLogCounts(c: LabCluster, since: number, until = Infinity): HaLogCounts {
  const out: HaLogCounts = { renewalFailed: 0, deadlinePassed: 0, fencing: 0, steppingDown: 0, cycleFailed: 0 };
  for (const n of c.lab.nodes) {
    for (const l of agentLog(c.lab, n.name)) {
      if (l.time < since || l.time > until) continue;
      if (/^lease renewal failed/.test(l.msg)) out.renewalFailed++;
      else if (/^lease deadline passed/.test(l.msg)) out.deadlinePassed++;
      else if (/^fencing/.test(l.msg)) out.fencing++;
      else if (/^stepping down/.test(l.msg)) out.steppingDown++;
      else if (/^HA cycle failed/.test(l.msg)) out.cycleFailed++;
    }
  }
  return out;
}

/** Planned switchover through the CLI, with the banner prober measuring the client-visible gap. */
async function switchover(c: LabCluster, label: string, to: string, before?: () => Promise<void>): Promise<SwitchoverResult> {
  const from = (await c.leader())?.node ?? "?";
  const rec: SwitchoverResult = { label, from, to, ok: false, cliExit: null, cliLine: "", handoverMs: null, gapMs: null };
  const prober = await Prober.start(c.lab, `api-switchover-${label.replace(/\W+/g, "-")}`, { maxSeconds: 90 });
  try {
    if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner before the switchover");
    if (before) await before();
    const t0 = now();
    const r = await c.cli(["switchover", "--to", to, "--reason", `bench/api ${label}`], { timeoutMs: 45_000 });
    rec.cliExit = r.code;
    rec.cliLine = (r.stdout + r.stderr).trim().split("\n").pop() ?? "";
    const m = /handover took (\d+) ms/.exec(r.stdout);
    rec.handoverMs = m ? Number(m[1]) : null;
    if (r.code !== 0) throw new Error(`CLI exit ${r.code}: ${rec.cliLine}`);
    const tDone = now();
    const first = await prober.waitSuccess(t0, 10_000);
    if (!first || !(await prober.waitSteady(now(), 5000))) throw new Error("no steady banner after the switchover");
    // The longest gap between the command and the CLI's "done" (it follows the switchover to its end).
    const gap = gapAround(prober.attempts(), t0, tDone);
    rec.gapMs = gap ? Math.round(gap.gapMs) : null;
    rec.ok = (await c.leader())?.node === to;
    if (!rec.ok) rec.error = `leader is ${(await c.leader())?.node ?? "none"}, expected ${to}`;
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    await prober.stop();
  }
  return rec;
}

// -------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error("the API benchmark needs root (network namespaces)");
  if (!existsSync(WRK)) throw new Error(`${WRK} is missing: apt-get install wrk (scripts/install-deps.sh)`);
  if (opts.waitLoad !== undefined) {
    const w0 = Date.now();
    while (loadavg()[0]! >= opts.waitLoad && Date.now() - w0 < 600_000) await sleep(5000);
    log(`load average ${la()} after waiting ${Math.round((Date.now() - w0) / 1000)} s for the 1-minute figure to fall below ${opts.waitLoad}`);
  }
  const started = Date.now();
  const loadStart = la();
  log(
    `API benchmark: ${opts.runs} round(s) per endpoint, wrk -t${opts.threads} -c${opts.connections} -d${opts.durationS}s; ` +
      `baseline ${opts.seq} sequential requests (wrk -t1 -c1); load average ${loadStart}`,
  );
  const wrkVersion = spawnSync(WRK, ["-v"], { encoding: "utf8", timeout: 5000 }).stdout.split("\n")[0]?.trim() ?? "wrk";

  const rounds: RoundResult[] = [];
  const switchovers: SwitchoverResult[] = [];
  let idleLease: LeaseWindow | null = null;
  let haCounts: HaLogCounts | null = null;
  let termStable: { before: number | null; after: number | null } = { before: null, after: null };
  let endpoints: Endpoint[] = [];
  let loadDuring: string[] = [];
  let error: string | undefined;
  let c: LabCluster | undefined;
  try {
    c = await LabCluster.create();
    const lab = c.lab;
    const ready = await allReady(c, 30_000);
    if (!ready) throw new Error("cluster not ready (3 healthy members, VIP on the leader) within 30 s");
    const primary = ready.leader;
    const standby = lab.nodes
      .map((n) => n.name)
      .filter((n) => n !== primary)
      .sort()[0]!;
    log(`cluster up: ${lab.prefix}, primary ${primary}, standby under test ${standby}; API port ${API_PORT}`);
    endpoints = [
      { id: "primary GET /primary", node: primary, role: "primary", path: "/primary", expect: 200 },
      { id: "primary GET /metrics", node: primary, role: "primary", path: "/metrics", expect: 200 },
      { id: "standby GET /primary", node: standby, role: "standby", path: "/primary", expect: 503 },
      { id: "standby GET /metrics", node: standby, role: "standby", path: "/metrics", expect: 200 },
    ];
    await sleep(3000); // JIT, first reconciles, probes settled

    // Idle lease window: how close the lease gets to its deadline with no load.
    const termBefore = (await c.leader())?.term ?? null;
    termStable.before = termBefore;
    const loadT0 = Date.now();
    {
      const s = await Sampler.start(c, primary, "idle", 30);
      await sleep(Math.min(10, opts.durationS) * 1000);
      idleLease = leaseWindow(await s.stop());
      log(`idle lease window: min remaining ${idleLease.minRemainingMs} ms, median ${idleLease.medianRemainingMs} ms over ${idleLease.samples} samples`);
    }

    const primaryPid = c.agents.get(primary)?.pid;
    const standbyPid = c.agents.get(standby)?.pid;
    for (let run = 1; run <= opts.runs; run++) {
      // Idle baseline first (one connection, one request at a time), then the load.
      const base = new Map<string, WrkResult | null>();
      for (const e of endpoints) {
        try {
          base.set(e.id, await wrk(c, `${c.apiUrl(e.node)}${e.path}`, { threads: 1, connections: 1, durationS: 30, maxRequests: opts.seq }));
        } catch (err) {
          base.set(e.id, null);
          log(`  baseline ${e.id}: ERROR ${(err as Error).message}`);
        }
        await sleep(300);
      }
      loadDuring.push(`round ${run}: ${la()}`);
      await sleep(1000);
      for (const e of endpoints) {
        const rr: RoundResult = { run, endpoint: e.id, baseline: base.get(e.id) ?? null, load: null, agentCpuPct: null, lease: null };
        rounds.push(rr);
        let sampler: Sampler | undefined;
        try {
          sampler = await Sampler.start(c, primary, `r${run}-${e.role}-${e.path.slice(1)}`, opts.durationS + 30);
          const pid = e.node === primary ? primaryPid : standbyPid;
          const a = pid ? procSample(pid) : undefined;
          rr.load = await wrk(c, `${c.apiUrl(e.node)}${e.path}`, { threads: opts.threads, connections: opts.connections, durationS: opts.durationS });
          const b = pid ? procSample(pid) : undefined;
          if (a && b) rr.agentCpuPct = round1(((b.selfTicks - a.selfTicks) / CLK_TCK / ((b.t - a.t) / 1000)) * 100);
        } catch (err) {
          rr.error = (err as Error).message;
        } finally {
          if (sampler) rr.lease = leaseWindow(await sampler.stop());
        }
        const b = rr.baseline;
        const l = rr.load;
        log(
          `  run ${run} ${e.id}: idle p50 ${b?.latMs.p50.toFixed(2) ?? "?"} / p99 ${b?.latMs.p99.toFixed(2) ?? "?"} ms;` +
            ` load ${l ? l.rps.toFixed(0) : "?"} req/s, p50 ${l?.latMs.p50.toFixed(2) ?? "?"} / p99 ${l?.latMs.p99.toFixed(2) ?? "?"} / max ${l?.latMs.max.toFixed(1) ?? "?"} ms,` +
            ` non-2xx ${l?.non2xx ?? "?"}, socket errors ${l?.socketErrors ?? "?"}; agent CPU ${rr.agentCpuPct ?? "?"} %;` +
            ` primary lease min ${rr.lease?.minRemainingMs ?? "?"} ms${rr.error ? ` ERROR ${rr.error}` : ""}`,
        );
        await sleep(1000);
      }
    }
    loadDuring.push(`after the load rounds: ${la()}`);
    haCounts = haLogCounts(c, loadT0);
    termStable.after = (await c.leader())?.term ?? null;
    log(`HA loop during the load phases: ${JSON.stringify(haCounts)}; leader term ${termStable.before} -> ${termStable.after}`);

    if (opts.switchover) {
      // One planned switchover idle, then one while the new primary's /metrics is hammered.
      if (!(await allReady(c, 20_000))) throw new Error("cluster not ready before the switchovers");
      const s1 = await switchover(c, "idle", standby);
      switchovers.push(s1);
      log(`switchover idle ${s1.from} -> ${s1.to}: gap ${s1.gapMs ?? "?"} ms, handover ${s1.handoverMs ?? "?"} ms, CLI: ${s1.cliLine}${s1.error ? ` ERROR ${s1.error}` : ""}`);
      const third = lab.nodes.map((n) => n.name).find((n) => n !== primary && n !== standby)!;
      await sleep(2000);
      if (!(await allReady(c, 20_000))) throw new Error("cluster not ready after the idle switchover");
      const loaded = (await c.leader())!.node;
      let load: Promise<WrkResult | null> | undefined;
      let sampler: Sampler | undefined;
      let leaseBefore: LeaseWindow | null = null;
      const s2 = await switchover(c, "under /metrics load", third, async () => {
        sampler = await Sampler.start(c!, loaded, "switchover-load", opts.durationS + 30);
        load = wrk(c!, `${c!.apiUrl(loaded)}/metrics`, { threads: opts.threads, connections: opts.connections, durationS: opts.durationS }).catch(() => null);
        await sleep(Math.min(3000, (opts.durationS * 1000) / 3)); // load established before the request
        leaseBefore = leaseWindow(sampler.samples());
      });
      s2.load = load ? await load : null;
      if (sampler) await sampler.stop();
      s2.leaseBefore = leaseBefore;
      switchovers.push(s2);
      log(
        `switchover under load ${s2.from} -> ${s2.to}: gap ${s2.gapMs ?? "?"} ms, handover ${s2.handoverMs ?? "?"} ms, CLI: ${s2.cliLine};` +
          ` load ${s2.load ? s2.load.rps.toFixed(0) : "?"} req/s p99 ${s2.load?.latMs.p99.toFixed(2) ?? "?"} ms${s2.error ? ` ERROR ${s2.error}` : ""}`,
      );
      loadDuring.push(`after the switchovers: ${la()}`);
    }
  } catch (e) {
    error = (e as Error).message;
    log(`ERROR ${error}`);
  } finally {
    await c?.teardown();
  }
  const wall = (Date.now() - started) / 1000;
  const text = report({ opts, endpoints, rounds, idleLease, haCounts, termStable, switchovers, loadStart, loadDuring, wall, wrkVersion, error });
  console.log(`\n${text}`);
  if (opts.json) {
    const file = resolve(opts.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          options: opts,
          node: process.version,
          cores: cpus().length,
          wrk: wrkVersion,
          wallSeconds: wall,
          loadavg: { start: loadStart, during: loadDuring },
          endpoints,
          rounds,
          idleLease,
          haCounts,
          termStable,
          switchovers,
          error: error ?? null,
          report: text.split("\n"),
        },
        null,
        2,
      )}\n`,
    );
    log(`results written to ${file}`);
  }
  if (error) process.exitCode = 1;
}

// ------------------------------------------------------------------ report

const med = (xs: number[]): number => quantile(xs, 0.5);
const f2 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(2));

function report(r: {
  opts: Options;
  endpoints: Endpoint[];
  rounds: RoundResult[];
  idleLease: LeaseWindow | null;
  haCounts: HaLogCounts | null;
  termStable: { before: number | null; after: number | null };
  switchovers: SwitchoverResult[];
  loadStart: string;
  loadDuring: string[];
  wall: number;
  wrkVersion: string;
  error: string | undefined;
}): string {
  const { opts } = r;
  const out: string[] = [];
  const multi = opts.runs > 1;
  const rows: string[][] = [
    [
      "endpoint",
      "status",
      "idle p50 ms",
      "idle p99 ms",
      "load req/s",
      "load p50 ms",
      "load p99 ms",
      multi ? "worst p99" : "load max ms",
      "x idle p99",
      "non-2xx",
      "sock err",
      "agent CPU %",
      "target",
      "ok",
    ],
  ];
  for (const e of r.endpoints) {
    const rs = r.rounds.filter((x) => x.endpoint === e.id);
    const b = rs.map((x) => x.baseline).filter((x): x is WrkResult => x !== null);
    const l = rs.map((x) => x.load).filter((x): x is WrkResult => x !== null);
    const cpu = rs.map((x) => x.agentCpuPct).filter((x): x is number => x !== null);
    const bp99 = b.length ? med(b.map((x) => x.latMs.p99)) : NaN;
    const lp99 = l.length ? med(l.map((x) => x.latMs.p99)) : NaN;
    const worst = l.length ? Math.max(...l.map((x) => (multi ? x.latMs.p99 : x.latMs.max))) : NaN;
    const isPrimaryCheck = e.path === "/primary";
    const expectedStatus = e.expect === 200 ? l.every((x) => x.non2xx === 0) : l.every((x) => x.non2xx === x.requests);
    const pass = l.length === rs.length && l.length > 0 && expectedStatus && l.every((x) => x.socketErrors === 0) && (!isPrimaryCheck || l.every((x) => x.latMs.p99 < P99_TARGET_MS));
    rows.push([
      e.id,
      String(e.expect),
      f2(b.length ? med(b.map((x) => x.latMs.p50)) : NaN),
      f2(bp99),
      l.length ? med(l.map((x) => x.rps)).toFixed(0) : "-",
      f2(l.length ? med(l.map((x) => x.latMs.p50)) : NaN),
      f2(lp99),
      f2(worst),
      Number.isFinite(lp99 / bp99) ? `${(lp99 / bp99).toFixed(1)}x` : "-",
      l.length ? String(l.reduce((a, x) => a + x.non2xx, 0)) : "-",
      l.length ? String(l.reduce((a, x) => a + x.socketErrors, 0)) : "-",
      cpu.length ? med(cpu).toFixed(0) : "-",
      isPrimaryCheck ? `p99 < ${P99_TARGET_MS}, ${e.expect}` : `all ${e.expect}`,
      pass ? "yes" : "NO",
    ]);
  }
  out.push(table(rows));
  out.push(
    `(${opts.runs} round(s) per endpoint${multi ? '; figures are medians over the rounds, "worst p99" the largest round p99' : ""};` +
      ` idle = ${opts.seq} requests one at a time on one keep-alive connection, wrk -t1 -c1; load = wrk -t${opts.threads} -c${opts.connections} -d${opts.durationS}s, keep-alive;` +
      ` latency = request written -> response read, by wrk; a standby's /primary answers 503 by design: "non-2xx" counts those)`,
  );

  const ha: string[][] = [["HA loop (primary lease)", "samples", "failed", "lease min ms", "lease median ms", "scrape med ms", "scrape max ms", "terms"]];
  const fmtLease = (name: string, w: LeaseWindow | null | undefined) => {
    if (!w) return;
    ha.push([
      name,
      String(w.samples),
      String(w.failed),
      String(w.minRemainingMs ?? "-"),
      String(w.medianRemainingMs ?? "-"),
      String(w.scrapeMedianMs ?? "-"),
      String(w.scrapeMaxMs ?? "-"),
      w.terms.join(",") || "-",
    ]);
  };
  fmtLease("idle (no load)", r.idleLease);
  for (const e of r.endpoints) {
    const ws = r.rounds
      .filter((x) => x.endpoint === e.id)
      .map((x) => x.lease)
      .filter((x): x is LeaseWindow => x !== null);
    if (!ws.length) continue;
    const mins = ws.map((w) => w.minRemainingMs).filter((x): x is number => x !== null);
    const medians = ws.map((w) => w.medianRemainingMs).filter((x): x is number => x !== null);
    const lat = ws.map((w) => w.scrapeMedianMs).filter((x): x is number => x !== null);
    const latMax = ws.map((w) => w.scrapeMaxMs).filter((x): x is number => x !== null);
    ha.push([
      `under load: ${e.id}`,
      String(ws.reduce((a, w) => a + w.samples, 0)),
      String(ws.reduce((a, w) => a + w.failed, 0)),
      mins.length ? String(Math.min(...mins)) : "-",
      medians.length ? String(Math.round(med(medians))) : "-",
      lat.length ? String(round1(med(lat))) : "-",
      latMax.length ? String(Math.max(...latMax)) : "-",
      [...new Set(ws.flatMap((w) => w.terms))].join(",") || "-",
    ]);
  }
  const sw = r.switchovers.find((s) => s.leaseBefore);
  if (sw) fmtLease("under load: primary GET /metrics, before switchover", sw.leaseBefore);
  out.push("", table(ha));
  const h = r.haCounts;
  out.push(
    `agent logs, all 3 agents, over the load phases: lease renewal failed ${h?.renewalFailed ?? "?"}, lease deadline passed ${h?.deadlinePassed ?? "?"}, fencing ${h?.fencing ?? "?"},` +
      ` stepping down ${h?.steppingDown ?? "?"}, HA cycle failed ${h?.cycleFailed ?? "?"}; leader term ${r.termStable.before ?? "?"} -> ${r.termStable.after ?? "?"}` +
      ` (${r.termStable.before !== null && r.termStable.before === r.termStable.after ? "unchanged" : "CHANGED"}).` +
      ` Lease: ttl 2s, fence_margin 500ms, renew every 500 ms: remaining time is ~1.5 s right after a renewal and ~1.0 s just before the next; 0 = fence.`,
  );

  if (r.switchovers.length) {
    const s: string[][] = [["planned switchover (CLI)", "from", "to", "client gap ms", "handover_ms", "load req/s", "load p99 ms", "ok"]];
    for (const x of r.switchovers) {
      s.push([
        x.label,
        x.from,
        x.to,
        String(x.gapMs ?? "-"),
        String(x.handoverMs ?? "-"),
        x.load ? x.load.rps.toFixed(0) : "-",
        x.load ? f2(x.load.latMs.p99) : "-",
        x.ok ? "yes" : `NO${x.error ? ` (${x.error})` : ""}`,
      ]);
    }
    out.push("", table(s));
  }
  out.push(
    "",
    `${r.wrkVersion}; host ${cpus().length} cores (wrk's ${opts.threads} threads, the agent, etcd and sshd share them); load average at start ${r.loadStart}` +
      `${r.loadDuring.length ? `; then ${r.loadDuring.join(" | ")}` : ""}; wall time ${r.wall.toFixed(0)} s` +
      `${r.error ? `; ERROR ${r.error}` : ""}`,
  );
  return out.join("\n");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
