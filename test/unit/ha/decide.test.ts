import { test } from "node:test";
import assert from "node:assert/strict";
import { decide } from "../../../src/ha/decide.js";
import type { MemberRecord, Observation } from "../../../src/ha/observation.js";
import { EMPTY_MEMORY, track } from "../../../src/ha/track.js";
import { member } from "../../fakes/member.js";
import { NOW, WALL, gates, obs, primary, sw } from "./decide-fixture.js";

interface Case {
  name: string;
  o: Observation;
  actions: string[];
  reason: RegExp;
}

const cases: Case[] = [
  // standby transitions
  { name: "standby, no leader, ranks first -> campaign", o: obs(), actions: ["campaign"], reason: /^campaigning: no primary and I rank first/ },
  { name: "standby, leader is another node -> follow", o: obs({}, { leader: { node: "n2", term: 5, lease: "b", acquiredAt: "" } }), actions: [], reason: /^no action: following n2 \(term 5\)$/ },
  { name: "standby, etcd unreachable -> stay standby", o: obs({}, null), actions: [], reason: /^no action: etcd unreachable \(partitioned\); staying a standby$/ },
  { name: "standby, no lease -> grant", o: obs({ lease: null }), actions: ["grant_lease"], reason: /^acquiring a session lease$/ },
  {
    name: "standby, leader key names me with my lease (restart) -> promote",
    o: obs({}, { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" } }),
    actions: ["promote"],
    reason: /^promoting: the leader key names me with my lease \(term 9\)$/,
  },
  { name: "standby, stale leader key of mine -> resign it", o: obs({}, { leader: { node: "n1", term: 9, lease: "zz", acquiredAt: "" } }), actions: ["resign"], reason: /stale leader key of mine/ },
  { name: "standby, paused -> no campaign", o: obs({}, { paused: true }), actions: [], reason: /^no action: no primary, but the cluster is paused$/ },
  { name: "standby, nofailover -> no campaign", o: obs({ self: { name: "n1", priority: 100, nofailover: true, generation: 0 } }), actions: [], reason: /tagged nofailover/ },
  {
    name: "standby failing its readiness check -> no campaign",
    o: obs({ notReady: "sshd exited 255: bad config" }),
    actions: [],
    reason: /^no action: no primary, but I am not ready to serve \(sshd exited 255: bad config\)$/,
  },
  { name: "standby, cooling down -> no campaign", o: obs({ coolDownUntilMs: NOW + 5000 }), actions: [], reason: /cool-down/ },
  {
    name: "standby, higher-priority peer -> wait the ranking delay",
    o: obs({}, { members: [member("n1"), member("n3", { priority: 200 })] }),
    actions: ["recheck_at"],
    reason: /^waiting: no primary; n3 ranks higher \(priority 200\), campaigning in 500ms/,
  },
  {
    name: "standby, higher-priority peer did not take over -> campaign",
    o: obs({ vacantSinceMs: NOW - 600 }, { members: [member("n1"), member("n3", { priority: 200 })] }),
    actions: ["campaign"],
    reason: /n3 \(ranked higher\) has not taken over/,
  },
  {
    name: "standby, higher-priority peer still keyed primary after releasing (stopping) -> not waited for",
    o: obs({}, { members: [member("n1"), member("n3", { priority: 300, role: "primary" }), member("n2", { priority: 50 })] }),
    actions: ["campaign"],
    reason: /^campaigning: no primary and I rank first/,
  },
  {
    name: "standby, departing primary keyed above two standbys -> the better standby is waited for",
    o: obs({}, { members: [member("n1"), member("n3", { priority: 300, role: "primary" }), member("n2", { priority: 200 })] }),
    actions: ["recheck_at"],
    reason: /^waiting: no primary; n2 ranks higher \(priority 200\)/,
  },
  {
    name: "standby, higher-priority peer unhealthy -> campaign at once",
    o: obs({}, { members: [member("n1"), member("n3", { priority: 200, healthy: false })] }),
    actions: ["campaign"],
    reason: /I rank first/,
  },
  {
    name: "standby, newer generation peer outranks priority",
    o: obs({}, { members: [member("n1", { priority: 500 }), member("n2", { generation: 3 })] }),
    actions: ["recheck_at"],
    reason: /n2 ranks higher/,
  },
  {
    name: "warm standby, daemon down -> start it",
    o: obs({ mode: "warm", daemon: { running: false, probesUp: false, recentRestarts: 0 } }, { leader: { node: "n2", term: 5, lease: "b", acquiredAt: "" } }),
    actions: ["start_daemon"],
    reason: /following n2/,
  },
  {
    name: "warm standby with unhealthy daemon does not campaign",
    o: obs({ mode: "warm", daemon: { running: true, probesUp: false, recentRestarts: 0 } }),
    actions: [],
    reason: /my daemon is not healthy/,
  },
  // primary transitions
  { name: "primary healthy with the lease -> nothing", o: primary(), actions: [], reason: /^no action: I am n1, the primary with the lease \(term 7\)$/ },
  { name: "primary past its deadline -> demote", o: primary({ lease: { id: "a1", deadlineMs: NOW } }), actions: ["demote"], reason: /^demoting: lease deadline passed$/ },
  { name: "primary, lease lost, etcd unreachable -> demote", o: primary({ lease: null }, null), actions: ["demote"], reason: /^demoting: lease deadline passed and etcd unreachable \(partitioned\)$/ },
  { name: "primary, etcd unreachable, lease valid -> hold", o: primary({}, null), actions: [], reason: /^holding: etcd unreachable \(partitioned\); lease valid for 4000ms more/ },
  { name: "primary, leader key gone -> demote", o: primary({}, { leader: null }), actions: ["demote"], reason: /^demoting: the leader key is gone$/ },
  {
    name: "primary, leader key names another node -> demote",
    o: primary({}, { leader: { node: "n2", term: 8, lease: "b", acquiredAt: "" } }),
    actions: ["demote"],
    reason: /names n2 \(term 8\), not me \(term 7\)/,
  },
  { name: "primary, same node but older term -> demote", o: primary({ term: 6 }), actions: ["demote"], reason: /not me \(term 6\)/ },
  {
    name: "primary, daemon crashed -> restart",
    o: primary({ daemon: { running: false, probesUp: true, recentRestarts: 0 } }),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon: the daemon is not running \(restart 1 of 1\)$/,
  },
  {
    name: "primary, probes failing after restart -> hand over",
    o: primary({ daemon: { running: true, probesUp: false, recentRestarts: 1 } }),
    actions: ["demote", "release", "cool_down"],
    reason: /^handing over: critical probes are failing after 1 restart\(s\); n2 is a healthy standby$/,
  },
  {
    name: "primary, failing, no healthy standby -> keep restarting",
    o: primary({ daemon: { running: false, probesUp: true, recentRestarts: 3 } }, { members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    actions: ["restart_daemon"],
    reason: /no healthy standby/,
  },
  {
    name: "primary, paused with failing daemon -> no automatic action",
    o: primary({ daemon: { running: false, probesUp: false, recentRestarts: 5 } }, { paused: true }),
    actions: [],
    reason: /^no action: paused; I am n1/,
  },
];

cases.push(
  // planned moves
  {
    name: "primary, switchover to a healthy standby -> demote and release",
    o: primary({}, { switchover: sw() }),
    actions: ["demote", "release"],
    reason: /^switchover: handing over to n2 \(patching n1\)$/,
  },
  {
    name: "primary, switchover without a target -> best candidate",
    o: primary({}, { switchover: sw({ to: null }), members: [member("n1", { role: "primary" }), member("n2"), member("n3", { priority: 300 })] }),
    actions: ["demote", "release"],
    reason: /handing over to n3/,
  },
  {
    name: "primary, switchover to an unhealthy standby -> cancelled",
    o: primary({}, { switchover: sw({ to: "n2" }), members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    actions: ["abort_switchover"],
    reason: /^switchover not possible: n2 is not a healthy, ready standby; cancelling$/,
  },
  {
    name: "primary, forced failover to an unhealthy standby -> done",
    o: primary({}, { switchover: sw({ kind: "failover", force: true }), members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    actions: ["demote", "release"],
    reason: /^failover: handing over to n2/,
  },
  { name: "primary, switchover to an unknown node -> cancelled", o: primary({}, { switchover: sw({ to: "n9" }) }), actions: ["abort_switchover"], reason: /n9 is not a live standby/ },
  {
    // Failsafe S4: the target would not campaign, and the role would come back here a cycle later.
    name: "primary, switchover to a standby under a failsafe hold -> wait for it to end",
    o: primary(
      {},
      {
        switchover: sw(),
        members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: I promised n1 (failsafe) not to campaign within 6000ms of its last grant request" })],
      },
    ),
    actions: ["recheck_at"],
    reason: /^switchover: waiting for n2 to be free to campaign \(not campaigning: I promised n1 \(failsafe\)/,
  },
  {
    name: "primary, forced failover to a standby under a failsafe hold -> waits too (S4 beats force)",
    o: primary({}, { switchover: sw({ kind: "failover", force: true }), members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: failsafe start-up hold" })] }),
    actions: ["recheck_at"],
    reason: /^failover: waiting for n2 to be free to campaign/,
  },
  {
    name: "primary, switchover target held for over 60 s -> cancelled",
    o: primary({}, { switchover: sw({ requestedAt: new Date(WALL - 61_000).toISOString() }), members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: x" })] }),
    actions: ["abort_switchover"],
    reason: /^switchover not possible: n2 was still held from campaigning after 60s \(not campaigning: x\); cancelling$/,
  },
  {
    name: "primary, switchover without a target: a free candidate before a better-ranked held one",
    o: primary({}, { switchover: sw({ to: null }), members: [member("n1", { role: "primary" }), member("n2"), member("n3", { priority: 300, campaignHold: "not campaigning: x" })] }),
    actions: ["demote", "release"],
    reason: /handing over to n2/,
  },
  {
    name: "primary, switchover without a target, every candidate held -> wait for the best",
    o: primary(
      {},
      {
        switchover: sw({ to: null }),
        members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: y" }), member("n3", { priority: 300, campaignHold: "not campaigning: x" })],
      },
    ),
    actions: ["recheck_at"],
    reason: /waiting for n3 to be free to campaign \(not campaigning: x\)/,
  },
  {
    // etcd just came back: the standbys' keys do not carry their holds yet, but they granted me.
    name: "primary, switchover right after failsafe grants (no hold in the key yet) -> wait for the grants to run out",
    o: primary({ failsafeGrantsUntilMs: NOW + 4200 }, { switchover: sw() }),
    actions: ["recheck_at"],
    reason: /^switchover: waiting for n2 to be free to campaign \(it granted my failsafe requests lately; its promise runs up to ttl \+ fence_margin from the last\)$/,
  },
  { name: "primary, failsafe grants run out -> hand over", o: primary({ failsafeGrantsUntilMs: NOW }, { switchover: sw() }), actions: ["demote", "release"], reason: /handing over to n2/ },
  {
    name: "primary whose daemon is down does not sit out a move's wait: it restarts the daemon",
    o: primary(
      { daemon: { running: false, probesUp: false, recentRestarts: 0 } },
      { switchover: sw(), members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: x" })] },
    ),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon: the daemon is not running/,
  },
  {
    name: "the hold wait scales with ttl (campaignHoldWaitMs)",
    o: primary(
      { campaignHoldWaitMs: 130_000 },
      { switchover: sw({ requestedAt: new Date(WALL - 61_000).toISOString() }), members: [member("n1", { role: "primary" }), member("n2", { campaignHold: "not campaigning: x" })] },
    ),
    actions: ["recheck_at"],
    reason: /waiting for n2/,
  },
  {
    name: "standby following a leader under a failsafe promise -> a cycle when it ends (its key drops the hold)",
    o: obs({ failsafeHold: { untilMs: NOW + 3000, reason: "not campaigning: I promised n2", fromGrant: true } }, { leader: { node: "n2", term: 5, lease: "b", acquiredAt: "" } }),
    actions: ["recheck_at"],
    reason: /^no action: following n2 \(term 5\)$/,
  },
  {
    name: "primary, switchover to a banned standby -> cancelled",
    o: primary({}, { switchover: sw(), bans: [{ node: "n2", until: "", requestedBy: "", reason: "" }] }),
    actions: ["abort_switchover"],
    reason: /n2 is not a healthy, ready standby/,
  },
  {
    name: "primary, scheduled switchover not yet due -> recheck then",
    o: primary({}, { switchover: sw({ at: new Date(WALL + 60_000).toISOString() }) }),
    actions: ["recheck_at"],
    reason: /switchover to n2 scheduled at/,
  },
  {
    name: "primary, scheduled switchover due -> hand over",
    o: primary({}, { switchover: sw({ at: new Date(WALL - 1).toISOString() }) }),
    actions: ["demote", "release"],
    reason: /handing over to n2/,
  },
  { name: "primary, switchover runs even when paused", o: primary({}, { switchover: sw(), paused: true }), actions: ["demote", "release"], reason: /handing over to n2/ },
  {
    name: "new primary after a switchover -> record and clear it",
    o: primary({ self: { name: "n2", priority: 100, nofailover: false, generation: 0 } }, { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, switchover: sw() }),
    actions: ["complete_switchover"],
    reason: /^switchover done: I am n2, the new primary \(term 7\)$/,
  },
  {
    name: "new primary 100 ms after it began serving -> the record and the clear wait for the daemon's first connections",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 0 }, servingSinceMs: NOW - 100 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, switchover: sw() },
    ),
    actions: ["recheck_at"],
    reason: /^switchover done: I am n2, the new primary \(term 7\); recording it and clearing the request in 200ms, after the daemon's first connections$/,
  },
  {
    name: "new primary 300 ms after it began serving -> record and clear it",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 0 }, servingSinceMs: NOW - 300 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, switchover: sw() },
    ),
    actions: ["complete_switchover"],
    reason: /^switchover done: I am n2, the new primary \(term 7\)$/,
  },
  {
    name: "primary by a failover before a scheduled move's time -> the move is cancelled as overtaken, not recorded",
    o: primary({}, { switchover: sw({ from: "n0", to: "n1", at: new Date(WALL + 3_600_000).toISOString() }) }),
    actions: ["abort_switchover"],
    reason: /^switchover not done: the role came to n1 \(term 7\) before the time set \(2026-11-22T13:00:00\.000Z\); cancelling$/,
  },
  {
    name: "standby named by a switchover campaigns at once, ranking aside",
    o: obs({ self: { name: "n2", priority: 1, nofailover: false, generation: 0 } }, { switchover: sw(), members: [member("n2", { priority: 1 }), member("n3", { priority: 500 })] }),
    actions: ["campaign"],
    reason: /^campaigning: switchover to me$/,
  },
  {
    name: "standby not named waits for the switchover target",
    o: obs({ self: { name: "n3", priority: 500, nofailover: false, generation: 0 } }, { switchover: sw(), members: [member("n2"), member("n3", { priority: 500 })] }),
    actions: ["recheck_at"],
    reason: /^waiting: switchover to n2 in progress$/,
  },
  {
    name: "standby not named does not wait for a target whose member key is gone (its lease expired with a key handed to it)",
    o: obs({ self: { name: "n3", priority: 500, nofailover: false, generation: 0 } }, { switchover: sw(), members: [member("n3", { priority: 500 })] }),
    actions: ["campaign"],
    reason: /I rank first/,
  },
  {
    name: "standby not named campaigns when the target never took over",
    o: obs({ self: { name: "n3", priority: 500, nofailover: false, generation: 0 }, vacantSinceMs: NOW - 2000 }, { switchover: sw() }),
    actions: ["campaign"],
    reason: /I rank first/,
  },
  {
    name: "forced failover target campaigns even when not ready",
    o: obs({ self: { name: "n2", priority: 1, nofailover: false, generation: 0 }, notReady: "disk full" }, { switchover: sw({ kind: "failover", force: true, from: null }) }),
    actions: ["campaign"],
    reason: /^campaigning: forced failover to me$/,
  },
  {
    name: "unforced switchover target that is not ready does not campaign",
    o: obs({ self: { name: "n2", priority: 1, nofailover: false, generation: 0 }, notReady: "disk full" }, { switchover: sw({ from: null }) }),
    actions: [],
    reason: /not ready to serve/,
  },
  { name: "banned standby does not campaign", o: obs({}, { bans: [{ node: "n1", until: "", requestedBy: "", reason: "" }] }), actions: [], reason: /^no action: no primary, but I am banned/ },
  {
    name: "banned higher-priority peer does not make me wait",
    o: obs({}, { members: [member("n1"), member("n3", { priority: 900 })], bans: [{ node: "n3", until: "", requestedBy: "", reason: "" }] }),
    actions: ["campaign"],
    reason: /I rank first/,
  },
  // automatic failback
  {
    name: "failback auto: preferred ready long enough -> request failback",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 0 }, failback: { policy: "auto", preferred: "n1", delayMs: 5000 }, preferredReadySinceMs: NOW - 6000 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, members: [member("n1"), member("n2", { role: "primary" })] },
    ),
    actions: ["request_failback"],
    reason: /^failback: n1 \(preferred\) has been a healthy standby for 6s$/,
  },
  {
    name: "failback auto: preferred not ready long enough -> wait",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 0 }, failback: { policy: "auto", preferred: "n1", delayMs: 5000 }, preferredReadySinceMs: NOW - 1000 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, members: [member("n1"), member("n2", { role: "primary" })] },
    ),
    actions: ["recheck_at"],
    reason: /failing back to n1 in 4s$/,
  },
  {
    name: "failback manual: never moves by itself",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 0 }, failback: { policy: "manual", preferred: "n1", delayMs: 0 }, preferredReadySinceMs: NOW - 60_000 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, members: [member("n1"), member("n2", { role: "primary" })] },
    ),
    actions: [],
    reason: /^no action: I am n2/,
  },
  {
    name: "failback auto: preferred behind on sync generation -> no failback",
    o: primary(
      { self: { name: "n2", priority: 100, nofailover: false, generation: 4 }, failback: { policy: "auto", preferred: "n1", delayMs: 0 }, preferredReadySinceMs: NOW - 60_000 },
      { leader: { node: "n2", term: 7, lease: "a1", acquiredAt: "" }, members: [member("n1", { generation: 3 }), member("n2", { role: "primary" })] },
    ),
    actions: [],
    reason: /^no action: I am n2/,
  },
);

