// The sync planner (src/sync/plan.ts) as a table, like decide.test.ts: each
// observation gives one step and one reason sentence. Pure: no I/O, no clock
// reads; the time is whatever the observation says (a FakeClock drives it in
// the lag test).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { SyncGeneration } from "../../../src/coordinator/port.js";
import type { SyncView } from "../../../src/sync/engine-types.js";
import { isBehind } from "../../../src/coordinator/port.js";
import { planFollow, planRecord, planRetry, planStep, planSweep, type FollowInput, type SyncObservation } from "../../../src/sync/plan.js";
import { FakeClock } from "../../fakes/clock.js";

const NOW = 100_000;
const D = (c: string) => c.repeat(64);

function gen(generation: number, over: Partial<SyncGeneration> = {}): SyncGeneration {
  return { generation, digest: D("f"), roots: { conf: D("a"), keys: D("b") }, files: 3, source: "n1", term: 7, publishedAt: "2026-12-04T20:00:00.000Z", ...over };
}

const LEADER = { node: "n1", term: 7, address: "198.18.0.11" };

function standby(over: Partial<SyncObservation> = {}): SyncObservation {
  return {
    nowMs: NOW,
    node: "n2",
    side: "standby",
    term: null,
    held: { generation: 4, roots: { conf: D("1"), keys: D("b") } },
    published: gen(5),
    leader: LEADER,
    roots: ["conf", "keys"],
    rebuild: [],
    fullRebuild: null,
    verifyDue: new Map(),
    displacementHandled: new Set(),
    behindSinceMs: null,
    ...over,
  };
}

const primary = (over: Partial<SyncObservation> = {}) => standby({ node: "n1", side: "primary", term: 7, held: { generation: 5, roots: gen(5).roots }, published: gen(5), leader: LEADER, ...over });

interface StepCase {
  name: string;
  o: SyncObservation;
  kind: string;
  reason: RegExp;
  check?: (step: ReturnType<typeof planStep>) => void;
}

