/**
 * One chaos run on the namespace lab: 3 nodes, a 3-member etcd cluster, real
 * agents (or the keepalived peer), real sshd, real SFTP uploads through the
 * VIP, config edits on the primary's sync root, operator switchovers, and a
 * seeded schedule of faults, each injected, held, healed and settled before
 * the next. The recorders watch from outside; at the end the checker
 * (checker.ts) reads the recording.
 *
 * Where uploads live: with understudy, each node's sshd serves its own data
 * root (`data:`, src/data/), replicated from the primary to the standbys, so
 * the run measures what a failover loses (the new primary's data root is
 * listed when the run sees the leader change) and what rejoin brings back
 * (every acknowledged upload must be on the final primary). The keepalived
 * peer, which replicates nothing, keeps one shared directory (a stand-in for
 * shared storage), as does `uploadStorage: "shared"`.
 *
 * Used by test/lab/chaos.lab.test.ts (short run) and bench/chaos/run.ts (long run).
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { killGroup, run, sleep } from "../lab/harness/exec.js";
import { Lab, type LabNode } from "../lab/harness/lab.js";
import { LabCluster } from "../lab/harness/cluster.js";
import { startKeepalived } from "../../bench/failover/keepalived.js";
import { describeLaggards } from "./diagnose.js";
import { check, formatReport, type ChaosReport } from "./checker.js";
import { FAULT_KINDS, NOT_INJECTED, healEverything, inject, makeSchedule, type FaultEnv, type FaultKind, type FaultSpec } from "./faults.js";
import { Prng } from "./prng.js";
import { ArpRecorder, DaemonSampler, EtcdWatcher } from "./recorders.js";
import type { DataPromotionRecord, FaultRecord, HistoryRecord, Recording } from "./types.js";
import { EditLoop, OperatorLoop, RescueScanner, UploadLoop, hashTree } from "./workload.js";

export interface ChaosOptions {
  seed: number;
  faults: number;
  controller?: "understudy" | "keepalived";
  kinds?: readonly FaultKind[];
  holdScale?: number;
  gapMs?: [number, number];
  /** Bound on settling after each heal. Default 30 s. */
  settleMaxMs?: number;
  /** Bound on the whole fault phase; faults not started by then are dropped. Default 2 h. */
  maxFaultPhaseMs?: number;
  arpIntervalMs?: number;
  daemonIntervalMs?: number;
  operatorEveryMs?: [number, number] | null;
  editEveryMs?: [number, number];
  /**
   * Where config edits go: "api" (default) to the node the leader key names, once its own API
   * says it is the primary (GET /primary = 200), like a careful operator; "leader-key" to the
   * node the leader key names without asking (during an etcd quorum loss that key is frozen and
   * may name a node that already fenced itself).
   */
  editTarget?: "api" | "leader-key";
  ttl?: string;
  fenceMargin?: string;
  log?: (line: string) => void;
  /** Write the raw recording (JSON) here. */
  recordingFile?: string;
  /** Where uploads live (see above). Default "replicated" with understudy; the keepalived peer is always "shared". */
  uploadStorage?: "shared" | "replicated";
  /**
   * understudy only: every agent runs with `election.failsafe: on` (docs/failsafe-design.md): a primary
   * that loses etcd keeps serving while both standbys grant. Default off. The checker is the same.
   */
  failsafe?: boolean;
}

export interface ChaosResult {
  recording: Recording;
  report: ChaosReport;
  text: string;
  schedule: FaultSpec[];
  notInjected: Record<string, string>;
  wallMs: number;
  /** Faults of the schedule that were not started because the phase bound passed. */
  dropped: number;
}

const CLUSTER_PREFIX = "/understudy/lab/";
const ROOT_NAME = "conf";

