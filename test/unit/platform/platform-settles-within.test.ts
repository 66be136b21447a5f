// settlesWithin: the bounded wait of a stop or a yield (sync sweep and pass watch, hook runners, webhook).
import { test } from "node:test";
import assert from "node:assert/strict";
import { settlesWithin } from "../../../src/platform/clock.js";
import { FakeClock } from "../../fakes/clock.js";

test("true when the promise resolves in time, and the timer is cancelled", async () => {
  const clock = new FakeClock();
  let done: () => void = () => {};
  const waiting = settlesWithin(clock, 1000, new Promise<void>((r) => (done = r)));
  await clock.advance(999);
  done();
  assert.equal(await waiting, true);
  assert.equal(clock.pendingTimers(), 0);
});

test("false when the time runs out first; a rejection passes through", async () => {
  const clock = new FakeClock();
  const waiting = settlesWithin(clock, 1000, new Promise<void>(() => {}));
  await clock.advance(1000);
  assert.equal(await waiting, false);
  await assert.rejects(settlesWithin(clock, 1000, Promise.reject(new Error("boom"))), /boom/);
  assert.equal(clock.pendingTimers(), 0);
});
