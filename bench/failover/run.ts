/**
 * Failover benchmark: understudy (3 real agents in the namespace lab) against
 * keepalived (VRRP, same lab topology), measured from the client's side.
 *
 *   npm run bench:failover                       # 10 runs per scenario
 *   npm run bench:failover -- --quick            # 3 runs, 10 s idle window (smoke check)
 *   npm run bench:failover -- --runs 10 --json bench/failover/results-latest.json
 *
 * Options: --runs N, --quick, --json FILE, --only ttl5,ttl2,ttl1,keepalived
 * (subset), --idle-seconds S (default 30; 10 with --quick).
 *
 * Scenarios (see README.md beside this file):
 *  1. unplanned failover per TTL profile: link down + SIGKILL everything in the
 *     primary's namespace -> first SSH banner through the VIP, seen by a banner
 *     prober running in the client namespace (20 ms ticks, 200 ms per attempt,
 *     overlapping attempts while failing), confirmed by one real sftp handshake;
 *  2. sshd SIGKILLed on the primary -> banner again;
 *  3. graceful switchover (SIGTERM the primary agent) -> client-visible gap;
 *  4. agent RSS and idle CPU from /proc;
 *  5. ARP observer (20 ms) during every scenario: samples with >= 2 VIP holders;
 *  6. keepalived peer (unicast VRRP, advert_int 1) measured the same way.
 *
 * Needs root and `npm run build`. Traffic stays inside the lab namespaces.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Lab, LabCluster, type Observer, sleep } from "../../test/lab/harness/index.js";
import { KEEPALIVED_PRIORITIES, startKeepalived } from "./keepalived.js";
import {
  type Attempt,
  CLK_TCK,
  LeaderWatch,
  Prober,
  type Stats,
  agentLog,
  allReady,
  failureReasons,
  firstLog,
  grantedTtl,
  longestGap,
  now,
  procComm,
  procPpid,
  procSample,
  stats,
  steadyResolution,
  waitStandby,
  forEachArg,
  table,
} from "./lib.js";

// ------------------------------------------------------------------ options

interface Options {
  runs: number;
  /** What-if: set vip.duplicate_check_timeout in the generated agent configs (default 100ms). */
  dupCheckTimeout: string | undefined;
  json: string | undefined;
  only: Set<string> | undefined;
  idleSeconds: number;
}

