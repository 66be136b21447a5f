// S6 across restarts (docs/failsafe-design.md): a promise is written down before the grant is
// answered, and the next run honours it whatever its own settings (failsafe off, a shorter ttl).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FailsafePromise } from "../../../src/ha/failsafe-promise.js";
import { FilePromiseLedger } from "../../../src/platform/promise-ledger.js";
import { FakeClock } from "../../fakes/clock.js";

const ON = { enabled: true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 };
const OFF = { ...ON, enabled: false };
const REQ = { node: "n1", to: "n2", term: 7, leaseMs: 5000, nonce: "0".repeat(32), seq: 1_700_000_000_000 };
const CTX = { acting: "standby" as const, lastLeader: { node: "n1", term: 7 } };

function dir() {
  const d = mkdtempSync(join(tmpdir(), "us-ledger-"));
  return { file: join(d, "failsafe-promise.json"), done: () => rmSync(d, { recursive: true, force: true }) };
}

test("a grant is on disk (0600) before the answer returns; a restart with failsafe off still holds until it ends", async () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    const t0 = clock.monotonicMs();
    const first = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file, () => "boot-a"));
    await clock.advance(6000); // past the first run's own start-up hold
    const a = await first.answer(REQ, CTX);
    assert.equal(a.granted, true);
    const onDisk = JSON.parse(readFileSync(d.file, "utf8"));
    assert.deepEqual(onDisk, { boot_id: "boot-a", until_system_ms: t0 + 6000 + 6000, for_ms: 6000, answered: [{ node: "n1", term: 7, seq: REQ.seq }] });
    assert.equal(statSync(d.file).mode & 0o777, 0o600);
    // The agent restarts 1 s later with failsafe off: its own start-up hold would be none.
    await clock.advance(1000);
    const second = new FailsafePromise(clock, OFF, new FilePromiseLedger(d.file, () => "boot-a"));
    assert.equal(second.promisedUntilMs(), t0 + 12_000, "the last run's promise, to the millisecond");
    assert.match(second.hold(clock.monotonicMs()) ?? "", /^not campaigning: I promised a primary \(a grant of the previous run\)/);
    assert.equal(second.beginCampaign(), false);
    await clock.advance(5000);
    assert.equal(second.hold(clock.monotonicMs()), null, "free once it ended");
    assert.equal(second.beginCampaign(), true);
  } finally {
    d.done();
  }
});

test("a smaller ttl after the restart does not shorten the last promise; after a reboot its whole length holds from the start", async () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    writeFileSync(d.file, JSON.stringify({ boot_id: "boot-a", until_system_ms: clock.systemMonotonicMs() + 9000, for_ms: 11_000 }));
    const shorter = new FailsafePromise(clock, { ...ON, leaseMs: 2000, fenceMarginMs: 500 }, new FilePromiseLedger(d.file, () => "boot-a"));
    assert.equal(shorter.promisedUntilMs(), clock.monotonicMs() + 9000, "the old promise outlasts the new start-up hold (2500ms)");
    const rebooted = new FailsafePromise(clock, OFF, new FilePromiseLedger(d.file, () => "boot-b"));
    assert.equal(rebooted.promisedUntilMs(), clock.monotonicMs() + 11_000, "another boot: its length from this start");
    // An old-boot monotonic value far in the future is bounded by the promise's length.
    writeFileSync(d.file, JSON.stringify({ boot_id: "boot-a", until_system_ms: clock.systemMonotonicMs() + 1e9, for_ms: 6000 }));
    assert.equal(new FailsafePromise(clock, OFF, new FilePromiseLedger(d.file, () => "boot-a")).promisedUntilMs(), clock.monotonicMs() + 6000);
  } finally {
    d.done();
  }
});

