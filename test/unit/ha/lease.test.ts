import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionLease, type LeaseState } from "../../../src/ha/lease.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const timing = { ttlMs: 2000, fenceMarginMs: 500, renewIntervalMs: 500, rankingDelayMs: 300 };

function setup() {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const deadlines: { at: number; lease: LeaseState }[] = [];
  let changes = 0;
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), {
    onDeadline: (l) => deadlines.push({ at: clock.monotonicMs(), lease: l }),
    onChange: () => changes++,
  });
  return { clock, etcd, lease, deadlines, changes: () => changes };
}

test("renewals keep the lease alive over many TTLs", async () => {
  const s = setup();
  await s.lease.grant();
  await s.clock.advance(20_000);
  assert.deepEqual(s.deadlines, []);
  assert.ok(s.lease.state(), "still held");
  assert.ok(s.etcd.leases.has(s.lease.state()!.id), "alive in etcd");
  assert.ok(s.etcd.calls.filter((c) => c === "keepAlive").length >= 35, "kept alive every renew interval");
});

test("deadline = send time of the last acknowledged keepalive + granted TTL - fence margin", async () => {
  const s = setup();
  const g = await s.lease.grant();
  assert.equal(g.deadlineMs, s.clock.monotonicMs() + 2000 - 500);
  await s.clock.advance(1000);
  s.etcd.unreachable = true;
  const lastAck = s.clock.monotonicMs(); // the keepalive sent at +1000 was acknowledged
  await s.clock.advance(5000);
  assert.equal(s.deadlines.length, 1);
  assert.equal(s.deadlines[0]!.at, lastAck + 2000 - 500, "fenced exactly at the local deadline");
  assert.equal(s.lease.state(), null);
});

test("etcd raises a TTL below its minimum: the granted TTL is used", async () => {
  const s = setup();
  s.etcd.minTtlMs = 3000;
  const g = await s.lease.grant();
  assert.equal(g.grantedTtlMs, 3000);
  assert.equal(g.deadlineMs, s.clock.monotonicMs() + 3000 - 500);
});

test("a lease that etcd reports gone fires the deadline callback at once", async () => {
  const s = setup();
  const g = await s.lease.grant();
  s.etcd.leases.delete(g.id);
  await s.clock.advance(600);
  assert.equal(s.deadlines.length, 1);
  assert.ok(s.deadlines[0]!.at < g.deadlineMs);
});

test("revoke gives the lease back and stops renewing", async () => {
  const s = setup();
  const g = await s.lease.grant();
  await s.lease.revoke();
  assert.equal(s.etcd.leases.has(g.id), false);
  const before = s.etcd.calls.length;
  await s.clock.advance(5000);
  assert.equal(s.etcd.calls.length, before, "no calls after revoke");
  assert.deepEqual(s.deadlines, []);
});
