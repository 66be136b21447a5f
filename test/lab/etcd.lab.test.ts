/**
 * The etcd adapter against a real etcd 3.4 (Debian etcd-server) on loopback:
 * the Coordinator contract (docs/architecture.md) as the HA loop relies on it, on the
 * secure setup the lab uses by default (client TLS with client certificates,
 * etcd auth with a least-privilege role on /understudy-test/ only; see
 * bench/cli/etcd.ts and test/lab/harness/etcd-auth.ts).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startEtcd, type LoopbackEtcd } from "../../bench/cli/etcd.js";
import { readEtcdSecurity, type EtcdSecurity } from "../../src/config/etcd-security.js";
import { EtcdCoordinator } from "../../src/coordinator/etcd.js";
import type { HistoryEvent, MemberRecord } from "../../src/coordinator/port.js";
import { SystemClock } from "../../src/platform/clock.js";
import { silentLogger } from "../../src/platform/logger.js";
import { pollUntil } from "./harness/index.js";

let etcd: LoopbackEtcd;
let endpoint: string;
let security: EtcdSecurity;
const coordinators: EtcdCoordinator[] = [];

function coordinator(cluster = "c1", requestTimeoutMs = 1000): EtcdCoordinator {
  const c = new EtcdCoordinator({
    endpoints: [endpoint],
    prefix: "/understudy-test",
    cluster,
    requestTimeoutMs,
    dialTimeoutMs: 2000,
    clock: new SystemClock(),
    log: silentLogger(),
    security,
  });
  coordinators.push(c);
  return c;
}

function member(node: string): MemberRecord {
  return {
    node,
    role: "standby",
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 0,
    address: "198.18.0.11",
    version: "t",
    decision: "x",
    probes: {},
    vipHeld: false,
    daemonRunning: false,
    updatedAt: "2026-12-04T14:00:00.000Z",
  };
}

before(async () => {
  // Default heartbeat/election settings: etcd's minimum lease TTL is 2 s here.
  etcd = await startEtcd({ bin: "/usr/bin/etcd", secure: true, rolePrefixes: ["/understudy-test/"], startTimeoutMs: 30_000 });
  endpoint = etcd.endpoint;
  security = await readEtcdSecurity("/etc/understudy/understudy.yaml", etcd.securitySettings!);
  const c = coordinator("probe");
  const ok = await pollUntil(
    async () =>
      await c.snapshot().then(
        () => true,
        () => undefined,
      ),
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  assert.ok(ok, "etcd came up");
});

after(async () => {
  for (const c of coordinators) await c.close().catch(() => undefined);
  await etcd?.stop();
});

test("the lab etcd is TLS + client certificates + auth: the agents' user reaches only its own prefix", async () => {
  assert.match(endpoint, /^https:/);
  const outside = new EtcdCoordinator({
    endpoints: [endpoint],
    prefix: "/understudy",
    cluster: "lab-elsewhere",
    requestTimeoutMs: 2000,
    dialTimeoutMs: 2000,
    clock: new SystemClock(),
    log: silentLogger(),
    security,
  });
  coordinators.push(outside);
  await assert.rejects(outside.snapshot(), /US_E_ETCD_AUTH/);
});

test("etcd raises a 1 s TTL to its minimum and the adapter reports the granted TTL", async () => {
  const c = coordinator();
  const g = await c.grantLease(1000);
  assert.equal(g.ttlMs, 2000);
  const ack = await c.keepAlive(g.id);
  assert.equal(ack.ttlMs, 2000);
  await c.revokeLease(g.id);
  assert.equal((await c.keepAlive(g.id)).ttlMs, 0, "a revoked lease reports TTL 0");
});

test("campaign is create-if-absent; term is the key's revision; the loser sees the incumbent", async () => {
  const a = coordinator("elect");
  const b = coordinator("elect");
  const la = await a.grantLease(5000);
  const lb = await b.grantLease(5000);
  const [ra, rb] = await Promise.all([a.campaign("n1", la.id, "t"), b.campaign("n2", lb.id, "t")]);
  assert.equal([ra, rb].filter((r) => r.won).length, 1, "exactly one winner");
  const winner = ra.won ? ra : rb;
  const loser = ra.won ? rb : ra;
  assert.deepEqual(loser.leader, winner.leader);
  const snap = await a.snapshot();
  assert.equal(snap.leader?.term, winner.leader!.term);
  assert.equal(snap.leader?.node, winner.leader!.node);
  // resign with a wrong term changes nothing; with the right one it deletes the key.
  assert.equal(await a.resign(winner.leader!.term - 1), false);
  assert.equal((await a.snapshot()).leader?.node, winner.leader!.node);
  assert.equal(await b.resign(winner.leader!.term), true);
  assert.equal((await a.snapshot()).leader, null);
  await a.revokeLease(la.id);
  await b.revokeLease(lb.id);
});

test("a request written after the view is neither cleared nor cancelled by an agent; the operator's cancel takes any", async () => {
  const a = coordinator("requests");
  const la = await a.grantLease(5000);
  await a.putMember(member("n1"), la.id);
  const won = await a.campaign("n1", la.id, "t");
  assert.ok(won.won, "won.won");
  const term = won.leader!.term;
  const req = (requestedAt: string) => ({ kind: "switchover" as const, from: "n1", to: "n2", at: null, force: false, requestedBy: "ops", reason: "r", requestedAt });
  assert.ok(await a.requestSwitchover(req("2026-12-07T10:00:00.000Z")), "first request");
  const view = (await a.snapshot()).revision;
  // The operator deletes it and asks again after the view a decision was taken on.
  await a.cancelSwitchover();
  assert.ok(await a.requestSwitchover(req("2026-12-07T10:00:01.000Z")), "second request");
  assert.equal(await a.clearSwitchover(term, view), false, "the newer request is not cleared");
  await a.cancelSwitchover(view);
  assert.equal((await a.snapshot()).switchover?.requestedAt, "2026-12-07T10:00:01.000Z", "nor cancelled by the agent");
  const now = (await a.snapshot()).revision;
  assert.equal(await a.clearSwitchover(term, now), true, "cleared on a view that has it");
  assert.equal((await a.snapshot()).switchover, null);
  // Nothing pending: an absent key's mod revision compares as 0, so both succeed on any view and write nothing.
  const before = (await a.snapshot()).revision;
  assert.equal(await a.clearSwitchover(term, view), true, "clear with nothing pending");
  await a.cancelSwitchover(view);
  assert.equal((await a.snapshot()).revision, before, "no write");
  assert.ok(await a.requestSwitchover(req("2026-12-07T10:00:02.000Z")), "third request");
  await a.cancelSwitchover();
  assert.equal((await a.snapshot()).switchover, null, "the operator's cancel takes whatever is pending");
  await a.revokeLease(la.id);
});

test("handOver: one txn puts the key on the target's lease (a new term, the old one fenced); refused when that lease is gone or the view is old", async () => {
  const a = coordinator("handover");
  const b = coordinator("handover");
  const la = await a.grantLease(5000);
  const lb = await b.grantLease(5000);
  await a.putMember(member("n1"), la.id);
  await b.putMember(member("n2"), lb.id);
  const won = await a.campaign("n1", la.id, "t");
  assert.ok(won.won, "won.won");
  const t1 = won.leader!.term;
  const view = (await a.snapshot()).revision;
  const rec = { node: "n1", term: t1, at: new Date().toISOString(), why: "switchover" as const };
  // A view older than the published generation: refused, nothing written.
  assert.ok(
    await a.publishGeneration(t1, { generation: 1, digest: "d", roots: {}, files: 0, source: "n1", term: t1, publishedAt: rec.at }),
    'await a.publishGeneration(t1, { generation: 1, digest: "d", roots: {}, files: 0, source: "n1", te...',
  );
  assert.equal(await a.handOver(t1, { node: "n2", lease: lb.id }, rec, view), null);
  assert.equal((await b.snapshot()).leader?.node, "n1");
  // The wrong lease for n2 (its member key hangs on lb): refused.
  const view2 = (await a.snapshot()).revision;
  assert.equal(await a.handOver(t1, { node: "n2", lease: la.id }, rec, view2), null);
  const t2 = await a.handOver(t1, { node: "n2", lease: lb.id }, rec, view2);
  assert.ok(t2 !== null && t2 > t1, `new term ${t2} after ${t1}`);
  const snap = await b.snapshot();
  assert.deepEqual([snap.leader?.node, snap.leader?.lease, snap.leader?.term], ["n2", lb.id, t2]);
  assert.equal(snap.released?.term, t1);
  // The old term guards nothing any more; the new one does.
  assert.equal(await a.publishGeneration(t1, { generation: 2, digest: "d", roots: {}, files: 0, source: "n1", term: t1, publishedAt: rec.at }), false);
  assert.equal(await a.resign(t1), false);
  assert.equal(await a.handOver(t1, { node: "n1", lease: la.id }, rec, snap.revision), null);
  // The key lives on n2's lease: revoking n1's leaves it, revoking n2's deletes it.
  await a.revokeLease(la.id);
  assert.equal((await b.snapshot()).leader?.term, t2);
  // A handover to a node whose lease is gone writes nothing.
  const lc = await b.grantLease(5000);
  await b.putMember(member("n3"), lc.id);
  await b.revokeLease(lc.id);
  assert.equal(await b.handOver(t2, { node: "n3", lease: lc.id }, { ...rec, node: "n2", term: t2 }, (await b.snapshot()).revision), null);
  assert.equal((await b.snapshot()).leader?.node, "n2");
  assert.ok(await b.resign(t2), "await b.resign(t2)");
  await b.revokeLease(lb.id);
});

test("keys attached to a lease vanish when it is revoked; the watch reports changes", async () => {
  const c = coordinator("watch");
  const events: string[] = [];
  const sub = await c.watchLeader((e) => events.push(e.type));
  const l = await c.grantLease(5000);
  await c.putMember(member("n1"), l.id);
  assert.deepEqual(
    (await c.snapshot()).members.map((m) => m.node),
    ["n1"],
  );
  await c.campaign("n1", l.id, "t");
  await c.setPaused(true);
  assert.equal((await c.snapshot()).paused, true);
  await c.setPaused(false);
  await c.revokeLease(l.id);
  const snap = await c.snapshot();
  assert.deepEqual(snap.members, []);
  assert.equal(snap.leader, null);
  const seen = await pollUntil(() => (events.filter((e) => e === "changed").length >= 4 ? true : undefined), { timeoutMs: 3000, intervalMs: 20 });
  assert.ok(seen, `watch events: ${events.join(",")}`);
  await sub.close();
});

test("a watch-woken snapshot (cached) is exactly a read: another agent's writes, own writes, lease expiry, no watch", async () => {
  const c = coordinator("cached");
  const other = coordinator("cached");
  const strip = (s: Awaited<ReturnType<EtcdCoordinator["snapshot"]>>) => ({ ...s, revision: 0 });
  /**
   * After each change: once the watch has delivered it, the view answers (not a read) and equals a
   * fresh read, revision aside. The read is the other agent's, so this one's view is left alone.
   */
  const agree = async (what: string) => {
    const ok = await pollUntil(
      async () => {
        const before = c.snapshotsFromView();
        const cached = await c.snapshot({ cached: true });
        return c.snapshotsFromView() > before && JSON.stringify(strip(cached)) === JSON.stringify(strip(await other.snapshot())) ? true : undefined;
      },
      { timeoutMs: 3000, intervalMs: 20 },
    );
    assert.ok(ok, `the view did not answer, or differs from a read, after: ${what}`);
  };
  await c.snapshot(); // before the watch: the view is not trusted yet
  const events: string[] = [];
  const sub = await c.watchLeader((e) => events.push(e.type));
  await c.snapshot(); // the read that makes the view exact
  const lo = await other.grantLease(3000);
  await other.putMember(member("n2"), lo.id);
  await agree("another agent's member put");
  // Read-your-writes: right after our own campaign, the cached snapshot already names us.
  const l = await c.grantLease(5000);
  const won = await c.campaign("n1", l.id, "t");
  assert.ok(won.won, "won.won");
  // Read-your-writes: whether the view answers (the watch delivered the campaign already) or a read does.
  assert.equal((await c.snapshot({ cached: true })).leader?.term, won.leader!.term, "own campaign seen at once");
  assert.equal(await c.release(won.leader!.term, { node: "n1", term: won.leader!.term, at: "2026-12-04T14:00:00.000Z", why: "handover" }), true);
  assert.equal((await c.snapshot({ cached: true })).leader, null, "own release seen at once");
  assert.equal((await c.snapshot({ cached: true })).released?.node, "n1");
  // A lease that etcd expires (no write by either agent): seen through the watch.
  await agree("release");
  // Another agent's release: the leader's delete and control/released come in one txn, so one
  // watch response; a cycle woken by it, reading the view at once, sees both or neither.
  await sub.close(); // one watcher: a second one would have applied the whole response already
  const seen: { leader: number | null; released: number | null }[] = [];
  const sub2 = await c.watchLeader((e) => {
    if (e.type !== "changed") return;
    void c.snapshot({ cached: true }).then((s) => seen.push({ leader: s.leader?.term ?? null, released: s.released?.term ?? null }));
  });
  await c.snapshot();
  const fromView = c.snapshotsFromView();
  const lo2 = await other.grantLease(5000);
  const theirs = await other.campaign("n2", lo2.id, "t");
  assert.ok(theirs.won, "theirs.won");
  assert.equal(await other.release(theirs.leader!.term, { node: "n2", term: theirs.leader!.term, at: "2026-12-04T14:00:00.000Z", why: "switchover" }), true);
  const after = await pollUntil(() => (seen.some((x) => x.leader === null && x.released === theirs.leader!.term) ? true : undefined), { timeoutMs: 3000, intervalMs: 20 });
  assert.ok(c.snapshotsFromView() > fromView, `the watch-woken snapshots came from the view (${fromView} -> ${c.snapshotsFromView()}, ${JSON.stringify(seen)})`);
  assert.ok(after, `the release reached the view: ${JSON.stringify(seen)}`);
  const torn = seen.findIndex((x, i) => i > 0 && x.leader === null && seen[i - 1]!.leader === theirs.leader!.term && x.released !== theirs.leader!.term);
  assert.equal(torn, -1, `a view with the key gone but not the release record: ${JSON.stringify(seen)}`);
  await other.revokeLease(lo2.id);
  const gone = await pollUntil(async () => ((await c.snapshot({ cached: true })).members.length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
  assert.ok(gone, "the expired member's key is gone from the cached view");
  await agree("lease expiry");
  await sub2.close();
  // No watch: cached asks etcd.
  await other.putMember(member("n3"), (await other.grantLease(5000)).id);
  assert.deepEqual(
    (await c.snapshot({ cached: true })).members.map((m) => m.node),
    ["n3"],
  );
  await c.revokeLease(l.id);
});