test("no record: failsafe off has no hold (today's behaviour); an unreadable record is reported and only the own hold applies", () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    assert.equal(new FailsafePromise(clock, OFF, new FilePromiseLedger(d.file)).promisedUntilMs(), -Infinity);
    writeFileSync(d.file, "{not json");
    const p = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file));
    assert.match(p.ledgerProblem ?? "", /is not JSON/);
    assert.equal(p.promisedUntilMs(), clock.monotonicMs() + 6000);
    writeFileSync(d.file, JSON.stringify({ boot_id: "x", until_system_ms: 5, for_ms: -1 }));
    assert.match(new FailsafePromise(clock, ON, new FilePromiseLedger(d.file)).ledgerProblem ?? "", /does not hold/);
  } finally {
    d.done();
  }
});

test("a promise that cannot be written is refused (the in-memory hold stays)", async () => {
  const clock = new FakeClock();
  const broken = {
    load: () => ({ record: null }),
    save: () => {
      throw new Error("EROFS: read-only file system");
    },
  };
  const p = new FailsafePromise(clock, ON, broken);
  await clock.advance(7000);
  const a = await p.answer(REQ, CTX);
  assert.equal(a.granted, false);
  assert.match(a.reason, /^refused: cannot record the promise durably \(EROFS/);
  assert.ok(p.hold(clock.monotonicMs()) !== null, "held all the same: refusing costs the primary, never safety");
});

test("an unreadable record fails closed: ttl + margin of hold even with failsafe off, as a promise (S4), not a start-up hold", () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    writeFileSync(d.file, "{not json");
    const p = new FailsafePromise(clock, OFF, new FilePromiseLedger(d.file));
    assert.equal(p.promisedUntilMs(), clock.monotonicMs() + 6000);
    assert.notEqual(p.promisedTo(), null, "counted as a promise: a leader key naming this node is resigned, not promoted");
    writeFileSync(d.file, JSON.stringify({ boot_id: "b", until_system_ms: clock.systemMonotonicMs() + 3000, for_ms: 6000 }));
    const q = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file, () => "b"));
    assert.equal(q.promisedUntilMs(), clock.monotonicMs() + 6000, "the own start-up hold is longer here");
    assert.match(q.promisedTo() ?? "", /a grant of the previous run/, "but a promise of the last run still runs inside it");
  } finally {
    d.done();
  }
});

test("S7: requests answered before a restart (or a reboot), granted or refused, are still stale after it", async () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    const first = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file, () => "boot-a"));
    await clock.advance(6000);
    assert.equal((await first.answer(REQ, CTX)).granted, true);
    const older = { ...REQ, seq: REQ.seq - 1500 };
    assert.match((await first.answer(older, CTX)).reason, /^refused: request 1699999998500 of n1 is not newer than request 1700000000000/, "an older capture, same run");
    assert.match((await first.answer(REQ, CTX)).reason, /not newer/, "the same request again, same run");
    // Refused for another cause (here: this node campaigns), the next request still moves the mark, on disk too.
    await clock.advance(7000);
    assert.equal(first.beginCampaign(), true);
    const refused = { ...REQ, seq: REQ.seq + 1000 };
    assert.match((await first.answer(refused, CTX)).reason, /is campaigning/);
    first.endCampaign();
    // And a request of another primary (n3, a later term) gets its own mark beside n1's.
    const fromN3 = { ...REQ, node: "n3", term: 9, seq: 5_000 };
    assert.match((await first.answer(fromN3, CTX)).reason, /last named n1 \(term 7\), not n3/);
    const onDisk = JSON.parse(readFileSync(d.file, "utf8")) as { for_ms: number; answered: unknown };
    assert.deepEqual(onDisk.answered, [
      { node: "n1", term: 7, seq: refused.seq },
      { node: "n3", term: 9, seq: 5_000 },
    ]);
    assert.equal(onDisk.for_ms, 0, "the grant's promise has ended: the record holds marks only");
    // A restart and then a reboot: the marks come back from the record, so every capture stays stale.
    for (const boot of ["boot-a", "boot-b"]) {
      const next = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file, () => boot));
      await clock.advance(7000); // past every hold: only S7 can refuse
      assert.equal(next.hold(clock.monotonicMs()), null);
      for (const replay of [older, REQ, refused]) assert.match((await next.answer(replay, { ...CTX, lastLeader: null })).reason, /\(a replay\?\)$/, `${boot}: n1 seq ${replay.seq}`);
      assert.match((await next.answer(fromN3, { ...CTX, lastLeader: null })).reason, /\(a replay\?\)$/, `${boot}: n3`);
    }
    const after = new FailsafePromise(clock, ON, new FilePromiseLedger(d.file, () => "boot-b"));
    await clock.advance(7000);
    const fresh = { ...REQ, seq: refused.seq + 1000 };
    assert.equal((await after.answer(fresh, CTX)).granted, true, "the requester's next request");
  } finally {
    d.done();
  }
});