for (const c of cases) {
  test(c.name, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
    );
    assert.match(decision.reason, c.reason);
  });
}

test("decide is pure: same observation, same decision", () => {
  const o = primary({ daemon: { running: true, probesUp: false, recentRestarts: 1 } });
  assert.deepEqual(decide(o), decide(o));
});

test("a handover release always carries the term from the leader key", () => {
  const d = decide(primary({ daemon: { running: false, probesUp: false, recentRestarts: 1 } }));
  assert.deepEqual(
    d.actions.find((a) => a.kind === "release"),
    { kind: "release", term: 7, why: "handover" },
  );
});

// The promotion gate (docs/architecture.md, "Ranking", issue 3): sync generation before priority.
const gen = (generation: number) => ({ generation, digest: "d", roots: {}, files: 1, source: "n9", term: 3, publishedAt: "" });
const lagging = (behindMs: number, over: Partial<Observation> = {}) =>
  ({ self: { name: "n1", priority: 500, nofailover: false, generation: 4 }, sync: { enabled: true, behindSinceMs: NOW - behindMs, maximumLagMs: 60_000 }, ...over }) satisfies Partial<Observation>;
const syncCases: Case[] = [
  {
    name: "stale standby never races an eligible standby that holds the published generation",
    o: obs(lagging(50), { sync: gen(5), members: [member("n1", { generation: 4, priority: 500 }), member("n2", { generation: 5, priority: 1 })] }),
    actions: [],
    reason: /^no action: no primary, but my files are at generation 4, the primary published 5 and n2 holds it$/,
  },
  // A switchover named me, but the primary released without waiting for me (shutdown, a health
  // handover): the gate holds as without the request; a forced request overrides it.
  {
    name: "stale switchover target does not campaign while a standby holds the published generation",
    o: obs(lagging(50), { sync: gen(5), switchover: sw({ to: "n1" }), members: [member("n1", { generation: 4, priority: 500 }), member("n2", { generation: 5, priority: 1 })] }),
    actions: [],
    reason: /^no action: no primary, but my files are at generation 4, the primary published 5 and n2 holds it$/,
  },
  {
    name: "stale forced failover target campaigns anyway",
    o: obs(lagging(50), { sync: gen(5), switchover: sw({ to: "n1", kind: "failover", force: true, from: null }), members: [member("n1", { generation: 4 }), member("n2", { generation: 5 })] }),
    actions: ["campaign"],
    reason: /^campaigning: forced failover to me$/,
  },
  {
    name: "an unhealthy holder does not block the stale standby",
    o: obs(lagging(50), { sync: gen(5), members: [member("n1", { generation: 4 }), member("n2", { generation: 5, healthy: false })] }),
    actions: ["campaign"],
    reason: /^campaigning: no primary and I rank first \(priority 500\); stale: my files are at generation 4, the primary published 5 \(behind for 50ms, within maximum_lag_on_failover\)/,
  },
  {
    name: "a banned holder does not block the stale standby",
    o: obs(lagging(50), { sync: gen(5), members: [member("n1", { generation: 4 }), member("n2", { generation: 5 })], bans: [{ node: "n2", until: "", requestedBy: "ops", reason: "" }] }),
    actions: ["campaign"],
    reason: /stale: /,
  },
  {
    name: "stale beyond maximum_lag_on_failover -> no automatic takeover",
    o: obs(lagging(61_000), { sync: gen(5), members: [member("n1", { generation: 4 })] }),
    actions: [],
    reason: /behind for 61s, over maximum_lag_on_failover \(60s\); `understudy failover --to n1 --force` overrides$/,
  },
  {
    name: "forced failover to a stale node ignores the gate",
    o: obs(lagging(600_000), { sync: gen(5), members: [member("n1", { generation: 4 }), member("n2", { generation: 5 })], switchover: sw({ kind: "failover", force: true, from: null, to: "n1" }) }),
    actions: ["campaign"],
    reason: /^campaigning: forced failover to me$/,
  },
  {
    name: "in sync: the gate is silent",
    o: obs({ self: { name: "n1", priority: 100, nofailover: false, generation: 5 } }, { sync: gen(5), members: [member("n1", { generation: 5 })] }),
    actions: ["campaign"],
    reason: /^campaigning: no primary and I rank first \(priority 100\)$/,
  },
  {
    name: "sync not configured: generations are ignored",
    o: obs({ ...lagging(600_000), sync: { enabled: false, behindSinceMs: null, maximumLagMs: 0 } }, { sync: gen(5), members: [member("n1", { generation: 0 })] }),
    actions: ["campaign"],
    reason: /^campaigning: no primary and I rank first \(priority 500\)$/,
  },
  {
    name: "switchover to a lagging target waits for it to catch up",
    o: primary(
      { wallNowMs: WALL },
      { sync: gen(5), switchover: sw({ requestedAt: new Date(WALL - 1000).toISOString() }), members: [member("n1", { role: "primary", generation: 5 }), member("n2", { generation: 4 })] },
    ),
    actions: ["recheck_at"],
    reason: /^switchover: waiting for n2 to catch up to sync generation 5 \(it has 4\)$/,
  },
  {
    name: "switchover to a target that never catches up is cancelled",
    o: primary(
      { wallNowMs: WALL },
      { sync: gen(5), switchover: sw({ requestedAt: new Date(WALL - 31_000).toISOString() }), members: [member("n1", { role: "primary", generation: 5 }), member("n2", { generation: 4 })] },
    ),
    actions: ["abort_switchover"],
    reason: /did not catch up to sync generation 5 within 30s/,
  },
];
for (const c of syncCases) {
  test(`decide (sync gate): ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.match(decision.reason, c.reason);
  });
}

test("decide: a cold standby whose daemon runs (left by a killed agent) stops it before anything else", () => {
  const decision = decide(obs({ daemon: { running: true, probesUp: true, recentRestarts: 0 } }));
  assert.deepEqual(
    decision.actions.map((a) => a.kind),
    ["stop_daemon"],
  );
  assert.match(decision.reason, /^stopping the daemon: in cold mode only the primary runs it/);
  const adopting = decide(obs({ daemon: { running: true, probesUp: true, recentRestarts: 0 } }, { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" } }));
  assert.deepEqual(
    adopting.actions.map((a) => a.kind),
    ["promote"],
    "an agent restarted with its lease still live keeps the daemon it adopts",
  );
  const warm = decide(obs({ mode: "warm", daemon: { running: true, probesUp: true, recentRestarts: 0 } }));
  assert.ok(!warm.actions.some((a) => a.kind === "stop_daemon"), "warm standbys keep theirs");
});

// Issue 12: a failure the heir would share (synced certificate) and flap damping keep the primary where it is.
const flap = (over: Partial<NonNullable<Observation["flap"]>> = {}): NonNullable<Observation["flap"]> => ({ maxMoves: 3, windowMs: 600_000, moves: 0, damped: null, ...over });
const failing = { running: true, probesUp: false, recentRestarts: 1 };
const stayCases: Case[] = [
  {
    name: "primary, shared failure (certificate untrusted) after restarts -> holds, no handover",
    o: primary({ daemon: { ...failing, sharedFailure: "ftps: certificate not trusted (SELF_SIGNED_CERT_IN_CHAIN)" } }),
    actions: [],
    reason:
      /^holding, not handing over: critical probes are failing for a reason n2 would share \(ftps: certificate not trusted .*\); the certificate files are synced, so a handover cannot help; keeping the daemon running/,
  },
  {
    name: "primary, shared failure, daemon down -> restarts it, no handover",
    o: primary({ daemon: { running: false, probesUp: false, recentRestarts: 1, sharedFailure: "certs: /etc/tls/a.pem expired" } }),
    actions: ["restart_daemon"],
    reason: /^holding, not handing over: the daemon is not running .*restarting the daemon/,
  },
  {
    name: "primary, shared failure, restarts left -> restarts first (a restart may load a renewed pair)",
    o: primary({ daemon: { running: true, probesUp: false, recentRestarts: 0, sharedFailure: "x" } }),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon: critical probes are failing \(restart 1 of 1\)$/,
  },
  {
    name: "primary, local failure, moves below the threshold -> hands over",
    o: primary({ daemon: failing, flap: flap({ moves: 2 }) }),
    actions: ["demote", "release", "cool_down"],
    reason: /^handing over: critical probes are failing/,
  },
  {
    name: "primary, moves reached max_moves -> holds and records the damping",
    o: primary({ daemon: failing, flap: flap({ moves: 3 }) }),
    actions: ["record_flap_damped"],
    reason:
      /^holding, not handing over: flap damping \(3 health-driven handovers within 10m \(election\.flap\.max_moves 3\)\); critical probes are failing; keeping the daemon running until `understudy flap clear`$/,
  },
  {
    name: "primary, already damped (recorded) -> holds without recording again",
    o: primary({ daemon: failing, flap: flap({ moves: 0, damped: { at: "2026-11-22T11:59:00Z", reason: "3 moves" } }) }),
    actions: [],
    reason: /^holding, not handing over: flap damping \(3 moves\)/,
  },
  {
    name: "primary, damped, daemon down -> restarts it in place",
    o: primary({ daemon: { running: false, probesUp: true, recentRestarts: 1 }, flap: flap({ moves: 4 }) }),
    actions: ["restart_daemon", "record_flap_damped"],
    reason: /restarting the daemon until `understudy flap clear`/,
  },
  {
    name: "primary, damping off (max_moves 0) -> hands over",
    o: primary({ daemon: failing, flap: flap({ maxMoves: 0, moves: 9 }) }),
    actions: ["demote", "release", "cool_down"],
    reason: /^handing over/,
  },
  {
    name: "primary healthy while damped -> no action, says damped (no failback)",
    o: primary({ flap: flap({ damped: { at: "x", reason: "3 moves" } }), failback: { policy: "auto", preferred: "n2", delayMs: 0 }, preferredReadySinceMs: 0 }),
    actions: [],
    reason: /^no action: I am n1, the primary with the lease \(term 7\); flap damping holds the cluster \(3 moves\)/,
  },
  {
    name: "primary, damped, operator switchover still runs",
    o: primary(
      { flap: flap({ damped: { at: "x", reason: "3 moves" } }) },
      { switchover: { kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "op", reason: "r", requestedAt: "" } },
    ),
    actions: ["demote", "release"],
    reason: /^switchover: handing over to n2/,
  },
];
for (const c of stayCases) {
  test(`decide (stay): ${c.name}`, () => {
    const d = decide(c.o);
    assert.deepEqual(
      d.actions.map((a) => a.kind),
      c.actions,
      d.reason,
    );
    assert.match(d.reason, c.reason);
  });
}

// VIP truth (issue 12, failure 1): a primary that has not held its floating IP for
// vip.hold_timeout hands over with the reason; until then, or without a healthy standby, it holds.
const vipSeen = (missingForMs: number | null, over: Partial<NonNullable<Observation["vip"]>> = {}): Partial<Observation> => ({
  vip: { missingSinceMs: missingForMs === null ? null : NOW - missingForMs, foreignMac: null, problem: null, holdTimeoutMs: 30_000, ...over },
});
const vipCases: Case[] = [
  { name: "VIP held -> nothing", o: primary(vipSeen(null)), actions: [], reason: /^no action: I am n1, the primary with the lease \(term 7\)$/ },
  { name: "VIP missing for less than vip.hold_timeout -> nothing yet", o: primary(vipSeen(29_000, { foreignMac: "02:75:07:00:00:13" })), actions: [], reason: /^no action: I am n1/ },
  {
    // A failure the heir would share: the same host answers ARP for the address whoever adds it.
    name: "VIP held by another host past vip.hold_timeout -> holds, naming the MAC (a standby would meet the same host)",
    o: primary(vipSeen(31_000, { foreignMac: "02:75:07:00:00:13", problem: "US_E_VIP_DUPLICATE: refusing to add ..." })),
    actions: [],
    reason:
      /^holding, not handing over: primary without the floating IP for 31s, over vip\.hold_timeout 30s \(held by 02:75:07:00:00:13, another host answers ARP for it\); a standby would meet the same host/,
  },
  {
    name: "arping missing past vip.hold_timeout while flap damping holds -> holds, saying both",
    o: primary({ ...vipSeen(40_000, { problem: "US_E_TOOL_MISSING: arping" }), flap: { maxMoves: 3, windowMs: 600_000, moves: 3, damped: null } }),
    actions: [],
    reason: /^holding, not handing over: primary without the floating IP for 40s.*flap damping holds the cluster/,
  },
  {
    name: "arping missing past vip.hold_timeout -> hand over, naming the error",
    o: primary(vipSeen(30_000, { problem: "US_E_TOOL_MISSING: arping (needed by vip.arping) does not exist; install the Debian package iputils-arping (or arping)" })),
    actions: ["demote", "release", "cool_down"],
    reason: /^handing over: primary without the floating IP for 30s, over vip\.hold_timeout 30s \(US_E_TOOL_MISSING: arping .*\); n2 is a healthy standby$/,
  },
  {
    name: "VIP lost, no healthy standby -> hold, saying so",
    o: primary(vipSeen(60_000, { problem: "US_E_VIP_ADD: RTNETLINK answers: Operation not permitted" }), { members: [member("n1", { role: "primary" }), member("n2", { healthy: false })] }),
    actions: [],
    reason: /^holding: primary without the floating IP for 60s, over vip\.hold_timeout 30s \(US_E_VIP_ADD: .*\), and no healthy standby to hand over to; I am n1/,
  },
  {
    name: "VIP lost, banned standby only -> hold",
    o: primary(vipSeen(60_000), { bans: [{ node: "n2", until: "", requestedBy: "ops", reason: "" }] }),
    actions: [],
    reason: /^holding: .*not added yet\), and no healthy standby/,
  },
  { name: "VIP lost while paused -> no automatic action", o: primary(vipSeen(60_000), { paused: true }), actions: [], reason: /^no action: paused; I am n1/ },
  {
    name: "VIP lost and the daemon down, no standby -> the daemon rule still restarts it",
    o: primary({ ...vipSeen(60_000), daemon: { running: false, probesUp: true, recentRestarts: 0 } }, { members: [member("n1", { role: "primary" })] }),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon/,
  },
  { name: "no vip observation (no floating IP) -> the rule is silent", o: primary({}), actions: [], reason: /^no action: I am n1/ },
];
for (const c of vipCases) {
  test(`decide (VIP truth): ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.match(decision.reason, c.reason);
  });
}

