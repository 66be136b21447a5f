// The data change journal (src/data/journal.ts): events -> pending -> stable
// ready entries with sequence numbers. Pure: the time is a FakeClock's, handed
// to every call; no sleeps.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { ChangeJournal, checkDataPath, type DataEvent } from "../../../src/data/journal.js";
import { FakeClock } from "../../fakes/clock.js";

const WINDOW = 250;

function journal(over: Partial<ChangeJournal["limits"]> = {}) {
  return new ChangeJournal({ stabilityWindowMs: WINDOW, maxPending: 100, maxReady: 100, ...over });
}

/** Feeds events at the clock's time, advancing `stepMs` after each; then stabilises at the end time. */
async function feed(j: ChangeJournal, clock: FakeClock, events: readonly DataEvent[], stepMs = 0): Promise<void> {
  for (const e of events) {
    j.record(e, clock.monotonicMs());
    await clock.advance(stepMs);
  }
}

/** The ready log as "seq op path" lines. */
function readyLines(j: ChangeJournal): string[] {
  return j.after(0, 1e9, 1e18).entries.map((e) => `${e.seq} ${e.op}${e.recursive ? " -r" : ""} ${e.path}`);
}

interface CoalesceCase {
  readonly name: string;
  readonly events: readonly DataEvent[];
  /** Time after the last event at which stabilise() runs. */
  readonly afterMs: number;
  readonly ready: readonly string[];
  readonly pending: number;
}

const cases: CoalesceCase[] = [
  { name: "a closed upload is ready at once", events: [{ kind: "closed", path: "alice/a.csv", size: 10 }], afterMs: 0, ready: ["1 upsert alice/a.csv"], pending: 0 },
  { name: "a change waits for the stability window", events: [{ kind: "change", path: "a" }], afterMs: WINDOW - 1, ready: [], pending: 1 },
  { name: "a change is ready once the window passed without events", events: [{ kind: "change", path: "a" }], afterMs: WINDOW, ready: ["1 upsert a"], pending: 0 },
  {
    name: "writes, then close: one entry, ready at the close",
    events: [
      { kind: "change", path: "a" },
      { kind: "change", path: "a" },
      { kind: "closed", path: "a" },
    ],
    afterMs: 0,
    ready: ["1 upsert a"],
    pending: 0,
  },
  {
    name: "a change after a close reopens the window",
    events: [
      { kind: "closed", path: "a" },
      { kind: "change", path: "a" },
    ],
    afterMs: 0,
    ready: [],
    pending: 1,
  },
  {
    name: "create then delete within the window: a deletion (the standby may hold an older copy)",
    events: [
      { kind: "change", path: "a" },
      { kind: "remove", path: "a" },
    ],
    afterMs: 0,
    ready: ["1 delete a"],
    pending: 0,
  },
  {
    name: "delete then re-create: the upload wins",
    events: [
      { kind: "remove", path: "a" },
      { kind: "closed", path: "a" },
    ],
    afterMs: 0,
    ready: ["1 upsert a"],
    pending: 0,
  },
  {
    name: "upload to a temp name then rename (SFTP clients, SFTPGo atomic uploads): old name deleted, new name shipped",
    events: [
      { kind: "closed", path: "bob/.upload.tmp" },
      { kind: "rename", path: "bob/.upload.tmp", to: "bob/report.pdf" },
    ],
    afterMs: 0,
    ready: ["1 delete bob/.upload.tmp", "2 upsert bob/report.pdf"],
    pending: 0,
  },
  {
    name: "a directory moved in is shipped recursively; a mkdir is not",
    events: [
      { kind: "dir", path: "carol" },
      { kind: "rename", path: "in/tree", to: "dave", recursive: true },
    ],
    afterMs: 0,
    ready: ["1 upsert carol", "2 delete in/tree", "3 upsert -r dave"],
    pending: 0,
  },
];

for (const c of cases) {
  test(`journal: ${c.name}`, async () => {
    const clock = new FakeClock();
    const j = journal();
    await feed(j, clock, c.events, 10);
    await clock.advance(c.afterMs - 10);
    j.stabilise(clock.monotonicMs());
    assert.deepEqual(readyLines(j), c.ready);
    assert.equal(j.pendingCount, c.pending);
  });
}

test("journal: stabilise says when the next pending entry falls due, for the executor's timer", async () => {
  const clock = new FakeClock(0);
  const j = journal();
  const now = () => clock.monotonicMs();
  j.record({ kind: "change", path: "a" }, now());
  await clock.advance(100);
  j.record({ kind: "change", path: "b" }, now());
  assert.deepEqual(j.stabilise(now()), { moved: 0, nextDueMs: WINDOW });
  await clock.advance(WINDOW - 100);
  assert.deepEqual(j.stabilise(now()), { moved: 1, nextDueMs: 100 + WINDOW });
  await clock.advance(100);
  assert.deepEqual(j.stabilise(now()), { moved: 1, nextDueMs: null });
  assert.deepEqual(readyLines(j), ["1 upsert a", "2 upsert b"]);
});

test("journal: ready entries keep the first event's time (lag counts from the upload's start) and the last size", () => {
  const j = journal();
  j.record({ kind: "change", path: "a", size: 1 }, 1_000);
  j.record({ kind: "change", path: "a", size: 5 }, 1_200);
  j.stabilise(1_200 + WINDOW);
  const [e] = j.after(0, 10, 1e9).entries;
  assert.deepEqual({ since: e!.sinceMs, ready: e!.readyAtMs, size: e!.size }, { since: 1_000, ready: 1_450, size: 5 });
});