function parseArgs(argv: string[]): Options {
  let runs: number | undefined;
  let json: string | undefined;
  let only: Set<string> | undefined;
  let idle: number | undefined;
  let quick = false;
  let dupCheckTimeout: string | undefined;
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
    else if (a === "--idle-seconds") idle = Number(val());
    else if (a === "--dup-check-timeout") {
      dupCheckTimeout = val();
      if (!/^\d+(ms|s)$/.test(dupCheckTimeout)) throw new Error("--dup-check-timeout takes a duration like 50ms");
    } else if (a === "--help" || a === "-h") {
      console.log("usage: bench/failover/run.ts [--runs N] [--quick] [--json FILE] [--only ttl5,ttl2,ttl1,keepalived] [--idle-seconds S] [--dup-check-timeout 50ms]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  // --quick is 3 runs and a 10 s idle window unless --runs / --idle-seconds say otherwise.
  runs ??= quick ? 3 : 10;
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs must be 1..50");
  const idleSeconds = idle ?? (quick ? 10 : 30);
  if (!(idleSeconds >= 1 && idleSeconds <= 120)) throw new Error("--idle-seconds must be 1..120");
  return { runs, json, only, idleSeconds, dupCheckTimeout };
}

// ----------------------------------------------------------------- profiles

interface Profile {
  name: "ttl5" | "ttl2" | "ttl1";
  ttl: string;
  ttlMs: number;
  fenceMargin: string;
  etcdTuned: boolean;
}

const PROFILES: Profile[] = [
  { name: "ttl5", ttl: "5s", ttlMs: 5000, fenceMargin: "1s", etcdTuned: false },
  { name: "ttl2", ttl: "2s", ttlMs: 2000, fenceMargin: "500ms", etcdTuned: false },
  { name: "ttl1", ttl: "1s", ttlMs: 1000, fenceMargin: "300ms", etcdTuned: true },
];
/** Profile whose cluster also runs the daemon-crash and graceful-switchover scenarios. */
const CRASH_PROFILE: Profile["name"] = "ttl2";

const LEADER_KEY = "/understudy/lab/leader";

// ------------------------------------------------------------------ records

interface ObserverCount {
  samples: number;
  twoHolder: number;
  maxHolders: number;
  /** Two-holder samples that fell inside a fault window (fault -> service back + 1 s). */
  twoHolderInFaultWindows?: number;
  firstTwoHolderAt?: string;
}

interface UnplannedRun {
  run: number;
  from: string;
  to: string | null;
  ok: boolean;
  /** Fault (link down issued) -> first SSH banner through the VIP, ms. */
  failoverMs: number | null;
  /** Breakdown, ms after the fault. */
  etcdLeaderDeletedMs: number | null;
  newLeaderPutMs: number | null;
  campaignLogMs: number | null;
  daemonStartedMs: number | null;
  vipAddedMs: number | null;
  vipAddTookMs: number | null;
  arpFirstAnswerMs: number | null;
  /** Failed attempts between the fault and the first banner, by reason. */
  failures: Record<string, number>;
  proberResolutionMs: number | null;
  handshakeOk: boolean | null;
  handshakeMs: number | null;
  error?: string;
}

interface CrashRun {
  run: number;
  node: string;
  ok: boolean;
  crashToBannerMs: number | null;
  exitSeenMs: number | null;
  restartedMs: number | null;
  failures: Record<string, number>;
  sameLeader: boolean;
  error?: string;
}

interface GracefulRun {
  run: number;
  from: string;
  to: string | null;
  ok: boolean;
  gapMs: number | null;
  termToFirstBannerMs: number | null;
  agentExitMs: number | null;
  newLeaderPutMs: number | null;
  gapFailures: Record<string, number>;
  handshakeOk: boolean | null;
  error?: string;
}

interface ResourceSample {
  node: string;
  role: string;
  pid: number;
  rssMb: number;
  rssMaxMb: number;
  cpuPct: number;
  cpuPctWithChildren: number;
}

interface ProfileResult {
  profile: Profile;
  grantedTtlS: number | null;
  grantedTtlWarnings: string[];
  unplanned: UnplannedRun[];
  unplannedStats?: Stats | undefined;
  observer?: ObserverCount;
  resources: ResourceSample[];
  crash?: { runs: CrashRun[]; stats?: Stats | undefined; observer?: ObserverCount };
  graceful?: { runs: GracefulRun[]; stats?: Stats | undefined; observer?: ObserverCount };
  error?: string;
  wallSeconds: number;
}

interface KeepalivedResult {
  version: string;
  advertInt: number;
  priorities: number[];
  runs: UnplannedRun[];
  stats?: Stats | undefined;
  observer?: ObserverCount;
  error?: string;
  wallSeconds: number;
}

// ------------------------------------------------------------------ helpers

const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};
const r1 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x));
const jitter = (maxMs: number): Promise<void> => sleep(Math.floor(Math.random() * maxMs));

function countObserver(obs: Observer, samples: ReturnType<Observer["samples"]>, windows: Array<[number, number]> = []): ObserverCount {
  const two = samples.filter((s) => s.macs.length >= 2);
  const inWin = two.filter((s) => windows.some(([a, b]) => s.t_ms >= a && s.t_ms <= b)).length;
  const first = two[0];
  return {
    samples: samples.length,
    twoHolder: two.length,
    maxHolders: obs.maxSimultaneousHolders(samples),
    ...(windows.length ? { twoHolderInFaultWindows: inWin } : {}),
    ...(first ? { firstTwoHolderAt: `${new Date(first.t_ms).toISOString()} ${obs.holders([first])[0]?.holders.join("+")}` } : {}),
  };
}

function agentPidOf(c: LabCluster, node: string): number | undefined {
  const pid = c.agents.get(node)?.pid;
  if (pid && procComm(pid) === "node") return pid;
  // `ip netns exec` + setpriv exec through, so this is normally the node process itself.
  return c.lab.pidsIn(node, "node")[0];
}

/** The sshd listener the agent started (its pidfile), not the per-connection children. */
function sshdListenerPid(c: LabCluster, node: string): number | undefined {
  try {
    const pid = Number(
      readFileSync(join(c.lab.node(node).dir, "state", "daemon.pid"), "utf8")
        .trim()
        .split(/\s+/)[0],
    );
    if (pid > 1 && procComm(pid) === "sshd") return pid;
  } catch {
    /* fall through */
  }
  const agent = agentPidOf(c, node);
  return c.lab.pidsIn(node, "sshd").find((p) => procPpid(p) === agent);
}

// ------------------------------------------------------ scenario: unplanned

