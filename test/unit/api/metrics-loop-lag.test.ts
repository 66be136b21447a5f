// The event-loop delay gauges (src/api/loop-lag.ts) read how late the agent's own timers fired
// (SystemClock records each one, src/platform/timer-lateness.ts): no sampler wakes the process.
// On time they read near 0; a stall shows at the next scrape through the timer it held up.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { standbyView } from "../../fakes/node-view.js";

const view = standbyView({ node: "n1" });
const clock = new SystemClock();

function gauge(text: string, stat: string): number {
  const name = `understudy_nodejs_eventloop_lag_${stat}_seconds`;
  const lines = text.split("\n").filter((l) => l.startsWith(`${name}{`));
  assert.equal(lines.length, 1, `${name} is exported once`);
  return Number(lines[0]!.split(" ").at(-1));
}

function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // a stalled event loop
  }
}

test("timers on time read near 0; a timer held up by a 300 ms stall shows it at the next scrape only", async () => {
  const m = new AgentMetrics(() => view, { cluster: "c", node: "n1" });
  await m.registry.metrics(); // the first scrape starts the window
  const none = await m.registry.metrics();
  assert.equal(gauge(none, "max"), 0, "no timer fired since the last scrape: 0, not a stale value");
  for (let i = 0; i < 5; i++) await clock.sleep(20);
  const onTime = await m.registry.metrics();
  // A timer runs a millisecond or so after it is due; 200 ms leaves room for a busy host.
  assert.ok(gauge(onTime, "p50") < 0.2, `p50 ${gauge(onTime, "p50")} s for timers nothing held up`);
  assert.ok(gauge(onTime, "min") >= 0, 'gauge(onTime, "min") >= 0');
  let fired = 0;
  clock.setTimer(10, () => fired++);
  stall(300);
  await clock.sleep(20);
  assert.equal(fired, 1);
  const stalled = await m.registry.metrics();
  assert.ok(gauge(stalled, "max") >= 0.25, `lag max ${gauge(stalled, "max")} s: a timer due 10 ms into a 300 ms stall ran ~290 ms late`);
  assert.ok(gauge(stalled, "p99") >= gauge(stalled, "p50"), 'gauge(stalled, "p99") >= gauge(stalled, "p50")');
  const after = await m.registry.metrics();
  assert.equal(gauge(after, "max"), 0, "the stall belongs to the previous window: no timer fired since that scrape");
});
