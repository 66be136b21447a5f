/**
 * Data replication benchmark (issue 14): understudy's data roots against
 * lsyncd (delay = 0 and its default delay) and a plain rsync loop, all in one
 * run on one namespace lab, plus plain `rsync -a` for the initial copy.
 *
 *   npm run bench:data -- --small        # 10,000 files / 1 GiB tree, 30 s streams, 3 runs per fault kind
 *   npm run bench:data                   # the issue's size: 100,000 files / 10 GiB (run it once: ~30 GiB of disk)
 *
 * Options: --small, --files N, --gib X, --rate 50, --seconds 30, --file-mib 1,
 * --sessions 4, --upload sftp|write, --contenders understudy,lsyncd0,lsyncd,rsync,
 * --phases initial,stream,faults, --fault-kinds kill9,linkdown, --fault-runs 3,
 * --fault-after 4, --rsync-runs N, --understudy auto|on|off, --wait-load X,
 * --json FILE | --no-json.
 *
 * Details in README.md beside this file. Needs root, `npm run build`, rsync,
 * OpenSSH, /usr/bin/lsyncd and inotify-tools. Traffic stays inside the lab
 * namespaces (198.18.0.0/15); every wait is bounded; lsyncd, the rsync loop
 * and the labs are stopped in `finally`; every tree is deleted.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { LabCluster, type LabNode, REPO, sleep } from "../../test/lab/harness/index.js";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { agentLog, forEachArg } from "../failover/lib.js";
import { LSYNCD, lsyncdVersion } from "../sync/lsyncd.js";
import { startPlainSshds } from "../sync/plain-ssh.js";
import { GiB, type TreeDiff, compareTrees } from "../sync/tree.js";
import { type FaultKind, FAULT_KINDS, faultRun } from "./faults.js";
import { RssSampler, flush, listTree, makeUploadTree, rsyncPush, waitTreeComplete } from "./initial.js";
import { type Peer, startLsyncd, startRsyncLoop } from "./peers.js";
import { type Results, type StreamRecord, report } from "./report.js";
import { MiB, makePool, runStream, verifyUploads } from "./uploads.js";

const CONTENDERS = ["understudy", "lsyncd0", "lsyncd", "rsync"] as const;
const PHASES = ["initial", "stream", "faults"] as const;
const DEFAULT_JSON = "bench/data/results-latest.json";

interface Options {
  small: boolean;
  files: number;
  bytes: number;
  rate: number;
  /** A second stream per contender at this rate (0 = none): what the host sustains when --rate saturates it. */
  extraRate: number;
  seconds: number;
  fileMib: number;
  sessions: number;
  upload: "sftp" | "write";
  contenders: Set<string>;
  phases: Set<string>;
  faultKinds: FaultKind[];
  faultRuns: number;
  faultAfterS: number;
  rsyncRuns: number;
  /** Also time `rsync -a --fsync` ×2 once (understudy's data.fsync is on by default). */
  fsyncReference: boolean;
  understudy: "auto" | "on" | "off";
  waitLoad: number | undefined;
  json: string | undefined;
  /** data.warm_batch for understudy's agents (undefined: the product default). */
  warmBatch: string | undefined;
  /** sync.ssh.ciphers for understudy's agents (undefined: the product default, auto). */
  sshCiphers: string | undefined;
  /** data.fsync for understudy's agents (undefined: the product default, on). */
  dataFsync: boolean | undefined;
  /** Fault runs with the --files/--gib tree in a second data root on every node (hard links), in sync before the stream. */
  faultTree: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    small: false,
    files: 100_000,
    bytes: 10 * GiB,
    rate: 50,
    extraRate: 10,
    seconds: 30,
    fileMib: 1,
    sessions: 4,
    upload: "sftp",
    contenders: new Set(CONTENDERS),
    phases: new Set(PHASES),
    faultKinds: ["kill9", "linkdown"],
    faultRuns: 3,
    faultAfterS: 4,
    rsyncRuns: 0,
    fsyncReference: true,
    understudy: "auto",
    waitLoad: undefined,
    json: DEFAULT_JSON,
    warmBatch: undefined,
    sshCiphers: undefined,
    dataFsync: undefined,
    faultTree: false,
  };
  let files: number | undefined;
  let gib: number | undefined;
  const list = (v: string) => v.split(",").map((x) => x.trim());
  forEachArg(argv, (a, val) => {
    if (a === "--small") o.small = true;
    else if (a === "--files") files = Number(val());
    else if (a === "--gib") gib = Number(val());
    else if (a === "--rate") o.rate = Number(val());
    else if (a === "--extra-rate") o.extraRate = Number(val());
    else if (a === "--seconds") o.seconds = Number(val());
    else if (a === "--file-mib") o.fileMib = Number(val());
    else if (a === "--sessions") o.sessions = Number(val());
    else if (a === "--upload") o.upload = val() as Options["upload"];
    else if (a === "--contenders") o.contenders = new Set(list(val()));
    else if (a === "--phases") o.phases = new Set(list(val()));
    else if (a === "--fault-kinds") o.faultKinds = list(val()) as FaultKind[];
    else if (a === "--fault-runs") o.faultRuns = Number(val());
    else if (a === "--fault-after") o.faultAfterS = Number(val());
    else if (a === "--rsync-runs") o.rsyncRuns = Number(val());
    else if (a === "--no-fsync-reference") o.fsyncReference = false;
    else if (a === "--understudy") o.understudy = val() as Options["understudy"];
    else if (a === "--wait-load") o.waitLoad = Number(val());
    else if (a === "--json") o.json = val();
    else if (a === "--no-json") o.json = undefined;
    else if (a === "--warm-batch") o.warmBatch = val();
    else if (a === "--ssh-ciphers") o.sshCiphers = val();
    else if (a === "--data-fsync") o.dataFsync = onOff("--data-fsync", val());
    else if (a === "--fault-tree") o.faultTree = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: bench/data/run.ts [--small] [--files N --gib X] [--rate 50] [--seconds 30] [--file-mib 1] [--sessions 4] [--upload sftp|write]");
      console.log("  [--contenders understudy,lsyncd0,lsyncd,rsync] [--phases initial,stream,faults] [--fault-kinds kill9,linkdown,nodekill] [--fault-runs 3]");
      console.log(
        "  [--fault-after 4] [--rsync-runs N] [--understudy auto|on|off] [--wait-load 1.5] [--warm-batch 0|20s] [--ssh-ciphers auto|default|LIST] [--data-fsync on|off] [--fault-tree] [--json FILE | --no-json]",
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (o.small) {
    o.files = 10_000;
    o.bytes = GiB;
  }
  if (files !== undefined) o.files = files;
  if (gib !== undefined) o.bytes = Math.round(gib * GiB);
  if (o.rsyncRuns === 0) o.rsyncRuns = o.bytes > 2 * GiB ? 1 : 2;
  if (!Number.isInteger(o.files) || o.files < 100 || o.files > 200_000) throw new Error("--files must be 100..200000");
  if (!(o.bytes >= 16 * MiB && o.bytes <= 16 * GiB)) throw new Error("--gib must be 0.016..16");
  if (!(o.rate > 0 && o.rate <= 500)) throw new Error("--rate must be in (0, 500]");
  if (!(o.extraRate >= 0 && o.extraRate <= 500)) throw new Error("--extra-rate must be in [0, 500]");
  if (!(o.seconds >= 1 && o.seconds <= 600)) throw new Error("--seconds must be 1..600");
  if (!(o.fileMib > 0 && o.fileMib <= 64)) throw new Error("--file-mib must be in (0, 64]");
  if (!Number.isInteger(o.sessions) || o.sessions < 1 || o.sessions > 32) throw new Error("--sessions must be 1..32");
  if (o.upload !== "sftp" && o.upload !== "write") throw new Error("--upload is sftp or write");
  for (const c of o.contenders) if (!(CONTENDERS as readonly string[]).includes(c)) throw new Error(`--contenders: unknown ${c}`);
  for (const p of o.phases) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--phases: unknown ${p}`);
  for (const k of o.faultKinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`--fault-kinds: unknown ${k}`);
  if (!Number.isInteger(o.faultRuns) || o.faultRuns < 1 || o.faultRuns > 20) throw new Error("--fault-runs must be 1..20");
  if (!Number.isInteger(o.rsyncRuns) || o.rsyncRuns < 1 || o.rsyncRuns > 5) throw new Error("--rsync-runs must be 1..5");
  if (!["auto", "on", "off"].includes(o.understudy)) throw new Error("--understudy is auto, on or off");
  return o;
}

const t00 = Date.now();
const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)} +${((Date.now() - t00) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
};
const tool = (argv: string[]): string => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 5000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n")[0]?.trim() ?? "?";
};
const la = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

/** Node directories: understudy's data roots (`up`, `bulk`), one config root, the peers' directories. */
/** The node sshd's sftp start directory (test/lab/harness sshdConfig's dataDir): uploads through the VIP land in the primary's root. */
const upRoot = (n: LabNode): string => join(n.dir, "data");
const bulkRoot = (n: LabNode): string => join(n.dir, "data-bulk");
const peerDir = (n: LabNode, tag: string): string => join(n.dir, `peer-${tag}`);

/** understudy's engine is usable when the build has it (datacore's src/data/engine.ts). */
function engineState(o: Options): { used: boolean; why: string } {
  if (o.understudy === "off") return { used: false, why: "--understudy off" };
  const built = existsSync(join(REPO, "dist", "data", "engine.js"));
  if (o.understudy === "on" || built) return { used: true, why: built ? "dist/data/engine.js present" : "--understudy on" };
  return { used: false, why: "the data engine (src/data/engine.ts, helper datacore) is not in this build: no agent ships data roots yet" };
}

function onOff(flag: string, v: string): boolean {
  if (v !== "on" && v !== "off") throw new Error(`${flag} must be on or off, got ${JSON.stringify(v)}`);
  return v === "on";
}

function clusterOptions(withBulk: boolean, warmBatch: string | undefined, sshCiphers?: string, dataFsync?: boolean): Parameters<typeof LabCluster.create>[0] {
  return {
    start: false,
    priorities: [300, 100, 200],
    // The product's default lease (the harness' 2 s flaps on this shared 2-core host under load).
    ttl: "5s",
    sync: {
      rootPaths: (n) => [join(n.dir, "conf"), upRoot(n), bulkRoot(n)],
      authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
      rootsYaml: (n) => `    - { name: conf, path: ${join(n.dir, "conf")} }`,
      ...(sshCiphers !== undefined ? { sshCiphers } : {}),
    },
    extraYaml: (n) =>
      [
        "data:",
        ...(warmBatch !== undefined ? [`  warm_batch: ${JSON.stringify(warmBatch)}`] : []),
        ...(dataFsync !== undefined ? [`  fsync: ${dataFsync}`] : []),
        "  roots:",
        `    - { name: up, path: ${upRoot(n)} }`,
        ...(withBulk ? [`    - { name: bulk, path: ${bulkRoot(n)} }`] : []),
      ].join("\n"),
  };
}

/** The standby's `.understudy-tmp` (rsync's temp dir inside the data root, by design) is not a difference. */
function withoutTmp(d: TreeDiff): TreeDiff {
  const tmp = d.examples.filter((e) => e === "extra .understudy-tmp").length;
  if (!tmp) return d;
  const extra = d.extra - tmp;
  const identical = d.missing + extra + d.type + d.content + d.mode + d.owner === 0;
  return { ...d, extra, identical, examples: d.examples.filter((e) => e !== "extra .understudy-tmp") };
}

/** A probe file written on n1's root must reach both standbys' roots (bounded). */
async function warm(n1Root: string, standbyRoots: string[], timeoutMs: number): Promise<boolean> {
  const name = `warm-${Date.now().toString(36)}.txt`;
  writeFileSync(join(n1Root, name), "warm-up\n");
  const t = performance.now();
  while (performance.now() - t < timeoutMs) {
    if (standbyRoots.every((r) => existsSync(join(r, name)))) return true;
    await sleep(50);
  }
  return false;
}

/** The stream at --rate, then (unless --extra-rate 0) at --extra-rate; the peer is stopped after both. */
async function streams(c: LabCluster, o: Options, res: Results, label: string, settings: string, source: string, dests: string[], pool: string[], peer?: Peer): Promise<void> {
  try {
    await stream(c, o, o.rate, res, label, settings, source, dests, pool);
    if (o.extraRate > 0) await stream(c, o, o.extraRate, res, label, settings, source, dests, pool);
  } finally {
    if (peer) {
      await peer.stop();
      const summary = peer.summary();
      for (const r of res.streams) if (r.label === label) r.peer = summary;
    }
  }
}

async function stream(c: LabCluster, o: Options, rate: number, res: Results, label: string, settings: string, source: string, dests: string[], pool: string[]): Promise<StreamRecord> {
  const rec: StreamRecord = {
    label,
    rate,
    settings,
    mode: o.upload,
    handed: 0,
    acked: 0,
    achievedRate: null,
    putMs: null,
    latency: null,
    missing: 0,
    beforeAck: 0,
    pollMsMax: 0,
    latenciesMs: [],
    load1: loadavg()[0]!,
    errors: [],
  };
  res.streams.push(rec);
  log(`=== ${label}: ${rate} uploads/s of ${o.fileMib} MiB for ${o.seconds} s (${o.upload === "sftp" ? `sftp through the VIP, ${o.sessions} sessions` : "written into n1's root"}); load ${la()}`);
  let dirs: string[] = [];
  if (label === "understudy") {
    const before = await c.leader();
    rec.leaderBefore = before ? `${before.node} term ${before.term}` : "none";
  }
  try {
    const r = await runStream(
      {
        lab: c.lab,
        mode: o.upload,
        primaryRoot: source,
        standbyRoots: dests,
        rate,
        seconds: o.seconds,
        fileBytes: Math.round(o.fileMib * MiB),
        sessions: o.sessions,
        drainMs: 60_000,
        label: `${label} @${rate}/s`,
        log,
        ...(label === "understudy" ? {} : { remoteRoot: source }),
      },
      pool,
    );
    dirs = [...new Set(r.uploads.map((u) => u.name.split("/")[0]!))];
    if (label === "understudy") {
      const after = await c.leader();
      rec.leaderAfter = after ? `${after.node} term ${after.term}` : "none";
      if (rec.leaderBefore !== rec.leaderAfter) rec.errors.push(`the primary changed during the stream (${rec.leaderBefore} -> ${rec.leaderAfter}): figures not comparable`);
    }
    Object.assign(rec, {
      handed: r.uploads.length,
      acked: r.acked,
      achievedRate: r.achievedRate,
      putMs: r.putMs,
      latency: r.latency,
      missing: r.missing,
      beforeAck: r.beforeAck,
      pollMsMax: r.pollMsMax,
      seenByScan: r.seenByScan,
      errors: [...rec.errors, ...r.errors],
    });
    rec.latenciesMs = r.uploads.filter((u) => u.acked !== null).map((u) => (u.present.every((p) => p !== null) ? Math.round(Math.max(0, Math.max(...(u.present as number[])) - u.acked!)) : null));
    rec.verify = verifyUploads(r, dests, pool);
    log(
      `  ${label} @${rate}/s: acked ${r.acked}/${r.uploads.length} (${r.achievedRate?.toFixed(1) ?? "-"}/s), p50 ${r.latency?.p50.toFixed(0) ?? "-"} ms, p99 ${r.latency?.p99.toFixed(0) ?? "-"} ms, max ${r.latency?.max.toFixed(0) ?? "-"} ms, missing ${r.missing}; verify ${JSON.stringify(rec.verify).slice(0, 200)}`,
    );
  } catch (e) {
    rec.error = (e as Error).message;
    log(`  ERROR ${rec.error}`);
  }
  // The next stream starts from an empty tree (disk, and the watchers' work).
  // (A peer may still be writing into a standby's copy: retry, never fail the run over it.)
  for (const d of [source, ...dests])
    for (const u of dirs) {
      try {
        rmSync(join(d, u), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      } catch (e) {
        log(`  WARNING could not remove ${join(d, u)}: ${(e as Error).message}`);
      }
    }
  return rec;
}

async function mainLab(o: Options, res: Results, useUnderstudy: boolean): Promise<void> {
  const want = (x: string) => o.contenders.has(x);
  const c = await LabCluster.create(clusterOptions(o.phases.has("initial"), o.warmBatch, o.sshCiphers, o.dataFsync));
  try {
    const lab = c.lab;
    const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
    const standbys = [n2, n3];
    await startPlainSshds(lab);
    const pool = makePool(lab, 16, Math.round(o.fileMib * MiB));
    log(`lab ${lab.prefix}; plain sshd on :2223 for the peers; ${pool.length} pool files of ${o.fileMib} MiB`);
    const phase = (name: string) => (res.phaseLoad[name] = Number(loadavg()[0]!.toFixed(2)));
    let want_: Map<string, number> | undefined;
    if (o.phases.has("initial")) {
      phase("tree");
      res.tree = makeUploadTree(bulkRoot(n1), o.files, o.bytes);
      log(`tree on n1: ${res.tree.files} files, ${(res.tree.bytes / GiB).toFixed(2)} GiB, written in ${(res.tree.generateMs / 1000).toFixed(1)} s`);
      want_ = listTree(bulkRoot(n1));
      res.initial = { rsyncRuns: [], rsyncMs: null };
      const before = useUnderstudy ? Math.ceil(o.rsyncRuns / 2) : o.rsyncRuns;
      for (let i = 1; i <= before; i++) {
        phase(`rsync${i}`);
        log(`=== plain rsync -a, n1 -> n2 and n3 in parallel (run ${i})`);
        const r = await rsyncPush(
          lab,
          n1,
          bulkRoot(n1),
          standbys.map((n) => ({ node: n, dir: peerDir(n, "rsync-bulk") })),
          3600_000,
        );
        res.initial.rsyncRuns.push({ ...r, when: useUnderstudy ? "before understudy" : `run ${i}` });
        log(`  ${r.ms === null ? `ERROR ${r.error}` : `${(r.ms / 1000).toFixed(1)} s`} (${r.eachMs.map((x) => (x === null ? "-" : (x / 1000).toFixed(1))).join(" / ")})`);
        if (i === 1 && o.bytes <= 2 * GiB && r.ms !== null) log(`  copy vs source: ${JSON.stringify(compareTrees(bulkRoot(n1), peerDir(n2, "rsync-bulk"))).slice(0, 160)}`);
        for (const n of standbys) rmSync(peerDir(n, "rsync-bulk"), { recursive: true, force: true });
      }
    }
    if (useUnderstudy && want("understudy")) {
      phase("understudy");
      log("=== understudy: n1 starts (primary), then n2 and n3 join with empty data roots");
      c.startAgent("n1");
      const leader = await c.waitForLeader({ timeoutMs: 30_000 });
      if (leader?.node !== "n1") throw new Error(`n1 did not become the primary (${leader?.node ?? "none"})`);
      await flush();
      const tB = performance.now();
      const tBWall = Date.now();
      const rss = new RssSampler(async () => ({ n1: await c.agentPid("n1"), n2: await c.agentPid("n2"), n3: await c.agentPid("n3") }));
      for (const n of standbys) c.startAgent(n.name);
      if (want_ && res.initial) {
        const per: Record<string, number | null> = {};
        const u: NonNullable<NonNullable<Results["initial"]>["understudy"]> = { joinMs: null, perStandbyMs: per, fullPassMs: {}, verify: {} };
        res.initial.understudy = u;
        const done = await Promise.all(standbys.map(async (n) => ((per[n.name] = ((await waitTreeComplete(want_!, [bulkRoot(n)], 3600_000)) ?? NaN) - tB), per[n.name])));
        // Complete means acknowledged: the tree is on the standby before its barrier (the sync of its
        // data volume) returns and the pass counts. n1's "full pass to nX done" line, up to 120 s later.
        const acked = await waitFullPassAcks(
          lab,
          standbys.map((n) => n.name),
          tBWall,
          120_000,
        );
        Object.assign(u.fullPassMs, acked.passMs);
        u.ackMs = acked.ackMs;
        u.durability = acked.durability;
        for (const n of standbys) if (acked.ackMs[n.name] !== undefined) per[n.name] = Math.max(per[n.name] ?? 0, acked.ackMs[n.name]!);
        u.joinMs = done.every((x) => Number.isFinite(x)) ? Math.max(...standbys.map((n) => per[n.name]!)) : null;
        res.initial.rss = await rss.stop();
        log(
          `  understudy initial sync: ${u.joinMs === null ? "NOT complete" : `${(u.joinMs / 1000).toFixed(1)} s`} (${Object.entries(per)
            .map(([k, v]) => `${k} ${((v ?? NaN) / 1000).toFixed(1)} s`)
            .join(", ")})`,
        );
        for (const n of standbys) u.verify[n.name] = o.bytes <= 2 * GiB ? withoutTmp(compareTrees(bulkRoot(n1), bulkRoot(n))) : "names and sizes checked (no byte compare at this size)";
        log(
          `  shipper's full pass (probe, rsync, barrier) per standby: ${JSON.stringify(u.fullPassMs)}; acknowledged ${JSON.stringify(u.ackMs)} ms after the agents' start; ${JSON.stringify(u.durability)}`,
        );
      } else await rss.stop();
      if (o.phases.has("stream")) {
        if (!(await warm(upRoot(n1), standbys.map(upRoot), 60_000))) log("  WARNING: a probe file did not reach both standbys within 60 s");
        const rss2 = new RssSampler(async () => ({ n1: await c.agentPid("n1"), n2: await c.agentPid("n2"), n3: await c.agentPid("n3") }));
        await streams(
          c,
          o,
          res,
          "understudy",
          `data roots, defaults (stability_window 250ms, fsync ${o.dataFsync === false ? "off" : "on"}, max_batch_files 1000, warm_batch ${o.warmBatch ?? "20s"}, sync.ssh.ciphers ${o.sshCiphers ?? "auto"})`,
          upRoot(n1),
          standbys.map(upRoot),
          pool,
        );
        res.rssDuringStream = await rss2.stop();
      }
      log("  stopping the agents (n2, n3, then n1)");
      for (const n of [n2, n3, n1]) await c.signalAgent(n.name, "SIGTERM", 15_000);
      for (const n of standbys) rmSync(bulkRoot(n), { recursive: true, force: true });
    }
    if (res.initial && want_) {
      for (let i = res.initial.rsyncRuns.length + 1; i <= o.rsyncRuns; i++) {
        phase(`rsync${i}`);
        log(`=== plain rsync -a, n1 -> n2 and n3 in parallel (run ${i}, after understudy)`);
        const r = await rsyncPush(
          lab,
          n1,
          bulkRoot(n1),
          standbys.map((n) => ({ node: n, dir: peerDir(n, "rsync-bulk") })),
          3600_000,
        );
        res.initial.rsyncRuns.push({ ...r, when: "after understudy" });
        log(`  ${r.ms === null ? `ERROR ${r.error}` : `${(r.ms / 1000).toFixed(1)} s`}`);
        for (const n of standbys) rmSync(peerDir(n, "rsync-bulk"), { recursive: true, force: true });
      }
      if (o.fsyncReference) {
        phase("rsync-fsync");
        log("=== reference: rsync -a --fsync, n1 -> n2 and n3 in parallel (understudy ships with --fsync by default)");
        const r = await rsyncPush(
          lab,
          n1,
          bulkRoot(n1),
          standbys.map((n) => ({ node: n, dir: peerDir(n, "rsync-bulk") })),
          3600_000,
          ["--fsync"],
        );
        res.initial.fsyncReference = r;
        log(`  ${r.ms === null ? `ERROR ${r.error}` : `${(r.ms / 1000).toFixed(1)} s`}`);
        for (const n of standbys) rmSync(peerDir(n, "rsync-bulk"), { recursive: true, force: true });
      }
      const ok = res.initial.rsyncRuns
        .map((r) => r.ms)
        .filter((x): x is number => x !== null)
        .sort((a, b) => a - b);
      res.initial.rsyncMs = ok.length ? ok[Math.floor((ok.length - 1) / 2)]! + (ok.length % 2 === 0 ? (ok[ok.length / 2]! - ok[ok.length / 2 - 1]!) / 2 : 0) : null;
    }
    if (o.phases.has("stream") && ["lsyncd0", "lsyncd", "rsync"].some(want)) {
      // The agents (and the transfer daemon they run) are gone: the peers' uploads
      // reach the same sshd config on n1 through the VIP, held by hand.
      if (!(await lab.waitForListen(n1, 22, 300))) await lab.startSshd(n1);
      if (!(await lab.vipConfiguredOn()).includes("n1")) await lab.addVip(n1, { count: 1 });
      log("  peers: n1's sshd on :22 and the VIP on n1, set up by hand (no agent running)");
      const peers: { key: string; label: string; settings: string; delay?: number }[] = [
        { key: "lsyncd0", label: "lsyncd delay=0", settings: "default.rsync, one sync{} per standby, delay = 0", delay: 0 },
        { key: "lsyncd", label: "lsyncd default", settings: "default.rsync, one sync{} per standby, default delay (15 s)" },
      ];
      for (const p of peers) {
        if (!want(p.key)) continue;
        phase(p.key);
        const tag = p.key;
        for (const n of lab.nodes) rmSync(peerDir(n, tag), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
        mkdirSync(peerDir(n1, tag), { recursive: true });
        let peer: Peer | undefined;
        try {
          peer = await startLsyncd(
            lab,
            n1,
            tag,
            peerDir(n1, tag),
            standbys.map((n) => ({ node: n, dir: peerDir(n, tag) })),
            p.delay,
            60_000,
          );
          await streams(
            c,
            o,
            res,
            p.label,
            p.settings,
            peerDir(n1, tag),
            standbys.map((n) => peerDir(n, tag)),
            pool,
            peer,
          );
        } catch (e) {
          log(`  ERROR ${p.label}: ${(e as Error).message}`);
          await peer?.stop();
        }
        for (const n of lab.nodes) rmSync(peerDir(n, tag), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      }
      if (want("rsync")) {
        phase("rsync-loop");
        const tag = "rsyncloop";
        for (const n of lab.nodes) rmSync(peerDir(n, tag), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
        mkdirSync(peerDir(n1, tag), { recursive: true });
        const peer = startRsyncLoop(
          lab,
          n1,
          peerDir(n1, tag),
          standbys.map((n) => ({ node: n, dir: peerDir(n, tag) })),
        );
        await streams(
          c,
          o,
          res,
          "rsync loop",
          "rsync -a n1 -> n2 and n3 in parallel, next round when both finished",
          peerDir(n1, tag),
          standbys.map((n) => peerDir(n, tag)),
          pool,
          peer,
        );
        for (const n of lab.nodes) rmSync(peerDir(n, tag), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      }
    }
  } finally {
    await c.teardown();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error("the data benchmark needs root (network namespaces)");
  if ((o.contenders.has("lsyncd") || o.contenders.has("lsyncd0")) && !existsSync(LSYNCD)) throw new Error(`${LSYNCD} is missing: apt-get install -y lsyncd`);
  const started = Date.now();
  const size = `${o.files} files / ${(o.bytes / GiB).toFixed(2)} GiB${o.small ? " (--small)" : o.files === 100_000 && o.bytes === 10 * GiB ? " (issue size)" : ""}`;
  const eng = engineState(o);
  const head = spawnSync("git", ["-C", REPO, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim();
  const res: Results = {
    date: new Date().toISOString(),
    size,
    options: { ...o, contenders: [...o.contenders], phases: [...o.phases] },
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
    understudy: { ...eng, ...(eng.used ? { commit: head } : {}) },
    phaseLoad: {},
    streams: [],
    faults: [],
  };
  if (o.waitLoad !== undefined) {
    const t = Date.now();
    while (loadavg()[0]! >= o.waitLoad && Date.now() - t < 600_000) {
      log(`  waiting for the 1-minute load average (${loadavg()[0]!.toFixed(2)}) to drop below ${o.waitLoad}`);
      await sleep(10_000);
    }
    res.machine.loadavgStart = la();
  }
  log(`data benchmark: ${size}; streams ${o.rate}/s × ${o.fileMib} MiB × ${o.seconds} s; understudy ${eng.used ? "on" : `OFF (${eng.why})`}; load ${res.machine.loadavgStart}`);
  try {
    if (o.phases.has("initial") || o.phases.has("stream")) await mainLab(o, res, eng.used);
    if (o.phases.has("faults")) {
      if (!eng.used) log(`=== faults: skipped (${eng.why})`);
      else
        for (const kind of o.faultKinds)
          for (let i = 1; i <= o.faultRuns; i++) {
            res.phaseLoad[`${kind}#${i}`] = Number(loadavg()[0]!.toFixed(2));
            log(`=== fault ${kind}, run ${i}/${o.faultRuns}`);
            const fileBytes = Math.round(o.fileMib * MiB);
            const r = await faultRun(
              {
                clusterOptions: () => clusterOptions(o.faultTree, o.warmBatch, o.sshCiphers, o.dataFsync),
                ...(o.faultTree ? faultTree(o) : {}),
                upRoot,
                makePool: (c) => makePool(c.lab, 16, fileBytes),
                rate: o.rate,
                fileBytes,
                sessions: o.sessions,
                beforeMs: o.faultAfterS * 1000,
                log,
                warm: (c) => warm(upRoot(c.lab.nodes[0]!), c.lab.nodes.slice(1).map(upRoot), 60_000),
              },
              kind,
              i,
            );
            res.faults.push(r);
            log(
              `  ${kind} #${i}: ${r.error ? `ERROR ${r.error}` : `new primary ${r.newPrimary} after ${((r.promotionMs ?? 0) / 1000).toFixed(1)} s; missing ${r.missingBeforeFault}/${r.ackedBeforeFault} acked before the fault, ${r.missingBeforePromotion}/${r.ackedBeforePromotion} acked before promotion`}`,
            );
          }
    }
  } catch (e) {
    log(`ERROR ${(e as Error).stack ?? (e as Error).message}`);
    process.exitCode = 1;
  }
  res.machine.loadavgEnd = la();
  res.wallSeconds = (Date.now() - started) / 1000;
  const text = report(res);
  res.report = text.split("\n");
  console.log(`\n${text}`);
  if (o.json) {
    const file = resolve(o.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(res, null, 1)}\n`);
    log(`results written to ${file}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});

