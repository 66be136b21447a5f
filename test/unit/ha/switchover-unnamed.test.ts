// A switchover whose requester named no target (src/ha/switchover.ts unnamedTarget): none at all, or
// the API's pick of the best candidate (SwitchoverRequest.chosen). The pick, else the best candidate
// ranked as a failover ranks them (data lag included), is asked first; one that answers this request
// "not ready" is passed over while another eligible candidate has not, as Patroni's switchover
// without a candidate takes any healthy member; when every one has refused, the best is asked again
// and the move is cancelled after TARGET_GIVE_UP_MS. A target the requester named is never swapped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { Action, Observation } from "../../../src/ha/observation.js";
import type { DataLagRecord, MemberRecord } from "../../../src/coordinator/port.js";
import { refusedBy, TARGET_GIVE_UP_MS, TARGET_RETRY_MS, type TargetCheckView, type TargetVerdict } from "../../../src/ha/target-check.js";
import { TargetCheckRun } from "../../../src/ha/target-check-run.js";
import type { TargetAnswer } from "../../../src/ha/ports.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { member } from "../../fakes/member.js";
import { NOW, primary, sw } from "./decide-fixture.js";
import { request, runningLongLease } from "./loop-fixture.js";

const api = (n: string) => `http://${n}.test:8080`;
// Every member states its lease: the key can be handed over in one transaction (switchover.ts handOverTo).
const n2 = member("n2", { api: api("n2"), answersReady: true, priority: 200, lease: "a2" });
const n3 = member("n3", { api: api("n3"), answersReady: true, priority: 100, lease: "a3" });
const MEMBERS = [member("n1", { role: "primary", lease: "a1" }), n2, n3];
/** The same members as an agent from before leases were stated in member keys shows them: no handover in one transaction. */
const UNLEASED = MEMBERS.map(({ lease: _lease, ...m }) => m);
const REQ = "2026-12-08T01:00:00.000Z";
const verdict = (node: string, over: Partial<TargetVerdict> = {}): TargetVerdict => ({ node, requestedAt: REQ, atMs: NOW - 10, outcome: "ready", why: "a healthy standby", ...over });
const refused = (...nodes: [string, string][]): NonNullable<TargetCheckView["refused"]> => ({ requestedAt: REQ, nodes: nodes.map(([node, why]) => ({ node, why })) });
const view = (over: Partial<TargetCheckView> = {}): TargetCheckView => ({ asking: null, last: null, failingSinceMs: null, ...over });
const unnamed = (check: TargetCheckView, over: Partial<Observation> = {}, cl: Partial<NonNullable<Observation["cluster"]>> = {}) =>
  decide(primary({ targetCheck: check, ...over }, { switchover: sw({ to: null, requestedAt: REQ }), members: MEMBERS, ...cl }));
const kinds = (a: readonly Action[]) => a.map((x) => x.kind);
const asked = (a: readonly Action[]) => a.flatMap((x) => (x.kind === "check_target" ? [x.node] : []));

test("unnamed: the best candidate (priority) is asked first", () => {
  const d = unnamed(view());
  assert.deepEqual(asked(d.actions), ["n2"]);
  assert.match(d.reason, /^switchover to n2: asking n2 over its API/);
});

test("unnamed: a candidate that answered not ready is passed over for the next, at once; the move names it", () => {
  const timedOut = view({ last: verdict("n2", { outcome: "not ready", why: "timed out after 1000 ms" }), failingSinceMs: NOW - 10, refused: refused(["n2", "timed out after 1000 ms"]) });
  const ask = unnamed(timedOut);
  assert.deepEqual(asked(ask.actions), ["n3"], "not n2 again, not a wait for the retry interval");
  const ready = unnamed({ ...timedOut, last: verdict("n3") });
  assert.deepEqual(kinds(ready.actions), ["demote", "release"]);
  assert.match(
    ready.reason,
    /^switchover: handing over to n3 \(n3 answered it is a healthy standby; n2 passed over: it answered it is not ready \(timed out after 1000 ms\); the leader key passed in one transaction\)/,
  );
  const release = ready.actions[1] as Extract<Action, { kind: "release" }>;
  assert.equal(release.handTo?.node, "n3");
  assert.match(release.cancelIfNotHanded ?? "", /^the leader key could not be handed to n3 \(the cluster changed\); n2 passed over: /, "cancelled if the handover txn fails");
  const first = unnamed(view({ last: verdict("n2") })).actions[1] as Extract<Action, { kind: "release" }>;
  assert.equal(first.cancelIfNotHanded, undefined, "the first choice is released as before when the handover fails");
});

