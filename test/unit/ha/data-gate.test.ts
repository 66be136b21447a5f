// Issue 14: promotion ranks by data lag (after the sync generation, before the priority) and
// data.maximum_data_lag_on_failover gates a candidate, like maximum_lag_on_failover for config.
// Table-driven: every case states its decision and its whole reason sentence.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { Observation } from "../../../src/ha/observation.js";
import type { DataLagRecord, DataProgress, SyncGeneration } from "../../../src/coordinator/port.js";
import { compareDataLag, dataLagOf } from "../../../src/ha/candidates.js";
import { size } from "../../../src/ha/data-gate.js";
import { member } from "../../fakes/member.js";
import { gates } from "./decide-fixture.js";

const NOW = 100_000;
const MiB = 1024 * 1024;
const MAX = 64 * MiB;

const lag = (files: number, bytes: number, over: Partial<DataLagRecord> = {}): DataLagRecord => ({ acked: 1, files, bytes, seconds: files ? 2 : 0, full: false, paused: null, ...over });

function progress(standbys: Record<string, DataLagRecord>): DataProgress {
  return { node: "n9", term: 7, head: 40, at: "2026-12-04T23:00:00.000Z", standbys };
}

function obs(over: Partial<Observation> = {}, cluster: Partial<NonNullable<Observation["cluster"]>> = {}): Observation {
  return {
    nowMs: NOW,
    wallNowMs: Date.UTC(2026, 11, 4, 23, 0, 0),
    self: { name: "n1", priority: 100, nofailover: false, generation: 0 },
    mode: "cold",
    acting: "standby",
    term: null,
    servingSinceMs: null,
    lease: { id: "a1", deadlineMs: NOW + 4000 },
    cluster: { revision: 10, leader: null, members: [member("n1"), member("n2")], paused: false, switchover: null, released: null, bans: [], sync: null, ...cluster },
    etcdError: null,
    vacantSinceMs: NOW,
    daemon: { running: false, probesUp: true, recentRestarts: 0 },
    restartsBeforeHandover: 1,
    rankingDelayMs: 500,
    coolDownUntilMs: 0,
    coolDownMs: 10_000,
    notReady: null,
    failback: { policy: "manual", preferred: null, delayMs: 300_000 },
    preferredReadySinceMs: null,
    switchoverWaitMs: 1500,
    sync: { enabled: true, behindSinceMs: null, maximumLagMs: 60_000 },
    data: { maximumLagBytes: MAX },
    ...over,
  };
}

/** The same observation on a node without data roots. */
function withoutData(o: Observation): Observation {
  const { data: _none, ...rest } = o;
  return rest;
}

const gen = (generation: number): SyncGeneration => ({ generation, digest: "d", roots: {}, files: 1, source: "n9", term: 7, publishedAt: "" });
const OVER = `over maximum_data_lag_on_failover (64.0 MiB)`;
const SRC = "n9's data/progress of term 7";
const ANYWAY = "no eligible member has less; taking over anyway (recorded as data_lag_promotion)";

interface Case {
  name: string;
  o: Observation;
  actions: string[];
  reason: string;
}

