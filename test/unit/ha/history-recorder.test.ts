// History events wait for etcd; one guarded by a term that ended meanwhile is dropped, except
// the data-loss facts (stale_promotion, data_lag_promotion), written unguarded then (chaos finding E).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { HistoryEvent } from "../../../src/coordinator/port.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { HistoryRecorder } from "../../../src/ha/history.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const event = (kind: HistoryEvent["kind"], term: number): HistoryEvent => ({ kind, at: "2026-12-05T00:00:00.000Z", node: "n1", from: "n2", to: "n1", term, reason: kind });

test("after an etcd outage that outlived the term: the data-loss facts are written, the rest dropped", async () => {
  const coordinator = new FakeCoordinator(new FakeClock());
  const recorder = new HistoryRecorder(coordinator, silentLogger());
  coordinator.leader = { node: "n1", lease: "1", term: 7, acquiredAt: "t" };
  coordinator.unreachable = true;
  for (const kind of ["failover", "stale_promotion", "data_lag_promotion", "switchover"] as const) recorder.record(event(kind, 7), 7);
  await recorder.flush(); // etcd away: nothing written, nothing lost
  assert.equal(coordinator.historyEvents.length, 0);
  // etcd answers again, and the term is over (another node leads term 9).
  coordinator.unreachable = false;
  coordinator.leader = { node: "n2", lease: "2", term: 9, acquiredAt: "t" };
  await recorder.flush();
  assert.deepEqual(
    coordinator.historyEvents.map((e) => [e.kind, e.term]),
    [
      ["stale_promotion", 7],
      ["data_lag_promotion", 7],
    ],
  );
  await recorder.flush();
  assert.equal(coordinator.historyEvents.length, 2, "nothing left queued");
});

test("within the term, every event is written guarded, in order", async () => {
  const coordinator = new FakeCoordinator(new FakeClock());
  const recorder = new HistoryRecorder(coordinator, silentLogger());
  coordinator.leader = { node: "n1", lease: "1", term: 7, acquiredAt: "t" };
  recorder.record(event("failover", 7), 7);
  recorder.record(event("stale_promotion", 7), 7);
  await recorder.flush();
  assert.deepEqual(
    coordinator.historyEvents.map((e) => e.kind),
    ["failover", "stale_promotion"],
  );
});

test("flushes called together run one after another: each event is written once", async () => {
  const coordinator = new FakeCoordinator(new FakeClock());
  const recorder = new HistoryRecorder(coordinator, silentLogger());
  coordinator.leader = { node: "n1", lease: "1", term: 7, acquiredAt: "t" };
  recorder.record(event("failover", 7), 7);
  recorder.record(event("stale_promotion", 7), 7);
  await Promise.all([recorder.flush(), recorder.flush(), recorder.flush()]);
  assert.deepEqual(
    coordinator.historyEvents.map((e) => e.kind),
    ["failover", "stale_promotion"],
  );
});