const steps: StepCase[] = [
  // primary side
  { name: "primary without a term -> wait", o: primary({ term: null }), kind: "wait", reason: /^waiting: on the primary side without a term$/ },
  {
    name: "primary just promoted -> publish, rebuilding every root",
    o: primary({ fullRebuild: "primary side in term 7" }),
    kind: "publish",
    reason: /^publishing: rebuilding every root's manifest \(primary side in term 7\)$/,
    check: (s) => assert.deepEqual(s.kind === "publish" && s.rebuild, ["conf", "keys"]),
  },
  {
    name: "primary, periodic reconcile -> publish, every root",
    o: primary({ fullRebuild: "periodic reconcile", rebuild: ["keys"] }),
    kind: "publish",
    reason: /\(periodic reconcile\)$/,
    check: (s) => assert.deepEqual(s.kind === "publish" && s.rebuild, ["conf", "keys"]),
  },
  {
    name: "primary, one root changed -> publish, rebuilding that root",
    o: primary({ rebuild: ["keys"] }),
    kind: "publish",
    reason: /^publishing: rebuilding the manifest of keys$/,
    check: (s) => assert.deepEqual(s.kind === "publish" && [s.term, s.rebuild], [7, ["keys"]]),
  },
  {
    name: "primary, nothing changed -> publish compares the live tree with the record",
    o: primary(),
    kind: "publish",
    reason: /^publishing: comparing my live manifests with generation 5 \(n1, term 7\)$/,
    check: (s) => assert.deepEqual(s.kind === "publish" && s.rebuild, []),
  },
  // standby side: verify first
  {
    name: "standby at start -> verify every root before pulling",
    o: standby({
      verifyDue: new Map([
        ["conf", "agent start"],
        ["keys", "agent start"],
      ]),
    }),
    kind: "verify",
    reason: /^verifying conf, keys \(agent start\): local files that differ from the last synced state are rescued before pulling$/,
  },
  {
    name: "standby that stepped down -> verify, naming why",
    o: standby({ verifyDue: new Map([["keys", "stepped down from primary"]]) }),
    kind: "verify",
    reason: /^verifying keys \(stepped down from primary\)/,
    check: (s) => assert.deepEqual(s.kind === "verify" && s.roots, ["keys"]),
  },
  // standby side: nothing to pull from
  { name: "standby, nothing published -> idle", o: standby({ published: null }), kind: "idle", reason: /^idle: no generation published yet, nothing to follow$/ },
  {
    name: "standby, no primary -> wait",
    o: standby({ leader: null }),
    kind: "wait",
    reason: /^waiting: generation 5 is published but there is no other primary \(no primary to pull from\)$/,
    check: (s) => assert.equal(s.kind === "wait" && s.waiting, "no primary to pull from"),
  },
  { name: "standby whose own node is the leader -> wait", o: standby({ leader: { ...LEADER, node: "n2" } }), kind: "wait", reason: /\(no primary to pull from\)$/ },
  {
    name: "standby, the record is an older term's -> wait for the new primary's",
    o: standby({ leader: { node: "n3", term: 8, address: "198.18.0.13" } }),
    kind: "wait",
    reason: /^waiting: generation 5 is n1's of term 7, not the current primary's \(waiting for n3 to publish its files under term 8\)$/,
  },
  { name: "standby, primary without an address -> wait", o: standby({ leader: { ...LEADER, address: null } }), kind: "wait", reason: /\(no address published for n1\)$/ },
  {
    name: "standby with other roots than the primary -> refuse",
    o: standby({ roots: ["conf", "web"] }),
    kind: "refuse",
    reason: /^refusing to pull: n1 publishes the roots conf, keys, this node has conf, web$/,
  },
  // standby side: pull
  {
    name: "standby holding the generation -> idle, in sync",
    o: standby({ held: { generation: 5, roots: gen(5).roots } }),
    kind: "idle",
    reason: /^in sync: holding generation 5 from n1 \(term 7\)$/,
    check: (s) => assert.equal(s.kind === "idle" && s.inSyncWith?.generation, 5),
  },
  {
    name: "standby behind -> pull the roots that differ",
    o: standby(),
    kind: "pull",
    reason: /^pulling generation 5 from n1 \(term 7\): conf differ$/,
    check: (s) => assert.deepEqual(s.kind === "pull" && [s.roots, s.address, s.againstIncoming], [["conf"], "198.18.0.11", []]),
  },
  { name: "standby behind for a while -> the lag is in the reason", o: standby({ behindSinceMs: NOW - 1500 }), kind: "pull", reason: /: conf differ, behind for 1500ms$/ },
  {
    name: "standby whose roots already hold the files -> record the generation",
    o: standby({ held: { generation: 0, roots: gen(5).roots } }),
    kind: "pull",
    reason: /^recording generation 5 from n1 \(term 7\): every root already holds its files$/,
    check: (s) => assert.deepEqual(s.kind === "pull" && s.roots, []),
  },
  {
    name: "standby whose publication was displaced -> rescue against the incoming files",
    o: standby({ published: gen(5, { displaced: { source: "n2", generation: 4 } }) }),
    kind: "rescue",
    reason: /^rescuing: n1 was promoted in term 7 without my generation 4; keeping what in conf differs from the incoming files, then pulling generation 5/,
    check: (s) => assert.deepEqual(s.kind === "rescue" && s.againstIncoming, ["conf"]),
  },
  {
    name: "displacement already rescued for that root and term -> plain pull",
    o: standby({ published: gen(5, { displaced: { source: "n2", generation: 4 } }), displacementHandled: new Set(["7/conf"]) }),
    kind: "pull",
    reason: /^pulling generation 5/,
  },
  { name: "another node's publication was displaced -> plain pull", o: standby({ published: gen(5, { displaced: { source: "n3", generation: 4 } }) }), kind: "pull", reason: /^pulling generation 5/ },
];

