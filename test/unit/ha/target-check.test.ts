// A planned move asks its target over the agents' API before it hands the role over (src/ha/target-check.ts):
// the planner's table, the judge, the executor side's bookkeeping, and loops on one fake etcd where the
// target was killed after its member key was written (the key lives on until its lease's TTL).
import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { Action, Observation } from "../../../src/ha/observation.js";
import type { TargetAnswer } from "../../../src/ha/ports.js";
import { judgeAnswer, TARGET_ANSWER_FRESH_MS, TARGET_GIVE_UP_MS, TARGET_RETRY_MS, type TargetCheckView, type TargetVerdict } from "../../../src/ha/target-check.js";
import { TargetCheckRun } from "../../../src/ha/target-check-run.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { member } from "../../fakes/member.js";
import { NOW, primary, sw } from "./decide-fixture.js";
import { request, restarted, running, runningLongLease } from "./loop-fixture.js";

const API = "http://n2.test:8080";
const n2 = member("n2", { api: API, answersReady: true });
const verdict = (over: Partial<TargetVerdict> = {}): TargetVerdict => ({ node: "n2", requestedAt: "", atMs: NOW - 10, outcome: "ready", why: "a healthy standby", ...over });
const view = (over: Partial<TargetCheckView> = {}): TargetCheckView => ({ asking: null, last: null, failingSinceMs: null, ...over });
const decideWith = (check: TargetCheckView | undefined, over: Partial<Observation> = {}, members = [member("n1", { role: "primary" }), n2]) =>
  decide(primary({ ...(check ? { targetCheck: check } : {}), ...over }, { switchover: sw(), members }));
const kinds = (a: readonly Action[]) => a.map((x) => x.kind);

test("target check, planner: no answer yet -> ask the target at the address its member key names; nothing moves", () => {
  const d = decideWith(view());
  assert.deepEqual(d.actions, [{ kind: "check_target", node: "n2", api: API, requestedAt: "", forced: false }]);
  assert.match(d.reason, /^switchover to n2: asking n2 over its API whether it is ready to take over$/);
});

test("target check, planner: a fresh ready answer -> demote and release, the answer in the sentence", () => {
  const d = decideWith(view({ last: verdict() }));
  assert.deepEqual(kinds(d.actions), ["demote", "release"]);
  assert.match(d.reason, /^switchover: handing over to n2 \(n2 answered it is a healthy standby\) \(patching n1\)$/);
});

test("target check, planner: a ready answer older than the fresh window, or for another request or node -> ask again", () => {
  for (const last of [verdict({ atMs: NOW - TARGET_ANSWER_FRESH_MS - 1 }), verdict({ requestedAt: "2026-01-01T00:00:00Z" }), verdict({ node: "n3" })]) {
    assert.deepEqual(kinds(decideWith(view({ last })).actions), ["check_target"], JSON.stringify(last));
  }
});

test("target check, planner: an ask in flight -> wait for it (the answer wakes the loop; a recheck covers one that never settles)", () => {
  const d = decideWith(view({ asking: { node: "n2", requestedAt: "" }, last: verdict({ atMs: NOW - 5000 }) }));
  assert.deepEqual(kinds(d.actions), ["recheck_at"]);
});

test("target check, planner: not ready -> ask again after the retry interval; past the give-up time -> cancelled, saying why", () => {
  const failing = (atMs: number, since: number) => view({ last: verdict({ outcome: "not ready", why: "HTTP timeout", atMs }), failingSinceMs: since });
  const soon = decideWith(failing(NOW - 100, NOW - 100));
  assert.deepEqual(soon.actions, [{ kind: "recheck_at", atMs: NOW - 100 + TARGET_RETRY_MS }]);
  assert.match(soon.reason, /n2 is not ready \(HTTP timeout\); asking again/);
  assert.deepEqual(kinds(decideWith(failing(NOW - TARGET_RETRY_MS, NOW - 3000)).actions), ["check_target"]);
  const gone = decideWith(failing(NOW - TARGET_RETRY_MS, NOW - TARGET_GIVE_UP_MS));
  assert.deepEqual(gone.actions, [{ kind: "abort_switchover", why: `n2 did not answer that it is ready to take over within ${TARGET_GIVE_UP_MS / 1000}s (HTTP timeout)` }]);
  assert.match(gone.reason, /^switchover not possible: n2 did not answer/);
});

test("target check, planner: could not be asked (no key, an older agent), no API address, no peer client -> the move goes on, the sentence says so", () => {
  const unchecked = decideWith(view({ last: verdict({ outcome: "unchecked", why: "no API token or client certificate on this node to ask it with" }) }));
  assert.deepEqual(kinds(unchecked.actions), ["demote", "release"]);
  assert.match(unchecked.reason, /\(n2 not asked: no API token or client certificate on this node to ask it with\)/);
  const noApi = decideWith(view(), {}, [member("n1", { role: "primary" }), member("n2")]);
  assert.deepEqual(kinds(noApi.actions), ["demote", "release"]);
  assert.match(noApi.reason, /n2 not asked: its member key names no API address/);
  const older = decideWith(view(), {}, [member("n1", { role: "primary" }), member("n2", { api: API })]);
  assert.deepEqual(kinds(older.actions), ["demote", "release"], "an agent whose member key does not say it answers is not asked");
  assert.match(older.reason, /n2 not asked: its member key does not say its API answers \(an older agent, or an API on loopback\)/);
  assert.deepEqual(kinds(decideWith(undefined).actions), ["demote", "release"]);
});

