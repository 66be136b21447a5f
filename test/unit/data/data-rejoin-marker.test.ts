// The former primary's marker (src/data/rejoin-marker.ts) as a table: when it is
// written, kept, cleared, when the node reports rejoin "pending" and serves its
// roots read-only; then the store on a real directory with the real DurableFs.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { DataRejoinRecord } from "../../../src/coordinator/port.js";
import { FormerPrimarySide, MARKER_FILE, planRejoinMarker, RejoinMarkerStore, type MarkerObservation } from "../../../src/data/rejoin-marker.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { planShip, type ShipObservation, type StandbyShipState } from "../../../src/data/ship-plan.js";
import { ChangeJournal } from "../../../src/data/journal.js";

const N2 = { node: "n2", term: 12, address: "198.18.0.12" };
const rec = (over: Partial<DataRejoinRecord> = {}): DataRejoinRecord => ({ node: "n1", by: "n2", term: 12, done: true, moved: 3, conflicts: 1, at: "2026-12-04T23:00:00.000Z", ...over });
const obs = (over: Partial<MarkerObservation> = {}): MarkerObservation => ({ node: "n1", marker: { term: 9 }, primaryTerm: null, leader: N2, record: null, ...over });

const cases: { name: string; o: MarkerObservation; action: string; pending: boolean; serve?: { term: number; address: string } | null; reason: RegExp }[] = [
  {
    name: "primary without a marker -> write its term",
    o: obs({ marker: null, primaryTerm: 9, leader: null }),
    action: "write 9",
    pending: false,
    reason: /^primary in term 9: marking that this node takes uploads in term 9 /,
  },
  {
    name: "primary again in a later term -> the marker moves to it",
    o: obs({ primaryTerm: 14, leader: { node: "n1", term: 14, address: "198.18.0.11" } }),
    action: "write 14",
    pending: false,
    reason: /^primary in term 14: marking/,
  },
  { name: "primary, marker already its term -> keep", o: obs({ primaryTerm: 9 }), action: "keep", pending: false, reason: /^primary in term 9: marked as taking uploads in this term$/ },
  { name: "never primary -> nothing", o: obs({ marker: null }), action: "keep", pending: false, reason: /^not a former primary: nothing to hand over$/ },
  {
    name: "former primary, a later leader -> pending, serves its roots to that leader only",
    o: obs(),
    action: "keep",
    pending: true,
    serve: { term: 12, address: "198.18.0.12" },
    reason: /^rejoin pending: this node took uploads as primary in term 9 and n2 leads term 12; its files go to n2 before it receives any$/,
  },
  {
    name: "former primary, the leader has no address yet -> pending, serves nothing",
    o: obs({ leader: { node: "n2", term: 12, address: null } }),
    action: "keep",
    pending: true,
    serve: null,
    reason: /n2 leads term 12, which publishes no address yet;/,
  },
  { name: "former primary, no leader -> keep, not pending (no one to hand to)", o: obs({ leader: null }), action: "keep", pending: false, reason: /no other leader yet/ },
  { name: "former primary, a leader of an older term -> keep, not pending", o: obs({ leader: { node: "n2", term: 8, address: "x" } }), action: "keep", pending: false, reason: /term 8 is not later/ },
  {
    name: "done record of a later term -> clear, receives again",
    o: obs({ record: rec() }),
    action: "clear",
    pending: false,
    reason: /^rejoined: n2 merged this node's files in term 12 \(3 moved, 1 conflict\(s\)\); it may receive again$/,
  },
  { name: "record not done (the merging primary died) -> still pending", o: obs({ record: rec({ done: false }) }), action: "keep", pending: true, reason: /^rejoin pending/ },
  {
    name: "done record of an older rejoin (term not later than the marker) -> still pending",
    o: obs({ marker: { term: 12 }, leader: { ...N2, term: 15 }, record: rec() }),
    action: "keep",
    pending: true,
    reason: /term 12 and n2 leads term 15/,
  },
  { name: "another node's record -> ignored", o: obs({ record: rec({ node: "n3" }) }), action: "keep", pending: true, reason: /^rejoin pending/ },
  {
    name: "done record while primary again -> the marker is the new term's, not cleared",
    o: obs({ primaryTerm: 14, record: rec() }),
    action: "write 14",
    pending: false,
    reason: /^primary in term 14/,
  },
];

