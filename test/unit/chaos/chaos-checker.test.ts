/**
 * The chaos checker (test/chaos/checker.ts) on synthetic recordings: a clean
 * one reports nothing, and each violation kind is found when it is there.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { check, checkColdDaemons, checkVipHolders, editVerdicts, formatReport, leaderTimeline, noHolderMs, percentile, promotions, uploadOutages } from "../../chaos/checker.js";
import { Prng } from "../../chaos/prng.js";
import type { EtcdEvent, Recording } from "../../chaos/types.js";

const T0 = 1_700_000_000_000;
const NODES = ["n1", "n2", "n3"];

let rev = 10;
const put = (t: number, key: string, value: unknown, createRevision?: number): EtcdEvent => {
  rev++;
  return { t: T0 + t, type: "put", key, value: JSON.stringify(value), createRevision: createRevision ?? rev, modRevision: rev };
};
const del = (t: number, key: string, createRevision: number): EtcdEvent => {
  rev++;
  return { t: T0 + t, type: "delete", key, createRevision, modRevision: rev };
};
const member = (t: number, node: string, generation: number, createRevision?: number) => put(t, `members/${node}`, { node, role: "standby", generation }, createRevision);

/** A clean run: n1 primary, publishes generation 1 and 2, everyone in sync; n1 is killed at +10 s and n2 (in sync) takes over. */
function cleanRecording(): Recording {
  rev = 10;
  const etcd: EtcdEvent[] = [];
  etcd.push(member(0, "n1", 0), member(0, "n2", 0), member(0, "n3", 0));
  const l1 = put(100, "leader", { node: "n1", lease: "a" });
  etcd.push(l1);
  etcd.push(put(200, "sync/generation", { generation: 1, source: "n1" }));
  etcd.push(member(300, "n2", 1), member(300, "n3", 1), member(300, "n1", 1));
  etcd.push(put(5000, "sync/generation", { generation: 2, source: "n1" }));
  etcd.push(member(5200, "n2", 2), member(5200, "n3", 2));
  etcd.push(del(12_000, "leader", l1.createRevision));
  const l2 = put(12_100, "leader", { node: "n2", lease: "b" });
  etcd.push(l2);
  etcd.push(member(12_150, "n2", 2));

  const arp = [];
  for (let t = 0; t < 20_000; t += 20) arp.push({ t: T0 + t, holders: t < 11_000 ? ["n1"] : t < 12_200 ? [] : ["n2"] });
  const daemons = [];
  for (let t = 0; t < 20_000; t += 50) daemons.push({ t: T0 + t, open: t < 11_000 ? ["n1"] : t < 12_300 ? [] : ["n2"], closed: [] });
  const uploads = [
    { name: "u1", sha256: "h1", bytes: 10, start: T0 + 1000, end: T0 + 1200, ok: true },
    { name: "u2", sha256: "h2", bytes: 10, start: T0 + 10_900, end: T0 + 11_900, ok: false },
    { name: "u3", sha256: "h3", bytes: 10, start: T0 + 12_000, end: T0 + 12_100, ok: false },
    { name: "u4", sha256: "h4", bytes: 10, start: T0 + 12_500, end: T0 + 12_700, ok: true },
  ];
  return {
    mode: "cold",
    controller: "understudy",
    nodes: NODES,
    startedAt: T0,
    endedAt: T0 + 20_000,
    arpIntervalMs: 20,
    arp,
    daemons,
    etcd,
    history: [{ kind: "failover", node: "n2", from: "n1", to: "n2", term: l2.createRevision, at: "", reason: "" }],
    uploads,
    storedUploads: { u1: "h1", u4: "h4", "u2-partial": "zz" },
    edits: [{ seq: 1, node: "n1", file: "e1.txt", sha256: "x1", t: T0 + 4000, written: true }],
    finalRoots: { n1: { "e1.txt": "x1" }, n2: { "e1.txt": "x1" }, n3: { "e1.txt": "x1" } },
    rescued: [],
    faults: [{ id: 1, kind: "agent_kill9", target: "n1", injectAt: T0 + 10_000, healAt: T0 + 14_000, settledAt: T0 + 16_000, settled: true }],
    operator: [],
  };
}

