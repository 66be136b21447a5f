// pollUntil (test/lab/harness/exec.ts), the lab's "eventually" helper: the
// deadline bounds when a probe may start, so a slow probe that saw the world
// before the deadline is followed by one that sees it after; attempts and
// time stay bounded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pollUntil, sleep } from "../../lab/harness/exec.js";

test("a probe that began before the deadline and ended after it is followed by one more, whose answer counts", async () => {
  let done = false;
  setTimeout(() => (done = true), 100);
  let calls = 0;
  const v = await pollUntil(
    async () => {
      calls += 1;
      const sawDone = done;
      if (calls === 1) await sleep(300); // stalled: the condition came true meanwhile
      return sawDone ? "converged" : undefined;
    },
    { timeoutMs: 150, intervalMs: 10 },
  );
  assert.equal(v, "converged");
  assert.equal(calls, 2);
});

test("a condition that never holds: undefined after the deadline, no probe started after the first one past it", async () => {
  let calls = 0;
  const t0 = performance.now();
  const v = await pollUntil(
    () => {
      calls += 1;
      return undefined;
    },
    { timeoutMs: 200, intervalMs: 20 },
  );
  const ms = performance.now() - t0;
  assert.equal(v, undefined);
  assert.ok(ms >= 190, `gave up after ${ms} ms, before the deadline (timers may fire ~1 ms early)`);
  assert.ok(ms < 2000, `gave up only after ${ms} ms`);
  assert.ok(calls >= 2 && calls <= 13, `${calls} probes for 200 ms at 20 ms intervals (at most attempts + 1)`);
});

test("attempts bound the probes when they run out before the deadline", async () => {
  let calls = 0;
  const v = await pollUntil(
    () => {
      calls += 1;
      return undefined;
    },
    { timeoutMs: 10_000, intervalMs: 1, attempts: 3 },
  );
  assert.equal(v, undefined);
  assert.equal(calls, 3);
});