test("unnamed: no other node is taken when the key could only be released (a member states no lease)", () => {
  const timedOut = view({ last: verdict("n2", { outcome: "not ready", why: "timed out", atMs: NOW - 100 }), failingSinceMs: NOW - 100, refused: refused(["n2", "timed out"]) });
  const d = unnamed(timedOut, {}, { members: UNLEASED });
  assert.deepEqual(kinds(d.actions), ["recheck_at"]);
  assert.match(d.reason, /^switchover to n2: n2 is not ready \(timed out\); asking again$/);
});

test("unnamed: every candidate refused -> the one asked last is asked again, whatever the ranking, and the move is cancelled after the give-up time", () => {
  const both = refused(["n2", "it cannot reach etcd"], ["n3", "timed out after 1000 ms"]);
  const n3Failing = (since: number) => view({ last: verdict("n3", { outcome: "not ready", why: "timed out after 1000 ms", atMs: NOW - TARGET_RETRY_MS }), failingSinceMs: since, refused: both });
  assert.deepEqual(asked(unnamed(n3Failing(NOW - 2000)).actions), ["n3"], "n3, not n2 that ranks above it: its run of failures goes on");
  const gone = unnamed(n3Failing(NOW - TARGET_GIVE_UP_MS));
  assert.deepEqual(kinds(gone.actions), ["abort_switchover"]);
  assert.match(gone.reason, /^switchover not possible: n3 did not answer that it is ready to take over within 5s \(timed out after 1000 ms\)/);
  const sickN3 = MEMBERS.map((m) => (m.node === "n3" ? { ...m, healthy: false } : m));
  assert.deepEqual(asked(unnamed(n3Failing(NOW - 2000), {}, { members: sickN3 }).actions), ["n2"], "the one asked last no longer eligible: the best again");
});

test("unnamed: a refused candidate is not passed over for one that is not eligible", () => {
  const sick = [MEMBERS[0]!, n2, { ...n3, healthy: false }];
  const d = unnamed(
    view({ last: verdict("n2", { outcome: "not ready", why: "timed out", atMs: NOW - TARGET_RETRY_MS }), failingSinceMs: NOW - 1000, refused: refused(["n2", "timed out"]) }),
    {},
    { members: sick },
  );
  assert.deepEqual(asked(d.actions), ["n2"]);
});

test("unnamed: refusals of another request do not count", () => {
  const old = view({ refused: { requestedAt: "2026-12-07T00:00:00.000Z", nodes: [{ node: "n2", why: "timed out" }] } });
  assert.deepEqual(asked(unnamed(old).actions), ["n2"]);
  assert.equal(refusedBy(old, REQ).size, 0);
});

test("named: a target that refused is asked again, never swapped for another", () => {
  const d = decide(
    primary(
      { targetCheck: view({ last: verdict("n2", { outcome: "not ready", why: "timed out", atMs: NOW - TARGET_RETRY_MS }), failingSinceMs: NOW - 1000, refused: refused(["n2", "timed out"]) }) },
      { switchover: sw({ to: "n2", requestedAt: REQ }), members: MEMBERS },
    ),
  );
  assert.deepEqual(asked(d.actions), ["n2"]);
});

test("unnamed with data roots: the candidate with less data lag ranks above a higher priority, as in a failover", () => {
  const lag = (files: number, bytes: number): DataLagRecord => ({ acked: 1, files, bytes, seconds: files ? 2 : 0, full: false, paused: null });
  const dataProgress = { node: "n1", term: 7, head: 40, at: "2026-12-08T01:00:00.000Z", standbys: { n2: lag(5, 5_000_000), n3: lag(0, 0) } };
  assert.deepEqual(asked(unnamed(view(), { data: { maximumLagBytes: 64 * 1024 * 1024 } }, { dataProgress }).actions), ["n3"]);
  assert.deepEqual(asked(unnamed(view(), {}, { dataProgress }).actions), ["n2"], "a node without data roots ranks as before");
});

