import type { MemberRecord } from "../../src/coordinator/port.js";

/** A member key as a healthy, idle standby publishes it; `over` sets what a test is about. */
export function member(node: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return {
    node,
    role: "standby",
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 0,
    address: "198.18.0.1",
    version: "t",
    decision: "",
    probes: {},
    vipHeld: false,
    daemonRunning: false,
    updatedAt: "2026-12-04T14:00:00.000Z",
    ...over,
  };
}