const cases: Case[] = [
  {
    name: "no data roots here: ranking as before, data/progress ignored",
    o: withoutData(obs({}, { dataProgress: progress({ n1: lag(3, 200 * MiB), n2: lag(0, 0) }) })),
    actions: ["campaign"],
    reason: "campaigning: no primary and I rank first (priority 100)",
  },
  {
    name: "data/progress never written: blocks nobody, and says so",
    o: obs(),
    actions: ["campaign"],
    reason: "campaigning: no primary and I rank first (priority 100); no data/progress was ever written, so the data-lag gate blocks nobody",
  },
  {
    name: "less data lag ranks first (both within the limit)",
    o: obs({}, { dataProgress: progress({ n1: lag(3, 3072), n2: lag(0, 0) }) }),
    actions: ["recheck_at"],
    reason: "waiting: no primary; n2 ranks higher (data lag 0 files / 0 B, mine 3 files / 3.0 KiB), campaigning in 500ms if it does not",
  },
  {
    name: "data lag before priority: mine is less, so I rank first over a higher priority",
    o: obs({}, { members: [member("n1"), member("n2", { priority: 200 })], dataProgress: progress({ n1: lag(0, 0), n2: lag(1, 10) }) }),
    actions: ["campaign"],
    reason: "campaigning: no primary and I rank first (priority 100)",
  },
  {
    name: "equal bytes: fewer files ranks first",
    o: obs({}, { dataProgress: progress({ n1: lag(4, 4096), n2: lag(1, 4096) }) }),
    actions: ["recheck_at"],
    reason: "waiting: no primary; n2 ranks higher (data lag 1 files / 4.0 KiB, mine 4 files / 4.0 KiB), campaigning in 500ms if it does not",
  },
  {
    name: "equal lag: priority decides",
    o: obs({}, { members: [member("n1"), member("n2", { priority: 200 })], dataProgress: progress({ n1: lag(1, 10), n2: lag(1, 10) }) }),
    actions: ["recheck_at"],
    reason: "waiting: no primary; n2 ranks higher (priority 200), campaigning in 500ms if it does not",
  },
  {
    name: "the sync generation comes before data lag",
    o: obs(
      { self: { name: "n1", priority: 100, nofailover: false, generation: 5 } },
      { members: [member("n1", { generation: 5 }), member("n2", { generation: 4 })], sync: gen(5), dataProgress: progress({ n1: lag(9, 9 * MiB), n2: lag(0, 0) }) },
    ),
    actions: ["campaign"],
    reason: "campaigning: no primary and I rank first (priority 100)",
  },
  {
    name: "the old primary, alive as a standby, has no lag: it ranks first",
    o: obs({}, { members: [member("n1"), member("n9")], dataProgress: progress({ n1: lag(1, 100) }) }),
    actions: ["recheck_at"],
    reason: "waiting: no primary; n9 ranks higher (data lag 0 files / 0 B, mine 1 files / 100 B), campaigning in 500ms if it does not",
  },
  {
    name: "over the limit while a member within it is eligible: blocked, also after the ranking delay",
    o: obs({ vacantSinceMs: NOW - 10_000 }, { dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(1, MiB) }) }),
    actions: [],
    reason: `no action: no primary, but my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and n2 has less (1 files / 1.0 MiB)`,
  },
  {
    name: "over the limit while a member with less lag (also over) is eligible: blocked",
    o: obs({ vacantSinceMs: NOW - 10_000 }, { dataProgress: progress({ n1: lag(20, 200 * MiB), n2: lag(10, 100 * MiB) }) }),
    actions: [],
    reason: `no action: no primary, but my data lag is 20 files / 200.0 MiB in ${SRC}, ${OVER} and n2 has less (10 files / 100.0 MiB)`,
  },
  {
    name: "every candidate over the limit and I am the best: take over, marked for the record",
    o: obs({}, { dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(20, 200 * MiB) }) }),
    actions: ["campaign"],
    reason: `campaigning: no primary and I rank first (priority 100); data lag: my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and ${ANYWAY}`,
  },
  {
    name: "the member with less lag is unhealthy: not blocked",
    o: obs({}, { members: [member("n1"), member("n2", { healthy: false })], dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(0, 0) }) }),
    actions: ["campaign"],
    reason: `campaigning: no primary and I rank first (priority 100); data lag: my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and ${ANYWAY}`,
  },
  {
    name: "the member with less lag is not ready to serve: not blocked",
    o: obs({}, { members: [member("n1"), member("n2", { notReady: "sshd exited 255" })], dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(0, 0) }) }),
    actions: ["recheck_at"],
    // Ranking still gives it the ranking delay (as for config); the gate does not wait on it for ever.
    reason: "waiting: no primary; n2 ranks higher (data lag 0 files / 0 B, mine 10 files / 100.0 MiB), campaigning in 500ms if it does not",
  },
  {
    name: "the member with less lag is not ready to serve, ranking delay over: take over, marked",
    o: obs({ vacantSinceMs: NOW - 600 }, { members: [member("n1"), member("n2", { notReady: "sshd exited 255" })], dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(0, 0) }) }),
    actions: ["campaign"],
    reason: `campaigning: no primary for 600ms and n2 (ranked higher) has not taken over; data lag: my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and ${ANYWAY}`,
  },
  {
    name: "the member with less lag is banned: not blocked",
    o: obs({}, { bans: [{ node: "n2", until: "", requestedBy: "op", reason: "" }], dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(0, 0) }) }),
    actions: ["campaign"],
    reason: `campaigning: no primary and I rank first (priority 100); data lag: my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and ${ANYWAY}`,
  },
  {
    name: "the member with less lag lags the published config generation I hold: not blocked",
    o: obs(
      { self: { name: "n1", priority: 100, nofailover: false, generation: 5 } },
      { members: [member("n1", { generation: 5 }), member("n2", { generation: 4 })], sync: gen(5), dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(0, 0) }) },
    ),
    actions: ["campaign"],
    reason: `campaigning: no primary and I rank first (priority 100); data lag: my data lag is 10 files / 100.0 MiB in ${SRC}, ${OVER} and ${ANYWAY}`,
  },
  {
    name: "not listed in data/progress (unknown lag) counts as over the limit",
    o: obs({}, { dataProgress: progress({ n2: lag(0, 0) }) }),
    actions: [],
    reason: `no action: no primary, but my data lag is unknown (not listed) in ${SRC}, ${OVER} and n2 has less (0 files / 0 B)`,
  },
  {
    name: "a full pass needed (unknown lag) counts as over the limit",
    o: obs({}, { dataProgress: progress({ n1: lag(2, 10, { full: true }), n2: lag(5, 50 * MiB) }) }),
    actions: [],
    reason: `no action: no primary, but my data lag is unknown (a full pass is needed; 2 files / 10 B known) in ${SRC}, ${OVER} and n2 has less (5 files / 50.0 MiB)`,
  },
  {
    name: "exactly at the limit is within it",
    o: obs({ vacantSinceMs: NOW - 10_000 }, { dataProgress: progress({ n1: lag(1, MAX), n2: lag(0, 0) }) }),
    actions: ["campaign"],
    reason: "campaigning: no primary for 10000ms and n2 (ranked higher) has not taken over",
  },
  {
    name: "a primary handing over picks the standby with less data lag over a higher priority",
    o: obs(
      { acting: "primary", term: 7, daemon: { running: true, probesUp: false, recentRestarts: 1 } },
      {
        leader: { node: "n1", term: 7, lease: "a1", acquiredAt: "" },
        members: [member("n1", { role: "primary" }), member("n2", { priority: 200 }), member("n3")],
        dataProgress: { ...progress({ n2: lag(8, 80 * MiB), n3: lag(0, 0) }), node: "n1" },
      },
    ),
    actions: ["demote", "release", "cool_down"],
    reason: "handing over: critical probes are failing after 1 restart(s); n3 is a healthy standby",
  },
];