for (const c of steps) {
  test(`planStep: ${c.name}`, () => {
    const step = planStep(c.o);
    assert.equal(step.kind, c.kind);
    assert.match(step.reason, c.reason);
    c.check?.(step);
  });
}

test("planStep is pure: same observation, same step", () => {
  const o = standby({ behindSinceMs: NOW - 10 });
  assert.deepEqual(planStep(o), planStep(o));
});

test("planStep: the lag in a pull's reason follows the observation's clock", async () => {
  const clock = new FakeClock();
  const since = clock.monotonicMs();
  await clock.advance(2750);
  assert.match(planStep(standby({ nowMs: clock.monotonicMs(), behindSinceMs: since })).reason, /behind for 2750ms$/);
});

// ------------------------------------------------------------------ follow

const view = (over: Partial<SyncView> = {}): SyncView => ({ acting: "standby", term: null, leader: LEADER, published: gen(5), ...over });

function follow(over: Partial<FollowInput> = {}): FollowInput {
  return { node: "n2", side: "standby", term: null, held: 4, published: gen(4), view: view(), retryArmed: false, ...over };
}

interface FollowCase {
  name: string;
  i: FollowInput;
  turn: string | null;
  kick: boolean;
  published: number | null;
  reason: RegExp;
  check?: (p: ReturnType<typeof planFollow>) => void;
}

const follows: FollowCase[] = [
  {
    name: "standby, new generation -> adopt it, kick, end the retry backoff",
    i: follow(),
    turn: null,
    kick: true,
    published: 5,
    reason: /^generation 5 published by n1 \(term 7\)$/,
    check: (p) => assert.equal(p.cancelRetry, true),
  },
  { name: "standby, same generation, in sync -> no change", i: follow({ held: 5, published: gen(5) }), turn: null, kick: false, published: 5, reason: /^no change$/ },
  {
    // It waited for n3's own record (planStandby): without a kick it said "waiting" until the next number.
    name: "standby, same number confirmed by a new primary -> kick (in sync with it now)",
    i: follow({ held: 5, published: gen(5), view: view({ leader: { node: "n3", term: 9, address: "198.18.0.13" }, published: gen(5, { source: "n3", term: 9 }) }) }),
    turn: null,
    kick: true,
    published: 5,
    reason: /^generation 5 published by n3 \(term 9\)$/,
  },
  {
    name: "standby behind with no retry armed -> try again",
    i: follow({ published: gen(5) }),
    turn: null,
    kick: true,
    published: 5,
    reason: /^behind generation 5 \(I hold 4\) with no retry armed: trying again$/,
    check: (p) => assert.equal(p.cancelRetry, false),
  },
  { name: "standby behind with a retry armed -> leave it to the retry", i: follow({ published: gen(5), retryArmed: true }), turn: null, kick: false, published: 5, reason: /^no change$/ },
  { name: "standby holding a number above the record (restored etcd) -> not behind", i: follow({ held: 9, published: gen(5) }), turn: null, kick: false, published: 5, reason: /^no change$/ },
  {
    name: "etcd unreadable (published undefined) -> keep the last record",
    i: follow({ held: 3, view: view({ published: undefined }) }),
    turn: null,
    kick: true,
    published: 4,
    reason: /^behind generation 4 \(I hold 3\)/,
  },
  {
    name: "standby promoted holding the generation -> primary side, nothing displaced",
    i: follow({ held: 5, published: gen(5), view: view({ acting: "primary", term: 8 }) }),
    turn: "primary",
    kick: false,
    published: 5,
    reason: /^primary side in term 8: watching the roots and publishing generations$/,
    check: (p) => assert.deepEqual(p.turn, { to: "primary", term: 8, displaced: null }),
  },
  {
    name: "standby promoted behind (stale promotion) -> the generation it lacks is displaced",
    i: follow({ held: 3, published: gen(5), view: view({ acting: "primary", term: 8 }) }),
    turn: "primary",
    kick: false,
    published: 5,
    reason: /; generation 5 of n1 is not here \(I hold 3\): every generation of this term names it displaced$/,
    check: (p) => assert.deepEqual(p.turn, { to: "primary", term: 8, displaced: { source: "n1", generation: 5 } }),
  },
  {
    name: "primary, snapshot older than my publication -> keep mine",
    i: follow({ node: "n1", side: "primary", term: 7, held: 6, published: gen(6), view: view({ acting: "primary", term: 7, published: gen(5) }) }),
    turn: null,
    kick: false,
    published: 6,
    reason: /^keeping my generation 6 over a snapshot of generation 5 read before my publish landed$/,
  },
  {
    name: "primary, snapshot without a record -> keep mine",
    i: follow({ node: "n1", side: "primary", term: 7, held: 6, published: gen(6), view: view({ acting: "primary", term: 7, published: null }) }),
    turn: null,
    kick: false,
    published: 6,
    reason: /over a snapshot without one/,
  },
  {
    name: "primary, a new term -> primary side again under it",
    i: follow({ node: "n1", side: "primary", term: 7, held: 6, published: gen(6), view: view({ acting: "primary", term: 9, published: gen(6) }) }),
    turn: "primary",
    kick: false,
    published: 6,
    reason: /^primary side in term 9/,
  },
  {
    name: "primary demoted -> standby side, verify before pulling",
    i: follow({ node: "n1", side: "primary", term: 7, held: 6, published: gen(6), view: view({ published: gen(6) }) }),
    turn: "standby",
    kick: false,
    published: 6,
    reason: /^standby side: verifying every root/,
  },
  {
    name: "primary demoted while a new primary published -> standby side and kick for it",
    i: follow({ node: "n1", side: "primary", term: 7, held: 6, published: gen(6), view: view({ published: gen(7, { source: "n3", term: 8 }) }) }),
    turn: "standby",
    kick: true,
    published: 7,
    reason: /; generation 7 published by n3 \(term 8\)$/,
  },
];