async function unplannedRun(c: LabCluster, p: Profile, watch: LeaderWatch, obs: Observer, run: number, windows: Array<[number, number]>): Promise<UnplannedRun> {
  const lab = c.lab;
  const ready = await allReady(c, 20_000);
  if (!ready) throw new Error("cluster not ready (3 healthy members, VIP on the leader) within 20 s");
  const from = ready.leader;
  const rec: UnplannedRun = {
    run,
    from,
    to: null,
    ok: false,
    failoverMs: null,
    etcdLeaderDeletedMs: null,
    newLeaderPutMs: null,
    campaignLogMs: null,
    daemonStartedMs: null,
    vipAddedMs: null,
    vipAddTookMs: null,
    arpFirstAnswerMs: null,
    failures: {},
    proberResolutionMs: null,
    handshakeOk: null,
    handshakeMs: null,
  };
  const prober = await Prober.start(lab, `${p.name}-unplanned-${run}`, { maxSeconds: 60 });
  try {
    if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner before the fault");
    await jitter(Math.max(250, p.ttlMs / 4)); // random phase against the keepalive schedule
    const t0 = now();
    await lab.linkDown(from);
    const tDown = now();
    await lab.killAllIn(lab.node(from).ns);
    const ok = await prober.waitSuccess(tDown, p.ttlMs * 3 + 10_000);
    if (!ok) throw new Error(`no banner through the VIP within ${p.ttlMs * 3 + 10_000} ms`);
    windows.push([t0, ok.end + 1000]);
    rec.ok = true;
    rec.failoverMs = ok.end - t0;
    const attempts: Attempt[] = prober.attempts();
    rec.failures = failureReasons(attempts, tDown, ok.end);
    rec.proberResolutionMs = r1(steadyResolution(attempts, t0));
    const hs = await lab.sshHandshake("vip", { timeoutMs: 5000 });
    rec.handshakeOk = hs.ok;
    rec.handshakeMs = r1(hs.latencyMs);
    const del = watch.first("DELETE", t0);
    const put = watch.first("PUT", t0);
    rec.etcdLeaderDeletedMs = r1(del ? del.t - t0 : null);
    rec.newLeaderPutMs = r1(put ? put.t - t0 : null);
    const l = await c.leader();
    rec.to = l && l.node !== from ? l.node : null;
    if (rec.to) {
      const lines = agentLog(lab, rec.to);
      const since = t0 - 5; // log times have ms resolution
      rec.campaignLogMs = r1((firstLog(lines, since, /^campaigning/)?.time ?? NaN) - t0);
      rec.daemonStartedMs = r1((firstLog(lines, since, /^daemon started/)?.time ?? NaN) - t0);
      const vip = firstLog(lines, since, /^floating IP added/);
      rec.vipAddedMs = r1((vip?.time ?? NaN) - t0);
      rec.vipAddTookMs = typeof vip?.ms === "number" ? vip.ms : null;
      const arp = obs.firstAnsweredBy(rec.to, obs.samples(), t0);
      rec.arpFirstAnswerMs = r1(arp !== undefined ? arp - t0 : null);
    }
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    await prober.stop();
  }
  // The dead host comes back like after a reboot: no VIP on eth0, link up, agent started.
  await lab.delVip(from);
  await lab.linkUp(from);
  c.startAgent(from);
  if (!(await waitStandby(c, from, 20_000))) {
    rec.error = `${rec.error ? `${rec.error}; ` : ""}${from} did not come back as a standby within 20 s`;
  }
  return rec;
}

// --------------------------------------------- scenario: crash and graceful

