// The data shipping planner (src/data/ship-plan.ts) as a table, like
// test/unit/sync/sync-plan.test.ts: each observation gives one step per standby
// and one reason sentence. Pure: the journal is a real ChangeJournal fed with
// explicit times; nothing runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChangeJournal } from "../../../src/data/journal.js";
import { afterFailure, bytes, classifyShipFailure, lagOf, planShip, type ShipObservation, type StandbyShipState } from "../../../src/data/ship-plan.js";

const NOW = 50_000;
const MiB = 1 << 20;

/** Five 1 MiB uploads ready at seq 1..5 (first events at 40 000..44 000), one deletion at seq 6. */
function journal(): ChangeJournal {
  const j = new ChangeJournal({ stabilityWindowMs: 250, maxPending: 100, maxReady: 100 });
  for (let i = 1; i <= 5; i++) {
    j.record({ kind: "closed", path: `alice/f${i}`, size: MiB }, 39_000 + i * 1000);
    j.stabilise(39_000 + i * 1000);
  }
  j.record({ kind: "remove", path: "alice/old" }, 45_000);
  j.stabilise(45_000);
  return j;
}

function standby(over: Partial<StandbyShipState> = {}): StandbyShipState {
  return {
    node: "n2",
    address: "198.18.0.12",
    followingTerm: 7,
    rejoinPending: false,
    cursor: 2,
    fullPassAsked: null,
    failures: 0,
    retryAtMs: null,
    lastError: null,
    diskFull: false,
    freeBytes: 10 * 1024 * MiB,
    ...over,
  };
}

function obs(s: Partial<StandbyShipState> = {}, over: Partial<ShipObservation> = {}): ShipObservation {
  return { nowMs: NOW, node: "n1", primary: true, term: 7, journal: journal(), standbys: [standby(s)], maxBatchFiles: 1000, maxBatchBytes: 256 * MiB, reserveBytes: 1024 * MiB, ...over };
}

interface Case {
  readonly name: string;
  readonly o: ShipObservation;
  readonly kind: string;
  readonly reason: RegExp;
  readonly check?: (step: Extract<ReturnType<typeof planShip>, { kind: "ship" }>["steps"][number]) => void;
}

const cases: Case[] = [
  {
    name: "entries after the cursor -> one batch, in seq order, deletions counted",
    o: obs(),
    kind: "batch",
    reason: /^shipping 4 change\(s\) \(1 deletion\(s\)\), 3 MiB to n2: seq 3\.\.6$/,
    check: (s) => assert.deepEqual(s.kind === "batch" && [s.entries.map((e) => e.path), s.toSeq, s.address, s.term], [["alice/f3", "alice/f4", "alice/f5", "alice/old"], 6, "198.18.0.12", 7]),
  },
  {
    name: "a batch is cut at max_batch_files and says how many wait",
    o: obs({}, { maxBatchFiles: 2 }),
    kind: "batch",
    reason: /^shipping 2 change\(s\), 2 MiB to n2: seq 3\.\.4, 2 more queued$/,
  },
  {
    name: "a batch is cut at max_batch_bytes",
    o: obs({}, { maxBatchBytes: MiB }),
    kind: "batch",
    reason: /: seq 3\.\.3, 3 more queued$/,
  },
  { name: "cursor at the head -> idle", o: obs({ cursor: 6 }), kind: "idle", reason: /^in sync: n2 holds every change up to seq 6$/ },
  {
    name: "no cursor in this journal -> full pass",
    o: obs({ cursor: null }),
    kind: "full",
    reason: /^full pass to n2: first pass in this journal \(promotion, agent start or a standby that appeared\)$/,
    check: (s) => assert.equal(s.kind === "full" && s.head, 6),
  },
  {
    name: "an operator's resync -> full pass whatever the cursor",
    o: obs({ cursor: 6, fullPassAsked: "resync requested through the API" }),
    kind: "full",
    reason: /^full pass to n2: resync requested through the API \(0 change\(s\) known behind\)$/,
  },
  { name: "no address -> wait", o: obs({ address: null }), kind: "wait", reason: /^waiting: n2 publishes no address to ship to$/ },
  {
    name: "a standby still following the old term -> wait (its write module is the old term's)",
    o: obs({ followingTerm: 6 }),
    kind: "wait",
    reason: /^waiting: n2 does not accept term 7's files yet \(it still follows term 6\)$/,
  },
  { name: "a standby following no term -> wait", o: obs({ followingTerm: null }), kind: "wait", reason: /\(it follows no term yet\)$/ },
  {
    name: "a former primary in rejoin -> rejoin (its files pulled and merged here), nothing shipped to it",
    o: obs({ rejoinPending: true }),
    kind: "rejoin",
    reason: /^rejoin: pulling n2's files \(a former primary\) into this primary's tree before it becomes a replica; nothing is shipped to it until then$/,
  },
  {
    name: "a failed batch in backoff -> wait for the retry time",
    o: obs({ failures: 2, retryAtMs: NOW + 400, lastError: "rsync exit 12" }),
    kind: "backoff",
    reason: /^waiting 400ms before retrying n2 after 2 failure\(s\): rsync exit 12$/,
  },
  {
    name: "backoff over -> the same batch again (a batch is idempotent: the cursor did not move)",
    o: obs({ failures: 2, retryAtMs: NOW, lastError: "rsync exit 12" }),
    kind: "batch",
    reason: /^shipping 4 change\(s\).*: seq 3\.\.6 \(retry 2\)$/,
  },
  {
    name: "disk full, retry not due, no space reported -> pause",
    o: obs({ diskFull: true, failures: 1, retryAtMs: NOW + 30_000, freeBytes: 0 }),
    kind: "pause",
    reason: /^paused: n2's data volume is full \(0 B free, reserve 1 GiB\); retrying in 30000ms or when it reports 1 GiB free; the primary is not affected$/,
  },
  {
    name: "disk full, space reported back -> ship again at once",
    o: obs({ diskFull: true, failures: 1, retryAtMs: NOW + 30_000, freeBytes: 2048 * MiB }),
    kind: "batch",
    reason: /^shipping 4 change\(s\)/,
  },
  {
    name: "disk full, retry due -> ship again (the report may be stale)",
    o: obs({ diskFull: true, failures: 1, retryAtMs: NOW, freeBytes: 0 }),
    kind: "batch",
    reason: /^shipping/,
  },
  {
    name: "free space below the reserve before any ENOSPC -> pause",
    o: obs({ freeBytes: 100 * MiB }),
    kind: "pause",
    reason: /^paused: n2's data volume is full \(100 MiB free, reserve 1 GiB\); until it reports 1 GiB free; the primary is not affected$/,
  },
];

