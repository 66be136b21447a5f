// The failsafe planner (src/ha/failsafe.ts) against every case of docs/failsafe-design.md:
// table-driven, no clock, no I/O. Rule ids in the case names are the design's.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  answerGrant,
  campaignHold,
  extensionAfterRound,
  grantMacInput,
  listedForCampaign,
  onEtcdReturn,
  planRound,
  type GrantRequest,
  type GrantView,
  type RoundResult,
  type RoundView,
} from "../../../src/ha/failsafe.js";

const REQ: GrantRequest = { node: "n1", to: "n2", term: 42, leaseMs: 5000, nonce: "a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4", seq: 1_700_000_000_500 };
const STANDBY: GrantView = {
  enabled: true,
  self: "n2",
  acting: "standby",
  campaignInFlight: false,
  ownLeaseMs: 5000,
  fenceMarginMs: 1000,
  lastLeader: { node: "n1", term: 42 },
  answered: { node: "n1", term: 42, seq: 1_700_000_000_000 },
  nowMs: 10_000,
};

const grantCases: { name: string; req?: Partial<GrantRequest>; view?: Partial<GrantView>; granted: boolean; reason: RegExp; until?: number | null }[] = [
  { name: "S3: a standby following the requester grants for L + m from receipt", granted: true, reason: /^granted: I am a standby following n1 \(term 42\); no campaign for 6000ms$/, until: 16_000 },
  { name: "S3: no leader in my etcd view (the requester's lease expired) still grants", view: { lastLeader: null }, granted: true, reason: /seeing no leader key/, until: 16_000 },
  { name: "S3: the requester re-acquired a newer term than I saw: grant", req: { term: 43 }, granted: true, reason: /^granted/ },
  { name: "S2: failsafe off here refuses", view: { enabled: false }, granted: false, reason: /failsafe is off on this node/, until: null },
  { name: "S2: acting primary refuses", view: { acting: "primary" }, granted: false, reason: /n2 acts as primary/ },
  { name: "S2/S5: a campaign in flight refuses", view: { campaignInFlight: true }, granted: false, reason: /is campaigning/ },
  { name: "S2: a request naming myself refuses", req: { node: "n2" }, granted: false, reason: /names this node/ },
  { name: "S2: a lease period that differs from my ttl refuses", req: { leaseMs: 10_000 }, granted: false, reason: /10000ms differs from this node's election.ttl \(5000ms\)/ },
  { name: "S2: a leader other than the requester refuses (it is stale)", view: { lastLeader: { node: "n3", term: 50 } }, granted: false, reason: /last named n3 \(term 50\), not n1/ },
  { name: "S2: a newer term of the same node refuses", view: { lastLeader: { node: "n1", term: 44 } }, granted: false, reason: /term 44 is newer/ },
  { name: "S7: a request for another member (a capture replayed to me) refuses", req: { to: "n3" }, granted: false, reason: /the request is for n3, not for this node \(n2\)/, until: null },
  { name: "S7: nothing answered before from anyone: grant", view: { answered: null }, granted: true, reason: /^granted/ },
  { name: "S7: the last request answered came from another node: grant", view: { answered: { node: "n3", term: 50, seq: 1_800_000_000_000 } }, granted: true, reason: /^granted/ },
  {
    name: "S7: the very request answered last (a replay) refuses",
    req: { seq: 1_700_000_000_000 },
    granted: false,
    reason: /request 1700000000000 of n1 is not newer than request 1700000000000 already answered in term 42 \(a replay\?\)/,
    until: null,
  },
  { name: "S7: an older request of the same term refuses", req: { seq: 1_699_999_999_999 }, granted: false, reason: /not newer than request 1700000000000/ },
  {
    name: "S7: a request of an older term than one answered refuses, whatever its seq",
    req: { term: 41, seq: 1_900_000_000_000 },
    view: { lastLeader: null },
    granted: false,
    reason: /for term 41, older than the term 42 already answered/,
  },
  { name: "S7: a newer term with a lower seq (another requester clock) grants", req: { term: 43, seq: 5 }, granted: true, reason: /^granted/ },
];

for (const c of grantCases) {
  test(`answerGrant — ${c.name}`, () => {
    const d = answerGrant({ ...REQ, ...c.req }, { ...STANDBY, ...c.view });
    assert.equal(d.answer.granted, c.granted);
    assert.match(d.answer.reason, c.reason);
    assert.equal(d.answer.node, "n2");
    assert.equal(d.answer.nonce, REQ.nonce, "the nonce is echoed");
    if (c.until !== undefined) assert.equal(d.promisedUntilMs, c.until);
    if (!c.granted) assert.equal(d.answer.promisedForMs, 0);
    // S7: a request for this node that is not stale moves its sender's mark, granted or refused.
    const req = { ...REQ, ...c.req };
    const moves = /the request is for|a replay\?/.test(d.answer.reason) ? null : { node: req.node, term: req.term, seq: req.seq };
    assert.deepEqual(d.mark, moves);
  });
}

test("campaignHold — S4: held until the promise ends, then free; S6: the start-up hold says so; the sentence never counts down", () => {
  assert.equal(campaignHold(16_000, 16_000, "n1", 6000), null);
  assert.equal(campaignHold(16_000, 20_000, "n1", 6000), null);
  assert.equal(campaignHold(16_000, 15_000, "n1", 6000), "not campaigning: I promised n1 (failsafe) not to campaign within 6000ms of its last grant request");
  assert.equal(campaignHold(16_000, 10_001, "n1", 6000), campaignHold(16_000, 15_999, "n1", 6000), "the same sentence all along (the member key is not rewritten every cycle)");
  assert.match(campaignHold(6000, 100, null, 6000)!, /^not campaigning: failsafe start-up hold, 6000ms from the agent's start/);
});

const PRIMARY: RoundView = {
  enabled: true,
  self: "n1",
  acting: "primary",
  term: 42,
  etcdFailing: true,
  members: [
    { node: "n1", api: "http://198.18.0.11:8470" },
    { node: "n2", api: "http://198.18.0.12:8470" },
    { node: "n3", api: "http://198.18.0.13:8470" },
  ],
  listed: { term: 42, nodes: ["n1", "n2", "n3"] },
  roundInFlight: false,
};

const planCases: { name: string; view: Partial<RoundView>; ask: boolean; reason: RegExp; targets?: string[] }[] = [
  { name: "P1/P2: etcd failing, every member asked except me", view: {}, ask: true, reason: /^asking n2, n3 for a failsafe grant$/, targets: ["n2", "n3"] },
  { name: "off: no round", view: { enabled: false }, ask: false, reason: /failsafe is off/ },
  { name: "a standby runs no round", view: { acting: "standby" }, ask: false, reason: /not acting as primary/ },
  { name: "etcd answering: no round", view: { etcdFailing: false }, ask: false, reason: /etcd answers/ },
  { name: "rounds never overlap", view: { roundInFlight: true }, ask: false, reason: /still running/ },
  {
    name: "P2: a member without an API URL cannot be asked: no round, fence as today",
    view: { members: [...PRIMARY.members.slice(0, 2), { node: "n3", api: null }] },
    ask: false,
    reason: /n3 publishes no API URL/,
  },
  { name: "E1: no failsafe/members written: no round, fence as today", view: { listed: null }, ask: false, reason: /failsafe\/members was not written in my term \(42\)/ },
  { name: "E1: a list of an older term: no round", view: { listed: { term: 41, nodes: ["n1", "n2", "n3"] } }, ask: false, reason: /not written in my term/ },
  { name: "P2: a listed node that left the snapshot is still asked: no URL, so no round", view: { members: PRIMARY.members.slice(0, 2) }, ask: false, reason: /n3 publishes no API URL/ },
  { name: "P2: a member seen but not yet listed is asked too", view: { listed: { term: 42, nodes: ["n1", "n2"] } }, ask: true, reason: /asking n2, n3/, targets: ["n2", "n3"] },
  {
    name: "P2: single-node cluster asks nobody",
    view: { members: [{ node: "n1", api: "http://198.18.0.11:8470" }], listed: { term: 42, nodes: ["n1"] } },
    ask: true,
    reason: /only member/,
    targets: [],
  },
];

for (const c of planCases) {
  test(`planRound — ${c.name}`, () => {
    const p = planRound({ ...PRIMARY, ...c.view });
    assert.equal(p.ask, c.ask);
    assert.match(p.reason, c.reason);
    if (c.targets && p.ask)
      assert.deepEqual(
        p.targets.map((t) => t.node),
        c.targets,
      );
  });
}

type Answer = { readonly granted: true } | { readonly granted: false; readonly why: string };
const granted: Answer = { granted: true };
const answers = (entries: [string, Answer][]) => new Map<string, Answer>(entries);
function round(over: Partial<RoundResult> = {}): RoundResult {
  return {
    startedAtMs: 10_000,
    finishedAtMs: 10_040,
    leaseMs: 5000,
    asked: ["n2", "n3"],
    answers: answers([
      ["n2", granted],
      ["n3", granted],
    ]),
    ...over,
  };
}

const extendCases: { name: string; round: RoundResult; deadline: number; to: number | null; reason: RegExp }[] = [
  {
    name: "P4: all granted: deadline = round START + L - m (not its end)",
    round: round(),
    deadline: 12_000,
    to: 14_000,
    reason: /2 of 2 member\(s\) granted; deadline moved to round start \+ 5000ms - 1000ms/,
  },
  {
    name: "P4: one refused: no extension, fence at the deadline",
    round: round({
      answers: answers([
        ["n2", granted],
        ["n3", { granted: false, why: "refused: n3 acts as primary" }],
      ]),
    }),
    deadline: 12_000,
    to: null,
    reason: /1 of 2 .*\(n3: refused: n3 acts as primary\); fencing at the deadline/,
  },
  { name: "P4: one unreachable (no answer at all): no extension", round: round({ answers: answers([["n2", granted]]) }), deadline: 12_000, to: null, reason: /n3: no answer/ },
  {
    name: "P4: one timed out: no extension",
    round: round({
      answers: answers([
        ["n2", granted],
        ["n3", { granted: false, why: "timed out after 1250ms" }],
      ]),
    }),
    deadline: 12_000,
    to: null,
    reason: /n3: timed out/,
  },
  {
    name: "P4: a round finishing at or after the deadline extends nothing (the fence ran)",
    round: round({ finishedAtMs: 12_000 }),
    deadline: 12_000,
    to: null,
    reason: /finished 0ms after the deadline/,
  },
  { name: "P4: never moves the deadline back", round: round({ startedAtMs: 7000, finishedAtMs: 7040 }), deadline: 12_000, to: null, reason: /already later/ },
  { name: "P2: single-node cluster: an empty round is complete", round: round({ asked: [], answers: answers([]) }), deadline: 12_000, to: 14_000, reason: /no other member to ask/ },
];

for (const c of extendCases) {
  test(`extensionAfterRound — ${c.name}`, () => {
    const e = extensionAfterRound(c.round, c.deadline, 1000);
    assert.equal(e.extendToMs, c.to);
    assert.match(e.reason, c.reason);
  });
}

test("the clock rule: every grant's promise ends at least m_p + m_s after the deadline it gave, for any delivery delay", () => {
  // Deterministic sweep: round start S on the primary, receipt R_i = S + delay on each member
  // (real time; both clocks exact here, the margins absorb rate error), any round duration. The
  // deadline held before the round is S + 1000 (a late round), so every complete round extends.
  let checked = 0;
  for (const delay of [0, 1, 37, 998]) {
    for (const finishAfter of [delay, delay + 1, delay + 500 > 999 ? 999 : delay + 500]) {
      const S = 50_000;
      const d = answerGrant(REQ, { ...STANDBY, nowMs: S + delay });
      const e = extensionAfterRound(round({ startedAtMs: S, finishedAtMs: S + finishAfter }), S + 1_000, 1000);
      assert.notEqual(e.extendToMs, null, `delay ${delay}, finished +${finishAfter}: ${e.reason}`);
      assert.equal(e.extendToMs, S + 5_000 - 1000, "round start + L - m, never more");
      assert.ok(d.promisedUntilMs! - e.extendToMs! >= 1000 + 1000, `delay ${delay}: promise ${d.promisedUntilMs} vs deadline ${e.extendToMs}`);
      checked++;
    }
  }
  assert.equal(checked, 12);
});

const returnCases: { name: string; v: Parameters<typeof onEtcdReturn>[0]; kind: string; reason: RegExp }[] = [
  {
    name: "E3a: key names me with my term, lease alive: same term",
    v: { self: "n1", term: 42, leaseAlive: true, leader: { node: "n1", term: 42 }, failsafeDeadlineHolds: true },
    kind: "keep_term",
    reason: /still names me \(term 42\)/,
  },
  {
    name: "E3b: key gone, failsafe deadline holds: campaign for a new term first",
    v: { self: "n1", term: 42, leaseAlive: false, leader: null, failsafeDeadlineHolds: true },
    kind: "campaign_new_term",
    reason: /campaigning for a new term before anything else/,
  },
  {
    name: "E3c: key gone and the failsafe deadline passed: fence",
    v: { self: "n1", term: 42, leaseAlive: false, leader: null, failsafeDeadlineHolds: false },
    kind: "fence",
    reason: /deadline passed: fencing/,
  },
  {
    name: "E3c: key names another node: fence",
    v: { self: "n1", term: 42, leaseAlive: true, leader: { node: "n2", term: 43 }, failsafeDeadlineHolds: true },
    kind: "fence",
    reason: /names n2 \(term 43\)/,
  },
  {
    name: "E3c: key names me but my lease is gone: fence",
    v: { self: "n1", term: 42, leaseAlive: false, leader: { node: "n1", term: 42 }, failsafeDeadlineHolds: true },
    kind: "fence",
    reason: /names n1/,
  },
];

for (const c of returnCases) {
  test(`onEtcdReturn — ${c.name}`, () => {
    const r = onEtcdReturn(c.v);
    assert.equal(r.kind, c.kind);
    assert.match(r.reason, c.reason);
  });
}

test("membershipToPublish — E1: written when missing, of another term or another set; deleted when failsafe is off here", async () => {
  const { membershipToPublish } = await import("../../../src/ha/failsafe.js");
  const base = { enabled: true, self: "n1", term: 42, observed: ["n2", "n1", "n3"] };
  assert.deepEqual(membershipToPublish({ ...base, listed: null }), { term: 42, nodes: ["n1", "n2", "n3"] });
  assert.deepEqual(membershipToPublish({ ...base, listed: { term: 41, nodes: ["n1", "n2", "n3"] } }), { term: 42, nodes: ["n1", "n2", "n3"] });
  assert.deepEqual(membershipToPublish({ ...base, listed: { term: 42, nodes: ["n1", "n2"] } }), { term: 42, nodes: ["n1", "n2", "n3"] }, "a newcomer is listed");
  assert.deepEqual(membershipToPublish({ ...base, observed: ["n1", "n2"], listed: { term: 42, nodes: ["n1", "n2", "n3"] } }), { term: 42, nodes: ["n1", "n2"] }, "a member that left is dropped");
  assert.equal(membershipToPublish({ ...base, listed: { term: 42, nodes: ["n3", "n2", "n1"] } }), null, "same set: no write");
  assert.equal(membershipToPublish({ ...base, enabled: false, listed: { term: 40, nodes: ["n1"] } }), "delete");
  assert.equal(membershipToPublish({ ...base, enabled: false, listed: null }), null, "off and no list: nothing written (today's behaviour)");
  assert.equal(membershipToPublish({ ...base, enabled: false, listed: null, invalid: true }), "delete", "off: an unreadable list (it stops every campaign) is removed");
  assert.deepEqual(membershipToPublish({ ...base, listed: null, invalid: true }), { term: 42, nodes: ["n1", "n2", "n3"] }, "on: rewritten");
});

test("listedForCampaign — E2: absent list or listed: free; unlisted newcomer: held", () => {
  assert.equal(listedForCampaign(null, "n4"), null);
  assert.equal(listedForCampaign(["n1", "n2", "n4"], "n4"), null);
  assert.match(listedForCampaign(["n1", "n2", "n3"], "n4")!, /does not list me/);
});

test("grantMacInput covers node, verdict, lease and nonce (a changed field changes the input)", () => {
  const base = { node: "n2", granted: true, leaseMs: 5000, nonce: REQ.nonce };
  const s = grantMacInput(base);
  assert.equal(s, `understudy-failsafe-v1|n2|1|5000|${REQ.nonce}`);
  for (const change of [{ node: "n3" }, { granted: false }, { leaseMs: 5001 }, { nonce: "x" }]) assert.notEqual(grantMacInput({ ...base, ...change }), s);
});

test("election.failsafe: off by default, on accepted, anything else refused naming the key", async () => {
  const { parseConfigText } = await import("../../../src/config/load.js");
  const base = "cluster: c1\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: [http://198.18.0.2:2379] }\ndaemon: { backend: systemd, unit: ssh.service }\n";
  assert.equal(parseConfigText(base, "/x.yaml").election.failsafe, "off");
  assert.equal(parseConfigText(`${base}election: { failsafe: on }\napi: { listen: "0.0.0.0:8470", token_file: /etc/understudy/api-token }\n`, "/x.yaml").election.failsafe, "on");
  assert.throws(() => parseConfigText(`${base}election: { failsafe: yes }\n`, "/x.yaml"), /US_E_CONFIG_INVALID.*election\.failsafe/s);
  assert.throws(() => parseConfigText(`${base}election: { failsafe: true }\n`, "/x.yaml"), /election\.failsafe/);
});