test("journal: a path ready again drops its older entry, so a standby far behind ships it once", () => {
  const j = journal();
  j.record({ kind: "closed", path: "a" }, 0);
  j.record({ kind: "closed", path: "b" }, 0);
  j.stabilise(0);
  j.record({ kind: "closed", path: "a" }, 10);
  j.stabilise(10);
  assert.deepEqual(readyLines(j), ["2 upsert b", "3 upsert a"]);
  assert.equal(j.head, 3);
  assert.deepEqual(
    j.after(2, 10, 1e9).entries.map((e) => e.path),
    ["a"],
  );
});

test("journal: after() cuts batches by files and bytes, always at least one entry, and counts what is left", () => {
  const j = journal();
  for (const [p, size] of [
    ["a", 600],
    ["b", 600],
    ["c", 10],
    ["d", 10],
  ] as const)
    j.record({ kind: "closed", path: p, size }, 0);
  j.stabilise(0);
  const byBytes = j.after(0, 10, 1000);
  assert.deepEqual([byBytes.entries.map((e) => e.path), byBytes.more], [["a"], 3]);
  const big = j.after(0, 10, 100);
  assert.deepEqual([big.entries.map((e) => e.path), big.more], [["a"], 3], "an entry over the byte limit still ships alone");
  const byFiles = j.after(1, 2, 1e9);
  assert.deepEqual([byFiles.entries.map((e) => e.path), byFiles.more], [["b", "c"], 1]);
  assert.deepEqual(j.behind(1), { files: 3, bytes: 620, oldestSinceMs: 0 });
  assert.deepEqual(j.behind(4), { files: 0, bytes: 0, oldestSinceMs: null });
});

test("journal: trim forgets what every standby acknowledged", () => {
  const j = journal();
  for (const p of ["a", "b", "c"]) j.record({ kind: "closed", path: p }, 0);
  j.stabilise(0);
  assert.equal(j.trim(2), 2);
  assert.deepEqual(readyLines(j), ["3 upsert c"]);
  assert.equal(j.trim(2), 0);
});

test("journal: an overflow event clears what is pending and raises the floor past every cursor (full pass)", () => {
  const j = journal();
  j.record({ kind: "closed", path: "a" }, 0);
  j.stabilise(0);
  j.record({ kind: "change", path: "b" }, 0);
  j.record({ kind: "overflow", why: "IN_Q_OVERFLOW" }, 5);
  assert.equal(j.pendingCount, 0);
  assert.equal(j.head, 2, "the overflow takes a sequence number: a standby at the old head (1) is below it");
  assert.deepEqual(j.floor, { seq: 2, why: "the event source lost events (IN_Q_OVERFLOW)" });
  j.record({ kind: "closed", path: "c" }, 10);
  j.stabilise(10);
  assert.deepEqual(readyLines(j), ["1 upsert a", "3 upsert c"]);
});

test("journal: more pending paths than max_pending -> the same fallback; memory stays bounded", () => {
  const j = journal({ maxPending: 3 });
  for (let i = 0; i < 10; i++) j.record({ kind: "change", path: `f${i}` }, i);
  assert.ok(j.pendingCount <= 3, `pending ${j.pendingCount}`);
  assert.match(j.floor.why, /^more than 3 paths changed within the stability window$/);
  assert.ok(j.floor.seq >= 1, "j.floor.seq >= 1");
});

test("journal: more ready entries than max_ready -> the oldest are dropped and the floor rises to the last dropped", () => {
  const j = journal({ maxReady: 2 });
  for (const p of ["a", "b", "c", "d"]) j.record({ kind: "closed", path: p }, 0);
  j.stabilise(0);
  assert.deepEqual(readyLines(j), ["3 upsert c", "4 upsert d"]);
  assert.deepEqual(j.floor, { seq: 2, why: "more than 2 changes waited for the slowest standby" });
});

test("journal: 100 000 uploads through a small journal never hold more than its bounds", () => {
  const j = journal({ maxPending: 1000, maxReady: 5000 });
  let cursor = 0;
  for (let i = 0; i < 100_000; i++) {
    j.record({ kind: "closed", path: `u${i % 7}/f${i}`, size: 1 << 20 }, i * 20);
    if (i % 50 === 49) {
      j.stabilise(i * 20);
      // A standby acknowledging every batch keeps the ready log short.
      const { entries } = j.after(cursor, 1000, 1e12);
      if (entries.length > 0) cursor = entries[entries.length - 1]!.seq;
      j.trim(cursor);
    }
    assert.ok(j.pendingCount <= 1000 && j.readyCount <= 5000, "j.pendingCount <= 1000 && j.readyCount <= 5000");
  }
  assert.equal(j.floor.seq, 0, "no overflow at 50 uploads per second");
  assert.equal(cursor, 100_000);
});

test("journal: paths must be relative and normalised; bad limits are refused with US_E_DATA_CONFIG", () => {
  for (const p of ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/", "a\0b"]) {
    assert.throws(
      () => checkDataPath(p),
      (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_CONFIG",
      JSON.stringify(p),
    );
  }
  assert.equal(checkDataPath("alice/in/a b.csv"), "alice/in/a b.csv");
  assert.throws(
    () => new ChangeJournal({ stabilityWindowMs: -1, maxPending: 1, maxReady: 1 }),
    (e: unknown) => isUnderstudyError(e) && /data\.stability_window/.test(e.message),
  );
  assert.throws(
    () => new ChangeJournal({ stabilityWindowMs: 0, maxPending: 0, maxReady: 1 }),
    (e: unknown) => isUnderstudyError(e) && /data\.max_pending/.test(e.message),
  );
});
