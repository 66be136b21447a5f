// Failsafe metrics: read from the node's view at scrape time (holding, armed, the promise left).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";

const base: NodeView = {
  node: "n1",
  acting: "primary",
  term: 9,
  leaseRemainingMs: 3000,
  etcdReachable: false,
  decision: "",
  sinceLastCycleMs: 100,
  vipHeld: true,
  daemonRunning: true,
  probes: [],
  healthy: true,
  notReady: null,
};

async function scrape(v: NodeView): Promise<Record<string, number>> {
  const text = await new AgentMetrics(() => v, { cluster: "c", node: "n1" }).registry.metrics();
  const out: Record<string, number> = {};
  for (const name of ["understudy_failsafe_holding", "understudy_failsafe_armed", "understudy_failsafe_promise_seconds"]) {
    const m = text.match(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m"));
    assert.ok(m, `${name} exported`);
    out[name] = Number(m[1]);
  }
  return out;
}

test("failsafe gauges: off and no promise -> 0/-1/0; a holding primary; an unarmed one; a standby's promise", async () => {
  assert.deepEqual(await scrape(base), { understudy_failsafe_holding: 0, understudy_failsafe_armed: -1, understudy_failsafe_promise_seconds: 0 });
  const holding = { enabled: true, holding: true, armed: true, armedReason: "asking n2, n3 for a failsafe grant", promiseLeftMs: 0 };
  assert.deepEqual(await scrape({ ...base, failsafe: holding }), { understudy_failsafe_holding: 1, understudy_failsafe_armed: 1, understudy_failsafe_promise_seconds: 0 });
  const unarmed = { ...holding, holding: false, armed: false, armedReason: "failsafe cannot hold: n3 publishes no API URL to ask" };
  assert.equal((await scrape({ ...base, failsafe: unarmed })).understudy_failsafe_armed, 0);
  const standby = { enabled: false, holding: false, armed: null, armedReason: null, promiseLeftMs: 4500 };
  assert.deepEqual(await scrape({ ...base, acting: "standby", failsafe: standby }), { understudy_failsafe_holding: 0, understudy_failsafe_armed: -1, understudy_failsafe_promise_seconds: 4.5 });
});