async function crashAndGraceful(c: LabCluster, watch: LeaderWatch, runs: number, res: ProfileResult): Promise<void> {
  const lab = c.lab;
  const crash: CrashRun[] = [];
  const graceful: GracefulRun[] = [];
  const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 600 });
  const windows: Array<[number, number]> = [];
  try {
    for (let i = 1; i <= runs; i++) {
      const ready = await allReady(c, 20_000);
      if (!ready) throw new Error("cluster not ready before the crash/graceful run");
      const node = ready.leader;
      const prober = await Prober.start(lab, `crash-graceful-${i}`, { maxSeconds: 60 });
      let stoppedAgent = false;
      try {
        if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner");
        // --- daemon crash: SIGKILL the sshd listener on the primary
        const cr: CrashRun = { run: i, node, ok: false, crashToBannerMs: null, exitSeenMs: null, restartedMs: null, failures: {}, sameLeader: false };
        crash.push(cr);
        try {
          await jitter(300);
          const pid = sshdListenerPid(c, node);
          if (!pid) throw new Error(`no sshd listener found on ${node}`);
          const t0 = now();
          process.kill(pid, "SIGKILL");
          const tk = now();
          const ok = await prober.waitSuccess(tk, 10_000);
          if (!ok) throw new Error("no banner within 10 s after the sshd crash");
          windows.push([t0, ok.end + 1000]);
          cr.ok = true;
          cr.crashToBannerMs = ok.end - t0;
          cr.failures = failureReasons(prober.attempts(), tk, ok.end);
          const lines = agentLog(lab, node);
          cr.exitSeenMs = r1((firstLog(lines, t0 - 5, /exited unexpectedly/)?.time ?? NaN) - t0);
          cr.restartedMs = r1((firstLog(lines, t0 - 5, /^daemon started/)?.time ?? NaN) - t0);
          cr.sameLeader = (await c.leader())?.node === node;
          if (!(await prober.waitSteady(ok.end, 3000))) throw new Error("banner not steady after the restart");
        } catch (e) {
          cr.error = (e as Error).message;
        }
        // --- graceful switchover: SIGTERM the primary agent
        const gr: GracefulRun = {
          run: i,
          from: node,
          to: null,
          ok: false,
          gapMs: null,
          termToFirstBannerMs: null,
          agentExitMs: null,
          newLeaderPutMs: null,
          gapFailures: {},
          handshakeOk: null,
        };
        graceful.push(gr);
        try {
          const back = await allReady(c, 10_000);
          if (!back || back.leader !== node) throw new Error("primary changed or cluster not ready after the crash run");
          await sleep(300);
          await jitter(300);
          const t0 = now();
          stoppedAgent = true;
          await c.signalAgent(node, "SIGTERM", 10_000);
          gr.agentExitMs = r1(now() - t0);
          const next = await c.waitForLeader({ not: node, timeoutMs: 10_000 });
          if (!next) throw new Error("no new leader within 10 s of SIGTERM");
          gr.to = next.node;
          const first = await prober.waitSuccess(t0, 10_000);
          const tNew = now();
          if (!first || !(await prober.waitSteady(tNew, 5000))) throw new Error("no steady banner after the switchover");
          const attempts = prober.attempts();
          const gap = longestGap(attempts, t0);
          if (!gap) throw new Error("no gap found");
          windows.push([t0, gap.to + 1000]);
          gr.ok = true;
          gr.gapMs = gap.gapMs;
          gr.gapFailures = gap.reasons;
          gr.termToFirstBannerMs = r1(gap.to - t0);
          const put = watch.first("PUT", t0);
          gr.newLeaderPutMs = r1(put ? put.t - t0 : null);
          const hs = await lab.sshHandshake("vip", { timeoutMs: 5000 });
          gr.handshakeOk = hs.ok;
        } catch (e) {
          gr.error = (e as Error).message;
        }
      } finally {
        await prober.stop();
      }
      if (stoppedAgent) {
        c.startAgent(node);
        if (!(await waitStandby(c, node, 20_000))) log(`  warning: ${node} did not come back as a standby within 20 s`);
      }
      const cr = crash[crash.length - 1];
      const gr = graceful[graceful.length - 1];
      log(
        `  crash/graceful ${i}/${runs}: sshd crash on ${node} -> banner ${fmtMs(cr?.crashToBannerMs)} (exit seen +${cr?.exitSeenMs ?? "?"} ms, restarted +${cr?.restartedMs ?? "?"} ms${cr?.sameLeader ? "" : ", LEADER CHANGED"})${cr?.error ? ` ERROR ${cr.error}` : ""}; ` +
          `SIGTERM ${node} -> ${gr?.to ?? "?"} gap ${fmtMs(gr?.gapMs)} (agent exit +${gr?.agentExitMs ?? "?"} ms, new leader +${gr?.newLeaderPutMs ?? "?"} ms) ${JSON.stringify(gr?.gapFailures ?? {})}${gr?.error ? ` ERROR ${gr.error}` : ""}`,
      );
    }
  } finally {
    const samples = await obs.stop();
    const oc = countObserver(obs, samples, windows);
    res.crash = { runs: crash, stats: stats(crash.filter((r) => r.ok).map((r) => r.crashToBannerMs!)), observer: oc };
    res.graceful = { runs: graceful, stats: stats(graceful.filter((r) => r.ok).map((r) => r.gapMs!)), observer: oc };
  }
}

// --------------------------------------------------------- scenario: idle

