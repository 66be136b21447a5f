// Timer lateness (src/platform/timer-lateness.ts): what the event-loop lag gauges read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SystemClock } from "../../../src/platform/clock.js";
import { recordLateness, timerLateness } from "../../../src/platform/timer-lateness.js";

test("a timer run 50 ms after it was due records ~50 ms; one run early (Node counts a delay from the loop's cached time, which may be older than performance.now()) records the histogram's floor, not a negative", () => {
  timerLateness.reset();
  recordLateness(performance.now() - 50);
  assert.equal(timerLateness.count, 1);
  assert.ok(timerLateness.max >= 50e6 && timerLateness.max < 5e9, `max ${timerLateness.max} ns`);
  recordLateness(performance.now() + 1);
  assert.equal(timerLateness.count, 2);
  assert.equal(timerLateness.min, 1);
  timerLateness.reset();
});

test("a timer whose delay is not a number still runs (as Node runs it, after 1 ms) and records nothing", async () => {
  timerLateness.reset();
  assert.doesNotThrow(() => recordLateness(Number.NaN));
  assert.equal(timerLateness.count, 0);
  await new Promise<void>((resolve) => new SystemClock().setTimer(Number.NaN, resolve));
  assert.equal(timerLateness.count, 0);
});