test("chosen by the API: asked first while eligible; passed over when it refuses; the new primary records the move done", () => {
  const chosen = (check: TargetCheckView, members = MEMBERS) => decide(primary({ targetCheck: check }, { switchover: sw({ to: "n3", chosen: true, requestedAt: REQ }), members }));
  assert.deepEqual(asked(chosen(view()).actions), ["n3"], "the API's pick, though n2 ranks higher now");
  const refusedN3 = view({ last: verdict("n3", { outcome: "not ready", why: "it cannot reach etcd" }), failingSinceMs: NOW - 10, refused: refused(["n3", "it cannot reach etcd"]) });
  assert.deepEqual(asked(chosen(refusedN3).actions), ["n2"]);
  const ready = chosen({ ...refusedN3, last: verdict("n2") });
  assert.deepEqual(kinds(ready.actions), ["demote", "release"]);
  assert.equal((ready.actions[1] as Extract<Action, { kind: "release" }>).handTo?.node, "n2", "handed to n2 in the release's transaction");
  // A member that does not state its lease: the key would be released, the standbys would wait for n3
  // and n1 could win it back; so n3 is asked again, as for a named target.
  const kept = chosen(refusedN3, UNLEASED);
  assert.deepEqual(kinds(kept.actions), ["recheck_at"]);
  assert.match(kept.reason, /^switchover to n3: n3 is not ready \(it cannot reach etcd\); asking again$/);
  assert.match(
    ready.reason,
    /^switchover: handing over to n2 \(n2 answered it is a healthy standby; n3 passed over: it answered it is not ready \(it cannot reach etcd\); the leader key passed in one transaction\)/,
  );
  // On n2, now primary in term 8: a chosen target passed over for me is this request's move when n1
  // handed the key over for it (its release record); a failover that overtook it is not.
  const onN2 = (request: ReturnType<typeof sw>, released: NonNullable<Observation["cluster"]>["released"]) =>
    decide(
      primary(
        { self: { name: "n2", priority: 200, nofailover: false, generation: 0 }, term: 8, servingSinceMs: NOW - 1000 },
        { leader: { node: "n2", term: 8, lease: "a2", acquiredAt: "" }, switchover: request, released, members: [member("n1"), member("n2", { role: "primary" }), n3] },
      ),
    );
  const handed = { node: "n1", term: 7, at: "2026-12-08T01:00:02.000Z", why: "switchover" as const };
  assert.deepEqual(kinds(onN2(sw({ to: "n3", chosen: true, requestedAt: REQ }), handed).actions), ["complete_switchover"]);
  const overtaken: [string, NonNullable<Observation["cluster"]>["released"]][] = [
    ["no release record (n1 died: a failover)", null],
    ["released by another node", { ...handed, node: "n3" }],
    ["released for a health handover", { ...handed, why: "handover" }],
    ["a release older than the request", { ...handed, at: "2026-12-08T00:50:00.000Z" }],
  ];
  for (const [name, released] of overtaken) {
    const d = onN2(sw({ to: "n3", chosen: true, requestedAt: REQ }), released);
    assert.deepEqual(kinds(d.actions), ["abort_switchover"], name);
    assert.match(d.reason, /not done: the role went to n2 \(term 8\), not to n3/, name);
  }
  assert.deepEqual(kinds(onN2(sw({ to: "n3", requestedAt: REQ }), handed).actions), ["abort_switchover"], "a named target that did not get the role: not done, as before");
});

test("TargetCheckRun: refusals are kept per request, one per node, dropped by a ready answer or a new request", async () => {
  const clock = new FakeClock();
  const answers = new Map<string, TargetAnswer[]>([
    [
      "n2",
      [
        { kind: "no answer", why: "timed out" },
        { kind: "answer", acting: "standby", healthy: true, etcdReachable: true, loopAlive: true },
      ],
    ],
    [
      "n3",
      [
        { kind: "answer", acting: "standby", healthy: false, etcdReachable: true, loopAlive: true },
        { kind: "no answer", why: "refused" },
      ],
    ],
  ]);
  const run = new TargetCheckRun({ ask: async (t) => answers.get(t.node)!.shift()! }, clock, silentLogger(), () => undefined);
  const ask = async (node: string, requestedAt = "r1") => {
    run.start({ node, api: api(node), requestedAt, forced: false }, { node: "n1", term: 7 });
    await new Promise((r) => setImmediate(r));
  };
  assert.equal(run.view().refused, undefined);
  await ask("n2");
  await ask("n3");
  assert.deepEqual(run.view().refused, {
    requestedAt: "r1",
    nodes: [
      { node: "n2", why: "timed out" },
      { node: "n3", why: "it says it is not healthy or not ready" },
    ],
  });
  await ask("n2");
  assert.deepEqual(run.view().refused?.nodes, [{ node: "n3", why: "it says it is not healthy or not ready" }], "a ready answer clears its refusal");
  await ask("n3", "r2");
  assert.deepEqual(run.view().refused, { requestedAt: "r2", nodes: [{ node: "n3", why: "refused" }] }, "a new request starts afresh");
});

