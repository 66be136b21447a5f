// keepalived's planned switchover, the peer of bench/switchover/run.ts.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, type LabNode, sleep } from "../../test/lab/harness/index.js";
import { KEEPALIVED, KEEPALIVED_PRIORITIES, startKeepalived } from "../failover/keepalived.js";
import { now, stats } from "../failover/lib.js";
import { type KaResult, type KaRun, type Options, assertGapAfterRequest, countObserver, jitter, la, log, nextNode, r0, waitForLoad } from "./model.js";
import { FineProber as Prober, gapAround } from "./probe.js";

/**
 * keepalived planned switchover: priorities are normalised before each run
 * (master 150, the target 120, the third node 100; reloads that do not change
 * the master), then the master's config is rewritten with priority 50 and
 * keepalived is sent SIGHUP (a reload); the target (120) takes over.
 */
export async function keepalivedPlanned(opts: Options): Promise<KaResult> {
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
          assertGapAfterRequest(gap.from, t0);
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
