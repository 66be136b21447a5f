import type { NodeView } from "../../src/ha/events.js";

/** A node's view as an idle, healthy standby reports it (GET /status, metrics); `over` sets what a test is about. */
export function standbyView(over: Partial<NodeView> = {}): NodeView {
  return {
    node: "n2",
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
    ...over,
  };
}
