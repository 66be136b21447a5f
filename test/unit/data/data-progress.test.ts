import { test } from "node:test";
import assert from "node:assert/strict";
import { DataProgressWriter, lagKind, ownLag, planProgressWrite, type WrittenProgress } from "../../../src/data/progress.js";
import type { DataLagRecord, DataProgress } from "../../../src/coordinator/port.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { pino } from "pino";

const inSync: DataLagRecord = { acked: 10, files: 0, bytes: 0, seconds: 0, full: false, paused: null };
const behind: DataLagRecord = { acked: 8, files: 2, bytes: 2048, seconds: 1, full: false, paused: null };
const full: DataLagRecord = { ...inSync, full: true };
const paused: DataLagRecord = { ...behind, paused: "disk full on n3" };

function rec(term: number, standbys: Record<string, DataLagRecord>, head = 10): DataProgress {
  return { node: "n1", term, head, at: "2026-12-04T23:00:00.000Z", standbys };
}
const last = (record: DataProgress, atMs: number): WrittenProgress => ({ record, atMs });

test("lagKind: paused, then full, then behind, else in sync", () => {
  assert.equal(lagKind(inSync), "in sync");
  assert.equal(lagKind(behind), "behind");
  assert.equal(lagKind(full), "full");
  assert.equal(lagKind({ ...full, paused: "x" }), "paused");
});

test("planProgressWrite: every case with its reason", () => {
  const cases: { name: string; offered: DataProgress | null; last: WrittenProgress | null; now: number; want: ReturnType<typeof planProgressWrite> }[] = [
    { name: "not primary", offered: null, last: null, now: 0, want: { kind: "skip", reason: "not writing data/progress: this node is not the primary" } },
    { name: "first record", offered: rec(7, { n2: inSync }), last: null, now: 0, want: { kind: "write", reason: "writing data/progress: the first record of term 7" } },
    {
      name: "new term",
      offered: rec(9, { n2: inSync }),
      last: last(rec(7, { n2: inSync }), 0),
      now: 10,
      want: { kind: "write", reason: "writing data/progress: the first record of term 9 (the last was term 7)" },
    },
    {
      name: "kind change at once, within the interval",
      offered: rec(7, { n2: behind, n3: inSync }),
      last: last(rec(7, { n2: inSync, n3: inSync }), 1000),
      now: 1010,
      want: { kind: "write", reason: "writing data/progress at once: n2 went from in sync to behind" },
    },
    {
      name: "paused and a new standby",
      offered: rec(7, { n2: inSync, n3: paused }),
      last: last(rec(7, { n3: behind }), 1000),
      now: 1010,
      want: { kind: "write", reason: "writing data/progress at once: n2 appeared (in sync), n3 went from behind to paused" },
    },
    {
      name: "standby gone",
      offered: rec(7, { n2: inSync }),
      last: last(rec(7, { n2: inSync, n3: full }), 1000),
      now: 1010,
      want: { kind: "write", reason: "writing data/progress at once: n3 is no longer shipped to" },
    },
    {
      name: "nothing changed",
      offered: rec(7, { n2: inSync }),
      last: last(rec(7, { n2: inSync }), 0),
      now: 99_999,
      want: { kind: "skip", reason: "not writing data/progress: nothing changed since the last write" },
    },
    {
      name: "figures changed within the interval",
      offered: rec(7, { n2: { ...behind, files: 5 } }, 12),
      last: last(rec(7, { n2: behind }), 1000),
      now: 1200,
      want: { kind: "wait", untilMs: 1500, reason: "waiting 300ms before writing data/progress (progress_interval 500ms)" },
    },
    {
      name: "figures changed after the interval",
      offered: rec(7, { n2: { ...behind, files: 5 } }, 12),
      last: last(rec(7, { n2: behind }), 1000),
      now: 1600,
      want: { kind: "write", reason: "writing data/progress: 600ms since the last write (progress_interval 500ms)" },
    },
  ];
  for (const c of cases) assert.deepEqual(planProgressWrite(c.offered, c.last, c.now, 500), c.want, c.name);
});