test("S7 and etcd's history: a mark of a later term than etcd's leader key shows (etcd rebuilt) is dropped", async () => {
  const clock = new FakeClock();
  const p = new FailsafePromise(clock, ON);
  await clock.advance(7000);
  assert.equal((await p.answer({ ...REQ, term: 123_456 }, { ...CTX, lastLeader: null })).granted, true);
  await clock.advance(7000);
  const rebuilt = { ...CTX, lastLeader: { node: "n1", term: 7 } };
  assert.match((await p.answer(REQ, rebuilt)).reason, /for term 7, older than the term 123456 already answered/);
  p.observeLeader("n3", 7);
  assert.match((await p.answer({ ...REQ, seq: REQ.seq + 1 }, rebuilt)).reason, /older than the term 123456/, "another node's key changes nothing");
  p.observeLeader("n1", 123_456);
  assert.match((await p.answer({ ...REQ, seq: REQ.seq + 2 }, rebuilt)).reason, /older than the term 123456/, "the same term: kept");
  p.observeLeader("n1", 7);
  assert.equal((await p.answer({ ...REQ, seq: REQ.seq + 3 }, rebuilt)).granted, true, "etcd names n1 in term 7: the mark of term 123456 is gone");
});

test("S7 record: older records without `answered` load; a damaged `answered` is a damaged record", () => {
  const d = dir();
  try {
    const clock = new FakeClock();
    const base = { boot_id: "b", until_system_ms: clock.systemMonotonicMs() + 3000, for_ms: 6000 };
    writeFileSync(d.file, JSON.stringify(base));
    assert.deepEqual(new FilePromiseLedger(d.file, () => "b").load(), { record: { untilSystemMs: base.until_system_ms, forMs: 6000, answered: [] } });
    writeFileSync(d.file, JSON.stringify({ ...base, for_ms: 0, answered: [{ node: "n1", term: 7, seq: 5 }] }));
    assert.deepEqual(new FilePromiseLedger(d.file, () => "b").load(), { record: { untilSystemMs: base.until_system_ms, forMs: 0, answered: [{ node: "n1", term: 7, seq: 5 }] } }, "marks only");
    const many = Array.from({ length: 65 }, (_, i) => ({ node: `n${i}`, term: 7, seq: 5 }));
    for (const answered of [
      null,
      "n1",
      { node: "n1", term: 7, seq: 5 },
      [{ node: "n1", term: 7 }],
      [{ node: "n1", term: 0, seq: 5 }],
      [{ node: 3, term: 7, seq: 5 }],
      [{ node: "n1", term: 7, seq: 1.5 }],
      [{ node: "N1", term: 7, seq: 5 }],
      many,
    ]) {
      writeFileSync(d.file, JSON.stringify({ ...base, answered }));
      const l = new FilePromiseLedger(d.file, () => "b").load();
      assert.equal(l.record, null, JSON.stringify(answered).slice(0, 80));
      assert.match(l.problem ?? "", /"answered" is not a list of \{node, term, seq\}/);
    }
  } finally {
    d.done();
  }
});