async function idleResources(c: LabCluster, seconds: number): Promise<ResourceSample[]> {
  const leader = (await c.leader())?.node;
  const pids = c.lab.nodes.map((n) => ({ node: n.name, pid: agentPidOf(c, n.name) })).filter((x): x is { node: string; pid: number } => x.pid !== undefined);
  const first = new Map(pids.map((x) => [x.pid, procSample(x.pid)]));
  const rssMax = new Map<number, number>();
  const steps = Math.max(1, Math.round(seconds));
  for (let i = 0; i < steps; i++) {
    await sleep(1000);
    for (const x of pids) {
      const s = procSample(x.pid);
      if (s) rssMax.set(x.pid, Math.max(rssMax.get(x.pid) ?? 0, s.rssKb));
    }
  }
  const out: ResourceSample[] = [];
  for (const x of pids) {
    const a = first.get(x.pid);
    const b = procSample(x.pid);
    if (!a || !b) continue;
    const wall = (b.t - a.t) / 1000;
    out.push({
      node: x.node,
      role: x.node === leader ? "primary" : "standby",
      pid: x.pid,
      rssMb: b.rssKb / 1024,
      rssMaxMb: (rssMax.get(x.pid) ?? b.rssKb) / 1024,
      cpuPct: ((b.selfTicks - a.selfTicks) / CLK_TCK / wall) * 100,
      cpuPctWithChildren: ((b.selfTicks + b.childTicks - a.selfTicks - a.childTicks) / CLK_TCK / wall) * 100,
    });
  }
  return out;
}

// ------------------------------------------------------- understudy profile

async function understudyProfile(p: Profile, opts: Options): Promise<ProfileResult> {
  const t0 = Date.now();
  const res: ProfileResult = { profile: p, grantedTtlS: null, grantedTtlWarnings: [], unplanned: [], resources: [], wallSeconds: 0 };
  log(`=== understudy ${p.name}: ttl ${p.ttl}, fence_margin ${p.fenceMargin}, etcd ${p.etcdTuned ? "tuned (heartbeat 10 ms, election 100 ms)" : "default"}`);
  let c: LabCluster | undefined;
  let watch: LeaderWatch | undefined;
  try {
    const patch = opts.dupCheckTimeout;
    c = await LabCluster.create({ ttl: p.ttl, fenceMargin: p.fenceMargin, etcdTuned: p.etcdTuned, ...(patch ? { start: false } : {}) });
    const lab = c.lab;
    if (patch) {
      // What-if run: same generated config, only vip.duplicate_check_timeout changed.
      for (const n of lab.nodes) {
        const f = c.configPath(n.name);
        const text = readFileSync(f, "utf8");
        if (!/^vip: \{ /m.test(text)) throw new Error(`no vip line in ${f}`);
        writeFileSync(f, text.replace(/^vip: \{ /m, `vip: { duplicate_check_timeout: ${patch}, `));
      }
      for (const n of lab.nodes) c.startAgent(n.name);
      const first = await c.waitForLeader({ timeoutMs: 20_000 });
      if (!first || !(await c.waitServing(first.node, 10_000))) throw new Error("no primary serving within 30 s");
      log(`  what-if: vip.duplicate_check_timeout = ${patch} (default 100ms)`);
    }
    log(`  cluster up: ${lab.prefix}, subnet ${lab.subnet}, leader ${(await c.leader())?.node}`);
    watch = LeaderWatch.start(lab, LEADER_KEY);
    res.grantedTtlS = (await grantedTtl(c)) ?? null;
    const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 900 });
    const windows: Array<[number, number]> = [];
    try {
      for (let i = 1; i <= opts.runs; i++) {
        const r = await unplannedRun(c, p, watch, obs, i, windows);
        res.unplanned.push(r);
        log(
          `  unplanned ${i}/${opts.runs}: ${r.from} -> ${r.to ?? "?"} ${fmtMs(r.failoverMs)}` +
            ` [etcd delete +${r.etcdLeaderDeletedMs ?? "?"}, new leader +${r.newLeaderPutMs ?? "?"}, sshd +${r.daemonStartedMs ?? "?"}, VIP +${r.vipAddedMs ?? "?"} (add ${r.vipAddTookMs ?? "?"} ms), ARP seen +${r.arpFirstAnswerMs ?? "?"}]` +
            ` sftp ${r.handshakeOk ? "ok" : "FAIL"} ${r.handshakeMs ?? "?"} ms ${JSON.stringify(r.failures)}${r.error ? ` ERROR ${r.error}` : ""}`,
        );
        if (r.error && !r.ok) {
          // A broken run may leave the cluster in a state later runs cannot use; stop this profile.
          if (!(await allReady(c, 15_000))) throw new Error(`cluster did not recover after run ${i}: ${r.error}`);
        }
      }
    } finally {
      const samples = await obs.stop();
      res.observer = countObserver(obs, samples, windows);
    }
    res.unplannedStats = stats(res.unplanned.filter((r) => r.ok).map((r) => r.failoverMs!));
    for (const n of lab.nodes) {
      for (const l of agentLog(lab, n.name)) {
        if (/granted a different lease TTL/.test(l.msg)) res.grantedTtlWarnings.push(`${n.name}: requested ${String(l.requested_ms)} ms, granted ${String(l.granted_ms)} ms`);
      }
    }
    res.grantedTtlWarnings = [...new Set(res.grantedTtlWarnings)];
    if (await allReady(c, 15_000)) {
      await sleep(5000); // let the agent restarted by the last run settle (JIT, first reconciles)
      log(`  idle: sampling agent RSS/CPU for ${opts.idleSeconds} s (no prober, no observer; 5 s settle first)`);
      res.resources = await idleResources(c, opts.idleSeconds);
      for (const r of res.resources)
        log(`    ${r.node} ${r.role}: RSS ${r.rssMb.toFixed(1)} MB (max ${r.rssMaxMb.toFixed(1)}), CPU ${r.cpuPct.toFixed(2)} % (+children ${r.cpuPctWithChildren.toFixed(2)} %)`);
    }
    if (p.name === CRASH_PROFILE) {
      log(`  daemon crash + graceful switchover: ${opts.runs} runs`);
      await crashAndGraceful(c, watch, opts.runs, res);
    }
  } catch (e) {
    res.error = (e as Error).message;
    log(`  ERROR ${res.error}`);
  } finally {
    watch?.stop();
    await c?.teardown();
    res.wallSeconds = (Date.now() - t0) / 1000;
  }
  return res;
}

