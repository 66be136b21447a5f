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
const REQ = { node: "n1", term: 7, leaseMs: 5000, nonce: "0".repeat(32) };
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
    assert.deepEqual(onDisk, { boot_id: "boot-a", until_system_ms: t0 + 6000 + 6000, for_ms: 6000 });
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