test("loops: a switchover whose API-chosen target was killed while its lease lives goes to the next one", async () => {
  // ttl 30 s: n2's lease and healthy member key outlive the move, so only the check can tell.
  const c = await runningLongLease();
  assert.equal(c.etcd.leader?.node, "n1");
  c.nodes[1]!.life.crash(); // kill -9 of n2, the best candidate
  // As the API writes it for a request naming no node: its pick of the best candidate, marked chosen.
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2", chosen: true, requestedAt: new Date(c.clock.wallMs()).toISOString() })), "requested");
  await c.clock.advance(3000);
  assert.equal(c.etcd.leader?.node, "n3", "handed to the next candidate, not cancelled");
  assert.deepEqual(
    c.peers.asked.map((a) => a.node),
    ["n2", "n3"],
    "n2 asked once (timed out), then n3",
  );
  assert.equal(c.timeline.maxHolders, 1);
  await c.clock.advance(1000);
  const ev = c.etcd.historyEvents.find((e) => e.kind === "switchover");
  assert.ok(ev, "the move was recorded");
  assert.doesNotMatch(ev.reason ?? "", /not done/);
});

test("loops: the key cannot be handed to the node taken instead after all -> the request is cancelled before the release, no second move", async () => {
  const c = await runningLongLease();
  const old = c.etcd.leader!;
  assert.equal(old.node, "n1");
  c.nodes[1]!.life.crash(); // n2, the API's pick, dead while its lease lives
  c.etcd.handOver = async () => (c.etcd.calls.push("handOver"), null); // the txn's compare fails (the cluster changed)
  assert.ok(await c.etcd.requestSwitchover(request(c, { to: "n2", chosen: true, requestedAt: new Date(c.clock.wallMs()).toISOString() })), "requested");
  await c.clock.advance(3000);
  assert.ok(c.etcd.calls.includes("handOver") && c.etcd.calls.includes("release"), c.etcd.calls.join(","));
  assert.equal(c.etcd.switchover, null, "cancelled");
  const ev = c.etcd.historyEvents.filter((e) => e.kind === "switchover");
  assert.equal(ev.length, 1, JSON.stringify(ev));
  assert.match(ev[0]!.reason, /^not done: the leader key could not be handed to n3 \(the cluster changed\); n2 passed over: it answered it is not ready/);
  await c.clock.advance(5000);
  assert.ok(c.etcd.leader !== null && c.etcd.leader.term > old.term, "an election filled the vacancy");
  assert.equal(c.etcd.calls.filter((k) => k === "handOver").length, 1, "no second move: the request was gone");
  assert.equal(c.timeline.maxHolders, 1);
});

test("chosen by the API, then gone or unfit: another standby that can be handed the key, else cancelled as before", () => {
  const req = sw({ to: "n3", chosen: true, requestedAt: REQ });
  const at = (members: readonly MemberRecord[], check: TargetCheckView = view()) => decide(primary({ targetCheck: check }, { switchover: req, members }));
  const gone = at([MEMBERS[0]!, n2]);
  assert.deepEqual(asked(gone.actions), ["n2"]);
  const goneReady = at([MEMBERS[0]!, n2], view({ last: verdict("n2") }));
  assert.match(goneReady.reason, /^switchover: handing over to n2 \(n2 answered it is a healthy standby; n3 passed over: it is no longer a live standby; the leader key passed in one transaction\)/);
  const unfit = at([MEMBERS[0]!, n2, { ...n3, healthy: false }], view({ last: verdict("n2") }));
  assert.match(unfit.reason, /n3 passed over: it is not a healthy, ready standby/);
  const goneUnleased = at([UNLEASED[0]!, UNLEASED[1]!]);
  assert.deepEqual(kinds(goneUnleased.actions), ["abort_switchover"]);
  assert.match(goneUnleased.reason, /^switchover not possible: n3 is not a live standby and no other can be handed the key in one transaction/);
  const unfitUnleased = at([UNLEASED[0]!, UNLEASED[1]!, { ...UNLEASED[2]!, healthy: false }]);
  assert.match(unfitUnleased.reason, /^switchover not possible: n3 is not a healthy, ready standby/, "refused as before");
});