test("target check, planner: a drained move asks before the drain starts and again once it is done", () => {
  const drainView = (active: NonNullable<Observation["drain"]>["active"]) => ({ drain: { unavailable: null, method: "an nftables rule", active, aborted: null } });
  const drained = (check: TargetCheckView, active: NonNullable<Observation["drain"]>["active"]) =>
    decide(primary({ targetCheck: check, ...drainView(active) }, { switchover: sw({ drainMs: 30_000 }), members: [member("n1", { role: "primary" }), n2] }));
  assert.deepEqual(kinds(drained(view(), null).actions), ["check_target"], "asked before the drain");
  assert.deepEqual(kinds(drained(view({ last: verdict() }), null).actions), ["start_drain"]);
  const active = { requestedAt: "", startedAtMs: NOW - 4000, initial: 2, sessions: 1, countError: null, gateProblem: null };
  assert.deepEqual(kinds(drained(view({ last: verdict({ atMs: NOW - 4000 }) }), active).actions), ["drain_wait"], "not asked while draining");
  const done = { ...active, sessions: 0 };
  assert.deepEqual(kinds(drained(view({ last: verdict({ atMs: NOW - 4000 }) }), done).actions), ["check_target"], "asked again once drained");
  assert.deepEqual(kinds(drained(view({ last: verdict() }), done).actions), ["demote", "release", "end_drain"]);
  const dead = drained(view({ last: verdict({ outcome: "not ready", why: "timed out", atMs: NOW - TARGET_RETRY_MS }), failingSinceMs: NOW - TARGET_GIVE_UP_MS }), done);
  assert.deepEqual(kinds(dead.actions), ["abort_switchover", "end_drain"], "cancelled, and new sessions accepted again");
});

test("judgeAnswer: alive, a standby, its loop cycling and etcd reachable; healthy unless the move is forced", () => {
  const a = (over: Partial<Extract<TargetAnswer, { kind: "answer" }>> = {}): TargetAnswer => ({ kind: "answer", acting: "standby", healthy: true, etcdReachable: true, loopAlive: true, ...over });
  const table: [TargetAnswer, boolean, TargetVerdict["outcome"], RegExp][] = [
    [a(), false, "ready", /a healthy standby/],
    [a({ healthy: false }), false, "not ready", /not healthy or not ready/],
    [a({ healthy: false }), true, "ready", /forced/],
    [a({ acting: "primary" }), true, "not ready", /acts as primary/],
    [a({ loopAlive: false }), true, "not ready", /HA loop has stalled/],
    [a({ etcdReachable: false }), true, "not ready", /cannot reach etcd/],
    [{ kind: "no answer", why: "HTTP 401: wrong req_mac" }, true, "not ready", /wrong req_mac/],
    [{ kind: "cannot ask", why: "an older version" }, false, "unchecked", /older version/],
  ];
  for (const [answer, forced, outcome, why] of table) {
    const j = judgeAnswer(answer, forced);
    assert.equal(j.outcome, outcome, JSON.stringify(answer));
    assert.match(j.why, why);
  }
});

test("TargetCheckRun: one ask at a time; the first of a run of failures is kept until a ready answer; each answer wakes the loop", async () => {
  const clock = new FakeClock();
  const answers: TargetAnswer[] = [
    { kind: "no answer", why: "timed out" },
    { kind: "no answer", why: "timed out" },
    { kind: "answer", acting: "standby", healthy: true, etcdReachable: true, loopAlive: true },
  ];
  let asks = 0;
  const woken: string[] = [];
  const run = new TargetCheckRun({ ask: async () => (asks++, answers.shift()!) }, clock, silentLogger(), (why) => woken.push(why));
  const target = { node: "n2", api: API, requestedAt: "r1", forced: false };
  run.start(target, { node: "n1", term: 7 });
  run.start(target, { node: "n1", term: 7 });
  assert.deepEqual(run.view().asking, { node: "n2", requestedAt: "r1" });
  await new Promise((r) => setImmediate(r));
  assert.equal(asks, 1, "one ask at a time");
  const first = run.view().failingSinceMs;
  assert.equal(first, clock.monotonicMs());
  await clock.advance(600);
  run.start(target, { node: "n1", term: 7 });
  await new Promise((r) => setImmediate(r));
  assert.equal(run.view().failingSinceMs, first, "the run of failures began at the first");
  assert.equal(run.view().last?.atMs, clock.monotonicMs());
  run.start(target, { node: "n1", term: 7 });
  await new Promise((r) => setImmediate(r));
  assert.equal(run.view().last?.outcome, "ready");
  assert.equal(run.view().failingSinceMs, null, "a ready answer ends the run of failures");
  assert.deepEqual(woken, ["n2 answered", "n2 answered", "n2 answered"]);
});