// Issue 15: the promotion gates after a won election (or an adopted key), the
// lease time a promotion needs, and the restart backoff are decisions with reasons.
const VETO = "pre_promote hook /etc/understudy/pre.sh vetoed the promotion: exit 3: maintenance window";
const TIMEOUT = "pre_promote hook /etc/understudy/pre.sh vetoed the promotion: killed after the 5000 ms timeout";
const released = { node: "n2", term: 8, at: "", why: "switchover" as const };
const gateCases: Case[] = [
  { name: "won, pre_promote configured and not asked -> ask it", o: obs(gates({ prePromoteConfigured: true })), actions: ["ask_gate"], reason: /^promotion \(term 9\): asking the pre_promote hook$/ },
  {
    name: "won, pre_promote ok, no watchdog -> take over",
    o: obs(gates({ prePromoteConfigured: true, prePromote: { ok: true, timedOut: false, code: 0, problem: null } })),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\); the pre_promote hook agreed$/,
  },
  {
    name: "won, pre_promote veto -> decline and cool down",
    o: obs(gates({ prePromoteConfigured: true, prePromote: { ok: false, timedOut: false, code: 3, problem: VETO } })),
    actions: ["decline", "cool_down"],
    reason: /^declining the promotion \(term 9\): pre_promote hook \/etc\/understudy\/pre\.sh vetoed the promotion: exit 3: maintenance window; giving the leader key back and cooling down$/,
  },
  {
    name: "won, pre_promote timed out -> decline (a timeout is a veto)",
    o: obs(gates({ prePromoteConfigured: true, prePromote: { ok: false, timedOut: true, code: null, problem: TIMEOUT } })),
    actions: ["decline", "cool_down"],
    reason: /^declining the promotion \(term 9\): .*killed after the 5000 ms timeout; giving the leader key back and cooling down$/,
  },
  {
    name: "won, pre_promote failed without a message -> decline with the default wording",
    o: obs(gates({ prePromoteConfigured: true, prePromote: { ok: false, timedOut: false, code: 1, problem: null } })),
    actions: ["decline", "cool_down"],
    reason: /^declining the promotion \(term 9\): pre_promote hook vetoed the promotion; giving/,
  },
  {
    name: "won, watchdog required, not armed yet -> arm it before anything else",
    o: obs(gates({ watchdogMode: "required", guardPresent: true })),
    actions: ["ask_gate"],
    reason: /^promotion \(term 9\): starting the watchdog \/dev\/watchdog before anything else \(watchdog\.mode required\)$/,
  },
  {
    name: "won, pre_promote still to ask comes before the watchdog",
    o: obs(gates({ prePromoteConfigured: true, watchdogMode: "required", guardPresent: true })),
    actions: ["ask_gate"],
    reason: /pre_promote/,
  },
  {
    name: "won, watchdog required and running -> take over",
    o: obs(gates({ watchdogMode: "required", guardPresent: true, watchdog: { state: "active", device: "/dev/watchdog", timeoutS: 3 } })),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\); watchdog \/dev\/watchdog running$/,
  },
  {
    name: "won, watchdog required but unavailable -> decline and cool down",
    o: obs(gates({ watchdogMode: "required", guardPresent: true, watchdog: { state: "unavailable", device: "/dev/watchdog", problem: "cannot open: EBUSY" } })),
    actions: ["decline", "cool_down"],
    reason:
      /^declining the promotion \(term 9\): watchdog \/dev\/watchdog is not running \(unavailable: cannot open: EBUSY\); giving the leader key back \(watchdog\.mode required\) and cooling down$/,
  },
  {
    name: "won, watchdog required, ready but not started (too little lease) -> decline",
    o: obs(gates({ watchdogMode: "required", guardPresent: true, watchdog: { state: "ready", device: "/dev/watchdog", timeoutS: 3 } })),
    actions: ["decline", "cool_down"],
    reason: /is not running \(ready\); giving the leader key back/,
  },
  {
    name: "won, watchdog automatic but unavailable -> take over without it, saying so",
    o: obs(gates({ watchdogMode: "automatic", guardPresent: true, watchdog: { state: "unavailable", device: "/dev/watchdog", problem: "no such device" } })),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\); watchdog \/dev\/watchdog is not running \(unavailable: no such device\); promoting without it \(watchdog\.mode automatic\)$/,
  },
  {
    name: "won, too little lease time left after the gates -> not yet (the next renewal retries)",
    o: obs({ ...gates(), lease: { id: "a1", deadlineMs: NOW + 400 } }),
    actions: [],
    reason: /^not promoting yet: too little lease time left \(400ms, adding the floating IP needs 1000ms\); the next renewal retries$/,
  },
  { name: "won, lease just enough -> take over", o: obs({ ...gates(), lease: { id: "a1", deadlineMs: NOW + 1000 } }), actions: ["take_over"], reason: /^taking over: I won the election \(term 9\)$/ },
  {
    name: "won, lease lost while the gates ran -> no promotion",
    o: obs({ ...gates(), lease: null }),
    actions: [],
    reason: /^not promoting \(term 9\): the lease the leader key was taken with is gone$/,
  },
  {
    name: "won, lease replaced while the gates ran -> no promotion",
    o: obs({ ...gates(), lease: { id: "zz", deadlineMs: NOW + 4000 } }),
    actions: [],
    reason: /lease the leader key was taken with is gone/,
  },
  {
    name: "adopted key: no pre_promote, the watchdog still gates",
    o: obs(gates({ via: "adopted", watchdogMode: "required", guardPresent: true, watchdog: { state: "unavailable", device: "/dev/watchdog", problem: "EBUSY" } })),
    actions: ["decline", "cool_down"],
    reason: /^declining the promotion \(term 9\): watchdog/,
  },
  { name: "adopted key, gates passed -> take over", o: obs(gates({ via: "adopted" })), actions: ["take_over"], reason: /^taking over: the leader key names me with my lease \(term 9\)$/ },
  {
    name: "won after the last leader released the key -> take over, no duplicate-address check",
    o: obs(gates({ lastLeaderTerm: 8 }), { released }),
    actions: ["take_over"],
    reason: /; n2 released the floating IP, so no duplicate-address check$/,
  },
  {
    name: "won after a release by a leader I did not see -> duplicate-address check",
    o: obs(gates({ lastLeaderTerm: 7 }), { released }),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\)$/,
  },
  {
    name: "won after a release by a primary that never held the address -> duplicate-address check",
    o: obs(gates({ lastLeaderTerm: 8 }), { released: { ...released, vipNotFree: "02:00:00:00:00:13" } }),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\)$/,
  },
];
for (const c of gateCases) {
  test(`decide (promotion gates): ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.match(decision.reason, c.reason);
  });
}

test("decide (promotion gates): the actions carry the term, the gate, the problem and the duplicate-check choice", () => {
  assert.deepEqual(decide(obs(gates({ watchdogMode: "required", guardPresent: true, watchdog: { state: "unavailable", device: "/dev/watchdog", problem: "EBUSY" } }))).actions, [
    { kind: "decline", term: 9, gate: "watchdog", problem: "watchdog /dev/watchdog is not running (unavailable: EBUSY)" },
    { kind: "cool_down", durationMs: 10_000 },
  ]);
  assert.deepEqual(decide(obs(gates({ prePromoteConfigured: true, prePromote: { ok: false, timedOut: false, code: 3, problem: VETO } }))).actions[0], {
    kind: "decline",
    term: 9,
    gate: "pre_promote",
    problem: VETO,
  });
  assert.deepEqual(decide(obs(gates({ lastLeaderTerm: 8 }), { released })).actions, [{ kind: "take_over", term: 9, via: "won", skipDuplicateCheck: true }]);
  assert.deepEqual(decide(obs(gates({ via: "adopted", lastLeaderTerm: 8 }), { released })).actions, [{ kind: "take_over", term: 9, via: "adopted", skipDuplicateCheck: false }]);
});

// Issue 15 follow-up: which gates apply is promotionGate's choice from the raw facts; the
// executor only records a take-over marked stale and cools down for the duration decided.
const factCases: Case[] = [
  {
    name: "adopted key, pre_promote configured -> not run, take over",
    o: obs(gates({ via: "adopted", prePromoteConfigured: true })),
    actions: ["take_over"],
    reason: /^taking over: the leader key names me with my lease \(term 9\); the pre_promote hook is not run for an adopted key$/,
  },
  {
    name: "won, watchdog required but no fence guard -> not armed, take over",
    o: obs(gates({ watchdogMode: "required", guardPresent: false })),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\); no fence guard to start watchdog \/dev\/watchdog with$/,
  },
  {
    name: "won, guard present but watchdog.mode off -> not armed, take over",
    o: obs(gates({ watchdogMode: "off", guardPresent: true })),
    actions: ["take_over"],
    reason: /^taking over: I won the election \(term 9\)$/,
  },
];
for (const c of factCases) {
  test(`decide (promotion gates, facts): ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.match(decision.reason, c.reason);
  });
}

