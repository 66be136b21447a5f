import assert from "node:assert/strict";
import { test } from "node:test";
import { EarliestWake } from "../../../src/platform/earliest-wake.js";
import { FakeClock } from "../../fakes/clock.js";
import { MAX_TIMER_MS, SystemClock } from "../../../src/platform/clock.js";

function setup() {
  const clock = new FakeClock();
  const fired: { why: string; at: number }[] = [];
  const wake = new EarliestWake(clock, (why) => fired.push({ why, at: clock.monotonicMs() }));
  return { clock, fired, wake, t0: clock.monotonicMs() };
}

test("a later request does not push back a pending earlier one", async () => {
  const { clock, fired, wake, t0 } = setup();
  assert.equal(wake.in(300, "took over"), true);
  assert.equal(wake.in(5_000, "scheduled move"), false, "the later request is dropped: the earlier cycle re-derives it");
  await clock.advance(6_000);
  assert.deepEqual(fired, [{ why: "took over", at: t0 + 300 }]);
});

test("an earlier request replaces a later pending one, which never fires", async () => {
  const { clock, fired, wake, t0 } = setup();
  wake.in(5_000, "scheduled move");
  assert.equal(wake.in(200, "ranking delay"), true);
  await clock.advance(6_000);
  assert.deepEqual(fired, [{ why: "ranking delay", at: t0 + 200 }]);
});

test("after a wake-up fired, any later request arms again", async () => {
  const { clock, fired, wake, t0 } = setup();
  wake.in(100, "first");
  await clock.advance(150);
  assert.equal(wake.in(1_000, "second"), true);
  await clock.advance(1_000);
  assert.deepEqual(fired, [
    { why: "first", at: t0 + 100 },
    { why: "second", at: t0 + 1_150 },
  ]);
});

test("an equal deadline keeps the pending one; a negative delay fires at once", async () => {
  const { clock, fired, wake, t0 } = setup();
  wake.in(100, "pending");
  assert.equal(wake.in(100, "same time"), false);
  assert.equal(wake.in(-50, "overdue"), true);
  await clock.advance(200);
  assert.deepEqual(fired, [{ why: "overdue", at: t0 }]);
});

test("close() cancels what is pending and arms nothing afterwards", async () => {
  const { clock, fired, wake } = setup();
  wake.in(100, "pending");
  wake.close();
  assert.equal(wake.in(50, "after close"), false);
  await clock.advance(1_000);
  assert.deepEqual(fired, []);
});

test("SystemClock: a delay past setTimeout's 2^31-1 ms waits that bound instead of Node's 1 ms, without a warning", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on("warning", onWarning);
  try {
    const clock = new SystemClock();
    let fired = 0;
    const month = clock.setTimer(30 * 86_400_000, () => fired++);
    const wake = new EarliestWake(clock, () => fired++);
    wake.in(90 * 86_400_000, "switchover scheduled in three months");
    await new Promise((r) => setTimeout(r, 50));
    month.cancel();
    wake.close();
    assert.equal(fired, 0);
    assert.deepEqual(warnings, []);
    assert.equal(MAX_TIMER_MS, 2 ** 31 - 1);
  } finally {
    process.off("warning", onWarning);
  }
});
