/**
 * Data replication end to end (issue 14): three real agents with a `data:`
 * root each (a different path per node: `<node dir>/data`, the lab sshd's
 * internal-sftp start directory), inotifywait on the primary, real rsync over
 * the sync sshd (the sync key forced to rsync's daemon with the config each
 * agent writes, now holding the term's write module), real etcd.
 *
 * Uploads go through the VIP with OpenSSH `sftp` (root's key, the lab's pinned
 * host key): each acknowledged put must appear on both standbys with its bytes,
 * mode and owner; deletes and renames propagate; a new 0700 home directory
 * owned by uid 1234 arrives as it is. After a failover the deposed term's
 * module is gone on every standby (rsync to d<oldT>-uploads exits 5), and the
 * new primary ships to the remaining standby. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import { agentLoadMs, LabCluster, pollUntil, type LabNode } from "./harness/index.js";
import { SYNC_SSH_PORT } from "./harness/cluster.js";
import { modeAndOwner, percentile, snapshotTree, type TreeEntry } from "./harness/sync.js";

const TMP = ".understudy-tmp";

/**
 * The tree as a partner sees it: everything but rsync's temp dir (not walked:
 * its files come and go mid-transfer). null while a file vanished under the walk.
 */
function visible(root: string): Record<string, TreeEntry> | null {
  try {
    const st = lstatSync(root);
    const out: Record<string, TreeEntry> = { ".": { type: "dir", ...modeAndOwner(st) } };
    for (const name of readdirSync(root)) {
      if (name === TMP) continue;
      for (const [k, v] of Object.entries(snapshotTree(join(root, name)))) out[k === "." ? name : join(name, k)] = v;
    }
    return out;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      lastVanished = String(e);
      return null;
    }
    throw e;
  }
}

/** What visible() found gone last (a failure message names it). */
let lastVanished = "";

/** What differs between two trees (visible()), for a failure message: the paths and their two entries. */
function differences(primary: string, standby: string): string {
  const a = visible(primary) ?? {};
  const b = visible(standby) ?? {};
  const paths = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const out = paths.filter((p) => JSON.stringify(a[p]) !== JSON.stringify(b[p])).map((p) => `${p}: ${JSON.stringify(a[p] ?? null)} vs ${JSON.stringify(b[p] ?? null)}`);
  return out.length === 0 ? "none now" : out.slice(0, 10).join(", ");
}

