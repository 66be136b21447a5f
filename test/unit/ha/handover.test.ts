import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { Action } from "../../../src/ha/observation.js";
import { SWITCHOVER_SETTLE_MS } from "../../../src/ha/switchover.js";
import { member } from "../../fakes/member.js";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { NOW, gates, obs, primary, sw } from "./decide-fixture.js";
import { apiOf, cluster, request, restarted, running } from "./loop-fixture.js";
import type { FakeVip } from "../../fakes/node-parts.js";
import { adoptionAtStart, adoptionNote } from "../../../src/ha/adoption.js";

// A planned move hands the leader key to its target in the release's own transaction (one etcd
// commit, no campaign) when every member states its lease; else the key is deleted and the target
// campaigns, as older agents expect.

/** `ip addr del` fails on this node from now on: the address stays; adds still work. */
function removalFails(vip: FakeVip): void {
  const add = vip.setDesired.bind(vip);
  vip.setDesired = async (held, o) => {
    if (held) return add(held, o);
    vip.desired = false;
    throw new Error("US_E_VIP_REMOVE: cannot remove 198.18.0.100/24: RTNETLINK answers: Operation not permitted");
  };
}

const release = (actions: readonly Action[]) => actions.find((a): a is Extract<Action, { kind: "release" }> => a.kind === "release");
const n1 = member("n1", { role: "primary", lease: "a1" });

test("planner: every member states its lease -> the release hands the key to the target, on the view's revision", () => {
  const d = decide(primary({}, { switchover: sw(), members: [n1, member("n2", { lease: "b2" })] }));
  assert.deepEqual(
    d.actions.map((a) => a.kind),
    ["demote", "release"],
  );
  assert.deepEqual(release(d.actions)?.handTo, { node: "n2", lease: "b2", revision: 10 });
  assert.match(d.reason, /^switchover: handing over to n2 \(the leader key passed in one transaction\) \(patching n1\)$/);
});

test("planner: a member without a lease (an older agent) -> release and campaign as before", () => {
  for (const members of [
    [n1, member("n2", { lease: "b2" }), member("n3")],
    [n1, member("n2")],
    [member("n1", { role: "primary" }), member("n2", { lease: "b2" })],
  ]) {
    const d = decide(primary({}, { switchover: sw(), members }));
    assert.equal(release(d.actions)?.handTo, undefined, JSON.stringify(members.map((m) => [m.node, m.lease])));
    assert.match(d.reason, /^switchover: handing over to n2 \(patching n1\)$/);
  }
});

test("planner: failsafe/members must list the target for the key to be handed to it", () => {
  const members = [n1, member("n2", { lease: "b2" })];
  const without = decide(primary({}, { switchover: sw(), members, failsafeMembers: { term: 7, nodes: ["n1", "n3"] } }));
  assert.equal(release(without.actions)?.handTo, undefined);
  const listed = decide(primary({}, { switchover: sw(), members, failsafeMembers: { term: 7, nodes: ["n1", "n2"] } }));
  assert.equal(release(listed.actions)?.handTo?.node, "n2");
});

test("planner: a health handover does not hand the key (its heir campaigns after the release)", () => {
  const d = decide(primary({ daemon: { running: false, probesUp: false, recentRestarts: 1 } }, { members: [n1, member("n2", { lease: "b2" })] }));
  assert.equal(release(d.actions)?.why, "handover");
  assert.equal(release(d.actions)?.handTo, undefined);
});

test("switchover: one transaction hands the key over, the target promotes without campaigning, the old term is fenced", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
    ["n3", 100],
  ]);
  const old = c.etcd.leader!;
  assert.equal(old.node, "n1");
  assert.ok(
    [...c.etcd.members.values()].every((m) => m.member.lease === m.lease),
    "every member key states the lease it hangs on",
  );
  c.etcd.calls.length = 0;
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n3" })), 'await c.etcd.requestSwitchover(request(c, { to: "n3" }))');
  await c.clock.advance(50);
  const now = c.etcd.leader!;
  assert.equal(now.node, "n3");
  assert.ok(now.term > old.term, `a new term (${now.term} after ${old.term})`);
  assert.equal(now.lease, c.etcd.members.get("n3")!.lease, "on the target's own lease");
  assert.ok(c.etcd.calls.includes("handOver"), 'c.etcd.calls.includes("handOver")');
  assert.ok(!c.etcd.calls.includes("campaign") && !c.etcd.calls.includes("release"), c.etcd.calls.join(","));
  assert.equal(c.etcd.released?.term, old.term);
  assert.equal(c.timeline.maxHolders, 1);
  assert.deepEqual(c.timeline.holder(), ["n3"]);
  assert.notEqual(c.etcd.switchover, null, "recorded once the daemon has had its first connections");
  await c.clock.advance(SWITCHOVER_SETTLE_MS);
  assert.equal(c.etcd.switchover, null, "the new primary cleared the request");
  const ev = c.etcd.historyEvents.find((e) => e.kind === "switchover")!;
  assert.deepEqual([ev.from, ev.to, ev.term], ["n1", "n3", now.term]);
  // Whatever the old primary still had in flight under its term is refused.
  assert.equal(await c.etcd.publishGeneration(old.term, { generation: 1, digest: "d", roots: {}, files: 0, source: "n1", term: old.term, publishedAt: "" }), false);
  assert.equal(await c.etcd.resign(old.term), false);
  assert.equal(c.etcd.leader?.node, "n3");
});

