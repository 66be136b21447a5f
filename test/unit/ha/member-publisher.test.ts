// MemberPublisher (src/ha/member.ts): facts at once, the decision text alone a second later
// (the latest text then), nothing when nothing changed, writes in order, retried after a failure.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DECISION_ONLY_DELAY_MS, MemberPublisher, type MemberBody } from "../../../src/ha/member.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { member } from "../../fakes/member.js";

async function setup() {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(60_000);
  const pub = new MemberPublisher(etcd, clock, silentLogger());
  const writes = () => etcd.calls.filter((c) => c === "putMember").length;
  const stored = () => etcd.members.get("n1")?.member;
  return { clock, etcd, lease: lease.id, pub, writes, stored };
}

const body = (over: Partial<MemberBody> = {}): MemberBody => {
  const { updatedAt: _u, ...b } = member("n1", { decision: "no action: following n2 (term 4)", ...over });
  return b;
};

test("a changed fact is written at once; the same body again writes nothing", async () => {
  const { pub, lease, writes, stored } = await setup();
  await pub.publish(body(), lease);
  assert.equal(writes(), 1);
  await pub.publish(body(), lease);
  assert.equal(writes(), 1, "unchanged: no write");
  await pub.publish(body({ role: "primary", decision: "promoted" }), lease);
  assert.equal(writes(), 2, "role changed: written at once");
  assert.equal(stored()?.role, "primary");
  assert.equal(stored()?.decision, "promoted", "with the current decision");
});

test("a decision-only change waits DECISION_ONLY_DELAY_MS and writes the latest text once", async () => {
  const { clock, pub, lease, writes, stored } = await setup();
  await pub.publish(body(), lease);
  await pub.publish(body({ decision: "waiting: the leader key is vacant" }), lease);
  await pub.publish(body({ decision: "no action: following n3 (term 9)" }), lease);
  assert.equal(writes(), 1, "nothing yet");
  await clock.advance(DECISION_ONLY_DELAY_MS - 1);
  assert.equal(writes(), 1);
  await clock.advance(1);
  assert.equal(writes(), 2, "one write for the burst");
  assert.equal(stored()?.decision, "no action: following n3 (term 9)");
  await clock.advance(10 * DECISION_ONLY_DELAY_MS);
  assert.equal(writes(), 2, "nothing more");
});

test("a fact changing while a decision waits is written at once, and the wait is dropped", async () => {
  const { clock, pub, lease, writes, stored } = await setup();
  await pub.publish(body(), lease);
  await pub.publish(body({ decision: "waiting" }), lease);
  await pub.publish(body({ healthy: false, decision: "restarting the daemon" }), lease);
  assert.equal(writes(), 2);
  assert.equal(stored()?.healthy, false);
  await clock.advance(2 * DECISION_ONLY_DELAY_MS);
  assert.equal(writes(), 2, "the deferred text was superseded");
  assert.equal(stored()?.decision, "restarting the daemon");
});

test("a decision that returns to the written one before the delay writes nothing", async () => {
  const { clock, pub, lease, writes } = await setup();
  await pub.publish(body(), lease);
  await pub.publish(body({ decision: "waiting" }), lease);
  await pub.publish(body(), lease);
  await clock.advance(2 * DECISION_ONLY_DELAY_MS);
  assert.equal(writes(), 1);
});

test("a new lease is written at once; a failed write is retried on the next publish; stop() drops a waiting one", async () => {
  const { clock, etcd, pub, lease, writes, stored } = await setup();
  await pub.publish(body(), lease);
  const second = await etcd.grantLease(60_000);
  await pub.publish(body(), second.id);
  assert.equal(writes(), 2);
  assert.equal(etcd.members.get("n1")?.lease, second.id);
  etcd.unreachable = true;
  await pub.publish(body({ role: "primary" }), second.id);
  assert.equal(stored()?.role, "standby", "not written while etcd is unreachable");
  etcd.unreachable = false;
  await pub.publish(body({ role: "primary" }), second.id);
  assert.equal(stored()?.role, "primary", "written on the next publish");
  const before = writes();
  await pub.publish(body({ role: "primary", decision: "later" }), second.id);
  pub.stop();
  await clock.advance(2 * DECISION_ONLY_DELAY_MS);
  assert.equal(writes(), before, "stopped: the waiting decision is not written");
});

test("after stop() a publish writes nothing and arms no timer", async () => {
  const { clock, pub, lease, writes } = await setup();
  await pub.publish(body(), lease);
  pub.stop();
  await pub.publish(body({ decision: "after stop" }), lease);
  await pub.publish(body({ role: "primary" }), lease);
  assert.equal(clock.pendingTimers(), 0);
  await clock.advance(2 * DECISION_ONLY_DELAY_MS);
  assert.equal(writes(), 1);
});

test("a text that returns to the written one while a deferred write is in flight is written back after it", async () => {
  const { clock, etcd, pub, lease, stored } = await setup();
  await pub.publish(body({ decision: "A" }), lease);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const put = etcd.putMember.bind(etcd);
  etcd.putMember = async (m, l) => {
    await held;
    return put(m, l);
  };
  await pub.publish(body({ decision: "B" }), lease);
  await clock.advance(DECISION_ONLY_DELAY_MS); // B's write starts and waits on etcd
  const back = pub.publish(body({ decision: "A" }), lease); // the key still says A
  release();
  await back;
  await clock.advance(0);
  assert.equal(stored()?.decision, "A", "A again after B landed");
});

test("shows: the generation and lease of the last write that succeeded", async () => {
  const { etcd, pub, lease } = await setup();
  assert.equal(pub.shows(4, lease), false, "nothing written yet");
  await pub.publish(body({ generation: 4 }), lease);
  assert.equal(pub.shows(4, lease), true);
  etcd.quorumLost = true;
  await pub.publish(body({ generation: 5 }), lease);
  assert.equal(pub.shows(5, lease), false, "a failed write changes nothing");
  assert.equal(pub.shows(4, lease), true);
  etcd.quorumBack();
  await pub.publish(body({ generation: 5 }), lease);
  assert.equal(pub.shows(5, lease), true);
  assert.equal(pub.shows(5, "another-lease"), false, "a key on another lease is not this one");
});