test("history appends wake no cycle; any other key does", async () => {
  const c = coordinator("quiet-history");
  const events: string[] = [];
  const sub = await c.watchLeader((e) => events.push(e.type));
  const event: HistoryEvent = { kind: "failover", at: "2026-12-05T00:00:00.000Z", node: "n1", from: null, to: "n1", term: 1, reason: "test" };
  await c.appendHistory(event, null);
  await c.setPaused(true);
  const woke = await pollUntil(() => (events.includes("changed") ? true : undefined), { timeoutMs: 3000, intervalMs: 20 });
  assert.ok(woke, "woke");
  await new Promise((r) => setTimeout(r, 300)); // an event of the history put, were there one, is in by now
  assert.deepEqual(events, ["changed"], "only the pause woke the loop");
  assert.equal((await c.history(10)).length, 1, "the history put happened");
  await c.setPaused(false);
  await sub.close();
});

test("an unreachable etcd fails calls within the request timeout, and the adapter recovers", async () => {
  const c = coordinator("freeze", 500);
  const l = await c.grantLease(5000);
  etcd.signal("SIGSTOP");
  try {
    const t0 = performance.now();
    await assert.rejects(c.keepAlive(l.id), /US_E_ETCD_UNREACHABLE/);
    await assert.rejects(c.snapshot(), /US_E_ETCD_UNREACHABLE/);
    const took = performance.now() - t0;
    assert.ok(took < 1500, `two calls failed in ${Math.round(took)}ms`);
  } finally {
    etcd.signal("SIGCONT");
  }
  const ack = await pollUntil(async () => await c.keepAlive(l.id).catch(() => undefined), { timeoutMs: 5000, intervalMs: 100 });
  assert.equal(ack?.ttlMs, 5000, "keepalives work again on a fresh stream");
});