// ------------------------------------------------------------ keepalived

async function keepalivedPeer(opts: Options): Promise<KeepalivedResult> {
  const t0 = Date.now();
  const v = spawnSync("/usr/sbin/keepalived", ["--version"], { encoding: "utf8", timeout: 5000 });
  const version = `${v.stdout ?? ""}${v.stderr ?? ""}`.split("\n")[0]?.trim() || "keepalived (version unknown)";
  const res: KeepalivedResult = { version, advertInt: 1, priorities: KEEPALIVED_PRIORITIES, runs: [], wallSeconds: 0 };
  log(`=== keepalived peer: ${version}, unicast VRRP, advert_int 1, priorities ${KEEPALIVED_PRIORITIES.join("/")}, track script = sshd listening, sshd warm on every node`);
  const lab = await Lab.create({ nodes: 3, startEtcd: false });
  try {
    for (const n of lab.nodes) await lab.startSshd(n);
    for (const n of lab.nodes) startKeepalived(lab, n);
    const master = lab.nodes[0]!;
    const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 900 });
    const windows: Array<[number, number]> = [];
    try {
      const initial = await obs.waitForHolders([master], { timeoutMs: 15_000, consecutive: 5 });
      if (initial === undefined) throw new Error(`${master.name} did not become VRRP master within 15 s`);
      for (let i = 1; i <= opts.runs; i++) {
        const rec: UnplannedRun = {
          run: i,
          from: master.name,
          to: null,
          ok: false,
          failoverMs: null,
          etcdLeaderDeletedMs: null,
          newLeaderPutMs: null,
          campaignLogMs: null,
          daemonStartedMs: null,
          vipAddedMs: null,
          vipAddTookMs: null,
          arpFirstAnswerMs: null,
          failures: {},
          proberResolutionMs: null,
          handshakeOk: null,
          handshakeMs: null,
        };
        res.runs.push(rec);
        const prober = await Prober.start(lab, `keepalived-${i}`, { maxSeconds: 60 });
        try {
          const on = await lab.vipConfiguredOn();
          if (on.join() !== master.name) throw new Error(`VIP on [${on.join()}], expected ${master.name}`);
          if (!(await prober.waitSteady(now(), 5000))) throw new Error("prober saw no steady banner before the fault");
          await jitter(1000); // random phase against the advert schedule
          const t0 = now();
          await lab.linkDown(master);
          const tDown = now();
          await lab.killAllIn(master.ns);
          const ok = await prober.waitSuccess(tDown, 15_000);
          if (!ok) throw new Error("no banner through the VIP within 15 s");
          windows.push([t0, ok.end + 1000]);
          rec.ok = true;
          rec.failoverMs = ok.end - t0;
          rec.failures = failureReasons(prober.attempts(), tDown, ok.end);
          rec.proberResolutionMs = r1(steadyResolution(prober.attempts(), t0));
          const hs = await lab.sshHandshake("vip", { timeoutMs: 5000 });
          rec.handshakeOk = hs.ok;
          rec.handshakeMs = r1(hs.latencyMs);
          const samples = obs.samples();
          for (const n of lab.nodes.slice(1)) {
            const a = obs.firstAnsweredBy(n, samples, t0);
            if (a !== undefined && (rec.arpFirstAnswerMs === null || a - t0 < rec.arpFirstAnswerMs)) {
              rec.arpFirstAnswerMs = r1(a - t0);
              rec.to = n.name;
            }
          }
        } catch (e) {
          rec.error = (e as Error).message;
        } finally {
          await prober.stop();
        }
        // Bring the old master back (like a reboot: no VIP on eth0); keepalived preempts back to it (priority 150).
        await lab.delVip(master);
        await lab.linkUp(master);
        await lab.startSshd(master);
        startKeepalived(lab, master);
        const back = await obs.waitForHolders([master], { timeoutMs: 15_000, consecutive: 10, sinceMs: now() });
        if (back === undefined) rec.error = `${rec.error ? `${rec.error}; ` : ""}${master.name} did not take the VIP back within 15 s`;
        await sleep(1500); // backups settle (they saw the master's advert and dropped the VIP)
        log(
          `  keepalived ${i}/${opts.runs}: ${master.name} -> ${rec.to ?? "?"} ${fmtMs(rec.failoverMs)} [ARP seen +${rec.arpFirstAnswerMs ?? "?"}] sftp ${rec.handshakeOk ? "ok" : "FAIL"} ${rec.handshakeMs ?? "?"} ms ${JSON.stringify(rec.failures)}${rec.error ? ` ERROR ${rec.error}` : ""}`,
        );
        if (back === undefined) throw new Error("keepalived cluster did not recover; stopping this scenario");
      }
    } finally {
      const samples = await obs.stop();
      res.observer = countObserver(obs, samples, windows);
    }
  } catch (e) {
    res.error = (e as Error).message;
    log(`  ERROR ${res.error}`);
  } finally {
    await lab.teardown();
    res.wallSeconds = (Date.now() - t0) / 1000;
  }
  res.stats = stats(res.runs.filter((r) => r.ok).map((r) => r.failoverMs!));
  return res;
}

