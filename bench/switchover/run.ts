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
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, resolve } from "node:path";
import { LabCluster, type Observer, pollUntil, sleep } from "../../test/lab/harness/index.js";
import { ApiTrigger } from "./api-trigger.js";
import { cpuBetween, cpuSnapshot } from "./cpu.js";
import { keepalivedPlanned } from "./keepalived.js";
import { LEADER_KEY, assertGapAfterRequest, type ModeName, type ModeResult, type Options, type SwitchRun, countObserver, jitter, la, log, nextNode, parseArgs, r0, waitForLoad } from "./model.js";
import { FineProber as Prober, gapAround } from "./probe.js";
import { distTime, report } from "./report.js";
import { LeaderWatch, allReady, agentLog, failureReasons, firstLog, longestGap, now, stats, steadyResolution } from "../failover/lib.js";

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
    assertGapAfterRequest(gap.from, t0);
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
        released: rel(firstLog(oldLog, sd, /^(released|handed) the leader key/)?.time),
        keyDeleted: rel(watch.first("DELETE", t0)?.t),
        // A key handed over: the target's decision "promoting: the leader key names me", then "taking over".
        campaigning: rel(firstLog(newLog, since, /^(campaigning|promoting: the leader key names me)/)?.time),
        won: rel(firstLog(newLog, since, /^(won the election|taking over:)/)?.time),
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