/** n1's "full pass to nX done" lines for the bulk root: the pass's own time, its end after `t0Wall`, and its durability. */
async function waitFullPassAcks(lab: Parameters<typeof agentLog>[0], nodes: readonly string[], t0Wall: number, timeoutMs: number) {
  const passMs: Record<string, number> = {};
  const ackMs: Record<string, number> = {};
  const durability: Record<string, string> = {};
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    for (const l of agentLog(lab, "n1")) {
      const m = /^full pass to (n\d) done/.exec(l.msg);
      if (l.root !== "bulk" || !m || typeof l.ms !== "number" || passMs[m[1]!] !== undefined) continue;
      passMs[m[1]!] = l.ms;
      ackMs[m[1]!] = l.time - t0Wall;
      durability[m[1]!] = `${String(l.durability ?? "?")}, barrier ${String(l.barrier_ms ?? "-")} ms`;
    }
    if (nodes.every((n) => passMs[n] !== undefined)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return { passMs, ackMs, durability };
}

/**
 * --fault-tree: the tree is written on n1's bulk root and hard-linked into n2's and n3's (rsync
 * never writes in place, so the copies stay apart), so the standbys hold it before any agent
 * starts; the fault comes only once n1 acknowledged its first full pass of it to both.
 */
function faultTree(o: Options) {
  return {
    seed: async (c: LabCluster) => {
      const [n1, ...others] = c.lab.nodes as [LabNode, LabNode, LabNode];
      const t = makeUploadTree(bulkRoot(n1), o.files, o.bytes);
      for (const n of others) {
        rmSync(bulkRoot(n), { recursive: true, force: true });
        const r = spawnSync("/bin/cp", ["-al", "--", bulkRoot(n1), bulkRoot(n)], { encoding: "utf8", timeout: 600_000 });
        if (r.status !== 0) throw new Error(`cp -al to ${n.name}: ${r.stderr || r.error?.message}`);
      }
      log(`  tree in every node's bulk root: ${t.files} files, ${(t.bytes / GiB).toFixed(2)} GiB (written in ${(t.generateMs / 1000).toFixed(1)} s, hard-linked to the standbys)`);
    },
    seeded: async (c: LabCluster) => {
      const t0 = Date.now();
      const acked = await waitFullPassAcks(c.lab, ["n2", "n3"], t0, 600_000);
      if (Object.keys(acked.passMs).length < 2) throw new Error(`the tree's full passes were not both acknowledged within 600 s (${JSON.stringify(acked.passMs)})`);
      log(`  the tree's full passes acknowledged: ${JSON.stringify(acked.passMs)} ms (${JSON.stringify(acked.durability)})`);
    },
  };
}
