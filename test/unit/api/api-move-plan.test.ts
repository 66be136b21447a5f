import { test } from "node:test";
import assert from "node:assert/strict";
import { failbackTarget, planMove, type MoveBody, type MovePlan } from "../../../src/api/move-plan.js";
import type { ClusterSnapshot, MemberRecord, SwitchoverRequest } from "../../../src/coordinator/port.js";

// The API's choice of switchover target (issue 15): a pure planner, one row per outcome.

const WALL = Date.UTC(2026, 11, 4, 20, 0, 0);

function member(node: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return {
    node,
    role: "standby",
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 5,
    address: "198.18.0.1",
    version: "t",
    decision: "",
    probes: {},
    vipHeld: false,
    daemonRunning: false,
    updatedAt: "2026-12-04T14:00:00.000Z",
    ...over,
  };
}

const PUB: NonNullable<ClusterSnapshot["sync"]> = { generation: 5, digest: "sha256:ab", roots: {}, files: 1, source: "n1", term: 4, publishedAt: "2026-12-04T19:59:00.000Z" };
const syncState = (over: Partial<NonNullable<MemberRecord["sync"]>>): NonNullable<MemberRecord["sync"]> => ({
  behindSince: null,
  lastSuccessAt: null,
  lastError: null,
  failures: 0,
  rescues: 0,
  waiting: null,
  ...over,
});

function snap(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    revision: 1,
    leader: { node: "n1", term: 4, lease: "a", acquiredAt: "" },
    members: [member("n1", { role: "primary" }), member("n2"), member("n3", { priority: 50 })],
    paused: false,
    switchover: null,
    released: null,
    bans: [],
    sync: null,
    ...over,
  };
}

const ban = (node: string) => ({ node, until: "", requestedBy: "ops", reason: "" });
const pending: SwitchoverRequest = { kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "ops", reason: "", requestedAt: "" };

interface Row {
  name: string;
  snap: ClusterSnapshot;
  kind: SwitchoverRequest["kind"];
  body: MoveBody;
  want: MovePlan;
}

