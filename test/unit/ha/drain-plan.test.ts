import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { Action, Observation } from "../../../src/ha/observation.js";
import type { SwitchoverRequest } from "../../../src/coordinator/port.js";
import type { ActiveDrain, DrainView } from "../../../src/ha/drain-plan.js";
import { member } from "../../fakes/member.js";

// Every phase of a drained switchover (src/ha/drain-plan.ts) through decide():
// start, waiting, done, timed out, aborted, and settleDrain's rule that any
// decision not carrying the switchover on ends the drain.

const NOW = 100_000;
const WALL = Date.UTC(2026, 11, 5, 3, 0, 0);
const REQ = "2026-12-05T02:59:00.000Z";

const sw = (over: Partial<SwitchoverRequest> = {}): SwitchoverRequest => ({
  kind: "switchover",
  from: "n1",
  to: "n2",
  at: null,
  force: false,
  requestedBy: "ops",
  reason: "",
  requestedAt: REQ,
  drainMs: 30_000,
  ...over,
});

const METHOD = "an nftables rule (table inet understudy_drain) on 198.18.0.100 port 22";
const view = (over: Partial<DrainView> = {}): DrainView => ({ unavailable: null, method: METHOD, active: null, aborted: null, ...over });
const active = (over: Partial<ActiveDrain> = {}): ActiveDrain => ({ requestedAt: REQ, startedAtMs: NOW - 4000, initial: 2, sessions: 2, countError: null, gateProblem: null, ...over });

function primary(over: Partial<Observation> = {}, cluster: Partial<NonNullable<Observation["cluster"]>> | null = {}): Observation {
  return {
    nowMs: NOW,
    wallNowMs: WALL,
    self: { name: "n1", priority: 100, nofailover: false, generation: 0 },
    mode: "cold",
    acting: "primary",
    term: 7,
    servingSinceMs: null,
    lease: { id: "a1", deadlineMs: NOW + 4000 },
    cluster:
      cluster === null
        ? null
        : {
            revision: 10,
            leader: { node: "n1", term: 7, lease: "a1", acquiredAt: "" },
            members: [member("n1", { role: "primary" }), member("n2")],
            paused: false,
            switchover: sw(),
            released: null,
            bans: [],
            sync: null,
            ...cluster,
          },
    etcdError: cluster === null ? "partitioned" : null,
    vacantSinceMs: null,
    daemon: { running: true, probesUp: true, recentRestarts: 0 },
    restartsBeforeHandover: 1,
    rankingDelayMs: 500,
    coolDownUntilMs: 0,
    coolDownMs: 10_000,
    notReady: null,
    failback: { policy: "manual", preferred: null, delayMs: 300_000 },
    preferredReadySinceMs: null,
    switchoverWaitMs: 1500,
    sync: { enabled: true, behindSinceMs: null, maximumLagMs: 60_000 },
    drain: view(),
    ...over,
  };
}

function withoutDrain(o: Observation): Observation {
  const { drain: _, ...rest } = o;
  return rest;
}

interface Case {
  name: string;
  o: Observation;
  actions: string[];
  reason: RegExp;
  check?: (actions: readonly Action[]) => void;
}

const release = (actions: readonly Action[]) => actions.find((a): a is Extract<Action, { kind: "release" }> => a.kind === "release");
const endOf = (actions: readonly Action[]) => actions.find((a): a is Extract<Action, { kind: "end_drain" }> => a.kind === "end_drain");