for (const c of follows) {
  test(`planFollow: ${c.name}`, () => {
    const p = planFollow(c.i);
    assert.equal(p.turn?.to ?? null, c.turn);
    assert.equal(p.kick, c.kick);
    assert.equal(p.published?.generation ?? null, c.published);
    assert.match(p.reason, c.reason);
    c.check?.(p);
  });
}

// ------------------------------------------------------------ record, retry

test("planRecord: unchanged, confirmed under a new term, new generation, first generation", () => {
  const base = { node: "n1", term: 7, held: 5, digest: D("f"), changed: [] as string[] };
  assert.deepEqual(planRecord({ ...base, published: gen(5) }), { kind: "unchanged", reason: "published: generation 5 under my term 7, no root changed since" });
  assert.deepEqual(
    planRecord({ ...base, held: 4, published: gen(5) }),
    { kind: "confirm", generation: 5, reason: "published: generation 5 put again under my term 7 (my own record of it was not saved)" },
    "my record, but held behind it (the save after the put failed): put and saved again, not taken for done",
  );
  assert.deepEqual(planRecord({ ...base, term: 8, published: gen(5) }), { kind: "confirm", generation: 5, reason: "published: generation 5 confirmed under my term 8 (same files as n1's of term 7)" });
  assert.deepEqual(planRecord({ ...base, digest: D("e"), changed: ["keys"], published: gen(5) }), {
    kind: "new",
    generation: 6,
    reason: "published: new generation 6 under my term 7 (keys changed since generation 5)",
  });
  assert.deepEqual(
    planRecord({ ...base, digest: D("e"), published: null }),
    { kind: "new", generation: 6, reason: "published: new generation 6 under my term 7 (the first generation)" },
    "numbered above what this node holds",
  );
  const above = planRecord({ ...base, held: 2, digest: D("e"), published: gen(9, { source: "n3" }) });
  assert.deepEqual([above.kind, above.kind === "new" && above.generation], ["new", 10], "numbered above the record when it is higher");
});

