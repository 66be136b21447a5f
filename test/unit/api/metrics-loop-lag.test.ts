// The event-loop delay gauges sample every EVENT_LOOP_SAMPLE_MS (not prom-client's
// 10 ms, which cost an idle agent half its CPU): a stall longer than that still shows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentMetrics, EVENT_LOOP_SAMPLE_MS } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";

const view: NodeView = {
  node: "n1",
  acting: "standby",
  term: null,
  leaseRemainingMs: null,
  etcdReachable: true,
  decision: "",
  sinceLastCycleMs: 100,
  vipHeld: false,
  daemonRunning: false,
  probes: [],
  healthy: true,
  notReady: null,
};

function gauge(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(" ").at(-1));
}

test("a loop stall of three sample periods shows in the lag max gauge", async () => {
  const m = new AgentMetrics(() => view, { cluster: "c", node: "n1" });
  await m.registry.metrics(); // the first scrape resets the histogram
  await sleep(EVENT_LOOP_SAMPLE_MS);
  const until = performance.now() + 3 * EVENT_LOOP_SAMPLE_MS;
  while (performance.now() < until) {
    // a stalled event loop
  }
  await sleep(2 * EVENT_LOOP_SAMPLE_MS);
  const text = await m.registry.metrics();
  const max = gauge(text, "understudy_nodejs_eventloop_lag_max_seconds");
  assert.ok(max >= (2 * EVENT_LOOP_SAMPLE_MS) / 1000, `lag max ${max} s after a ${3 * EVENT_LOOP_SAMPLE_MS} ms stall`);
});