const rows: Row[] = [
  { name: "named healthy standby", snap: snap(), kind: "switchover", body: { to: "n2" }, want: { ok: true, to: "n2", reason: "switchover to n2: named by the request" } },
  {
    name: "no target: the best standby by priority",
    snap: snap(),
    kind: "switchover",
    body: {},
    want: {
      ok: true,
      to: "n2",
      chosen: true,
      reason: "switchover to n2: the best candidate (healthy, ready, sync generation 5, priority 100); another is taken if it does not answer that it is ready",
    },
  },
  {
    name: "no target: a newer sync generation outranks priority",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { priority: 900, generation: 4 }), member("n3", { priority: 1 })] }),
    kind: "switchover",
    body: {},
    want: { ok: true, to: "n3", chosen: true, reason: "switchover to n3: the best candidate (healthy, ready, sync generation 5, priority 1); another is taken if it does not answer that it is ready" },
  },
  {
    name: "no target: banned, unhealthy and nofailover standbys are skipped",
    snap: snap({
      members: [
        member("n1", { role: "primary" }),
        member("n2", { priority: 900 }),
        member("n3", { healthy: false, priority: 800 }),
        member("n4", { nofailover: true, priority: 700 }),
        member("n5", { priority: 2 }),
      ],
      bans: [ban("n2")],
    }),
    kind: "switchover",
    body: {},
    want: { ok: true, to: "n5", chosen: true, reason: "switchover to n5: the best candidate (healthy, ready, sync generation 5, priority 2); another is taken if it does not answer that it is ready" },
  },
  {
    name: "no target: only a stale primary-keyed member is eligible -> the primary picks later",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { role: "primary" })] }),
    kind: "switchover",
    body: {},
    want: { ok: true, to: null, reason: "switchover to the best candidate when the primary hands over: no live standby to name now" },
  },
  { name: "failback to the preferred node", snap: snap(), kind: "failback", body: { to: "n3" }, want: { ok: true, to: "n3", reason: "failback to n3: named by the request" } },
  {
    name: "forced failover to an unhealthy node",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    kind: "failover",
    body: { to: "n2", force: true },
    want: { ok: true, to: "n2", reason: "failover to n2: named by the request (forced)" },
  },
  { name: "failover without a primary", snap: snap({ leader: null }), kind: "failover", body: { to: "n2" }, want: { ok: true, to: "n2", reason: "failover to n2: named by the request" } },
  { name: "refused: another request pending", snap: snap({ switchover: pending }), kind: "switchover", body: {}, want: { ok: false, status: 412, message: "a switchover to n2 is already pending" } },
  {
    name: "refused: a time in the past",
    snap: snap(),
    kind: "switchover",
    body: { to: "n2", at: new Date(WALL - 60_000).toISOString() },
    want: { ok: false, status: 400, message: `at "${new Date(WALL - 60_000).toISOString()}" must be a time in the future` },
  },
  {
    name: "refused: no primary to switch over from",
    snap: snap({ leader: null }),
    kind: "switchover",
    body: {},
    want: { ok: false, status: 412, message: "there is no primary to switchover from; use failover --to NODE" },
  },
  { name: "refused: the target is the primary", snap: snap(), kind: "switchover", body: { to: "n1" }, want: { ok: false, status: 412, message: "n1 is already the primary" } },
  {
    name: "refused: no eligible standby",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    kind: "switchover",
    body: {},
    want: { ok: false, status: 412, message: "no healthy, ready standby to switch over to" },
  },
  { name: "refused: unknown target", snap: snap(), kind: "switchover", body: { to: "n9" }, want: { ok: false, status: 412, message: "n9 is not a live member of the cluster" } },
  { name: "refused: banned target", snap: snap({ bans: [ban("n2")] }), kind: "switchover", body: { to: "n2" }, want: { ok: false, status: 412, message: "n2 is banned" } },
  {
    name: "refused: nofailover target",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { nofailover: true })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is tagged nofailover" },
  },
  {
    name: "refused: target behind in sync",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { generation: 3 })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is behind in sync (generation 3 < 5)" },
  },
  // One config edit behind: the primary waits up to 30 s for it (primarySwitchover), so the request is taken.
  {
    name: "accepted: a switchover target catching up (its sync not failing, behind for less than 30 s)",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({ behindSince: new Date(WALL - 2000).toISOString() }) })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: true, to: "n2", reason: "switchover to n2: named by the request; n2 is catching up (generation 4 < 5): the primary waits up to 30s for it" },
  },
  {
    name: "accepted: a target in sync is not said to be catching up",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { sync: syncState({}) })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: true, to: "n2", reason: "switchover to n2: named by the request" },
  },
  {
    name: "accepted: a failback target whose key does not say it is behind yet",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({}) })] }),
    kind: "failback",
    body: { to: "n2" },
    want: { ok: true, to: "n2", reason: "failback to n2: named by the request; n2 is catching up (generation 4 < 5): the primary waits up to 30s for it" },
  },
  {
    name: "refused: behind, its sync failing (the error is named)",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({ failures: 2, lastError: "US_E_SYNC_VALIDATE: sshd -t failed" }) })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is behind in sync (generation 4 < 5): US_E_SYNC_VALIDATE: sshd -t failed" },
  },
  {
    name: "refused: behind for 30 s already",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({ behindSince: new Date(WALL - 30_000).toISOString() }) })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: `n2 is behind in sync (generation 4 < 5) since ${new Date(WALL - 30_000).toISOString()}` },
  },
  {
    name: "refused: an unforced failover to a target catching up (no primary needs to be there to wait)",
    snap: snap({ sync: PUB, members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({}) })] }),
    kind: "failover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is behind in sync (generation 4 < 5); repeat with force to fail over anyway" },
  },
  {
    name: "refused: catching up, but no published record to wait for",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { generation: 4, sync: syncState({}) })] }),
    kind: "switchover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is behind in sync (generation 4 < 5)" },
  },
  {
    name: "refused: unforced failover to an unhealthy node says how to force it",
    snap: snap({ members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    kind: "failover",
    body: { to: "n2" },
    want: { ok: false, status: 412, message: "n2 is not healthy or not ready; repeat with force to fail over anyway" },
  },
];

for (const r of rows) {
  test(`planMove: ${r.name}`, () => {
    assert.deepEqual(planMove(r.snap, r.kind, r.body, WALL), r.want);
  });
}

test("failbackTarget: the named node, else failback.preferred (and the reason says which), else a refusal", () => {
  assert.deepEqual(failbackTarget("n3", "n1"), { ok: true, to: "n3", namedBy: "named by the request" });
  assert.deepEqual(failbackTarget(undefined, "n1"), { ok: true, to: "n1", namedBy: "failback.preferred" });
  assert.deepEqual(planMove(snap(), "failback", { to: "n3" }, WALL, "failback.preferred"), { ok: true, to: "n3", reason: "failback to n3: failback.preferred" });
  assert.deepEqual(failbackTarget(undefined, null), { ok: false, status: 412, message: "no preferred node: set failback.preferred or name one with `to`" });
});