test("a clean recording has no violation and its unavailability is measured", () => {
  const rec = cleanRecording();
  const r = check(rec);
  assert.deepEqual(r.violations, []);
  assert.ok(
    Object.values(r.counts).every((n) => n === 0),
    "Object.values(r.counts).every((n) => n === 0)",
  );
  assert.equal(r.promotions.total, 2);
  assert.equal(r.promotions.stale, 0);
  assert.equal(r.edits.replicated, 1);
  assert.equal(r.edits.acked, 1);
  assert.equal(r.uploads.acknowledged, 2);
  const f = r.faults[0]!;
  assert.equal(f.noHolderMs, 1200, "no holder from +11.0 s to +12.2 s");
  assert.equal(f.outageMs, 1600, "uploads failed from +10.9 s until the attempt at +12.5 s");
  assert.equal(r.table[0]!.injected, 1);
  assert.match(formatReport(r), /agent_kill9/);
});

test("two VIP holders in the ARP samples are one violation per run, attributed to the fault", () => {
  const rec = cleanRecording();
  for (const s of rec.arp) if (s.t >= T0 + 10_500 && s.t < T0 + 10_600) s.holders = ["n1", "n2"];
  for (const s of rec.arp) if (s.t >= T0 + 18_000 && s.t < T0 + 18_020) s.holders = ["n2", "n3"];
  const v = checkVipHolders(rec.arp, rec.arpIntervalMs, rec.faults);
  assert.equal(v.length, 2);
  assert.equal(v[0]!.fault, "agent_kill9");
  assert.equal(v[0]!.ms, 100);
  assert.equal(v[1]!.fault, "none");
  assert.equal(check(rec).counts.vip_two_holders, 2);
});

test("two listening daemons count in cold mode only", () => {
  const rec = cleanRecording();
  rec.daemons[250]!.open = ["n1", "n3"];
  assert.equal(checkColdDaemons(rec.daemons, "cold").length, 1);
  assert.equal(checkColdDaemons(rec.daemons, "warm").length, 0);
  assert.equal(check(rec).counts.two_daemons_cold, 1);
});

test("a stale promotion without a history event is a violation; with one it is not", () => {
  const rec = cleanRecording();
  // n3 never got generation 2: make n3 the one promoted at +12.1 s.
  rec.etcd = rec.etcd.filter((e) => !(e.key === "members/n3" && e.t === T0 + 5200));
  const leader = rec.etcd.find((e) => e.key === "leader" && e.t === T0 + 12_100)!;
  leader.value = JSON.stringify({ node: "n3", lease: "c" });
  const after = rec.etcd.find((e) => e.key === "members/n2" && e.t === T0 + 12_150)!;
  after.key = "members/n3";
  after.value = JSON.stringify({ node: "n3", generation: 1 });
  const p = promotions(rec.etcd);
  assert.equal(p[1]!.node, "n3");
  assert.equal(p[1]!.stale, true);
  assert.equal(check(rec).counts.stale_promotion_unrecorded, 1);
  rec.history.push({ kind: "stale_promotion", node: "n3", from: "n1", to: "n3", term: leader.createRevision, at: "", reason: "" });
  const r = check(rec);
  assert.equal(r.counts.stale_promotion_unrecorded, 0);
  assert.equal(r.promotions.staleRecorded, 1);
});

test("a member key that only lagged a finished pull is not a stale promotion", () => {
  const rec = cleanRecording();
  // n2's record before the promotion still says 1, but its first record after (before publishing) says 2.
  rec.etcd = rec.etcd.filter((e) => !(e.key === "members/n2" && e.t === T0 + 5200));
  assert.equal(promotions(rec.etcd)[1]!.stale, false);
  assert.equal(check(rec).counts.stale_promotion_unrecorded, 0);
});