test("TargetCheckRun: an ask that never settles counts as failed after its timeout and a second; its late answer is ignored", async () => {
  const clock = new FakeClock();
  let settle: (a: TargetAnswer) => void = () => undefined;
  const run = new TargetCheckRun({ ask: () => new Promise<TargetAnswer>((r) => (settle = r)) }, clock, silentLogger(), () => undefined);
  run.start({ node: "n2", api: API, requestedAt: "r1", forced: false }, { node: "n1", term: 7 });
  await clock.advance(1500);
  assert.notEqual(run.view().asking, null, "still within the timeout and a second");
  await clock.advance(600);
  const v = run.view();
  assert.equal(v.asking, null);
  assert.equal(v.last?.outcome, "not ready");
  assert.match(v.last?.why ?? "", /did not settle within 2000 ms/);
  settle({ kind: "answer", acting: "standby", healthy: true, etcdReachable: true, loopAlive: true });
  await new Promise((r) => setImmediate(r));
  assert.equal(run.view().last?.outcome, "not ready", "the late answer of the abandoned ask is dropped");
});

test("failback: a preferred node that did not answer that it was ready is not asked again before `delay` has passed", () => {
  const fb = { policy: "auto" as const, preferred: "n2", delayMs: 30_000 };
  const members = [member("n1", { role: "primary" }), n2];
  const at = (over: Partial<Observation>) => decide(primary({ failback: fb, preferredReadySinceMs: NOW - 60_000, ...over }, { members }));
  assert.deepEqual(kinds(at({}).actions), ["request_failback"]);
  const failed = view({ last: verdict({ requestedAt: "r0", outcome: "not ready", why: "timed out", atMs: NOW - 10_000 }) });
  const held = at({ targetCheck: failed });
  assert.deepEqual(held.actions, [{ kind: "recheck_at", atMs: NOW + 20_000 }]);
  assert.match(held.reason, /failing back to n2 again in 20s: it did not answer that it was ready \(timed out\)/);
  assert.deepEqual(kinds(at({ targetCheck: view({ last: verdict({ requestedAt: "r0", outcome: "not ready", atMs: NOW - 30_000 }) }) }).actions), ["request_failback"]);
});

test("loops: a switchover to a target killed while its lease lives is cancelled; the primary keeps the role and the VIP", async () => {
  // ttl 30 s: n3's lease and healthy member key outlive the give-up time, so only the check can stop the move.
  const c = await runningLongLease();
  assert.equal(c.etcd.leader?.node, "n1");
  const term = c.etcd.leader!.term;
  c.nodes[2]!.life.crash(); // kill -9: its member key says healthy until the lease's TTL (5 s)
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n3" })), "requested");
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n1", "not handed to the dead target");
  assert.notEqual(c.etcd.switchover, null, "still asking");
  assert.match(c.nodes[0]!.loop.view().decision, /^switchover to n3: (asking n3 over its API|n3 is not ready \(timed out after 1000 ms\); asking again)/);
  assert.equal(c.peers.asked.length, 2, "asked, timed out after 1 s, asked again 0.5 s later");
  await c.clock.advance(TARGET_GIVE_UP_MS);
  assert.equal(c.etcd.switchover, null, "the request was cancelled");
  assert.deepEqual([c.etcd.leader?.node, c.etcd.leader?.term], ["n1", term], "n1 kept the role in its term");
  assert.deepEqual(c.timeline.holder(), ["n1"]);
  assert.equal(c.timeline.maxHolders, 1);
  const ev = c.etcd.historyEvents.find((e) => e.kind === "switchover");
  assert.match(ev?.reason ?? "", /^not done: n3 did not answer that it is ready to take over within 5s \(timed out after 1000 ms\)$/);
  assert.ok(c.etcd.members.has("n3"), "its member key was still there: the check, not the lease, stopped the move");
  assert.ok(c.peers.asked.filter((a) => a.node === "n3").length >= 3, `asked again after each failure (${c.peers.asked.length})`);
  assert.ok(
    c.peers.asked.every((a) => a.from === "n1" && a.term === term),
    "asked by the primary, in its term",
  );
});

test("loops: a switchover to a live target asks it once, then hands over", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), "requested");
  await c.clock.advance(50);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.deepEqual(
    c.peers.asked.map((a) => a.node),
    ["n2"],
  );
  assert.equal(c.timeline.maxHolders, 1);
});

test("loops: a node whose API listens on loopback does not say it answers; a move to it goes on unasked", async () => {
  const c = await running([
    ["n1", 300],
    ["n2", 200],
  ]);
  const n2 = c.nodes[1]!;
  await n2.loop.stop();
  const again = restarted(c, 1, 200, { apiAnswersPeers: false });
  await again.start();
  await c.clock.advance(2000);
  assert.equal(c.etcd.members.get("n2")?.member.answersReady, undefined, "its member key does not claim it");
  assert.equal(c.etcd.members.get("n1")?.member.answersReady, true);
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2" })), "requested");
  await c.clock.advance(50);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.deepEqual(c.peers.asked, [], "not asked");
  await again.stop();
});