test("decide (promotion gates): a won take-over while lagging the published generation is marked stale, with the lag and the sentence", () => {
  const o = obs({ ...gates(), self: { name: "n1", priority: 100, nofailover: false, generation: 4 }, sync: { enabled: true, behindSinceMs: NOW - 1500, maximumLagMs: 60_000 } }, { sync: gen(5) });
  assert.deepEqual(decide(o).actions, [
    {
      kind: "take_over",
      term: 9,
      via: "won",
      skipDuplicateCheck: false,
      stale: { generation: 4, published: { generation: 5, source: "n9" }, lagMs: 1500, reason: "stale promotion: I became primary without the newest published files" },
    },
  ]);
  const held = obs({ ...gates(), self: { name: "n1", priority: 100, nofailover: false, generation: 6 } }, { sync: gen(5) });
  assert.deepEqual(decide(held).actions, [{ kind: "take_over", term: 9, via: "won", skipDuplicateCheck: false }], "a newer generation is not behind");
  const adopted = obs({ ...gates({ via: "adopted" }), self: { name: "n1", priority: 100, nofailover: false, generation: 4 } }, { sync: gen(5) });
  assert.equal(
    (decide(adopted).actions[0] as { stale?: { generation: number } }).stale?.generation,
    4,
    "an adopted key (a won election deferred a cycle) lagging the generation is recorded as stale too",
  );
  const off = obs({ ...gates(), self: { name: "n1", priority: 100, nofailover: false, generation: 4 }, sync: { enabled: false, behindSinceMs: null, maximumLagMs: 0 } }, { sync: gen(5) });
  assert.equal((decide(off).actions[0] as { stale?: unknown }).stale, undefined, "sync not enabled here: nothing to lag");
});