/** Sync volume of a node (a small tmpfs), and the sync root inside it. */
const volume = (n: LabNode) => join(n.dir, "vol");
const rootOf = (n: LabNode) => join(volume(n), ROOT_NAME);
/** The node's data root (replicated uploads), on the same small volume: disk_full_standby fills both. */
const dataOf = (n: LabNode) => join(volume(n), "data");
const DATA_TMP = ".understudy-tmp";

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const log = opts.log ?? (() => undefined);
  const controller = opts.controller ?? "understudy";
  const prng = new Prng(opts.seed);
  const schedule = makeSchedule(prng.fork("schedule"), opts.faults, {
    kinds: opts.kinds ?? FAULT_KINDS,
    holdScale: opts.holdScale ?? 1,
    gapMs: opts.gapMs ?? [500, 2000],
  });
  const t0 = Date.now();
  const lab = await Lab.create({ nodes: 3, etcdTuned: true, etcdMembers: 3, startEtcd: controller === "understudy" });
  const mounted: string[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const shared = join(lab.dir, "shared-data");
    mkdirSync(shared, { recursive: true });
    const replicated = controller === "understudy" && (opts.uploadStorage ?? "replicated") === "replicated";
    const uploadDir = (n: LabNode) => (replicated ? dataOf(n) : shared);
    let cluster: LabCluster | undefined;
    let watcher: EtcdWatcher | undefined;
    const keepalivedProcs = new Map<string, ChildProcess>();
    const daemonProcs = new Map<string, ChildProcess>();

    if (controller === "understudy") {
      for (const n of lab.nodes) {
        mkdirSync(volume(n), { recursive: true });
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", volume(n)], { timeout: 10_000 });
        mounted.push(volume(n));
        mkdirSync(join(rootOf(n), "edits"), { recursive: true });
        if (replicated) mkdirSync(dataOf(n), { recursive: true, mode: 0o755 });
        writeFileSync(join(rootOf(n), "base.conf"), "# chaos base config\n");
      }
      cluster = await LabCluster.create({
        lab,
        ttl: opts.ttl ?? "3s",
        fenceMargin: opts.fenceMargin ?? "1s",
        priorities: [300, 200, 100],
        ...(opts.failsafe ? { electionYaml: "failsafe: on" } : {}),
        sshd: (n) => ({ dataDir: uploadDir(n) }),
        sync: {
          rootPaths: (n) => [rootOf(n)],
          authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
          rootsYaml: (n) => `    - { name: ${ROOT_NAME}, path: ${rootOf(n)} }`,
          extraYaml: "  reconcile_interval: 5s\n  retry_max: 1s",
        },
        ...(replicated ? { extraYaml: (n: LabNode) => `data:\n  roots:\n    - { name: uploads, path: ${dataOf(n)} }\n  stability_window: 100ms\n  reserve: 1MiB\n  disk_full_retry: 2s\n` } : {}),
      });
      watcher = new EtcdWatcher(lab, CLUSTER_PREFIX);
      watcher.start();
      cleanups.push(() => watcher?.stop());
    } else {
      for (const n of lab.nodes) daemonProcs.set(n.name, await lab.startSshd(n, { dataDir: shared }));
      for (const n of lab.nodes) keepalivedProcs.set(n.name, startKeepalived(lab, n));
    }

    const arp = await ArpRecorder.start(lab, opts.arpIntervalMs ?? 20);
    cleanups.push(async () => void (await arp.stop()));
    const daemons = await DaemonSampler.start(lab, { intervalMs: opts.daemonIntervalMs ?? 50, maxSeconds: 7000 });
    cleanups.push(async () => void (await daemons.stop()));

    /** Who serves: the leader key (understudy) or the single ARP holder (keepalived). */
    const currentPrimary = async (): Promise<string | undefined> => {
      if (cluster) return (await cluster.leader())?.node ?? watcher?.leader?.node;
      const recent = arp.recent(5);
      const holders = new Set(recent.flatMap((s) => s.holders));
      if (holders.size === 1) return [...holders][0];
      return (await lab.vipConfiguredOn())[0];
    };

    // Wait for a first holder before starting the workload.
    const firstHolder = await waitFor(async () => {
      const r = arp.recent(3);
      return r.length === 3 && r.every((s) => s.holders.length === 1) ? true : undefined;
    }, 30_000);
    if (!firstHolder) throw new Error("chaos: no VIP holder within 30 s of start");

    const uploads = new UploadLoop(lab, prng.fork("uploads"));
    uploads.start();
    cleanups.push(() => uploads.stop());
    const confirmPrimary = async (node: string) => {
      const r = await lab.exec(lab.client, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", `${cluster!.apiUrl(node)}/primary`], { timeoutMs: 3000 });
      return r.stdout.trim() === "200";
    };
    const edits = cluster
      ? new EditLoop(
          (node) => rootOf(lab.node(node)),
          () => watcher?.leader?.node,
          prng.fork("edits"),
          {
            everyMs: opts.editEveryMs ?? [1000, 3000],
            ...((opts.editTarget ?? "api") === "api" ? { confirm: confirmPrimary } : {}),
          },
        )
      : undefined;
    edits?.start();
    cleanups.push(async () => edits?.stop());
    const operator =
      cluster && opts.operatorEveryMs !== null ? new OperatorLoop(cluster, () => watcher?.leader?.node, prng.fork("operator"), { everyMs: opts.operatorEveryMs ?? [10_000, 20_000] }) : undefined;
    operator?.start();
    cleanups.push(async () => operator?.stop());
    const rescues = new RescueScanner((node) => join(lab.node(node).dir, "state", "rescue"), ROOT_NAME);
    // Replicated uploads: at each leader change the run sees, list the new primary's data root and
    // note which acknowledged uploads it lacks (the RPO of that failover, before any rejoin).
    const dataPromotions: DataPromotionRecord[] = [];
    let seenLeader: string | undefined;
    const notePromotion = () => {
      const node = watcher?.leader?.node;
      if (!replicated || node === undefined || node === seenLeader) return;
      const first = seenLeader === undefined;
      seenLeader = node;
      if (first) return;
      const t = Date.now();
      const held = new Set(Object.keys(hashTree(dataOf(lab.node(node)))));
      const acked = uploads.records.filter((u) => u.ok && u.end < t);
      dataPromotions.push({ t, node, listedAt: Date.now(), acknowledged: acked.length, missing: acked.filter((u) => !held.has(u.name)).map((u) => u.name) });
    };
    const warm = await waitFor(() => (uploads.okSince(t0) ? true : undefined), 30_000);
    if (!warm) throw new Error(`chaos: no upload succeeded within 30 s: ${uploads.records.slice(-1)[0]?.detail ?? "no attempt"}`);
    const startedAt = Date.now();
    log(
      `chaos: ${controller}${cluster ? `, failsafe ${opts.failsafe ? "on" : "off"}` : ""}, seed ${opts.seed}, ${schedule.length} faults scheduled; lab ${lab.prefix} up in ${Math.round((startedAt - t0) / 1000)} s`,
    );

    const env: FaultEnv = {
      lab,
      controller,
      primary: currentPrimary,
      volumeOf: (node) => volume(lab.node(node)),
      log,
      ...(cluster ? { cluster } : {}),
      ...(controller === "keepalived"
        ? {
            keepalived: {
              pid: (node: string) => keepalivedProcs.get(node)?.pid,
              restart: (node: string) => void keepalivedProcs.set(node, startKeepalived(lab, lab.node(node))),
            },
            restartDaemon: async (node: string) => {
              killGroup(daemonProcs.get(node)?.pid);
              daemonProcs.set(node, await lab.startSshd(node, { dataDir: shared }));
            },
          }
        : {}),
    };

    const poll = async () => {
      notePromotion();
      await arp.poll();
      daemons.poll();
      rescues.scan(lab.nodes.map((n) => n.name));
    };
    const hold = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        await sleep(Math.min(500, Math.max(0, until - Date.now())));
        await poll();
      }
    };

    /** Healthy again: etcd answers, a primary serves the VIP alone, an upload made after the heal succeeded. */
    const settle = async (healAt: number, kind: FaultKind): Promise<boolean> => {
      const bound = opts.settleMaxMs ?? 30_000;
      const ok = await waitFor(
        async () => {
          await poll();
          if (!uploads.okSince(healAt)) return undefined;
          const recent = arp.recent(3);
          if (recent.length < 3 || !recent.every((s) => s.holders.length === 1 && s.holders[0] === recent[0]!.holders[0])) return undefined;
          if (cluster) {
            if (kind.startsWith("etcd_") && !(await lab.etcdHealthy(lab.client, 1000))) return undefined;
            const leader = await cluster.leader();
            if (!leader || leader.node !== recent[0]!.holders[0]) return undefined;
            if ([...cluster.agents.values()].some((a) => a.exitCode !== null || a.signalCode !== null)) return undefined;
          }
          return true;
        },
        bound,
        250,
      );
      return ok === true;
    };

    const faults: FaultRecord[] = [];
    const phaseEnd = startedAt + (opts.maxFaultPhaseMs ?? 2 * 3600_000);
    let dropped = 0;
    for (const spec of schedule) {
      if (Date.now() > phaseEnd) {
        dropped++;
        continue;
      }
      const injectAt = Date.now();
      const rec: FaultRecord = { id: spec.id, kind: spec.kind, injectAt, healAt: injectAt, settledAt: injectAt, settled: false };
      let active;
      try {
        active = await inject(env, spec);
      } catch (e) {
        rec.skipped = `inject failed: ${(e as Error).message.split("\n")[0]}`;
        await healEverything(lab);
        faults.push(rec);
        log(`  #${spec.id} ${spec.kind}: ${rec.skipped}`);
        continue;
      }
      if ("skipped" in active) {
        rec.skipped = active.skipped;
        faults.push(rec);
        log(`  #${spec.id} ${spec.kind}: skipped (${rec.skipped})`);
        continue;
      }
      if (active.target !== undefined) rec.target = active.target;
      if (active.detail !== undefined) rec.detail = active.detail;
      try {
        await hold(spec.holdMs);
      } finally {
        try {
          await active.heal();
        } catch (e) {
          rec.detail = `${rec.detail ?? ""} heal failed: ${(e as Error).message.split("\n")[0]}`.trim();
          await healEverything(lab);
        }
      }
      rec.healAt = Date.now();
      if (spec.kind.startsWith("etcd_")) watcher?.kick();
      rec.settled = await settle(rec.healAt, spec.kind);
      rec.settledAt = Date.now();
      faults.push(rec);
      log(
        `  #${spec.id} ${spec.kind}${rec.target ? ` on ${rec.target}` : ""}: held ${Math.round((rec.healAt - injectAt) / 100) / 10} s, ` +
          `${rec.settled ? "settled" : "NOT settled"} ${Math.round((rec.settledAt - rec.healAt) / 100) / 10} s after the heal${rec.detail ? ` (${rec.detail})` : ""}`,
      );
      if (!rec.settled) {
        // Make sure nothing of this fault lingers before the next one.
        await healEverything(lab);
        if (cluster) for (const n of lab.nodes) if (!isAlive(cluster.agents.get(n.name))) cluster.startAgent(n.name);
      }
      await hold(spec.gapMs);
    }

    // ---------------------------------------------------------------- wind down
    await operator?.stop();
    // Why a move did not complete (refused up front, timed out): the report only counts them.
    for (const r of operator?.records ?? []) if (r.code !== 0) log(`chaos: operator ${r.action} via ${r.via}: exit ${r.code}${r.detail ? ` ${r.detail}` : ""}`);
    await edits?.stop();
    const lastHeal = Date.now();
    await settle(lastHeal, "etcd_member_kill");
    let converged = true;
    if (cluster) {
      // Give the last edits time to reach every node (bounded).
      converged =
        (await waitFor(
          () => {
            const trees = lab.nodes.map((n) => JSON.stringify(hashTree(rootOf(n))));
            return trees.every((t) => t === trees[0]) ? true : undefined;
          },
          60_000,
          500,
        )) === true;
      if (!converged) {
        log("chaos: sync roots did not converge within 60 s of the end");
        for (const l of describeLaggards(
          lab.logDir,
          lab.nodes.map((n) => ({ node: n.name, tree: hashTree(rootOf(n)), alive: isAlive(cluster.agents.get(n.name)) })),
          "sync",
        ))
          log(l);
      }
    }
    // Replicated uploads: give rejoin and the last batches time to reach every node (bounded).
    const dataTree = (n: LabNode) => Object.fromEntries(Object.entries(hashTree(dataOf(n))).filter(([k]) => !k.startsWith(`${DATA_TMP}/`)));
    let dataConverged = true;
    if (replicated) {
      await uploads.stop();
      dataConverged =
        (await waitFor(
          () => {
            const trees = lab.nodes.map((n) => JSON.stringify(dataTree(n)));
            return trees.every((t) => t === trees[0]) ? true : undefined;
          },
          60_000,
          500,
        )) === true;
      if (!dataConverged) {
        log("chaos: data roots did not converge within 60 s of the end");
        const alive = (n: LabNode) => (cluster ? isAlive(cluster.agents.get(n.name)) : false);
        for (const l of describeLaggards(
          lab.logDir,
          lab.nodes.map((n) => ({ node: n.name, tree: dataTree(n), alive: alive(n) })),
          "data",
        ))
          log(l);
      }
    }
    await sleep(1000);
    await uploads.stop();
    await sleep(500);
    const arpRecords = await arp.stop();
    const daemonRecords = await daemons.stop();
    rescues.scan(lab.nodes.map((n) => n.name));
    let history: HistoryRecord[] = [];
    if (cluster) {
      await sleep(1000);
      watcher?.stop();
      history = await readHistory(lab);
    }
    const finalPrimary = replicated ? await currentPrimary() : undefined;
    const finalData = replicated ? Object.fromEntries(lab.nodes.map((n) => [n.name, dataTree(n)])) : undefined;
    const storedUploads = replicated ? (finalPrimary ? finalData![finalPrimary]! : {}) : hashTree(shared);
    const recording: Recording = {
      mode: controller === "understudy" ? "cold" : "warm",
      controller,
      ...(cluster ? { failsafe: opts.failsafe === true } : {}),
      nodes: lab.nodes.map((n) => n.name),
      startedAt,
      endedAt: Date.now(),
      arpIntervalMs: opts.arpIntervalMs ?? 20,
      arp: arpRecords,
      daemons: daemonRecords,
      etcd: watcher?.events ?? [],
      history,
      uploads: uploads.records,
      storedUploads,
      uploadStorage: replicated ? "replicated" : "shared",
      ...(finalData ? { finalData, dataPromotions } : {}),
      edits: edits?.records ?? [],
      finalRoots: Object.fromEntries(lab.nodes.map((n) => [n.name, cluster ? hashTree(rootOf(n)) : {}])),
      rescued: rescues.found,
      faults,
      operator: operator?.records ?? [],
    };
    if (opts.recordingFile) writeFileSync(opts.recordingFile, JSON.stringify(recording));
    const report = check(recording);
    const text =
      formatReport(report) +
      (converged ? "" : "\nWARNING: the sync roots did not converge within 60 s after the last fault.") +
      (dataConverged ? "" : "\nWARNING: the data roots did not converge within 60 s after the last fault.");
    return { recording, report, text, schedule, notInjected: NOT_INJECTED, wallMs: Date.now() - t0, dropped };
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await lab.teardown();
    for (const m of mounted) await run(["umount", "-l", m], { timeoutMs: 10_000 }).catch(() => undefined);
  }
}

function isAlive(c: ChildProcess | undefined): boolean {
  return c !== undefined && c.exitCode === null && c.signalCode === null;
}

async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 200): Promise<T | undefined> {
  const until = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= until) return undefined;
    await sleep(intervalMs);
  }
  return undefined;
}

/** Every history event the agents wrote (etcdctl get --prefix, from the client namespace). */
async function readHistory(lab: Lab): Promise<HistoryRecord[]> {
  const r = await lab.etcdctl(["get", "--prefix", `${CLUSTER_PREFIX}history/`, "-w", "json"], { ns: lab.client, timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`chaos: cannot read the history: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { kvs?: { value: string }[] };
  const out: HistoryRecord[] = [];
  for (const kv of j.kvs ?? []) {
    try {
      const v = JSON.parse(Buffer.from(kv.value, "base64").toString("utf8")) as HistoryRecord;
      out.push({ kind: v.kind, node: v.node, from: v.from ?? null, to: v.to ?? null, term: v.term ?? null, at: v.at, reason: v.reason ?? "" });
    } catch {
      /* skip */
    }
  }
  return out;
}
