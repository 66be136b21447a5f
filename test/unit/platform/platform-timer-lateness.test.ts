// Timer lateness (src/platform/timer-lateness.ts): what the event-loop lag gauges read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { recordLateness, timerLateness } from "../../../src/platform/timer-lateness.js";

test("a timer run 50 ms after it was due records ~50 ms; one run early (Node rounds to the millisecond) records the histogram's floor, not a negative", () => {
  timerLateness.reset();
  recordLateness(performance.now() - 50);
  assert.equal(timerLateness.count, 1);
  assert.ok(timerLateness.max >= 50e6 && timerLateness.max < 5e9, `max ${timerLateness.max} ns`);
  recordLateness(performance.now() + 1);
  assert.equal(timerLateness.count, 2);
  assert.equal(timerLateness.min, 1);
  timerLateness.reset();
});
