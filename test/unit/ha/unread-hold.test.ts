// A standby whose etcd read failed: does it keep receiving the term it follows (src/ha/follow.ts)?
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClusterSnapshot } from "../../../src/coordinator/port.js";
import { DataFollow, unreadHold, unreadHoldMs, type UnreadFacts } from "../../../src/ha/follow.js";
import type { DataPort } from "../../../src/ha/ports.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";

const base: UnreadFacts = { nowMs: 100_000, lastReadAtMs: 99_000, holdMs: 9000, leader: "n1", promisedTo: null, promisedUntilMs: -Infinity };

test("unreadHoldMs: one lease period after the last read plus the time the next read takes to fail", () => {
  assert.equal(unreadHoldMs({ ttlMs: 5000, fenceMarginMs: 1000, requestTimeoutMs: 1000, tickMs: 2000 }), 9000);
  assert.equal(unreadHoldMs({ ttlMs: 1000, fenceMarginMs: 300, requestTimeoutMs: 1000, tickMs: 2000 }), 4300);
});

const cases: { name: string; facts: Partial<UnreadFacts>; keep: "recent" | "promise" | false; reason: RegExp }[] = [
  { name: "a read that failed once, 1 s after the last good one: kept", facts: {}, keep: "recent", reason: /^last etcd read 1000ms ago \(kept up to 9000ms\)$/ },
  { name: "just under the hold: kept", facts: { lastReadAtMs: 91_001 }, keep: "recent", reason: /8999ms ago/ },
  { name: "at the hold: closed", facts: { lastReadAtMs: 91_000 }, keep: false, reason: /^no etcd read for 9000ms \(over 9000ms\) and no failsafe promise to n1$/ },
  { name: "never read since start: closed (nothing was opened)", facts: { lastReadAtMs: null }, keep: false, reason: /^etcd not read since start$/ },
  {
    name: "long outage, failsafe promise to the followed leader running: kept",
    facts: { lastReadAtMs: 10_000, promisedTo: "n1", promisedUntilMs: 104_000 },
    keep: "promise",
    reason: /^failsafe: promised n1 for 4000ms more$/,
  },
  { name: "long outage, the promise ended: closed", facts: { lastReadAtMs: 10_000, promisedTo: "n1", promisedUntilMs: 100_000 }, keep: false, reason: /no failsafe promise/ },
  { name: "long outage, promised another node: closed", facts: { lastReadAtMs: 10_000, promisedTo: "n3", promisedUntilMs: 104_000 }, keep: false, reason: /no failsafe promise to n1/ },
  {
    name: "long outage, the last read named no leader: a promise does not count",
    facts: { lastReadAtMs: 10_000, leader: null, promisedTo: "n1", promisedUntilMs: 104_000 },
    keep: false,
    reason: /to a leader$/,
  },
];

for (const c of cases) {
  test(`unreadHold: ${c.name}`, () => {
    const r = unreadHold({ ...base, ...c.facts });
    assert.equal(r.keep, c.keep);
    assert.match(r.reason, c.reason);
  });
}

test("DataFollow: the hold ends on time even when no cycle completes after the failed read; a read restarts it", async () => {
  const clock = new FakeClock();
  const views: { unread?: boolean; leader: unknown }[] = [];
  const data = { follow: (v: { unread?: boolean; leader: unknown }) => void views.push(v) } as unknown as DataPort;
  const f = new DataFollow({ data, holdMs: 9000, clock, log: silentLogger(), promise: () => ({ to: null, untilMs: -Infinity }) });
  const standby = { acting: "standby" as const, term: null };
  const snapshot = { leader: { node: "n1", term: 3 }, members: [{ node: "n1", address: "198.18.0.11" }], dataProgress: null } as unknown as ClusterSnapshot;
  const t0 = clock.monotonicMs();
  f.after(standby, snapshot, t0);
  await clock.advance(3000);
  f.after(standby, null, t0 + 2000);
  assert.deepEqual(views.at(-1), { acting: "standby", term: null, leader: null, members: [], unread: true }, "3 s after the read: kept");
  // No cycle completes any more (one hangs): the timer closes the modules at read + 9 s.
  await clock.advance(5999);
  assert.equal(views.length, 2, "nothing before the hold ends");
  await clock.advance(1);
  assert.deepEqual(views.at(-1), { acting: "standby", term: null, leader: null, members: [] }, "at read + 9 s: a plain no-leader view (closed)");
  assert.equal(clock.pendingTimers(), 0, "no timer once closed");

  f.after(standby, snapshot, clock.monotonicMs());
  f.after(standby, null, clock.monotonicMs());
  assert.equal(views.at(-1)?.unread, true, "a new read, a new hold");
  f.stop();
  assert.equal(clock.pendingTimers(), 0, "stop cancels the recheck");
});
