// Forged etcd records change nothing (issue 11, item 2, "nothing changed"): an
// honest cluster's keys, decoded as the agent and `understudy status` decode them
// (decodeSnapshot), with one forged record added at a time. Each forged record is
// refused (reported, counted) and the snapshot, every honest member's state, and
// the HA loop's decision for every node (leader present, and leader vacant) are
// exactly what they are without it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { clusterKeys } from "../../../src/coordinator/keys.js";
import type { MemberRecord, SyncGeneration } from "../../../src/coordinator/port.js";
import { encodeLeader, type InvalidRecord } from "../../../src/coordinator/records.js";
import { decodeSnapshot, type RawKv } from "../../../src/coordinator/snapshot-decode.js";
import { decide } from "../../../src/ha/decide.js";
import type { ClusterSnapshot, Observation } from "../../../src/ha/observation.js";

const K = clusterKeys("/understudy", "c");
const NOW = 100_000;

function member(node: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return {
    node,
    role: "standby",
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 4,
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
const SYNC: SyncGeneration = { generation: 4, digest: "sha256:ab", roots: { ssh: "sha256:cd" }, files: 3, source: "n1", term: 7, publishedAt: "2026-12-04T13:58:00.000Z" };

let rev = 100;
const kv = (key: string, value: string): RawKv => ({ key, value, modRevision: ++rev });

function honest(withLeader: boolean): RawKv[] {
  return [
    ...(withLeader ? [kv(K.leader, encodeLeader("n1", "694d7a1b2c3d4e5f", "2026-12-04T13:00:00Z"))] : []),
    kv(K.member("n1"), JSON.stringify(member("n1", { role: withLeader ? "primary" : "standby", priority: 100 }))),
    kv(K.member("n2"), JSON.stringify(member("n2", { priority: 90 }))),
    kv(K.member("n3"), JSON.stringify(member("n3", { priority: 80, generation: 3 }))),
    kv(K.syncGeneration, JSON.stringify(SYNC)),
  ];
}

const GOOD = member("n9");
const LAG = { acked: 3, files: 0, bytes: 0, seconds: 0, full: false, paused: null };
const PROGRESS = { node: "n1", term: 9, head: 3, at: "2026-12-04T13:00:00Z", standbys: { n2: LAG } };
const ESC = "\x1b]0;pwned\x07\x1b[2J";
// Forged records at keys the honest cluster does not use (a new member, a ban), each invalid.
const FORGED: readonly [string, string, string][] = [
  ["member: not JSON", K.member("n9"), "{not json"],
  ["member: null", K.member("n9"), "null"],
  ["member: an array", K.member("n9"), "[]"],
  ["member: role king", K.member("n9"), JSON.stringify({ ...GOOD, role: "king" })],
  ["member: role primary claimed with a bad name", K.member("n9"), JSON.stringify({ ...GOOD, node: "N9;rm -rf /", role: "primary" })],
  ["member: name with escape codes", K.member("n9"), JSON.stringify({ ...GOOD, node: `n9${ESC}` })],
  ["member: generation 1e300", K.member("n9"), JSON.stringify({ ...GOOD, generation: 1e300 })],
  ["member: generation -1", K.member("n9"), JSON.stringify({ ...GOOD, generation: -1 })],
  ["member: generation 2.5", K.member("n9"), JSON.stringify({ ...GOOD, generation: 2.5 })],
  ["member: generation as a string", K.member("n9"), JSON.stringify({ ...GOOD, generation: "4" })],
  ['member: healthy "yes"', K.member("n9"), JSON.stringify({ ...GOOD, healthy: "yes" })],
  ["member: priority as a string", K.member("n9"), JSON.stringify({ ...GOOD, priority: "1000" })],
  ["member: decision of 9,000 chars", K.member("n9"), JSON.stringify({ ...GOOD, decision: "x".repeat(9000) })],
  ["member: a 70 KB value", K.member("n9"), "x".repeat(70_000)],
  ["member: fields missing", K.member("n9"), JSON.stringify({ node: "n9" })],
  ["member: another node's record (n2, priority 1000) under n9's key", K.member("n9"), JSON.stringify(member("n2", { priority: 1000 }))],
  ["member: n1's primary record under n9's key", K.member("n9"), JSON.stringify(member("n1", { role: "primary" }))],
  ["ban: node as a number", K.ban("n2"), JSON.stringify({ node: 7, until: "2099-01-01T00:00:00Z", requestedBy: "x", reason: "x" })],
  ["ban: not JSON", K.ban("n2"), "ban!"],
  ["ban: an array", K.ban("n3"), JSON.stringify(["n3"])],
  // A time nothing can read: every wait bounded by it (a switchover's catch-up and failsafe hold
  // waits, a ban's end) would never end, since NaN compares false both ways.
  ["ban: until unreadable", K.ban("n2"), JSON.stringify({ node: "n2", until: "next tuesday", requestedBy: "x", reason: "x" })],
  ["member: updatedAt unreadable", K.member("n9"), JSON.stringify({ ...GOOD, updatedAt: "2026-13-45T99:00:00Z" })],
  ["switchover: requestedAt unreadable", K.switchover, JSON.stringify({ kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "x", reason: "x", requestedAt: "yesterday" })],
  [
    "switchover: at unreadable",
    K.switchover,
    JSON.stringify({ kind: "switchover", from: "n1", to: "n2", at: "soon", force: false, requestedBy: "x", reason: "x", requestedAt: "2026-12-04T13:59:00.000Z" }),
  ],
  ["data/progress: not JSON", K.dataProgress, "{progress"],
  ["data/progress: negative lag bytes", K.dataProgress, JSON.stringify({ ...PROGRESS, standbys: { n2: { ...LAG, bytes: -1 } } })],
  ["data/progress: standby name with escape codes", K.dataProgress, JSON.stringify({ ...PROGRESS, standbys: { [`n2${ESC}`]: LAG } })],
  ["data/progress: term as a string", K.dataProgress, JSON.stringify({ ...PROGRESS, term: "9" })],
];

function observe(self: string, cluster: ClusterSnapshot, acting: "primary" | "standby"): Observation {
  const mine = cluster.members.find((m) => m.node === self)!;
  return {
    nowMs: NOW,
    wallNowMs: Date.UTC(2026, 11, 4, 14, 0, 0),
    self: { name: self, priority: mine.priority, nofailover: false, generation: mine.generation },
    mode: "cold",
    acting,
    term: acting === "primary" ? (cluster.leader?.term ?? null) : null,
    servingSinceMs: null,
    lease: { id: "a1", deadlineMs: NOW + 4000 },
    cluster,
    etcdError: null,
    vacantSinceMs: cluster.leader ? null : NOW - 10_000,
    daemon: { running: acting === "primary", probesUp: true, recentRestarts: 0 },
    restartsBeforeHandover: 1,
    rankingDelayMs: 500,
    coolDownUntilMs: 0,
    coolDownMs: 10_000,
    notReady: null,
    failback: { policy: "manual", preferred: null, delayMs: 300_000 },
    preferredReadySinceMs: null,
    switchoverWaitMs: 1500,
    sync: { enabled: true, behindSinceMs: null, maximumLagMs: 60_000 },
  };
}

function decisions(snap: ClusterSnapshot): unknown[] {
  return ["n1", "n2", "n3"].map((n) => decide(observe(n, snap, snap.leader?.node === n ? "primary" : "standby")));
}

test("each forged record is refused and changes neither the snapshot nor any node's decision", () => {
  let tried = 0;
  for (const withLeader of [true, false]) {
    const base = honest(withLeader);
    const clean = decodeSnapshot(K, base, 500);
    assert.equal(clean.members.length, 3);
    const cleanDecisions = decisions(clean);
    for (const [what, key, value] of FORGED) {
      const invalid: InvalidRecord[] = [];
      const snap = decodeSnapshot(K, [...base, kv(key, value)], 500, (r) => invalid.push(r));
      assert.equal(invalid.length, 1, `${what}: reported once (got ${JSON.stringify(invalid.map((i) => i.problem))})`);
      assert.equal(invalid[0]!.key, key);
      assert.deepEqual(snap, clean, `${what}: the snapshot changed`);
      assert.deepEqual(decisions(snap), cleanDecisions, `${what}: a decision changed`);
      tried++;
    }
  }
  assert.equal(tried, 2 * FORGED.length);
});

test("an absurd generation claim by a well-formed member is bounded: honest members and decisions unchanged", () => {
  for (const withLeader of [true, false]) {
    const base = honest(withLeader);
    const withN9 = decodeSnapshot(K, [...base, kv(K.member("n9"), JSON.stringify(member("n9", { priority: 1 })))], 500);
    for (const claim of [5, 1_000_000, Number.MAX_SAFE_INTEGER]) {
      const invalid: InvalidRecord[] = [];
      const snap = decodeSnapshot(K, [...base, kv(K.member("n9"), JSON.stringify(member("n9", { priority: 1, generation: claim })))], 500, (r) => invalid.push(r));
      assert.equal(invalid.length, 1, `generation ${claim} is reported`);
      assert.match(invalid[0]!.problem, /beyond the published 4/);
      // Counted at the published generation: the same snapshot as an honest n9 at generation 4.
      assert.deepEqual(snap, withN9, `generation ${claim}`);
      assert.deepEqual(decisions(snap), decisions(withN9), `generation ${claim}: a decision changed`);
    }
  }
});

// A forged failsafe/members fails closed (E2): reported once, flagged, and no node campaigns on it.
const FORGED_LISTS: readonly (readonly [string, string])[] = [
  ["not JSON", "[n1"],
  ["no node", JSON.stringify({ term: 7, nodes: [] })],
  ["a name with escape codes", JSON.stringify({ term: 7, nodes: [`n1${ESC}`] })],
  ["term as a string", JSON.stringify({ term: "7", nodes: ["n1"] })],
];

test("a forged failsafe/members is refused, flagged, and stops campaigns (fail closed) without touching a led cluster", () => {
  for (const [what, value] of FORGED_LISTS) {
    for (const withLeader of [true, false]) {
      const base = honest(withLeader);
      const clean = decodeSnapshot(K, base, 500);
      const invalid: InvalidRecord[] = [];
      const snap = decodeSnapshot(K, [...base, kv(K.failsafeMembers, value)], 500, (r) => invalid.push(r));
      assert.equal(invalid.length, 1, `${what}: reported once`);
      assert.deepEqual(snap, { ...clean, failsafeMembersInvalid: true }, `${what}: only the flag differs`);
      const ds = decisions(snap) as { actions: { kind: string }[]; reason: string }[];
      if (withLeader) assert.deepEqual(ds, decisions(clean), `${what}: a led cluster decides as before`);
      else {
        const before = decisions(clean) as { actions: { kind: string }[] }[];
        assert.ok(
          before.some((d) => d.actions.some((a) => a.kind === "campaign")),
          "without the forged list someone campaigns",
        );
        for (const d of ds) {
          assert.ok(!d.actions.some((a) => a.kind === "campaign"), `${what}: nobody campaigns (${d.reason})`);
        }
      }
    }
  }
});

test("a valid data/progress is read into the snapshot", () => {
  const invalid: InvalidRecord[] = [];
  const snap = decodeSnapshot(K, [...honest(true), kv(K.dataProgress, JSON.stringify(PROGRESS))], 500, (r) => invalid.push(r));
  assert.deepEqual(invalid, []);
  assert.deepEqual(snap.dataProgress, PROGRESS);
});

test("a valid failsafe/members is read into the snapshot", () => {
  const invalid: InvalidRecord[] = [];
  const snap = decodeSnapshot(K, [...honest(true), kv(K.failsafeMembers, JSON.stringify({ term: 7, nodes: ["n1", "n2", "n3"] }))], 500, (r) => invalid.push(r));
  assert.deepEqual(invalid, []);
  assert.deepEqual(snap.failsafeMembers, { term: 7, nodes: ["n1", "n2", "n3"] });
});
