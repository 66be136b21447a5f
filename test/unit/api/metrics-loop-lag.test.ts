// The event-loop delay gauges (src/api/loop-lag.ts) sample every EVENT_LOOP_SAMPLE_MS (not
// prom-client's 10 ms, which cost an idle agent half its CPU): an idle loop reads 0, not the
// sampling interval, and a stall longer than the interval shows at the next scrape.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { EVENT_LOOP_SAMPLE_MS } from "../../../src/api/loop-lag.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { standbyView } from "../../fakes/node-view.js";

const view = standbyView({ node: "n1" });

function gauge(text: string, stat: string): number {
  const name = `understudy_nodejs_eventloop_lag_${stat}_seconds`;
  const lines = text.split("\n").filter((l) => l.startsWith(`${name}{`));
  assert.equal(lines.length, 1, `${name} is exported once`);
  return Number(lines[0]!.split(" ").at(-1));
}

test("an idle loop does not read the sampling interval as delay; a stall of three intervals shows at the next scrape", async () => {
  const m = new AgentMetrics(() => view, { cluster: "c", node: "n1" });
  await m.registry.metrics(); // the first scrape starts the window
  await sleep(6 * EVENT_LOOP_SAMPLE_MS);
  const idle = await m.registry.metrics();
  // Without the interval taken off, p50 would read at least the interval itself; 80 % leaves room for a busy host.
  assert.ok(gauge(idle, "p50") < (0.8 * EVENT_LOOP_SAMPLE_MS) / 1000, `idle p50 ${gauge(idle, "p50")} s: the interval is not counted as delay`);
  assert.ok(gauge(idle, "min") >= 0, 'gauge(idle, "min") >= 0');
  // A scrape resets the histogram, and Node's first sample after a reset only starts the next interval.
  await sleep(1.5 * EVENT_LOOP_SAMPLE_MS);
  const until = performance.now() + 3 * EVENT_LOOP_SAMPLE_MS;
  while (performance.now() < until) {
    // a stalled event loop
  }
  await sleep(2 * EVENT_LOOP_SAMPLE_MS);
  const text = await m.registry.metrics();
  const max = gauge(text, "max");
  assert.ok(max >= (1.5 * EVENT_LOOP_SAMPLE_MS) / 1000, `lag max ${max} s after a ${3 * EVENT_LOOP_SAMPLE_MS} ms stall`);
  assert.ok(gauge(text, "p99") >= gauge(text, "p50"), 'gauge(text, "p99") >= gauge(text, "p50")');
});