test("ownLag: the standby's entry of its leader's term only", () => {
  const p = rec(7, { n2: behind });
  assert.deepEqual(ownLag(p, "n2", 7), behind);
  assert.equal(ownLag(p, "n2", 9), null, "an older term's record");
  assert.equal(ownLag(p, "n2", null), null, "no leader");
  assert.equal(ownLag(p, "n1", 7), null, "the writer itself");
  assert.equal(ownLag(p, "n3", 7), null, "not listed");
  assert.equal(ownLag(null, "n2", 7), null, "never written");
});

async function setup() {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const g = await etcd.grantLease(10_000);
  const won = await etcd.campaign("n1", g.id, "2026-12-04T23:00:00.000Z");
  const term = won.leader!.term;
  const w = new DataProgressWriter({ coordinator: etcd, clock, log: silentLogger(), intervalMs: 500 });
  return { clock, etcd, term, w };
}

test("DataProgressWriter: throttles a burst to one write per interval and writes the last state", async () => {
  const { clock, etcd, term, w } = await setup();
  w.offer(rec(term, { n2: behind }, 1));
  await w.idle();
  assert.equal(w.counts.written, 1);
  // 50 offers in 490 ms, same kind: none written until the interval ends, then the newest one.
  for (let i = 2; i <= 50; i++) {
    await clock.advance(10);
    w.offer(rec(term, { n2: { ...behind, files: i } }, i));
    await w.idle();
  }
  assert.equal(w.counts.written, 1, "throttled within progress_interval");
  await clock.advance(20);
  await w.idle();
  assert.equal(w.counts.written, 2, "the trailing write at the end of the interval");
  assert.equal(etcd.dataProgress?.head, 50, "the newest offer won");
  // A kind change is written at once.
  await clock.advance(10);
  w.offer(rec(term, { n2: inSync }, 50));
  await w.idle();
  assert.equal(w.counts.written, 3);
  assert.equal(w.lastStep, "writing data/progress at once: n2 went from behind to in sync");
  await w.close();
});

test("DataProgressWriter: a deposed primary's write is refused and not retried; the record outlives the lease", async () => {
  const { clock, etcd, term, w } = await setup();
  w.offer(rec(term, { n2: inSync }));
  await w.idle();
  // The lease expires: the leader key goes, data/progress stays (not leased).
  await clock.advance(11_000);
  etcd.expire();
  assert.equal(etcd.leader, null);
  assert.equal(etcd.dataProgress?.term, term, "data/progress outlives the primary's lease");
  const g = await etcd.grantLease(10_000);
  const next = (await etcd.campaign("n2", g.id, "2026-12-04T23:01:00.000Z")).leader!.term;
  assert.ok(next > term, "next > term");
  w.offer(rec(term, { n2: behind }));
  await w.idle();
  assert.equal(w.counts.refused, 1);
  assert.equal(etcd.dataProgress?.standbys.n2, inSync, "the successor's view is not overwritten");
  w.offer(rec(term, { n2: full }));
  await w.idle();
  assert.equal(w.counts.refused, 1, "not retried for a term that no longer leads");
  assert.equal(w.lastStep, `not writing data/progress: term ${term} no longer leads`);
  await w.close();
});

test("DataProgressWriter: an etcd failure is retried after the interval, warned once per streak", async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
  const { clock, etcd, term } = await setup();
  const w = new DataProgressWriter({ coordinator: etcd, clock, log, intervalMs: 500 });
  etcd.unreachable = true;
  w.offer(rec(term, { n2: behind }));
  await w.idle();
  assert.equal(w.counts.failed, 1);
  for (let i = 0; i < 3; i++) {
    await clock.advance(500);
    await w.idle();
  }
  assert.equal(w.counts.failed, 4, "retried each interval through the outage");
  const said = (level: number) => lines.filter((l) => l.level === level && l.msg.startsWith("cannot write data/progress")).length;
  assert.deepEqual([said(40), said(20)], [1, 3], "one warning, then debug");
  etcd.unreachable = false;
  await clock.advance(500);
  await w.idle();
  assert.equal(w.counts.written, 1);
  assert.equal(etcd.dataProgress?.standbys.n2, behind);
  assert.ok(
    lines.some((l) => l.level === 30 && l.msg === "data/progress written again after 4 failed write(s)"),
    'lines.some((l) => l.level === 30 && l.msg === "data/progress written again after 4 failed write(s)")',
  );
  await w.close();
});
