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
  assert.ok(s.deadlines[0]!.at < g.deadlineMs, "s.deadlines[0]!.at < g.deadlineMs");
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

test("extend (failsafe): moves the deadline forward only, feeds onRenewed, fences at the new deadline; refused once passed", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const deadlines: number[] = [];
  const renewed: number[] = [];
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), {
    onDeadline: () => deadlines.push(clock.monotonicMs()),
    onChange: () => undefined,
    onRenewed: (l) => renewed.push(l.deadlineMs),
  });
  const g = await lease.grant();
  etcd.unreachable = true;
  assert.equal(lease.extend(g.deadlineMs - 100), true, "an earlier deadline is not an error");
  assert.equal(lease.state()!.deadlineMs, g.deadlineMs, "but never moves the deadline back");
  assert.equal(lease.extend(g.deadlineMs + 700), true);
  assert.equal(lease.state()!.deadlineMs, g.deadlineMs + 700);
  assert.equal(renewed.at(-1), g.deadlineMs + 700, "fed like a renewal (the guard's arm)");
  await clock.advance(g.deadlineMs + 699 - clock.monotonicMs());
  assert.deepEqual(deadlines, [], "not fenced at the old deadline");
  await clock.advance(1);
  assert.deepEqual(deadlines, [g.deadlineMs + 700], "fenced exactly at the extended deadline");
  assert.equal(lease.extend(clock.monotonicMs() + 5000), false, "no lease any more: nothing to extend");
});

test("onGone true (failsafe, E3b): a lease etcd lost is kept with its deadline armed; takeNew wins a new one or fences on time", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const deadlines: number[] = [];
  const renewed: number[] = [];
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), {
    onDeadline: () => deadlines.push(clock.monotonicMs()),
    onChange: () => undefined,
    onRenewed: (l) => renewed.push(l.deadlineMs),
    onGone: () => true,
  });
  const g = await lease.grant();
  etcd.unreachable = true;
  await clock.advance(1000);
  assert.equal(lease.extend(clock.monotonicMs() + 2400), true, "a failsafe round extends past etcd's expiry");
  await clock.advance(1200); // etcd's copy expired (ttl 2000 from the last keepalive)
  etcd.unreachable = false;
  await clock.advance(timing.renewIntervalMs);
  assert.equal(etcd.leases.has(g.id), false, "gone in etcd");
  assert.equal(lease.state()?.id, g.id, "kept: the caller re-acquires");
  assert.match(lease.error() ?? "", /expired in etcd/);
  assert.deepEqual(deadlines, [], "no fence yet: the failsafe deadline holds");
  // A lost campaign: the new lease is revoked, the old deadline still fences on time.
  const before = new Set(etcd.leases.keys());
  assert.equal(await lease.takeNew(async () => false), false);
  await clock.advance(0);
  assert.deepEqual(new Set(etcd.leases.keys()), before, "the loser's new lease was revoked");
  assert.equal(lease.state()?.id, g.id);
  // A won campaign: the new lease becomes the session's, deadline from its grant, fed like a renewal.
  const sent = clock.monotonicMs();
  let id = "";
  assert.equal(
    await lease.takeNew(async (leaseId) => {
      id = leaseId;
      return true;
    }),
    true,
  );
  assert.equal(lease.state()?.id, id);
  assert.equal(lease.state()!.deadlineMs, sent + timing.ttlMs - timing.fenceMarginMs);
  assert.equal(renewed.at(-1), lease.state()!.deadlineMs);
  assert.equal(lease.error(), null);
  await clock.advance(10_000);
  assert.deepEqual(deadlines, [], "renewed from then on");
});

test("onGone true but takeNew too slow: the old deadline fences, and the late win is given back", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const deadlines: number[] = [];
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), { onDeadline: () => deadlines.push(clock.monotonicMs()), onChange: () => undefined, onGone: () => true });
  const g = await lease.grant();
  etcd.leases.delete(g.id);
  await clock.advance(timing.renewIntervalMs);
  assert.equal(lease.state()?.id, g.id);
  let id = "";
  const won = lease.takeNew(async (leaseId) => {
    id = leaseId;
    await clock.sleep(5000);
    return true;
  });
  await clock.advance(5000);
  assert.equal(await won, false, "the deadline passed during the campaign");
  assert.deepEqual(deadlines, [g.deadlineMs], "fenced at the old deadline, not later");
  await clock.advance(0);
  assert.equal(etcd.leases.has(id), false, "the late winner's lease was revoked");
});

test("a keepalive unanswered for half a renew interval is overdue (failsafe starts its rounds then), and no longer once answered", async () => {
  const clock = new FakeClock();
  class SlowEtcd extends FakeCoordinator {
    hangMs = 0;
    readonly sends: number[] = [];
    override async keepAlive(leaseId: string): Promise<{ ttlMs: number }> {
      this.sends.push(clock.monotonicMs());
      if (this.hangMs > 0) await clock.sleep(this.hangMs);
      return super.keepAlive(leaseId);
    }
  }
  const etcd = new SlowEtcd(clock);
  const overdueAt: number[] = [];
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), { onDeadline: () => undefined, onChange: () => undefined, onOverdue: () => overdueAt.push(clock.monotonicMs()) });
  await lease.grant();
  await clock.advance(timing.renewIntervalMs * 3 + 10);
  assert.deepEqual(overdueAt, [], "answered keepalives are never overdue");
  etcd.hangMs = 400; // slower than half a renew interval (250 ms), faster than the deadline
  const before = etcd.sends.length;
  await clock.advance(timing.renewIntervalMs);
  const slow = etcd.sends[before]!;
  await clock.advance(slow + timing.renewIntervalMs / 2 + 50 - clock.monotonicMs());
  assert.equal(overdueAt[0], slow + timing.renewIntervalMs / 2, "flagged half a renew interval after the send");
  assert.equal(lease.overdue(), true);
  assert.equal(lease.error(), null, "not an error yet: the keepalive has not failed");
  etcd.hangMs = 0;
  await clock.advance(400);
  assert.equal(lease.overdue(), false, "answered: no longer overdue");
  assert.ok(lease.state(), "and the lease renewed");
});

test("takeNew: a failsafe round extending the deadline during the campaign does not throw the won key away", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = new SessionLease(etcd, timing, clock, silentLogger(), { onDeadline: () => undefined, onChange: () => undefined, onGone: () => true });
  const g = await lease.grant();
  etcd.leases.delete(g.id);
  await clock.advance(timing.renewIntervalMs);
  assert.equal(lease.state()?.id, g.id, "kept after etcd said gone");
  let id = "";
  const won = await lease.takeNew(async (leaseId) => {
    id = leaseId;
    assert.equal(lease.extend(clock.monotonicMs() + 900), true, "a round completes while the campaign runs");
    return true;
  });
  assert.equal(won, true);
  assert.equal(lease.state()?.id, id, "the new lease is the session's");
  assert.ok(etcd.leases.has(id), "and still alive in etcd");
  assert.equal(lease.gone(), false);
});