// ----------------------------------------------------------------- report

function fmtMs(ms: number | null | undefined): string {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? "-" : `${(ms / 1000).toFixed(3)} s`;
}
function fmtS(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? "-" : (ms / 1000).toFixed(3);
}

function report(results: ProfileResult[], ka: KeepalivedResult | undefined, opts: Options, wallSeconds: number): string {
  const out: string[] = [];
  const rows: string[][] = [["metric", "n", "median", "p95", "min", "max", "target", "ok"]];
  const verdict = (pass: boolean | undefined) => (pass === undefined ? "-" : pass ? "yes" : "NO");
  const statRow = (name: string, s: Stats | undefined, n: number, target: string, pass: boolean | undefined) =>
    rows.push([name, s ? `${s.n}/${n}` : `0/${n}`, fmtS(s?.median), fmtS(s?.p95), fmtS(s?.min), fmtS(s?.max), target, verdict(pass)]);

  for (const r of results) {
    const ttlS = r.profile.ttlMs / 1000;
    const s = r.unplannedStats;
    statRow(`unplanned failover ${r.profile.name} (s)`, s, r.unplanned.length, `med <= ${(ttlS + 0.5).toFixed(1)}`, s ? s.median <= r.profile.ttlMs + 500 && s.n === r.unplanned.length : false);
  }
  if (ka) statRow("unplanned failover keepalived (s)", ka.stats, ka.runs.length, "(reference)", undefined);
  for (const r of results) {
    if (r.crash)
      statRow(
        `daemon crash -> serving ${r.profile.name} (s)`,
        r.crash.stats,
        r.crash.runs.length,
        "med <= 0.3",
        r.crash.stats ? r.crash.stats.median <= 300 && r.crash.stats.n === r.crash.runs.length : false,
      );
    if (r.graceful)
      statRow(
        `graceful switchover gap ${r.profile.name} (s)`,
        r.graceful.stats,
        r.graceful.runs.length,
        "med <= 0.5",
        r.graceful.stats ? r.graceful.stats.median <= 500 && r.graceful.stats.n === r.graceful.runs.length : false,
      );
  }
  out.push(table(rows));

  const res: string[][] = [["agent resources (idle)", "node", "RSS MB", "RSS max", "CPU %", "+children %", "target", "ok"]];
  for (const r of results) {
    for (const x of [...r.resources].sort((a, b) => (a.role === b.role ? a.node.localeCompare(b.node) : a.role === "primary" ? -1 : 1))) {
      const pass = x.rssMaxMb <= 80 && x.cpuPct <= 1;
      res.push([`${r.profile.name} ${x.role}`, x.node, x.rssMb.toFixed(1), x.rssMaxMb.toFixed(1), x.cpuPct.toFixed(2), x.cpuPctWithChildren.toFixed(2), "RSS <= 80, CPU <= 1", verdict(pass)]);
    }
  }
  if (res.length > 1) out.push("", table(res));

  const obsRows: string[][] = [["observer (ARP, 20 ms)", "samples", ">=2 holders", "in fault windows", "max holders", "target", "ok"]];
  for (const r of results) {
    if (r.observer)
      obsRows.push([
        `understudy ${r.profile.name} unplanned`,
        String(r.observer.samples),
        String(r.observer.twoHolder),
        String(r.observer.twoHolderInFaultWindows ?? "-"),
        String(r.observer.maxHolders),
        "0",
        verdict(r.observer.twoHolder === 0),
      ]);
    if (r.crash?.observer)
      obsRows.push([
        `understudy ${r.profile.name} crash+graceful`,
        String(r.crash.observer.samples),
        String(r.crash.observer.twoHolder),
        String(r.crash.observer.twoHolderInFaultWindows ?? "-"),
        String(r.crash.observer.maxHolders),
        "0",
        verdict(r.crash.observer.twoHolder === 0),
      ]);
  }
  if (ka?.observer)
    obsRows.push([
      "keepalived unplanned (+preempt back)",
      String(ka.observer.samples),
      String(ka.observer.twoHolder),
      String(ka.observer.twoHolderInFaultWindows ?? "-"),
      String(ka.observer.maxHolders),
      "(reference)",
      "-",
    ]);
  out.push("", table(obsRows));

  out.push("");
  for (const r of results) {
    const req = r.profile.ttlMs / 1000;
    const g = r.grantedTtlS;
    out.push(
      `granted TTL ${r.profile.name}: requested ${req}s, etcd granted ${g ?? "?"}s${g !== null && g !== req ? " (RAISED by etcd)" : ""}; agent warnings: ${r.grantedTtlWarnings.length ? r.grantedTtlWarnings.join("; ") : "none"}`,
    );
  }
  if (ka?.stats) {
    for (const r of results) {
      const s = r.unplannedStats;
      if (!s) continue;
      out.push(
        `unplanned failover ttl=${r.profile.ttlMs / 1000}s: understudy median ${(s.median / 1000).toFixed(2)} s vs keepalived ${(ka.stats.median / 1000).toFixed(2)} s (${(s.median / ka.stats.median).toFixed(2)}x); p95 ${(s.p95 / 1000).toFixed(2)} s vs ${(ka.stats.p95 / 1000).toFixed(2)} s (${(s.p95 / ka.stats.p95).toFixed(2)}x)`,
      );
    }
  }
  const hsAll = [...results.flatMap((r) => r.unplanned), ...(ka?.runs ?? [])].filter((r) => r.ok);
  const hsOk = hsAll.filter((r) => r.handshakeOk).length;
  const resol = hsAll.map((r) => r.proberResolutionMs).filter((x): x is number => x !== null);
  out.push(
    `measurement: banner prober in the client namespace (TCP connect VIP:22 + read "SSH-2.0-" line; 20 ms ticks, 200 ms per attempt, up to 10 overlapping attempts while failing; steady-state resolution median ${resol.length ? Math.round(stats(resol)!.median) : "?"} ms); t0 = just before \`ip link set <port> down\`; each failover confirmed by a full sftp handshake (pinned host key): ${hsOk}/${hsAll.length} ok`,
  );
  out.push(
    `runs per scenario: ${opts.runs}; idle window ${opts.idleSeconds} s; host: ${cpus().length} cores; total wall time ${wallSeconds.toFixed(0)} s` +
      `; vip.duplicate_check_timeout ${opts.dupCheckTimeout ? `${opts.dupCheckTimeout} (WHAT-IF, not the default)` : "100ms (the default)"}`,
  );
  return out.join("\n");
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const want = (name: string) => !opts.only || opts.only.has(name);
  if (process.getuid?.() !== 0) throw new Error("the failover benchmark needs root (network namespaces)");
  const started = Date.now();
  log(`failover benchmark: ${opts.runs} runs per scenario, idle window ${opts.idleSeconds} s${opts.dupCheckTimeout ? `, WHAT-IF vip.duplicate_check_timeout ${opts.dupCheckTimeout}` : ""}`);
  const results: ProfileResult[] = [];
  let ka: KeepalivedResult | undefined;
  for (const p of PROFILES) if (want(p.name)) results.push(await understudyProfile(p, opts));
  if (want("keepalived")) ka = await keepalivedPeer(opts);
  const wall = (Date.now() - started) / 1000;
  const text = report(results, ka, opts, wall);
  console.log(`\n${text}`);
  if (opts.json) {
    const file = resolve(opts.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), options: { runs: opts.runs, idleSeconds: opts.idleSeconds, dupCheckTimeout: opts.dupCheckTimeout ?? null }, node: process.version, cores: cpus().length, wallSeconds: wall, understudy: results, keepalived: ka, report: text.split("\n") }, null, 2)}\n`,
    );
    log(`results written to ${file}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