test("switchover beside an older agent (no lease in its member key): released, the target campaigns", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  const lease = await c.etcd.grantLease(60_000);
  await c.etcd.putMember(member("n9", { priority: 1 }), lease.id);
  c.etcd.calls.length = 0;
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), 'await c.etcd.requestSwitchover(request(c, { to: "n2" }))');
  await c.clock.advance(50);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.ok(c.etcd.calls.includes("release") && c.etcd.calls.includes("campaign"), c.etcd.calls.join(","));
  assert.ok(!c.etcd.calls.includes("handOver"), '!c.etcd.calls.includes("handOver")');
  assert.equal(c.timeline.maxHolders, 1);
});

test("a handover the txn refuses (the target's lease went) falls back to the release; nobody holds two terms", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
    ["n3", 100],
  ]);
  const old = c.etcd.leader!;
  // n3's lease is revoked between the primary's decision and its txn: the member key goes with it.
  const original = c.etcd.handOver.bind(c.etcd);
  c.etcd.handOver = async (term, to, record, revision) => {
    await c.etcd.revokeLease(to.lease);
    return original(term, to, record, revision);
  };
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n3" })), 'await c.etcd.requestSwitchover(request(c, { to: "n3" }))');
  await c.clock.advance(50);
  assert.ok(c.etcd.calls.includes("handOver") && c.etcd.calls.includes("release"), c.etcd.calls.join(","));
  assert.equal(c.etcd.released?.term, old.term, "the old primary let go");
  assert.equal(c.timeline.maxHolders, 1);
  await c.clock.advance(5000);
  // The target's member key went with its lease: nobody waits for it, the election goes on at once
  // (the old primary may win it again) and the request is cancelled as not possible.
  assert.ok(c.etcd.leader !== null && c.etcd.leader.term > old.term, "a new term was elected");
  assert.equal(c.etcd.switchover, null);
  assert.ok(
    c.etcd.historyEvents.some((e) => e.kind === "switchover" && e.to === "n3" && e.reason.startsWith("not done: ")),
    JSON.stringify(c.etcd.historyEvents),
  );
  assert.equal(c.timeline.maxHolders, 1);
});

test("a handover txn that errors (no answer) falls back to the release; the target campaigns", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  const old = c.etcd.leader!;
  c.etcd.handOver = async () => {
    c.etcd.calls.push("handOver");
    throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: "handover txn: no answer" });
  };
  c.etcd.calls.length = 0;
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), 'await c.etcd.requestSwitchover(request(c, { to: "n2" }))');
  await c.clock.advance(50);
  assert.deepEqual(
    c.etcd.calls.filter((k) => k === "handOver" || k === "release" || k === "campaign"),
    ["handOver", "release", "campaign"],
  );
  assert.equal(c.etcd.leader?.node, "n2");
  assert.ok(c.etcd.leader!.term > old.term, "c.etcd.leader!.term > old.term");
  assert.equal(c.timeline.maxHolders, 1);
});