test("decide: every cool_down carries the configured duration", () => {
  const handover = decide(primary({ coolDownMs: 15_000, daemon: { running: true, probesUp: false, recentRestarts: 1 } }));
  assert.deepEqual(
    handover.actions.find((a) => a.kind === "cool_down"),
    { kind: "cool_down", durationMs: 15_000 },
  );
  const declined = decide(obs({ ...gates({ prePromoteConfigured: true, prePromote: { ok: false, timedOut: false, code: 3, problem: VETO } }), coolDownMs: 30_000 }));
  assert.deepEqual(declined.actions[1], { kind: "cool_down", durationMs: 30_000 });
});

// Restart backoff: restart n within the window waits restart_backoff * 2^(n-1), at most restart_backoff_max, after the last one.
const backoff = (recentRestarts: number, lastAgoMs: number | null, running = false): Partial<Observation> => ({
  restartsBeforeHandover: 3,
  restartBackoff: { baseMs: 100, maxMs: 5000 },
  daemon: { running, probesUp: !running, recentRestarts, lastRestartAtMs: lastAgoMs === null ? null : NOW - lastAgoMs },
});
const backoffCases: Case[] = [
  { name: "first restart: no backoff", o: primary(backoff(0, null)), actions: ["restart_daemon"], reason: /^restarting the daemon: the daemon is not running \(restart 1 of 3\)$/ },
  {
    name: "second restart 50ms after the first (backoff 100ms) -> wait",
    o: primary(backoff(1, 50)),
    actions: ["recheck_at"],
    reason: /^waiting: restart backoff for 50ms more, then restarting the daemon: the daemon is not running \(restart 2 of 3\)$/,
  },
  {
    name: "second restart 150ms after the first -> backoff over, restart",
    o: primary(backoff(1, 150)),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon: the daemon is not running \(restart 2 of 3\)$/,
  },
  { name: "third restart doubles the backoff (200ms)", o: primary(backoff(2, 150)), actions: ["recheck_at"], reason: /^waiting: restart backoff for 50ms more, then restarting the daemon/ },
  {
    name: "no healthy standby, backoff capped at restart_backoff_max",
    o: primary(backoff(10, 4000), { members: [member("n1", { role: "primary" })] }),
    actions: ["recheck_at"],
    reason: /^waiting: restart backoff for 1000ms more, then restarting the daemon again: the daemon is not running and no healthy standby/,
  },
  {
    name: "no healthy standby, backoff over -> restart again",
    o: primary(backoff(10, 5000), { members: [member("n1", { role: "primary" })] }),
    actions: ["restart_daemon"],
    reason: /^restarting the daemon again/,
  },
  {
    name: "restarts used up, healthy standby -> hand over (no backoff wait)",
    o: primary(backoff(3, 10, true)),
    actions: ["demote", "release", "cool_down"],
    reason: /^handing over: critical probes are failing after 3 restart\(s\)/,
  },
];
for (const c of backoffCases) {
  test(`decide (restart backoff): ${c.name}`, () => {
    const decision = decide(c.o);
    assert.deepEqual(
      decision.actions.map((a) => a.kind),
      c.actions,
      decision.reason,
    );
    assert.match(decision.reason, c.reason);
  });
}