test("an acknowledged edit missing on a node is lost unless rescued or covered by a recorded stale promotion", () => {
  const rec = cleanRecording();
  delete rec.finalRoots.n3!["e1.txt"];
  let r = check(rec);
  assert.equal(r.counts.config_edit_lost, 1);
  assert.match(r.violations[0]!.detail, /missing on n3/);
  rec.rescued.push({ node: "n1", file: "e1.txt", sha256: "x1" });
  r = check(rec);
  assert.equal(r.counts.config_edit_lost, 0);
  assert.equal(r.edits.rescued, 1);
  // A rescued copy with other content does not count.
  rec.rescued[0]!.sha256 = "other";
  assert.equal(check(rec).counts.config_edit_lost, 1);
});

test("a lost edit counts as reported only when the first promotion after it was a recorded stale one", () => {
  const rec = cleanRecording();
  const stale = rec.etcd.find((e) => e.key === "leader" && e.t === T0 + 12_100)!;
  rec.history.push({ kind: "stale_promotion", node: "n2", from: "n1", to: "n2", term: stale.createRevision, at: "", reason: "" });
  // Made at +4 s, before the promotion at +12.1 s; gone everywhere.
  rec.finalRoots = { n1: {}, n2: {}, n3: {} };
  let r = check(rec);
  assert.equal(r.edits.lost_reported, 1);
  assert.equal(r.counts.config_edit_lost, 0);
  // A recorded stale promotion later than the next promotion does not excuse it.
  rec.history = rec.history.filter((h) => h.kind !== "stale_promotion");
  rec.etcd.push(del(19_000, "leader", stale.createRevision));
  const later = put(19_100, "leader", { node: "n3", lease: "d" });
  rec.etcd.push(later);
  rec.history.push({ kind: "stale_promotion", node: "n3", from: "n2", to: "n3", term: later.createRevision, at: "", reason: "" });
  r = check(rec);
  assert.equal(r.edits.lost_reported, 0);
  assert.equal(r.counts.config_edit_lost, 1);
});

test("an edit on a node that stopped being primary within the ack time is not acknowledged", () => {
  const rec = cleanRecording();
  rec.edits = [{ seq: 2, node: "n1", file: "e2.txt", sha256: "x2", t: T0 + 11_500, written: true }];
  const v = editVerdicts(rec);
  assert.equal(v[0]!.acked, false);
  assert.equal(v[0]!.outcome, "missing");
  assert.equal(check(rec).counts.config_edit_lost, 0);
});

test("an acknowledged upload missing or changed in storage is lost", () => {
  const rec = cleanRecording();
  delete rec.storedUploads.u1;
  rec.storedUploads.u4 = "corrupted";
  const r = check(rec);
  assert.equal(r.counts.upload_lost, 2);
  assert.equal(r.uploads.lost, 2);
});

test("helpers: timeline, outages, no-holder time, percentiles, PRNG determinism", () => {
  const rec = cleanRecording();
  const spans = leaderTimeline(rec.etcd);
  assert.deepEqual(
    spans.map((s) => s.node),
    ["n1", "n2"],
  );
  assert.equal(spans[0]!.to, T0 + 12_000);
  assert.deepEqual(uploadOutages(rec.uploads), [{ from: T0 + 10_900, to: T0 + 12_500 }]);
  assert.equal(noHolderMs(rec.arp, 20, T0, T0 + 20_000), 1200);
  // A stalled sampler does not count as time without a holder beyond 4 intervals.
  assert.equal(
    noHolderMs(
      [
        { t: 0, holders: [] },
        { t: 1000, holders: ["n1"] },
      ],
      20,
      0,
      1000,
    ),
    80,
  );
  assert.equal(percentile([1, 2, 3, 4, 100], 95), 100);
  assert.equal(percentile([5, 1, 3], 50), 3);
  const a = new Prng(42);
  const b = new Prng(42);
  const xs = Array.from({ length: 5 }, () => a.int(0, 1000));
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.int(0, 1000)),
  );
  assert.notDeepEqual(new Prng(42).fork("ops").int(0, 1e9), new Prng(42).fork("edits").int(0, 1e9));
});