for (const c of cases) {
  test(`data gate: ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.equal(decision.reason, c.reason);
  });
}

test("promotion: a won take-over over the data-lag limit carries the mark the executor records", () => {
  const o = obs(gates(), { dataProgress: progress({ n1: lag(10, 100 * MiB), n2: lag(20, 200 * MiB) }) });
  const sentence = `data lag promotion: I became primary with data lag 10 files / 100.0 MiB in ${SRC}, ${OVER}; files n9 shipped after that are not here until it rejoins`;
  const decision = decide(o);
  assert.deepEqual(decision.actions, [
    {
      kind: "take_over",
      term: 9,
      via: "won",
      skipDuplicateCheck: false,
      dataLag: { lag: lag(10, 100 * MiB), maximumBytes: MAX, progressNode: "n9", progressTerm: 7, reason: sentence },
    },
  ]);
  assert.equal(decision.reason, `taking over: I won the election (term 9); ${sentence}`);
  const within = decide(obs(gates(), { dataProgress: progress({ n1: lag(1, MiB) }) }));
  assert.deepEqual(within.actions, [{ kind: "take_over", term: 9, via: "won", skipDuplicateCheck: false }], "within the limit: no mark");
  const never = decide(obs(gates()));
  assert.deepEqual(never.actions, [{ kind: "take_over", term: 9, via: "won", skipDuplicateCheck: false }], "no data/progress: no mark");
  const adopted = decide(obs(gates({ via: "adopted" }), { dataProgress: progress({ n1: lag(10, 100 * MiB) }) }));
  assert.equal((adopted.actions[0] as { dataLag?: unknown }).dataLag, undefined, "an adopted key was promoted before");
  const off = decide(withoutData(obs(gates(), { dataProgress: progress({ n1: lag(10, 100 * MiB) }) })));
  assert.equal((off.actions[0] as { dataLag?: unknown }).dataLag, undefined, "no data roots here");
});

test("dataLagOf / compareDataLag / size", () => {
  const p = progress({ n2: lag(1, 5), n3: lag(0, 0, { full: true }) });
  assert.deepEqual(dataLagOf("n9", p), { acked: 40, files: 0, bytes: 0, seconds: 0, full: false, paused: null }, "the writer was the source");
  assert.equal(dataLagOf("n4", p), null);
  assert.equal(dataLagOf("n2", null), null);
  assert.ok(compareDataLag(lag(0, 0), null) < 0, "known before unknown");
  assert.ok(compareDataLag(lag(9, 9 * MiB), dataLagOf("n3", p)) < 0, "known before a full pass");
  assert.equal(compareDataLag(null, dataLagOf("n3", p)), 0, "both unknown");
  assert.deepEqual([size(512), size(1536), size(64 * MiB), size(3 * 1024 * MiB)], ["512 B", "1.5 KiB", "64.0 MiB", "3.0 GiB"]);
});