test("decide (restart backoff): the recheck lands when the backoff ends", () => {
  assert.deepEqual(decide(primary(backoff(2, 150))).actions, [{ kind: "recheck_at", atMs: NOW + 50 }]);
});

// track(): the vacancy and failback bookkeeping, advanced once per cycle so observe() only reads.
test("track: vacancy starts at the first leaderless read, survives unread cycles, ends with a leader", () => {
  const base = obs().cluster!;
  const leader = { node: "n2", term: 5, lease: "b", acquiredAt: "" };
  let m = track(EMPTY_MEMORY, base, 1000, null);
  assert.deepEqual(m, { vacantSinceMs: 1000, preferredReadySinceMs: null });
  m = track(m, base, 1500, null);
  assert.equal(m.vacantSinceMs, 1000, "still the first time it saw the vacancy");
  assert.equal(track(m, null, 2000, null), m, "etcd unreachable: nothing learned, nothing forgotten");
  assert.equal(track(m, { ...base, leader }, 2500, null).vacantSinceMs, null);
});

test("track: the preferred node's readiness clock runs while it is an eligible standby", () => {
  const with2 = (over: Partial<MemberRecord> = {}, bans: NonNullable<Observation["cluster"]>["bans"] = []) => ({
    ...obs().cluster!,
    members: [member("n1", { role: "primary" }), member("n2", over)],
    bans,
  });
  let m = track(EMPTY_MEMORY, with2(), 1000, "n2");
  assert.equal(m.preferredReadySinceMs, 1000);
  m = track(m, with2(), 4000, "n2");
  assert.equal(m.preferredReadySinceMs, 1000);
  assert.equal(track(m, with2({ healthy: false }), 5000, "n2").preferredReadySinceMs, null, "unhealthy: the clock restarts");
  assert.equal(track(m, with2({}, [{ node: "n2", until: "", requestedBy: "", reason: "" }]), 5000, "n2").preferredReadySinceMs, null, "banned");
  assert.equal(track(m, with2({ role: "primary" }), 5000, "n2").preferredReadySinceMs, null, "not a standby");
  assert.equal(track(EMPTY_MEMORY, with2(), 1000, null).preferredReadySinceMs, null, "no preferred node");
});