test("a sync generation is published only under the current term, and the snapshot carries it", async () => {
  const c = coordinator("gen");
  const l = await c.grantLease(5000);
  const won = await c.campaign("n1", l.id, "t");
  const term = won.leader!.term;
  const gen = { generation: 4, digest: "abc", roots: { ssh: "def" }, files: 3, source: "n1", term, publishedAt: "2026-12-04T14:00:00.000Z" };
  assert.equal(await c.publishGeneration(term - 1, gen), false, "a stale term cannot publish");
  assert.equal((await c.snapshot()).sync, null);
  assert.equal(await c.publishGeneration(term, gen), true);
  assert.deepEqual((await c.snapshot()).sync, gen);
  const before = await c.snapshot();
  assert.equal(await c.publishGeneration(term, { ...gen, generation: 5 }), true);
  await c.revokeLease(l.id);
  assert.deepEqual((await c.snapshot()).sync, { ...gen, generation: 5 }, "the generation outlives the leader (no lease)");

  // A campaign decided on a view older than the newest generation loses, the key vacant: the
  // promotion gate would have marked it from generation 4, not 5 (a stale view, e.g. a lagging watch).
  const l2 = await c.grantLease(5000);
  const stale = await c.campaign("n2", l2.id, "t", before.revision);
  assert.equal(stale.won, false, "generation 5 was published after the view the campaign decided on");
  assert.equal(stale.leader, null, "lost on the generation, not to an incumbent");
  assert.equal(stale.vacant, true);
  assert.equal((await c.campaign("n2", l2.id, "t", (await c.snapshot()).revision)).won, true, "a campaign on a current view wins");
});