test("promotion gate: a won or handed key is given back by a node not ready to serve; an adopted one, or a forced failover's, is not", () => {
  const notReady = "readiness check /usr/local/bin/ready exited 1";
  const won = decide(obs({ ...gates(), notReady }, { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" } }));
  assert.deepEqual(
    won.actions.map((a) => a.kind),
    ["decline", "cool_down"],
  );
  assert.equal(won.actions[0]!.kind === "decline" && won.actions[0].gate, "ready");
  assert.match(won.reason, /^declining the promotion \(term 9\): not ready to serve: readiness check .* exited 1; giving the leader key back and cooling down$/);
  const adopted = decide(obs({ ...gates({ via: "adopted" }), notReady }, { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" } }));
  assert.deepEqual(
    adopted.actions.map((a) => a.kind),
    ["take_over"],
  );
  const forced = decide(obs({ ...gates(), notReady }, { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" }, switchover: sw({ kind: "failover", to: "n1", force: true }) }));
  assert.deepEqual(
    forced.actions.map((a) => a.kind),
    ["take_over"],
  );
});

test("promotion gate: a handed key's take-over says it was handed over, a won one that it was won", () => {
  const leader = { node: "n1", term: 9, lease: "a1", acquiredAt: "" };
  assert.match(decide(obs({ ...gates({ handed: true }) }, { leader })).reason, /^taking over: the leader key was handed over to me \(term 9\)$/);
  assert.match(decide(obs({ ...gates() }, { leader })).reason, /^taking over: I won the election \(term 9\)$/);
  assert.match(decide(obs({ ...gates({ via: "adopted", handed: false }) }, { leader })).reason, /^taking over: the leader key names me with my lease \(term 9\)/);
});

test("switchover to a target that turned not ready after its member key was read: it gives the key back, the cluster stays led", async () => {
  const readiness: Record<string, string | null> = {};
  const c = cluster(
    [
      ["n1", 300],
      ["n2", 200],
      ["n3", 100],
    ],
    readiness,
  );
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  const old = c.etcd.leader!;
  // The primary decides on n3's member key (healthy); n3's readiness check fails before the key reaches it.
  const original = c.etcd.handOver.bind(c.etcd);
  c.etcd.handOver = async (term, to, record, revision) => {
    readiness.n3 = "readiness check failed";
    return original(term, to, record, revision);
  };
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n3" })), 'await c.etcd.requestSwitchover(request(c, { to: "n3" }))');
  await c.clock.advance(50);
  assert.ok(
    c.etcd.historyEvents.some((e) => e.kind === "veto" && e.to === "n3" && /not ready to serve/.test(e.reason)),
    JSON.stringify(c.etcd.historyEvents),
  );
  assert.equal(c.nodes[2]!.daemon.running, false, "n3 started nothing");
  assert.equal(c.timeline.maxHolders, 1);
  await c.clock.advance(5000);
  assert.ok(c.etcd.leader !== null && c.etcd.leader.node !== "n3" && c.etcd.leader.term > old.term, JSON.stringify(c.etcd.leader));
  assert.equal(c.timeline.maxHolders, 1);
  // Not recorded as a move to whoever leads now: cancelled, and said so.
  assert.equal(c.etcd.switchover, null);
  const moves = c.etcd.historyEvents.filter((e) => e.kind === "switchover");
  assert.equal(moves.length, 1, JSON.stringify(moves));
  assert.deepEqual([moves[0]!.from, moves[0]!.to], ["n1", "n3"]);
  assert.match(moves[0]!.reason, /^not done: /);
});

test("the old primary cannot remove the VIP: the record says so, the target runs the duplicate check and does not add it beside", async () => {
  for (const handed of [true, false]) {
    const c = await running([
      ["n1", 300],
      ["n2", 200],
    ]);
    removalFails(c.nodes[0]!.vip);
    if (!handed) c.etcd.handOver = async () => null; // the txn refused: the plain release
    assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), 'await c.etcd.requestSwitchover(request(c, { to: "n2" }))');
    await c.clock.advance(100);
    assert.match(c.etcd.released?.vipNotFree ?? "", /^still on the old primary after it stepped down/, `handed: ${handed}`);
    assert.deepEqual(c.nodes[1]!.vip.skipped, [false], "the target ran the duplicate-address check");
    assert.equal(c.timeline.maxHolders, 1, `never two holders (handed: ${handed})`);
    assert.deepEqual(c.timeline.holder(), ["n1"]);
  }
});

test("a target restarted after the key was handed to its old lease takes it through the gates, not as adopted", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
    ["n3", 100],
  ]);
  const n3 = c.nodes[2]!;
  // It answers the primary's readiness question, then dies: its lease and member key live on until
  // the TTL, and the primary, having asked, hands the key to it (target-check.ts narrows this to the ask).
  const answered = n3.loop.view();
  c.agents.set(apiOf("n3"), { view: () => answered, silent: () => false });
  n3.life.crash();
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n3" })), 'await c.etcd.requestSwitchover(request(c, { to: "n3" }))');
  await c.clock.advance(50);
  assert.equal(c.etcd.leader?.node, "n3");
  const handedTerm = c.etcd.leader!.term;
  const again = restarted(c, 2, 100, { notReady: "sync not verified yet" });
  await again.start();
  await c.clock.advance(1000);
  assert.notEqual(again.status().acting, "primary", "not ready: the readiness gate applies to a key its previous run never served");
  assert.deepEqual(
    c.etcd.historyEvents.filter((e) => e.kind === "veto").map((e) => [e.to, e.term]),
    [["n3", handedTerm]],
  );
  assert.equal(c.timeline.maxHolders, 1);
  await c.clock.advance(5000);
  assert.ok(c.etcd.leader && c.etcd.leader.node !== "n3", `another node leads after n3 gave the key back (${c.etcd.leader?.node})`);
});

test("adoptionAtStart: a key handed to me counts as served only when my member key on that lease says primary; a won key always", async () => {
  const base = await cluster([["n1", 100]]).etcd.snapshot();
  const handedAt = "2026-12-07T15:00:00.000Z";
  const released = { node: "n2", term: 8, at: handedAt, why: "switchover" as const };
  const snap = (role: "primary" | "standby", lease: string | undefined, handed: boolean) => ({
    ...base,
    leader: { node: "n1", term: 9, lease: "a1", acquiredAt: handed ? handedAt : "2026-12-07T15:00:01.000Z" },
    released: handed ? released : null,
    members: [member("n1", { role, ...(lease !== undefined ? { lease } : {}) })],
  });
  assert.deepEqual(adoptionAtStart(snap("primary", "a1", true), "n1"), { lease: "a1", term: 9, served: true });
  assert.equal(adoptionAtStart(snap("primary", undefined, true), "n1")?.served, true, "an older agent's record: its role alone");
  assert.equal(adoptionAtStart(snap("standby", "a1", true), "n1")?.served, false, "handed while the previous run was dying");
  assert.equal(adoptionAtStart(snap("primary", "b7", true), "n1")?.served, false, "primary on another lease: not this key");
  assert.equal(adoptionAtStart(snap("standby", "a1", false), "n1")?.served, true, "won by my campaign, member key not caught up: a restart, no failover");
  assert.equal(adoptionAtStart({ ...snap("standby", "a1", false), released }, "n1")?.served, true, "an older release (another timestamp) is not a handover");
  assert.equal(adoptionAtStart(snap("primary", "a1", true), "n2"), null);
  assert.equal(adoptionNote({ lease: "a1", term: 9, served: false }, false), "my previous lease is gone");
});

test("a new primary the request did not name cancels it as not done; one it named, or none, records it", () => {
  const settled = { servingSinceMs: NOW - SWITCHOVER_SETTLE_MS };
  const other = decide(primary(settled, { switchover: sw({ from: "n0", to: "n3" }) }));
  assert.deepEqual(other.actions, [{ kind: "abort_switchover", why: "the role went to n1 (term 7), not to n3" }]);
  assert.match(other.reason, /^switchover not done: the role went to n1 \(term 7\), not to n3; cancelling$/);
  for (const to of ["n1", null]) {
    const named = decide(primary(settled, { switchover: sw({ from: "n0", to }) }));
    assert.deepEqual(
      named.actions.map((a) => a.kind),
      ["complete_switchover"],
      `to ${to}`,
    );
  }
});

test("a clear that fails records nothing; the next cycle clears and records the move once", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  const clear = c.etcd.clearSwitchover.bind(c.etcd);
  let failures = 1;
  c.etcd.clearSwitchover = async (term) => {
    if (failures-- > 0) throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: "blip" });
    return clear(term);
  };
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), 'await c.etcd.requestSwitchover(request(c, { to: "n2" }))');
  await c.clock.advance(50 + SWITCHOVER_SETTLE_MS);
  assert.equal(c.etcd.historyEvents.filter((e) => e.kind === "switchover").length, 0, "not recorded while the request stays");
  assert.notEqual(c.etcd.switchover, null);
  await c.clock.advance(3000);
  assert.equal(c.etcd.switchover, null);
  assert.deepEqual(
    c.etcd.historyEvents.filter((e) => e.kind === "switchover").map((e) => [e.from, e.to]),
    [["n1", "n2"]],
  );
});

