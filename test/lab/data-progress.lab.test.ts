/**
 * data/progress against a real etcd 3.4 (TLS, client certificates, auth; as test/lab/etcd.lab.test.ts):
 * the put is guarded by the leader's term (a deposed primary's write fails and changes nothing),
 * the record is not on a lease (it outlives the primary), the snapshot decodes it, and a forged
 * record is reported and left out. Then the throttled writer on the real etcd.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startEtcd, type LoopbackEtcd } from "../../bench/cli/etcd.js";
import { readEtcdSecurity, type EtcdSecurity } from "../../src/config/etcd-security.js";
import { EtcdCoordinator } from "../../src/coordinator/etcd.js";
import type { DataProgress } from "../../src/coordinator/port.js";
import type { InvalidRecord } from "../../src/coordinator/records.js";
import { DataProgressWriter } from "../../src/data/progress.js";
import { SystemClock } from "../../src/platform/clock.js";
import { silentLogger } from "../../src/platform/logger.js";
import { pollUntil } from "./harness/index.js";

let etcd: LoopbackEtcd;
let security: EtcdSecurity;
const coordinators: EtcdCoordinator[] = [];

function coordinator(cluster: string, onInvalidRecord?: (r: InvalidRecord) => void): EtcdCoordinator {
  const c = new EtcdCoordinator({
    endpoints: [etcd.endpoint],
    prefix: "/understudy-test",
    cluster,
    requestTimeoutMs: 2000,
    dialTimeoutMs: 2000,
    clock: new SystemClock(),
    log: silentLogger(),
    security,
    ...(onInvalidRecord ? { onInvalidRecord } : {}),
  });
  coordinators.push(c);
  return c;
}

const progress = (term: number, bytes: number): DataProgress => ({
  node: "n1",
  term,
  head: 10,
  at: "2026-12-04T23:00:00.000Z",
  standbys: { n2: { acked: 9, files: 1, bytes, seconds: 0.5, full: false, paused: null } },
});

before(async () => {
  etcd = await startEtcd({ bin: "/usr/bin/etcd", secure: true, rolePrefixes: ["/understudy-test/"], startTimeoutMs: 30_000 });
  security = await readEtcdSecurity("/etc/understudy/understudy.yaml", etcd.securitySettings!);
  const c = coordinator("dp-probe");
  const ok = await pollUntil(
    async () =>
      await c.snapshot().then(
        () => true,
        () => undefined,
      ),
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  assert.ok(ok, "etcd came up");
});

after(async () => {
  for (const c of coordinators) await c.close().catch(() => undefined);
  await etcd?.stop();
});

test("data/progress: term-guarded, not leased, decoded by the snapshot; a deposed primary cannot overwrite it", async () => {
  const n1 = coordinator("dp");
  const l1 = await n1.grantLease(5000);
  const t1 = (await n1.campaign("n1", l1.id, "t")).leader!.term;
  assert.equal(await n1.publishDataProgress(t1 - 1, progress(t1 - 1, 1)), false, "a term that does not lead writes nothing");
  assert.equal((await n1.snapshot()).dataProgress, undefined);
  assert.equal(await n1.publishDataProgress(t1, progress(t1, 100)), true);
  assert.deepEqual((await n1.snapshot()).dataProgress, progress(t1, 100));
  // n1 loses its lease: the leader key goes, data/progress stays for ranking and the gate.
  await n1.revokeLease(l1.id);
  const n2 = coordinator("dp");
  const snap = await n2.snapshot();
  assert.equal(snap.leader, null);
  assert.deepEqual(snap.dataProgress, progress(t1, 100), "data/progress outlives the primary's lease");
  const l2 = await n2.grantLease(5000);
  const t2 = (await n2.campaign("n2", l2.id, "t")).leader!.term;
  assert.equal(await n1.publishDataProgress(t1, progress(t1, 999)), false, "the deposed primary's write fails");
  assert.deepEqual((await n2.snapshot()).dataProgress, progress(t1, 100), "and changed nothing");
  assert.equal(await n2.publishDataProgress(t2, progress(t2, 5)), true);
  await n2.revokeLease(l2.id);
});

test("data/progress: the throttled writer on real etcd, then a forged record is refused", async () => {
  const c = coordinator("dp-writer");
  const l = await c.grantLease(5000);
  const term = (await c.campaign("n1", l.id, "t")).leader!.term;
  const w = new DataProgressWriter({ coordinator: c, clock: new SystemClock(), log: silentLogger(), intervalMs: 200 });
  const started = performance.now();
  for (let i = 1; i <= 50; i++) {
    w.offer({ ...progress(term, i), head: i });
    await new Promise((r) => setTimeout(r, 10));
  }
  const offeredMs = performance.now() - started;
  await pollUntil(async () => ((await c.snapshot()).dataProgress?.head === 50 ? true : undefined), { timeoutMs: 5000, intervalMs: 50 });
  await w.close();
  // One write per 200 ms interval at most, plus the first: the bound follows the time the offers took here.
  const bound = Math.ceil(offeredMs / 200) + 2;
  assert.ok(w.counts.written <= bound, `${w.counts.written} writes for 50 offers over ${Math.round(offeredMs)}ms (bound ${bound})`);
  assert.equal(w.counts.failed, 0);
  console.log(`# data/progress writer: 50 offers over ${Math.round(offeredMs)}ms -> ${w.counts.written} etcd writes`);
  await c.revokeLease(l.id);

  const invalid: InvalidRecord[] = [];
  const reader = coordinator("dp-forged", (r) => invalid.push(r));
  const raw = coordinator("dp-forged");
  const rl = await raw.grantLease(5000);
  const t = (await raw.campaign("n1", rl.id, "t")).leader!.term;
  assert.equal(await raw.publishDataProgress(t, { ...progress(t, 1), standbys: { n2: { acked: 1, files: -3, bytes: 1, seconds: 0, full: false, paused: null } } }), true);
  const snap = await reader.snapshot();
  assert.equal(snap.dataProgress, undefined, "an invalid record is never trusted");
  assert.deepEqual(
    invalid.map((r) => r.kind),
    ["data_progress"],
  );
  await raw.revokeLease(rl.id);
});