test("failsafe/members: written only under the term, kept without a lease, and a campaign on an older read of it loses (E2)", async () => {
  const c = coordinator("fsm");
  const l = await c.grantLease(5000);
  const term = (await c.campaign("n1", l.id, "t")).leader!.term;
  assert.equal(await c.publishFailsafeMembers(term - 1, { term, nodes: ["n1", "n2"] }), false, "a stale term cannot write the list");
  assert.equal((await c.snapshot()).failsafeMembers, undefined);
  assert.equal(await c.publishFailsafeMembers(term, { term, nodes: ["n1", "n2"] }), true);
  assert.deepEqual((await c.snapshot()).failsafeMembers, { term, nodes: ["n1", "n2"] });
  await c.revokeLease(l.id);
  const read = await c.snapshot();
  assert.equal(read.leader, null, "the leader key went with its lease");
  assert.deepEqual(read.failsafeMembers, { term, nodes: ["n1", "n2"] }, "the list outlives the leader (no lease): a cut-off failsafe primary's standbys stay bound");

  // A campaign decided on `read`: the list rewritten after that read makes it lose, even with the leader key vacant.
  const other = coordinator("fsm");
  const l2 = await other.grantLease(5000);
  const t2 = (await other.campaign("n2", l2.id, "t", read.revision)).leader!.term;
  assert.equal(await other.publishFailsafeMembers(t2, { term: t2, nodes: ["n2"] }), true);
  await other.revokeLease(l2.id);
  const l3 = await c.grantLease(5000);
  const stale = await c.campaign("n1", l3.id, "t", read.revision);
  assert.equal(stale.won, false, "the list changed after the read the campaign decided on");
  assert.equal(stale.leader, null, "and the leader key is still vacant: lost on the list, not to an incumbent");
  const fresh = await c.campaign("n1", l3.id, "t", (await c.snapshot()).revision);
  assert.equal(fresh.won, true, "a campaign on a current read wins");
  // E2': widening is refused while a leader key exists, or on a stale read; done on a vacancy.
  const now = await c.snapshot();
  assert.equal(await c.widenFailsafeMembers({ term: t2, nodes: ["n1", "n2", "n3"] }, now.revision), false, "a leader key exists");
  await c.revokeLease(l3.id);
  const vacantRead = await c.snapshot();
  assert.equal(await c.widenFailsafeMembers({ term: t2, nodes: ["n1", "n2", "n3"] }, read.revision), false, "the list changed after that read");
  assert.equal(await c.widenFailsafeMembers({ term: t2, nodes: ["n1", "n2", "n3"] }, vacantRead.revision), true);
  assert.deepEqual((await c.snapshot()).failsafeMembers, { term: t2, nodes: ["n1", "n2", "n3"] });
});

test("history: appended in order, guarded by term when given, trimmed to the newest", async () => {
  const c = coordinator("hist");
  const l = await c.grantLease(5000);
  const term = (await c.campaign("n1", l.id, "t")).leader!.term;
  const ev = (reason: string) => ({ kind: "failover" as const, at: "2026-12-04T14:00:00.000Z", node: "n1", from: "n2", to: "n1", term, reason });
  assert.equal(await c.appendHistory(ev("one"), term), true);
  assert.equal(await c.appendHistory(ev("two"), null), true);
  assert.equal(await c.appendHistory(ev("stale"), term + 100), false, "not the leader's term: not written, and said so");
  const events = await c.history(10);
  assert.deepEqual(
    events.map((e) => e.reason),
    ["one", "two"],
  );
  assert.deepEqual(
    (await c.history(1)).map((e) => e.reason),
    ["two"],
    "limit keeps the newest",
  );
  await c.revokeLease(l.id);
});
