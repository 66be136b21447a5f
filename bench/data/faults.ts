/**
 * Uploads missing at promotion, per fault kind: a fresh 3-node cluster with a
 * data root per run (n1 primary), a steady sftp upload stream through the
 * VIP, a fault on n1 after a few seconds, then the first moment etcd names
 * another leader: every upload acknowledged before that moment that is not
 * complete (final name, full size) in the new primary's root is "missing at
 * promotion" (the RPO in files). Counted twice: acknowledged before the fault
 * was injected, and acknowledged before the promotion was seen (a killed
 * agent leaves its sshd serving until the fence guard stops it).
 *
 * Kinds (the lab harness' fault helpers):
 *  - kill9: SIGKILL to n1's agent (the chaos suite's agent_kill9);
 *  - linkdown: n1's bridge port down (`lab.linkDown`);
 *  - nodekill: SIGKILL to every process in n1's namespace (`lab.killAllIn`).
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { LabCluster, type LabNode, sleep } from "../../test/lab/harness/index.js";
import { type StreamResult, type Upload, runStream } from "./uploads.js";

export const FAULT_KINDS = ["kill9", "linkdown", "nodekill"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRun {
  kind: FaultKind;
  run: number;
  newPrimary: string | null;
  /** Fault injected -> another leader seen in etcd, ms. */
  promotionMs: number | null;
  ackedBeforeFault: number;
  missingBeforeFault: number;
  ackedBeforePromotion: number;
  missingBeforePromotion: number;
  examples: string[];
  error?: string;
}

export interface FaultEnv {
  clusterOptions: (upRoot: (n: LabNode) => string) => Parameters<typeof LabCluster.create>[0];
  upRoot: (n: LabNode) => string;
  makePool: (c: LabCluster) => string[];
  rate: number;
  fileBytes: number;
  sessions: number;
  /** Upload for this long before the fault. */
  beforeMs: number;
  log: (msg: string) => void;
  /** Warm-up: wait until a probe file reaches both standbys (engine shipping). */
  warm: (c: LabCluster) => Promise<boolean>;
  /** Before any agent starts: put a tree in every node's data roots (--fault-tree). */
  seed?: (c: LabCluster) => Promise<void>;
  /** After the standbys joined and the warm-up: wait until the seeded tree's full passes are acknowledged. */
  seeded?: (c: LabCluster) => Promise<void>;
}

const completeIn = (root: string, name: string, size: number): boolean => {
  try {
    return statSync(join(root, name)).size === size;
  } catch {
    return false;
  }
};

export async function faultRun(env: FaultEnv, kind: FaultKind, runNo: number): Promise<FaultRun> {
  const out: FaultRun = { kind, run: runNo, newPrimary: null, promotionMs: null, ackedBeforeFault: 0, missingBeforeFault: 0, ackedBeforePromotion: 0, missingBeforePromotion: 0, examples: [] };
  let c: LabCluster | undefined;
  try {
    c = await LabCluster.create({ ...env.clusterOptions(env.upRoot), start: false });
    const lab = c.lab;
    const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
    await env.seed?.(c);
    // n1 first, so it is the primary whatever the load does to start-up times.
    c.startAgent("n1");
    const leader = await c.waitForLeader({ timeoutMs: 30_000 });
    if (leader?.node !== "n1") throw new Error(`n1 is not the primary (${leader?.node ?? "none"})`);
    if (!(await c.waitServing("n1", 15_000))) throw new Error("n1 does not serve sftp through the VIP within 15 s");
    c.startAgent("n2");
    c.startAgent("n3");
    if (!(await c.waitForStandbys(["n2", "n3"], 60_000))) throw new Error("n2 and n3 were not both standbys within 60 s");
    if (!(await env.warm(c))) throw new Error("a probe file did not reach both standbys within 60 s (is the engine shipping?)");
    await env.seeded?.(c);
    const pool = env.makePool(c);
    let stop = false;
    const live: Upload[] = [];
    const stream = runStream(
      {
        lab,
        mode: "sftp",
        primaryRoot: env.upRoot(n1),
        standbyRoots: [env.upRoot(n2), env.upRoot(n3)],
        rate: env.rate,
        seconds: 120,
        fileBytes: env.fileBytes,
        sessions: env.sessions,
        drainMs: 3000,
        label: `${kind} #${runNo}`,
        log: env.log,
        stop: () => stop,
        sink: live,
      },
      pool,
    );
    stream.catch(() => undefined);
    await sleep(env.beforeMs);
    const tFault = performance.now();
    if (kind === "kill9") await c.signalAgent("n1", "SIGKILL");
    else if (kind === "linkdown") await lab.linkDown(n1);
    else await lab.killAllIn(n1);
    const newLeader = await c.waitForLeader({ timeoutMs: 60_000, not: "n1" });
    const tPromo = performance.now();
    if (!newLeader) throw new Error("no new leader within 60 s of the fault");
    // Snapshot at once: which acknowledged uploads does the new primary hold?
    const root = env.upRoot(newLeader.node === "n2" ? n2 : n3);
    const snapshot = new Map<string, boolean>();
    for (const u of live) if (u.acked !== null && u.acked <= tPromo) snapshot.set(u.name, completeIn(root, u.name, env.fileBytes));
    out.newPrimary = newLeader.node;
    out.promotionMs = tPromo - tFault;
    stop = true;
    const r: StreamResult = await stream;
    for (const u of r.uploads) {
      if (u.acked === null || u.acked > tPromo) continue;
      const there = snapshot.get(u.name) ?? completeIn(root, u.name, env.fileBytes);
      out.ackedBeforePromotion++;
      if (!there) out.missingBeforePromotion++;
      if (u.acked <= tFault) {
        out.ackedBeforeFault++;
        if (!there) {
          out.missingBeforeFault++;
          if (out.examples.length < 5) out.examples.push(u.name);
        }
      }
    }
  } catch (e) {
    out.error = (e as Error).message;
  } finally {
    await c?.teardown();
  }
  return out;
}