test("data replication: sftp uploads reach both standbys exactly; deletes, renames, homes; the old term is fenced", { timeout: 600_000 }, async (t) => {
  // Every bound scales with what starting an agent costs here now (0.7 s on a quiet machine): a slow box is not a failure.
  const loadMs = await agentLoadMs();
  const slow = Math.max(1, loadMs / 700);
  const ttlS = Math.max(2, Math.ceil((4 * loadMs + 1000) / 1000));
  t.diagnostic(`agent load ${Math.round(loadMs)} ms: bounds x${slow.toFixed(1)}, ttl ${ttlS}s`);
  const c = await LabCluster.create(
    dataCluster({
      start: false,
      ttl: `${ttlS}s`,
      priorities: [300, 100, 200],
      dataYaml: "  stability_window: 100ms\n",
    }),
  );
  const [n1, n2, n3] = c.lab.nodes as [LabNode, LabNode, LabNode];
  const local = join(c.lab.dir, "client", "uploads");
  mkdirSync(local, { recursive: true });
  /** One sftp session through the VIP as root; resolves when sftp exited 0 (every command acknowledged). */
  const sftp = async (batch: string) => {
    const r = await c.lab.exec(
      c.lab.client,
      [
        "sftp",
        ...["-F", "/dev/null", "-i", c.lab.clientKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"],
        ...["-o", `UserKnownHostsFile=${c.lab.knownHosts}`, "-o", "KexAlgorithms=curve25519-sha256", "-o", "ConnectTimeout=2", "-b", "-"],
        `root@${c.lab.vipAddress}`,
      ],
      { timeoutMs: 15_000 * slow, input: batch },
    );
    assert.equal(r.code, 0, `sftp failed: ${r.stderr}`);
  };
  /** ms until `check` holds on every node in `on` (polled every 5 ms); fails the test past `timeoutMs`. */
  const arrives = async (on: LabNode[], check: (n: LabNode) => boolean, what: string, timeoutMs = 10_000) => {
    const t0 = performance.now();
    let probes = 0;
    let slowest = 0;
    const ok = await pollUntil(
      () => {
        const p0 = performance.now();
        probes += 1;
        const all = on.every(check);
        slowest = Math.max(slowest, performance.now() - p0);
        return all ? true : undefined;
      },
      { timeoutMs: timeoutMs * slow, intervalMs: 5 },
    );
    const ms = performance.now() - t0;
    if (!ok) {
      const now = on.map((n) => `${n.name}: ${differences(data(n1), data(n))}`).join("; ");
      assert.fail(
        `${what} on ${on.map((n) => n.name).join(", ")}: ${probes} probes in ${Math.round(ms)} ms (slowest ${Math.round(slowest)} ms); last mismatch: ${lastMismatch}; differences from n1 now: ${now}`,
      );
    }
    return ms;
  };
  /** Why the last `same` check failed (a failure message says it). */
  let lastMismatch = "";
  const same = (from: LabNode) => (n: LabNode) => {
    try {
      const a = visible(data(n));
      assert.ok(a !== null, `a file vanished under the walk (${lastVanished})`);
      assert.deepEqual(a, visible(data(from)));
      return true;
    } catch (e) {
      lastMismatch = `${n.name}: ${String(e).slice(0, 600)}`;
      return false;
    }
  };
  try {
    // Every standby starts with a file the primary does not have: the first full pass deletes it.
    for (const n of [n2, n3]) writeFileSync(join(data(n), `stray-${n.name}.txt`), "not on the primary\n");
    writeFileSync(join(data(n1), "before-start.txt"), "already there\n");
    c.startAgent(n1.name);
    const first = await c.waitForLeader({ timeoutMs: 20_000 * slow });
    assert.equal(first?.node, n1.name);
    c.startAgent(n2.name);
    c.startAgent(n3.name);
    assert.ok(await c.waitForStandbys([n2.name, n3.name], 30_000 * slow), "both standbys up");

    await t.test("first full pass: both standbys hold exactly the primary's tree", async () => {
      const ms = await arrives([n2, n3], same(n1), "the primary's tree", 30_000);
      t.diagnostic(`first full pass converged ${Math.round(ms)} ms after both standbys were up`);
      for (const n of [n2, n3]) {
        assert.ok(!existsSync(join(data(n), `stray-${n.name}.txt`)), `${n.name}'s stray file deleted by the full pass`);
        assert.deepEqual(readdirSync(join(data(n), TMP)), [], `${n.name}: nothing left in ${TMP}`);
      }
    });

    await t.test("sftp uploads through the VIP arrive on both standbys with bytes, mode and owner", async () => {
      const lat: number[] = [];
      for (let i = 0; i < 8; i++) {
        const name = `upload-${i}.bin`;
        writeFileSync(join(local, name), Buffer.alloc(4096 + i * 1000, i));
        const t0 = performance.now();
        await sftp(`put ${join(local, name)} ${name}\nchmod 640 ${name}\n`);
        const acked = performance.now() - t0;
        const want = JSON.stringify(visible(data(n1))?.[name]);
        assert.match(want, /"mode":"0640"/);
        await arrives([n2, n3], (n) => JSON.stringify(visible(data(n))?.[name]) === want, name);
        lat.push(performance.now() - t0 - acked);
      }
      t.diagnostic(`upload acknowledged -> on both standbys: p50 ${Math.round(percentile(lat, 50))} ms, max ${Math.round(Math.max(...lat))} ms (n=${lat.length})`);
      await arrives([n2, n3], same(n1), "identical trees");
    });

    await t.test("a new 0700 home owned by uid 1234, its file, a rename and a delete propagate", async () => {
      writeFileSync(join(local, "report.csv"), "a,b\n1,2\n");
      await sftp(`mkdir home-alice\nchmod 700 home-alice\nchown 1234 home-alice\nchgrp 1234 home-alice\nput ${join(local, "report.csv")} home-alice/report.csv\nchown 1234 home-alice/report.csv\n`);
      const ms = await arrives([n2, n3], same(n1), "the new home");
      for (const n of [n2, n3]) {
        const home = visible(data(n))?.["home-alice"];
        assert.deepEqual([home?.type, home?.mode, home?.uid, home?.gid], ["dir", "0700", 1234, 1234], `${n.name}: the home's mode and owner`);
        assert.equal(visible(data(n))?.["home-alice/report.csv"]?.uid, 1234);
      }
      t.diagnostic(`new home + file on both standbys ${Math.round(ms)} ms after sftp exited`);
      await sftp("rename home-alice/report.csv home-alice/report-final.csv\nrm upload-0.bin\n");
      const ms2 = await arrives([n2, n3], same(n1), "rename + delete");
      for (const n of [n2, n3]) {
        assert.ok(
          !existsSync(join(data(n), "upload-0.bin")) && !existsSync(join(data(n), "home-alice", "report.csv")) && existsSync(join(data(n), "home-alice", "report-final.csv")),
          '!existsSync(join(data(n), "upload-0.bin")) && !existsSync(join(data(n), "home-alice", "report.csv...',
        );
      }
      t.diagnostic(`rename + delete on both standbys ${Math.round(ms2)} ms after sftp exited`);
      for (const n of [n2, n3]) assert.deepEqual(readdirSync(join(data(n), TMP)), [], `${n.name}: nothing left in ${TMP}`);
    });

    await t.test("failover: the old term's module is gone, the new primary ships", async () => {
      const old = await c.leader();
      assert.equal(old?.node, n1.name);
      await c.signalAgent(n1.name, "SIGTERM", 10_000 * slow);
      const next = await c.waitForLeader({ not: n1.name, timeoutMs: 20_000 * slow });
      assert.ok(next && next.term > old!.term, "a new primary in a later term");
      const newPrimary = c.lab.node(next.node);
      const standby = newPrimary === n2 ? n3 : n2;
      // The remaining standby serves d<new term> once it follows the new leader; d<old term> never again.
      const rsyncTo = (target: LabNode, term: number) =>
        c.lab.exec(
          n1,
          [
            "rsync",
            "-a",
            "-e",
            `ssh -F /dev/null -i ${c.syncKey} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${c.lab.knownHosts} -o ConnectTimeout=2 -p ${SYNC_SSH_PORT}`,
            `${join(data(n1), "before-start.txt")}`,
            `root@${target.address}::d${term}-uploads/`,
          ],
          { timeoutMs: 15_000 * slow },
        );
      writeFileSync(join(local, "after-failover.txt"), "new term\n");
      await sftp(`put ${join(local, "after-failover.txt")} after-failover.txt\n`);
      const ms = await arrives([standby], (n) => existsSync(join(data(n), "after-failover.txt")), "an upload to the new primary", 20_000);
      t.diagnostic(`after failover: upload on the remaining standby ${Math.round(ms)} ms after sftp exited`);
      for (const target of [standby, newPrimary]) {
        const r = await rsyncTo(target, old!.term);
        assert.equal(r.code, 5, `rsync to ${target.name}::d${old!.term}-uploads must find no module: ${r.stderr}`);
        assert.match(r.stderr, /unknown module/i);
      }
      const np = await rsyncTo(newPrimary, next.term);
      assert.equal(np.code, 5, "a primary serves no write module at all");
    });
  } finally {
    await c.teardown();
  }
});
