// A planned move's request is cleared (done) or cancelled (not done) by an agent only as the view its
// decision was taken on held it: an operator's DELETE and new POST in between leave the new request
// pending (src/ha/chronicle.ts, the coordinator's readRevision compare; the real etcd txn is in
// test/lab/etcd.lab.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Chronicle } from "../../../src/ha/chronicle.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const req = (requestedAt: string) => ({ kind: "switchover" as const, from: "n1", to: "n2", at: null, force: false, requestedBy: "ops", reason: "patching", requestedAt });

test("the new primary's clear and an agent's cancel leave a request put after their view; history names the request they were about", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  etcd.leader = { node: "n2", lease: "b2", term: 5, acquiredAt: "" };
  const chronicle = new Chronicle("n2", etcd, clock, silentLogger());
  assert.ok(await etcd.requestSwitchover(req("2026-12-07T10:00:00.000Z")), "first request");
  const seen = await etcd.snapshot();
  await etcd.cancelSwitchover();
  assert.ok(await etcd.requestSwitchover(req("2026-12-07T10:00:01.000Z")), "the operator's new request");

  await chronicle.switchoverDone(seen.switchover!, seen, 5);
  await chronicle.flush();
  assert.equal(etcd.switchover?.requestedAt, "2026-12-07T10:00:01.000Z", "not cleared");
  assert.equal(etcd.historyEvents.length, 0, "and not recorded as done");

  await chronicle.switchoverAborted(seen.switchover, "n2 is not a live standby", seen.revision);
  await chronicle.flush();
  assert.equal(etcd.switchover?.requestedAt, "2026-12-07T10:00:01.000Z", "not cancelled");
  assert.deepEqual(
    etcd.historyEvents.map((e) => [e.reason, e.requestedAt]),
    [["not done: n2 is not a live standby", "2026-12-07T10:00:00.000Z"]],
  );

  const now = await etcd.snapshot();
  await chronicle.switchoverDone(now.switchover!, now, 5);
  await chronicle.flush();
  assert.equal(etcd.switchover, null, "cleared on a view that holds it");
  assert.equal(etcd.historyEvents.at(-1)?.requestedAt, "2026-12-07T10:00:01.000Z");
});