test("planRetry: doubling from 200ms, capped at retry_max; a digest mismatch retries at once", () => {
  assert.deepEqual(
    [1, 2, 3, 8, 30].map((f) => planRetry(f, false, 30_000).delayMs),
    [200, 400, 800, 25_600, 30_000],
  );
  assert.match(planRetry(2, false, 30_000).reason, /^retrying in 400ms after 2 failed pass\(es\) \(backoff doubling from 200ms up to 30000ms\)$/);
  assert.deepEqual(planRetry(12, true, 30_000).delayMs, 100);
  assert.match(planRetry(12, true, 30_000).reason, /did not match the published digest/);
});

test("isBehind: one definition for the engine and the promotion gate", () => {
  assert.equal(isBehind(4, { generation: 5 }), true);
  assert.equal(isBehind(5, { generation: 5 }), false);
  assert.equal(isBehind(9, { generation: 5 }), false, "a number above the record's (restored etcd) is newer files, not lag");
  assert.equal(isBehind(0, null), false);
  assert.equal(isBehind(3, undefined), false);
});

test("planSweep: the periodic check, off the pass, hands a root to the pass only on a difference it can trust", () => {
  const base = { root: "big", reference: D("a"), live: D("a"), changedMeanwhile: false, due: false } as const;
  const cases: { name: string; i: Parameters<typeof planSweep>[0]; kind: string; reason: RegExp }[] = [
    { name: "primary, same", i: { ...base, side: "primary" }, kind: "in-step", reason: /^periodic reconcile of big: the live files are the published ones$/ },
    { name: "standby, same", i: { ...base, side: "standby" }, kind: "in-step", reason: /^periodic verify of big: the live files are the last synced ones$/ },
    {
      name: "primary, differs",
      i: { ...base, side: "primary", live: D("b") },
      kind: "drift",
      reason: /^periodic reconcile of big: the live files changed without a watch event \(aaaaaaaaaaaa -> bbbbbbbbbbbb\); rebuilding and publishing it$/,
    },
    {
      name: "standby, differs",
      i: { ...base, side: "standby", live: D("b") },
      kind: "drift",
      reason: /^periodic verify of big: the live files differ from the last synced state \(aaaaaaaaaaaa -> bbbbbbbbbbbb\); verifying it in the next pass \(local edits are rescued\)$/,
    },
    {
      name: "differs, but the pass replaced the reference meanwhile",
      i: { ...base, side: "standby", live: D("b"), changedMeanwhile: true },
      kind: "skip",
      reason: /skipped, the pass changed the root while it was read \(its own check is newer\)$/,
    },
    { name: "differs, primary rebuild due anyway", i: { ...base, side: "primary", live: D("b"), due: true }, kind: "skip", reason: /skipped, the next pass rebuilds it anyway$/ },
    { name: "differs, standby verify due anyway", i: { ...base, side: "standby", live: D("b"), due: true }, kind: "skip", reason: /skipped, the next pass verifies it anyway$/ },
    { name: "standby never synced", i: { ...base, side: "standby", reference: null }, kind: "skip", reason: /never synced: the next pull stages it whole\)$/ },
    { name: "primary, nothing built", i: { ...base, side: "primary", reference: null }, kind: "skip", reason: /\(no manifest built\)$/ },
    {
      name: "before reading: worth reading",
      i: { root: "big", reference: D("a"), changedMeanwhile: false, due: false, side: "standby" },
      kind: "read",
      reason: /^periodic verify of big: reading the live files$/,
    },
    { name: "before reading: due anyway", i: { root: "big", reference: D("a"), changedMeanwhile: false, due: true, side: "primary" }, kind: "skip", reason: /rebuilds it anyway$/ },
    { name: "before reading: no reference", i: { root: "big", reference: null, changedMeanwhile: false, due: false, side: "standby" }, kind: "skip", reason: /never synced/ },
  ];
  for (const c of cases) {
    const v = planSweep(c.i);
    assert.equal(v.kind, c.kind, c.name);
    assert.match(v.reason, c.reason, c.name);
  }
});