// Failsafe (docs/failsafe-design.md, S4/S6): a promise keeps a standby from campaigning, even for a forced move.
test("failsafe: a standby bound by a promise does not campaign for a vacancy, and rechecks when it ends", () => {
  const hold = { untilMs: NOW + 2500, reason: "not campaigning: I promised n9 (failsafe) not to campaign within 6000ms of its last grant request", fromGrant: true };
  const d = decide(obs({ failsafeHold: hold }));
  assert.equal(d.reason, hold.reason);
  assert.deepEqual(d.actions, [{ kind: "recheck_at", atMs: NOW + 2500 }]);
  const free = decide(obs());
  assert.ok(
    free.actions.some((a) => a.kind === "campaign"),
    "without the hold it campaigns",
  );
});

test("failsafe: a promise outranks a forced failover to me; a leader present is simply followed", () => {
  const hold = { untilMs: NOW + 100, reason: "not campaigning: failsafe start-up hold, 6000ms from the agent's start (a promise given before it may still run)", fromGrant: false };
  const forced = decide(obs({ failsafeHold: hold }, { switchover: sw({ kind: "failover", force: true, from: null, to: "n1" }) }));
  assert.equal(forced.reason, hold.reason);
  assert.ok(!forced.actions.some((a) => a.kind === "campaign"), '!forced.actions.some((a) => a.kind === "campaign")');
  const led = decide(obs({ failsafeHold: hold }, { leader: { node: "n2", term: 9, lease: "b2", acquiredAt: "" } }));
  assert.match(led.reason, /^no action: following n2 \(term 9\)$/);
});