for (const c of cases) {
  test(`marker: ${c.name}`, () => {
    const p = planRejoinMarker(c.o);
    const action = p.action.kind === "write" ? `write ${p.action.term}` : p.action.kind;
    assert.equal(action, c.action);
    assert.equal(p.pending, c.pending);
    if (c.serve !== undefined) assert.deepEqual(p.serve, c.serve);
    if (!p.pending) assert.equal(p.serve, null, "serves read-only modules only while pending");
    assert.match(p.reason, c.reason);
  });
}

const DIR = mkdtempSync(join(tmpdir(), "us-rejoin-marker-"));
after(() => rmSync(DIR, { recursive: true, force: true }));

test("store: written 0600 and durable, read back, cleared; an unreadable marker counts as set (term 0)", async () => {
  const store = new RejoinMarkerStore(DIR, NODE_DURABLE_FS);
  assert.equal(await store.read(), null);
  await store.apply(planRejoinMarker(obs({ marker: null, primaryTerm: 9, leader: null })));
  assert.deepEqual(await store.read(), { term: 9 });
  assert.equal(statSync(join(DIR, MARKER_FILE)).mode & 0o777, 0o600);
  await store.apply(planRejoinMarker(obs())); // keep
  assert.deepEqual(await store.read(), { term: 9 });
  await store.apply(planRejoinMarker(obs({ record: rec() })));
  assert.equal(await store.read(), null);
  assert.match(readFileSync(join(DIR, MARKER_FILE), "utf8"), /"term":null/);
  writeFileSync(join(DIR, MARKER_FILE), "{garbage");
  assert.deepEqual(await store.read(), { term: 0 }, "a damaged marker never hides a former primary");
  assert.equal(planRejoinMarker(obs({ marker: await store.read() })).pending, true);
});

// ---------------------------------------------------------------- the primary's rejoin step

const NOW = 50_000;
function standby(over: Partial<StandbyShipState> = {}): StandbyShipState {
  return {
    node: "n1",
    address: "198.18.0.11",
    followingTerm: null,
    rejoinPending: true,
    cursor: null,
    fullPassAsked: null,
    failures: 0,
    retryAtMs: null,
    lastError: null,
    diskFull: false,
    freeBytes: null,
    ...over,
  };
}
function ship(s: StandbyShipState): ShipObservation {
  return { nowMs: NOW, node: "n2", primary: true, term: 12, journal: new ChangeJournal(), standbys: [s], maxBatchFiles: 1000, maxBatchBytes: 1 << 28, reserveBytes: 0 };
}

const steps: { name: string; s: StandbyShipState; kind: string; reason: RegExp }[] = [
  {
    name: "pending -> rejoin (pull and merge its files)",
    s: standby(),
    kind: "rejoin",
    reason: /^rejoin: pulling n1's files \(a former primary\) into this primary's tree before it becomes a replica; nothing is shipped to it until then$/,
  },
  { name: "pending, no address -> wait", s: standby({ address: null }), kind: "wait", reason: /^waiting: n1 publishes no address/ },
  {
    name: "pending, a failed rejoin in backoff -> backoff",
    s: standby({ failures: 2, retryAtMs: NOW + 300, lastError: "US_E_DATA_REJOIN: pull exited 5" }),
    kind: "backoff",
    reason: /^waiting 300ms before retrying the rejoin of n1 after 2 failure\(s\): US_E_DATA_REJOIN: pull exited 5$/,
  },
  { name: "pending, retry due -> rejoin again", s: standby({ failures: 2, retryAtMs: NOW - 1, lastError: "x" }), kind: "rejoin", reason: /\(retry 2\)$/ },
  {
    name: "merged here, it has not read the record yet -> wait",
    s: standby({ rejoinDone: true }),
    kind: "wait",
    reason: /^waiting: n1's files were merged here \(rejoin done in term 12\); nothing is shipped to it until it opens term 12's write module$/,
  },
  {
    name: "no longer pending, follows this term -> the full pass after",
    s: standby({ rejoinPending: false, followingTerm: 12 }),
    kind: "full",
    reason: /^full pass to n1: first pass in this journal/,
  },
];
for (const c of steps) {
  test(`ship plan: ${c.name}`, () => {
    const p = planShip(ship(c.s));
    assert.equal(p.kind, "ship");
    const step = p.kind === "ship" ? p.steps[0]! : null;
    assert.equal(step?.kind, c.kind);
    assert.match(step!.reason, c.reason);
    if (step?.kind === "rejoin") assert.deepEqual([step.address, step.term], ["198.18.0.11", 12]);
  });
}