const cases: Case[] = [
  {
    name: "no drain asked -> move at once, as before",
    o: primary({}, { switchover: (({ drainMs: _, ...rest }) => rest)(sw()) }),
    actions: ["demote", "release"],
    reason: /^switchover: handing over to n2$/,
    check: (a) => assert.equal(release(a)!.drain, undefined),
  },
  {
    name: "drain asked, this agent cannot drain (no view) -> cancelled",
    o: withoutDrain(primary()),
    actions: ["abort_switchover"],
    reason: /^switchover not possible: cannot drain: this agent has no drain support; cancelling$/,
  },
  {
    name: "drain asked, no service port -> cancelled",
    o: primary({ drain: view({ unavailable: "no service port to count sessions on" }) }),
    actions: ["abort_switchover"],
    reason: /cannot drain: no service port to count sessions on; cancelling$/,
  },
  {
    name: "drain asked, none running -> start it",
    o: primary(),
    actions: ["start_drain"],
    reason: /^switchover to n2: refusing new sessions with an nftables rule .* and draining for up to 30s$/,
    check: (a) => assert.deepEqual(a[0], { kind: "start_drain", requestedAt: REQ }),
  },
  {
    name: "a drain running for an older request -> start one for this request",
    o: primary({ drain: view({ active: active({ requestedAt: "2026-12-05T01:00:00.000Z" }) }) }),
    actions: ["start_drain"],
    reason: /refusing new sessions/,
  },
  {
    name: "the gate failed -> accept again and cancel",
    o: primary({ drain: view({ active: active({ gateProblem: "nft (needed by drain.gate firewall) was not found" }) }) }),
    actions: ["end_drain", "abort_switchover"],
    reason: /^switchover not possible: cannot refuse new sessions with an nftables rule .*: nft .* was not found; cancelling$/,
    check: (a) => assert.equal(endOf(a)!.outcome, "aborted"),
  },
  {
    name: "sessions left within the duration -> wait a second and count again",
    o: primary({ drain: view({ active: active() }) }),
    actions: ["drain_wait"],
    reason: /^switchover to n2: draining, 2 sessions left, 4s of 30s waited \(new sessions refused by an nftables rule/,
    check: (a) => assert.deepEqual(a[0], { kind: "drain_wait", atMs: NOW + 1000 }),
  },
  {
    name: "one session left half a second before the end -> recheck at the end, not later",
    o: primary({ drain: view({ active: active({ startedAtMs: NOW - 29_500, sessions: 1 }) }) }),
    actions: ["drain_wait"],
    reason: /draining, 1 session left, 29\.5s of 30s waited/,
    check: (a) => assert.deepEqual(a[0], { kind: "drain_wait", atMs: NOW + 500 }),
  },
  {
    name: "the count fails within the duration -> keep waiting, say so",
    o: primary({ drain: view({ active: active({ sessions: null, countError: "EACCES /proc/net/tcp" }) }) }),
    actions: ["drain_wait"],
    reason: /draining, sessions not counted \(EACCES \/proc\/net\/tcp\), 4s of 30s waited/,
  },
  {
    name: "no session left -> move, then accept again; drained = those at the start",
    o: primary({ drain: view({ active: active({ sessions: 0 }) }) }),
    actions: ["demote", "release", "end_drain"],
    reason: /^switchover: handing over to n2 after draining for 4s: no session left \(2 sessions drained\)$/,
    check: (a) => {
      assert.deepEqual(release(a)!.drain, { drained: 2, cut: 0, waitedMs: 4000 });
      assert.equal(endOf(a)!.outcome, "moved");
    },
  },
  {
    name: "duration over with sessions left -> move and cut them",
    o: primary({ drain: view({ active: active({ startedAtMs: NOW - 30_000, initial: 3, sessions: 1 }) }) }),
    actions: ["demote", "release", "end_drain"],
    reason: /^switchover: handing over to n2 after the drain timed out at 30s: cutting 1 session$/,
    check: (a) => assert.deepEqual(release(a)!.drain, { drained: 2, cut: 1, waitedMs: 30_000 }),
  },
  {
    name: "duration over, sessions never counted -> move; cut unknown",
    o: primary({ drain: view({ active: active({ startedAtMs: NOW - 31_000, initial: null, sessions: null, countError: "EIO" }) }) }),
    actions: ["demote", "release", "end_drain"],
    reason: /timed out at 30s: sessions not counted \(EIO\)$/,
    check: (a) => assert.deepEqual(release(a)!.drain, { drained: 0, waitedMs: 31_000 }),
  },
  {
    name: "this request's drain was aborted (etcd lost) -> cancel it, not drain again",
    o: primary({ drain: view({ aborted: { requestedAt: REQ, why: "etcd unreachable (partitioned)" } }) }),
    actions: ["abort_switchover"],
    reason: /^switchover not possible: its drain was aborted \(etcd unreachable \(partitioned\)\); cancelling$/,
  },
  {
    name: "an older request's drain was aborted -> this one drains",
    o: primary({ drain: view({ aborted: { requestedAt: "2026-12-05T01:00:00.000Z", why: "x" } }) }),
    actions: ["start_drain"],
    reason: /refusing new sessions/,
  },
  {
    name: "scheduled and not due -> no drain yet",
    o: primary({}, { switchover: sw({ at: new Date(WALL + 60_000).toISOString() }) }),
    actions: ["recheck_at"],
    reason: /scheduled at/,
  },
  {
    name: "scheduled and due -> the drain starts",
    o: primary({}, { switchover: sw({ at: new Date(WALL - 1000).toISOString() }) }),
    actions: ["start_drain"],
    reason: /refusing new sessions/,
  },
  // settleDrain: any decision that does not carry the switchover on ends the drain.
  {
    // One failed read must not cancel a long drain: the lease still holds, so the node stays primary and keeps
    // draining; past the deadline the fence ends the drain (next case, and loop.ts).
    name: "etcd unreachable mid-drain, lease valid -> hold, keep draining",
    o: primary({ drain: view({ active: active() }) }, null),
    actions: [],
    reason: /^holding: etcd unreachable \(partitioned\); lease valid for \d+ms more, fencing at the deadline$/,
  },
  {
    name: "request cancelled mid-drain -> accept again",
    o: primary({ drain: view({ active: active() }) }, { switchover: null }),
    actions: ["end_drain"],
    reason: /^no action: .*; ending the drain: the switchover request is gone \(cancelled\)$/,
  },
  {
    name: "target unfit mid-drain -> cancel, accept again",
    o: primary({ drain: view({ active: active() }) }, { members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    actions: ["abort_switchover", "end_drain"],
    reason: /^switchover not possible: n2 is not a healthy, ready standby; cancelling; ending the drain: the switchover will not go ahead$/,
    check: (a) => assert.equal((a[0] as Extract<Action, { kind: "abort_switchover" }>).why, "n2 is not a healthy, ready standby; drain ended after 4s with 2 sessions left"),
  },
  {
    name: "lease deadline passed mid-drain -> demote, accept again",
    o: primary({ drain: view({ active: active() }), lease: { id: "a1", deadlineMs: NOW - 1 } }),
    actions: ["demote", "end_drain"],
    reason: /^demoting: lease deadline passed; ending the drain: the switchover will not go ahead$/,
  },
  {
    name: "leader key names another node mid-drain -> demote, accept again",
    o: primary({ drain: view({ active: active() }) }, { leader: { node: "n2", term: 8, lease: "b", acquiredAt: "" } }),
    actions: ["demote", "end_drain"],
    reason: /demoting: the leader key names n2.*; ending the drain/,
  },
  {
    name: "no longer primary (fenced) with a drain on -> accept again",
    o: primary(
      { acting: "standby", term: null, daemon: { running: false, probesUp: true, recentRestarts: 0 }, drain: view({ active: active() }) },
      { leader: { node: "n2", term: 8, lease: "b", acquiredAt: "" } },
    ),
    actions: ["end_drain"],
    reason: /^no action: following n2 \(term 8\); ending the drain: this node is no longer the primary$/,
  },
];

for (const c of cases) {
  test(`drain plan: ${c.name}`, () => {
    const d = decide(c.o);
    assert.deepEqual(
      d.actions.map((a) => a.kind),
      c.actions,
      d.reason,
    );
    assert.match(d.reason, c.reason);
    c.check?.(d.actions);
  });
}

test("drain plan: catching up on sync while this request's drain runs keeps the drain (no end_drain)", () => {
  const req = new Date(WALL - 1000).toISOString();
  const o = primary(
    { drain: view({ active: active({ requestedAt: req }) }) },
    {
      members: [member("n1", { role: "primary", generation: 5 }), member("n2", { generation: 4 })],
      sync: { generation: 5, digest: "d", roots: {}, files: 1, source: "n1", term: 7, publishedAt: "" },
      switchover: sw({ requestedAt: req }),
    },
  );
  const d = decide(o);
  assert.deepEqual(
    d.actions.map((a) => a.kind),
    ["recheck_at"],
  );
  assert.match(d.reason, /waiting for n2 to catch up/);
});

test("drain plan: without a drain running, no decision gains an end_drain", () => {
  for (const o of [primary({}, null), primary({}, { switchover: null }), primary({ acting: "standby", term: null }, { leader: null, switchover: null })]) {
    assert.equal(
      decide(o).actions.some((a) => a.kind === "end_drain"),
      false,
    );
  }
});

test("drain plan: a target behind during a long drain is waited for; it is cancelled only 30 s after the drain's duration", () => {
  const behind = {
    members: [member("n1", { role: "primary", generation: 5 }), member("n2", { generation: 4 })],
    sync: { generation: 5, digest: "d", roots: {}, files: 1, source: "n1", term: 7, publishedAt: "" },
  };
  // Requested 10 min ago with a 15 min drain, draining for 9m50s: still waiting for the target.
  const req = new Date(WALL - 600_000).toISOString();
  const long = (startedAgoMs: number) =>
    decide(primary({ drain: view({ active: active({ requestedAt: req, startedAtMs: NOW - startedAgoMs }) }) }, { ...behind, switchover: sw({ requestedAt: req, drainMs: 900_000 }) }));
  assert.deepEqual(
    long(590_000).actions.map((a) => a.kind),
    ["recheck_at"],
  );
  // Requested 16 min ago, drain ran its 15 min, 50 s more behind: cancelled (and the drain ended).
  const old = new Date(WALL - 960_000).toISOString();
  const d = decide(primary({ drain: view({ active: active({ requestedAt: old, startedAtMs: NOW - 950_000 }) }) }, { ...behind, switchover: sw({ requestedAt: old, drainMs: 900_000 }) }));
  assert.deepEqual(
    d.actions.map((a) => a.kind),
    ["abort_switchover", "end_drain"],
  );
  assert.match(d.reason, /did not catch up to sync generation 5 within 30s/);
});

test("switchover scheduled long ago: the catch-up wait counts from its time, not from when it was requested", () => {
  const d = decide(
    primary(
      {},
      {
        members: [member("n1", { role: "primary", generation: 5 }), member("n2", { generation: 4 })],
        sync: { generation: 5, digest: "d", roots: {}, files: 1, source: "n1", term: 7, publishedAt: "" },
        switchover: (({ drainMs: _, ...rest }) => rest)(sw({ requestedAt: new Date(WALL - 7_200_000).toISOString(), at: new Date(WALL - 1000).toISOString() })),
      },
    ),
  );
  assert.deepEqual(
    d.actions.map((a) => a.kind),
    ["recheck_at"],
  );
  assert.match(d.reason, /waiting for n2 to catch up/);
});
