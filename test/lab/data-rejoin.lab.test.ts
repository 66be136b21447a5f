/**
 * Loss-free rejoin end to end (issue 14 part 3, docs/data-replication-design.md
 * §7): three real agents with a `data:` root each, real etcd, real rsync over
 * the sync sshd, uploads through the VIP with OpenSSH `sftp` (acknowledged =
 * sftp exited 0).
 *
 * 1. Conflict: n1 (primary) is cut from the other nodes (nothing it takes is
 *    shipped), a.csv is uploaded to it and acknowledged, then it is cut from
 *    etcd; another node is promoted and takes a different a.csv; heal: the new
 *    primary holds both (its own a.csv, n1's under the documented conflict
 *    name), a `data_rejoin` history record says so, n1 ends with the same tree.
 * 2. kill -9 of the primary's agent during a stream of uploads: uploads
 *    acknowledged and not on the new primary at promotion are counted
 *    (reported: the RPO); after the killed node restarts and rejoins, every
 *    acknowledged upload is on the primary (asserted: 0 missing).
 * Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import { LabCluster, pollUntil, type LabNode } from "./harness/index.js";
import { agentLoadMs } from "./harness/cluster.js";
import { snapshotTree, type TreeEntry } from "./harness/sync.js";

const TMP = ".understudy-tmp";
const CONFLICT = /^a\.understudy-conflict-n1-\d{8}T\d{6}Z\.csv$/;

function visible(root: string): Record<string, TreeEntry> {
  const t = snapshotTree(root);
  for (const k of Object.keys(t)) if (k === TMP || k.startsWith(`${TMP}/`)) delete t[k];
  return t;
}

test("data rejoin: a conflict keeps both; kill -9 during uploads loses no acknowledged upload", { timeout: 600_000 }, async (t) => {
  // Waits scale with what starting an agent costs on this (shared) machine now: 0.7 s when quiet.
  const load = await agentLoadMs();
  const k = Math.min(6, Math.max(1, load / 700));
  const ms = (quiet: number) => Math.round(quiet * k);
  t.diagnostic(`agent load ${Math.round(load)} ms: waits x${k.toFixed(1)}`);
  const c = await LabCluster.create(
    dataCluster({
      start: false,
      priorities: [300, 100, 200],
      dataYaml: "  stability_window: 100ms\n",
    }),
  );
  const nodes = c.lab.nodes as LabNode[];
  const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
  const local = join(c.lab.dir, "client", "uploads");
  mkdirSync(local, { recursive: true });
  /** One sftp session through the VIP; true when sftp exited 0 (every command acknowledged). */
  const sftp = async (batch: string, timeoutMs = ms(15_000)) => {
    const r = await c.lab.exec(
      c.lab.client,
      [
        "sftp",
        ...["-F", "/dev/null", "-i", c.lab.clientKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"],
        ...["-o", `UserKnownHostsFile=${c.lab.knownHosts}`, "-o", "KexAlgorithms=curve25519-sha256", "-o", "ConnectTimeout=2", "-b", "-"],
        `root@${c.lab.vipAddress}`,
      ],
      { timeoutMs, input: batch },
    );
    return r.code === 0;
  };
  const put = async (name: string, content: string) => {
    writeFileSync(join(local, name), content);
    return sftp(`put ${join(local, name)} ${name}\n`, ms(5000));
  };
  const history = async (via: string) => {
    const r = await c.cli(["history", "--json"], { via });
    return r.code === 0 ? (JSON.parse(r.stdout) as { kind: string; from: string | null; to: string | null; term: number | null; reason: string; counts?: Record<string, number> }[]) : [];
  };
  const sameTree = (a: LabNode, b: LabNode) => JSON.stringify(visible(data(a))) === JSON.stringify(visible(data(b)));
  try {
    c.startAgent(n1.name);
    assert.equal((await c.waitForLeader({ timeoutMs: ms(20_000) }))?.node, n1.name);
    c.startAgent(n2.name);
    c.startAgent(n3.name);
    assert.ok(await c.waitForStandbys([n2.name, n3.name], ms(30_000)), "both standbys up");
    assert.ok(await put("first.csv", "before any fault\n"), "first upload acknowledged");
    assert.ok(await pollUntil(() => (sameTree(n1, n2) && sameTree(n1, n3) && existsSync(join(data(n2), "first.csv")) ? true : undefined), { timeoutMs: ms(30_000), intervalMs: 50 }), "replicated");

    await t.test("conflict: both copies kept on the new primary, the conflict name, a history record", async () => {
      const old = (await c.leader())!;
      // n1 can still serve the client but ships to no one; then it loses etcd and fences itself.
      await c.lab.partition(n1, n2);
      await c.lab.partition(n1, n3);
      assert.ok(await put("a.csv", "n1's a.csv, acknowledged by the old primary\n"), "a.csv acknowledged by n1");
      assert.equal(readFileSync(join(data(n1), "a.csv"), "utf8"), "n1's a.csv, acknowledged by the old primary\n");
      await c.lab.partitionFromEtcd(n1);
      const next = await c.waitForLeader({ not: n1.name, timeoutMs: ms(20_000) });
      assert.ok(next && next.term > old.term, "another node promoted");
      const np = c.lab.node(next.node);
      assert.ok(await c.waitServing(next.node, ms(15_000)), "the new primary serves");
      assert.equal(existsSync(join(data(np), "a.csv")), false, "n1's a.csv never reached the new primary before the heal");
      assert.ok(await put("a.csv", "the new primary's a.csv, different\n"), "a different a.csv acknowledged by the new primary");
      const t0 = performance.now();
      await c.lab.healAll();
      const merged = await pollUntil(() => (readdirSync(data(np)).some((f) => CONFLICT.test(f)) ? true : undefined), { timeoutMs: ms(40_000), intervalMs: 50 });
      assert.ok(merged, "n1's a.csv arrived on the new primary under the conflict name");
      t.diagnostic(`heal -> n1's copy merged on ${np.name}: ${Math.round(performance.now() - t0)} ms`);
      const kept = readdirSync(data(np)).filter((f) => CONFLICT.test(f));
      assert.equal(kept.length, 1);
      assert.equal(readFileSync(join(data(np), "a.csv"), "utf8"), "the new primary's a.csv, different\n", "the new primary's a.csv untouched");
      assert.equal(readFileSync(join(data(np), kept[0]!), "utf8"), "n1's a.csv, acknowledged by the old primary\n", "n1's a.csv kept beside it");
      const rec = (await history(np.name)).filter((e) => e.kind === "data_rejoin" && e.from === n1.name);
      assert.equal(rec.length, 1, "one data_rejoin history record");
      assert.equal(rec[0]!.to, np.name);
      assert.equal(rec[0]!.term, next.term);
      assert.equal(rec[0]!.counts?.conflicts, 1);
      t.diagnostic(`history: ${rec[0]!.reason}`);
      // n1 opens its write module after the record; the full pass then gives it the primary's tree.
      const synced = await pollUntil(() => (sameTree(n1, np) && nodes.every((n) => n === np || sameTree(n, np)) ? true : undefined), { timeoutMs: ms(40_000), intervalMs: 100 });
      assert.ok(synced, "every node ends with the new primary's tree (both a.csv copies)");
      t.diagnostic(`heal -> all three trees identical: ${Math.round(performance.now() - t0)} ms`);
    });

    await t.test("kill -9 of the primary during a stream of uploads: after rejoin every acknowledged upload is on the primary", async () => {
      const old = (await c.leader())!;
      const victim = c.lab.node(old.node);
      const acked: string[] = [];
      let stop = false;
      let failed = 0;
      const stream = (async () => {
        for (let i = 0; i < 2000 && !stop; i++) {
          const name = `s-${String(i).padStart(4, "0")}.csv`;
          if (await put(name, `upload ${i}\n`)) acked.push(name);
          else failed += 1;
        }
      })();
      try {
        assert.ok(await pollUntil(() => (acked.length >= 15 ? true : undefined), { timeoutMs: ms(30_000), intervalMs: 20 }), "uploads flowing");
        await c.signalAgent(old.node, "SIGKILL");
        const killedAt = acked.length;
        const next = await c.waitForLeader({ not: old.node, timeoutMs: ms(20_000) });
        assert.ok(next && next.term > old.term, "a new primary");
        const np = c.lab.node(next.node);
        const missingAtPromotion = acked.filter((f) => !existsSync(join(data(np), f)));
        t.diagnostic(`acknowledged ${acked.length} (${killedAt} before the kill); missing on ${np.name} at promotion: ${missingAtPromotion.length}`);
        assert.ok(await c.waitServing(next.node, ms(15_000)), "the new primary serves");
        const before = acked.length;
        assert.ok(await pollUntil(() => (acked.length >= before + 10 ? true : undefined), { timeoutMs: ms(30_000), intervalMs: 20 }), "uploads flow to the new primary");
        stop = true;
        await stream;
        const t0 = performance.now();
        c.startAgent(old.node);
        const all = await pollUntil(() => (acked.every((f) => existsSync(join(data(np), f))) ? true : undefined), { timeoutMs: ms(60_000), intervalMs: 100 });
        const missing = acked.filter((f) => !existsSync(join(data(np), f)));
        t.diagnostic(`acknowledged ${acked.length}, failed ${failed}; missing on ${np.name} after ${victim.name} rejoined: ${missing.length} (${Math.round(performance.now() - t0)} ms after restart)`);
        assert.ok(all, `every acknowledged upload is on the primary after rejoin; missing: ${missing.join(", ")}`);
        assert.deepEqual(missing, []);
        const rec = (await history(np.name)).filter((e) => e.kind === "data_rejoin" && e.from === victim.name && e.term === next.term);
        if (missingAtPromotion.length > 0) assert.equal(rec.length, 1, "the merge is recorded");
        const synced = await pollUntil(() => (nodes.every((n) => n === np || sameTree(n, np)) ? true : undefined), { timeoutMs: ms(40_000), intervalMs: 100 });
        assert.ok(synced, "every node ends with the primary's tree");
      } finally {
        stop = true;
        await stream;
      }
    });
  } finally {
    await c.teardown();
  }
});