test("a primary restarted before its member key said primary adopts its won key: same term, no failover", async () => {
  const c = cluster([
    ["n1", 200],
    ["n2", 100],
  ]);
  const put = c.etcd.putMember.bind(c.etcd);
  c.etcd.putMember = async (m, l) => {
    if (m.node === "n1" && m.role === "primary") throw new Error("put timed out");
    return put(m, l);
  };
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  const term = c.etcd.leader!.term;
  assert.equal(c.etcd.leader?.node, "n1");
  c.etcd.putMember = put;
  const old = c.nodes[0]!;
  old.life.crash();
  const again = restarted(c, 0, 200, { notReady: "sync not verified yet" });
  await c.clock.advance(1000);
  await again.start();
  await c.clock.advance(8000);
  assert.equal(c.etcd.leader?.term, term, "same term: adopted, no failover");
  assert.equal(again.status().acting, "primary");
  assert.equal(c.timeline.maxHolders, 1);
});

test("a graceful stop whose VIP removal fails says the address is not free; the successor checks", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  const vip = c.nodes[0]!.vip;
  removalFails(vip);
  vip.release = async () => {
    throw new Error("remove failed");
  };
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(3000);
  assert.match(c.etcd.released?.vipNotFree ?? "", /^still on the old primary/);
  assert.deepEqual(c.nodes[1]!.vip.skipped, [false], "the successor ran the duplicate-address check");
  assert.equal(c.timeline.maxHolders, 1);
});