for (const c of cases) {
  test(`ship plan: ${c.name}`, () => {
    const plan = planShip(c.o);
    assert.equal(plan.kind, "ship");
    assert.ok(plan.kind === "ship", 'plan.kind === "ship"');
    assert.equal(plan.steps.length, 1);
    const step = plan.steps[0]!;
    assert.equal(step.kind, c.kind, step.reason);
    assert.match(step.reason, c.reason);
    c.check?.(step);
  });
}

test("ship plan: only the primary ships; a primary without a term stops too", () => {
  assert.deepEqual(planShip(obs({}, { primary: false })), { kind: "stop", reason: "not shipping: this node is not the primary (only the primary ships data)" });
  assert.deepEqual(planShip(obs({}, { term: null })), { kind: "stop", reason: "not shipping: acting as primary without a term" });
});

test("ship plan: one step per standby, never one for this node; one full standby does not hold back the other", () => {
  const plan = planShip(obs({}, { standbys: [standby({ node: "n1" }), standby({ node: "n2", diskFull: true, retryAtMs: NOW + 1, freeBytes: 0 }), standby({ node: "n3", address: "198.18.0.13" })] }));
  assert.ok(plan.kind === "ship", 'plan.kind === "ship"');
  assert.deepEqual(
    plan.steps.map((s) => `${s.node} ${s.kind}`),
    ["n2 pause", "n3 batch"],
  );
});

test("ship plan: a cursor below the journal's floor (overflow) -> full pass naming why", () => {
  const j = journal();
  j.record({ kind: "overflow", why: "IN_Q_OVERFLOW" }, NOW);
  const plan = planShip(obs({ cursor: 6 }, { journal: j }));
  assert.ok(plan.kind === "ship", 'plan.kind === "ship"');
  assert.equal(plan.steps[0]!.reason, "full pass to n2: its cursor 6 is below the journal's floor 7: the event source lost events (IN_Q_OVERFLOW) (0 change(s) known behind)");
});

test("lag: files, bytes and seconds since the oldest unacknowledged upload began", () => {
  const j = journal();
  assert.deepEqual(lagOf(j, { cursor: 2, fullPassAsked: null }, NOW), { files: 4, bytes: 3 * MiB, seconds: 8, full: false });
  assert.deepEqual(lagOf(j, { cursor: 6, fullPassAsked: null }, NOW), { files: 0, bytes: 0, seconds: 0, full: false });
  assert.deepEqual(lagOf(j, { cursor: null, fullPassAsked: null }, NOW), { files: 6, bytes: 5 * MiB, seconds: 10, full: true });
});

test("failures: disk full pauses, a refused module is the term fence, the rest back off from 200 ms", () => {
  assert.equal(classifyShipFailure(11, 'rsync: [receiver] write failed on "/srv/sftp/a": No space left on device (28)'), "disk-full");
  assert.equal(classifyShipFailure(5, "@ERROR: Unknown module 'd7-uploads'"), "fenced");
  assert.equal(classifyShipFailure(25, "Deletions stopped due to --max-delete limit (1 skipped)"), "delete-limit");
  assert.match(afterFailure({ node: "n2", failures: 0 }, "delete-limit", NOW, 5000).reason, /^stopped deleting on n2: a full pass would delete more than max_delete files/);
  assert.equal(classifyShipFailure(255, "ssh: connect to host 198.18.0.12 port 22: Connection refused"), "transient");
  assert.deepEqual(afterFailure({ node: "n2", failures: 0 }, "disk-full", NOW, 5000), {
    failures: 1,
    retryAtMs: NOW + 30_000,
    diskFull: true,
    reason: "paused: n2's data volume is full; retrying in 30000ms or when it reports free space",
  });
  assert.equal(afterFailure({ node: "n2", failures: 0 }, "disk-full", NOW, 5000, 2000).retryAtMs, NOW + 2000, "data.disk_full_retry sets the pause");
  assert.match(afterFailure({ node: "n2", failures: 0 }, "delete-limit", NOW, 5000, 2000).reason, /retrying in 2000ms with no deletion at all \(--max-delete=0\)/);
  assert.deepEqual(afterFailure({ node: "n2", failures: 2 }, "transient", NOW, 5000), {
    failures: 3,
    retryAtMs: NOW + 800,
    diskFull: false,
    reason: "the run to n2 failed; retrying in 800ms after 3 failure(s)",
  });
  assert.equal(afterFailure({ node: "n2", failures: 9 }, "fenced", NOW, 5000).reason, "n2 refused this term's module (it follows another leader); retrying in 5000ms after 10 failure(s)");
  assert.deepEqual([bytes(0), bytes(1536), bytes(3 * MiB), bytes(1024 * MiB)], ["0 B", "1.5 KiB", "3 MiB", "1 GiB"]);
});