test("the marker's executor: primary writes it, a later leader makes it pending, the done record clears it; etcd unreachable keeps it pending", async () => {
  const dir = mkdtempSync(join(DIR, "side-"));
  const clock = new FakeClock(0);
  const coordinator = new FakeCoordinator(clock);
  const side = new FormerPrimarySide(new RejoinMarkerStore(dir, NODE_DURABLE_FS), coordinator, silentLogger());
  const n1 = { node: "n1", term: 9, address: "198.18.0.11" };
  assert.equal((await side.update({ node: "n1", primaryTerm: 9, leader: n1 })).action.kind, "write");
  assert.equal(coordinator.calls.includes("dataRejoin"), false, "a primary reads no rejoin record");
  // n1 dies and restarts (a new executor on the same state_dir); n2 leads term 12.
  const again = new FormerPrimarySide(new RejoinMarkerStore(dir, NODE_DURABLE_FS), coordinator, silentLogger());
  const p = await again.update({ node: "n1", primaryTerm: null, leader: N2 });
  assert.deepEqual([p.pending, p.serve], [true, { term: 12, address: "198.18.0.12" }]);
  coordinator.unreachable = true;
  assert.equal((await again.update({ node: "n1", primaryTerm: null, leader: N2 })).pending, true, "etcd unreachable: still pending");
  coordinator.unreachable = false;
  coordinator.dataRejoins.set("n1", rec({ done: false }));
  assert.equal((await again.update({ node: "n1", primaryTerm: null, leader: N2 })).pending, true);
  coordinator.dataRejoins.set("n1", rec());
  const cleared = await again.update({ node: "n1", primaryTerm: null, leader: N2 });
  assert.deepEqual([cleared.action.kind, cleared.pending], ["clear", false]);
  assert.equal(await new RejoinMarkerStore(dir, NODE_DURABLE_FS).read(), null, "cleared on disk");
  const calls = coordinator.calls.filter((c) => c === "dataRejoin").length;
  assert.equal((await again.update({ node: "n1", primaryTerm: null, leader: N2 })).pending, false);
  assert.equal(coordinator.calls.filter((c) => c === "dataRejoin").length, calls, "no marker: no record read");
});

test("a demoted primary opens no write module while its marker update still waits on etcd (no window for a full pass with --delete)", async () => {
  const { RejoinAgent } = await import("../../../src/data/rejoin-agent.js");
  const { validateSshTransport } = await import("../../../src/sync/transport-ssh.js");
  const dir = mkdtempSync(join(DIR, "agent-"));
  const clock = new FakeClock(0);
  let release: (r: DataRejoinRecord | null) => void = () => undefined;
  const reads: string[] = [];
  const records = {
    putDataRejoin: async () => false,
    // etcd after a failover: the read of data/rejoin/n1 answers only when the test says so.
    dataRejoin: (node: string) => (reads.push(node), new Promise<DataRejoinRecord | null>((r) => (release = r))),
    appendHistory: async () => true,
  };
  const agent = new RejoinAgent({
    node: "n1",
    roots: [{ name: "uploads", path: join(dir, "root") }],
    stateDir: dir,
    fs: NODE_DURABLE_FS,
    coordinator: records as never,
    runner: { run: async () => assert.fail("no command runs here") } as never,
    clock,
    log: silentLogger(),
    ssh: validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/us" }),
    sshUser: "root",
    rsyncPath: "/usr/bin/rsync",
    fsync: true,
    runTimeoutMs: 60_000,
  });
  await agent.becomePrimary(9);
  assert.equal(agent.blocksReceiving(), false, "the primary itself: nothing to block");
  // Demoted: n2 leads term 12. The marker update is triggered but its etcd read has not answered.
  agent.follow({ primaryTerm: null, leader: N2 });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(reads, ["n1"], "the update is waiting on data/rejoin/n1");
  assert.equal(agent.blocksReceiving(), true, "marker set, another node leads: no write module before the update ran");
  release(rec());
  for (let i = 0; i < 20 && agent.blocksReceiving(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(agent.blocksReceiving(), false, "the done record was read and the marker cleared: it may receive");
});