test("failsafe: a primary holding without etcd says what the last round gave", () => {
  const d = decide(primary({ failsafeNote: "failsafe: 2 of 2 member(s) granted; deadline moved to round start + 5000ms - 1000ms" }, null));
  assert.deepEqual(d.actions, []);
  assert.match(d.reason, /^holding: etcd unreachable \(partitioned\); lease valid for \d+ms more, fencing at the deadline; failsafe: 2 of 2 member\(s\) granted/);
});

test("failsafe S4: a leader key naming me while I am bound by a grant is resigned, not promoted; the start-up hold alone does not stop a restarted primary", () => {
  const mine = { leader: { node: "n1", term: 9, lease: "a1", acquiredAt: "" } };
  const grant = { untilMs: NOW + 2500, reason: "not campaigning: I promised n9 (failsafe) not to campaign within 6000ms of its last grant request", fromGrant: true };
  const bound = decide(obs({ failsafeHold: grant }, mine));
  assert.deepEqual(
    bound.actions.map((a) => a.kind),
    ["resign"],
  );
  assert.match(bound.reason, /^resigning the leader key that names me \(term 9\): not campaigning: I promised n9/);
  const restarted = decide(obs({ failsafeHold: { ...grant, fromGrant: false, reason: "not campaigning: failsafe start-up hold" } }, mine));
  assert.deepEqual(
    restarted.actions.map((a) => a.kind),
    ["promote"],
    "a primary's agent restarting takes its role back (it answered no grant: a primary refuses them)",
  );
});

test("failsafe E2': a listed, unbound standby widens a stale list on a vacancy; an unlisted one waits; a bound one holds", () => {
  const members = [member("n1"), member("n2"), member("n3")];
  const stale = { failsafeMembers: { term: 999, nodes: ["n1", "n2"] }, members, revision: 40 };
  const widen = decide(obs({}, stale));
  assert.deepEqual(widen.actions, [{ kind: "widen_failsafe_members", record: { term: 999, nodes: ["n1", "n2", "n3"] }, revision: 40 }]);
  assert.match(widen.reason, /^adding n3 to failsafe\/members: no primary, and I gave no failsafe grant/);
  const unlisted = decide(obs({}, { ...stale, failsafeMembers: { term: 999, nodes: ["n2", "n3"] } }));
  assert.match(unlisted.reason, /^not campaigning: failsafe\/members \(n2, n3\) does not list me/, "only a listed node may widen");
  const bound = decide(obs({ failsafeHold: { untilMs: NOW + 1000, reason: "not campaigning: I promised n2 (failsafe)", fromGrant: true } }, stale));
  assert.equal(bound.reason, "not campaigning: I promised n2 (failsafe)", "a promise may be what keeps a failsafe primary serving: no widening");
  const led = decide(obs({}, { ...stale, leader: { node: "n2", term: 9, lease: "b2", acquiredAt: "" } }));
  assert.match(led.reason, /^no action: following n2/, "never while a leader key exists");
  assert.ok(
    decide(obs({}, { ...stale, failsafeMembers: { term: 999, nodes: ["n1", "n2", "n3"] } })).actions.some((a) => a.kind === "campaign"),
    "nothing to add: campaigns",
  );
});

test("failsafe E2: a failsafe/members key that does not decode stops every campaign (fail closed)", () => {
  const d = decide(obs({}, { failsafeMembersInvalid: true }));
  assert.deepEqual(d.actions, []);
  assert.match(d.reason, /^not campaigning: failsafe\/members is present but unreadable/);
});

test("failsafe P7: a primary holding on grants restarts a dead daemon, and steps down past the restart budget", () => {
  const dead = { running: false, probesUp: false, recentRestarts: 0, lastRestartAtMs: null, sharedFailure: null };
  const first = decide(primary({ failsafeHolding: true, daemon: dead }, null));
  assert.deepEqual(
    first.actions.map((a) => a.kind),
    ["restart_daemon"],
  );
  assert.match(first.reason, /^restarting the daemon during a failsafe hold: the daemon is not running \(restart 1 of/);
  const spent = decide(primary({ failsafeHolding: true, daemon: { ...dead, recentRestarts: 99, lastRestartAtMs: NOW - 60_000 } }, null));
  assert.deepEqual(
    spent.actions.map((a) => a.kind),
    ["demote"],
  );
  assert.match(spent.reason, /a failsafe hold must not keep a dead service/);
  const plain = decide(primary({ daemon: dead }, null));
  assert.deepEqual(plain.actions, [], "without a failsafe hold: unchanged, the lease deadline bounds the outage");
});

test("failsafe E2: with failsafe/members written, only a listed node campaigns for a vacancy (whatever its own setting)", () => {
  const unlisted = decide(obs({}, { failsafeMembers: { term: 6, nodes: ["n2", "n3"] } }));
  assert.equal(unlisted.reason, "not campaigning: failsafe/members (n2, n3) does not list me, so a failsafe primary never asked me");
  assert.deepEqual(unlisted.actions, []);
  assert.ok(
    decide(obs({}, { failsafeMembers: { term: 6, nodes: ["n1", "n2"] } })).actions.some((a) => a.kind === "campaign"),
    "listed: campaigns",
  );
  assert.ok(
    decide(obs({}, {})).actions.some((a) => a.kind === "campaign"),
    "no list: campaigns as before",
  );
});

test("a promotion deferred for too little lease time asks to decide again after the next renewal; others do not", () => {
  assert.equal(decide(obs({ ...gates(), lease: { id: "a1", deadlineMs: NOW + 400 } })).afterRenewal, true);
  assert.equal(decide(obs({ ...gates(), lease: { id: "a1", deadlineMs: NOW + 1000 } })).afterRenewal, undefined);
});
