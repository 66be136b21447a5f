import type { Config } from "../config/load.js";
import type { Readiness } from "../daemon/port.js";
import type { Clock } from "../platform/clock.js";
import type { NodeView } from "./events.js";
import type { FlapWatch } from "./flap-watch.js";
import { isDamped } from "./flap.js";
import type { LeaseState } from "./lease.js";
import type { MemberBody } from "./member.js";
import type { DaemonHealth, DataPort, SyncPort, VipControl } from "./ports.js";
import type { NodeRole } from "./role.js";
import { memberVipFields, type VipWitness } from "./vip-truth.js";

// How this node describes itself: the member key other nodes rank it by, and
// the view the API, metrics and `status` show. Reads only.

export interface SelfParts {
  readonly config: Config;
  readonly clock: Clock;
  readonly health: DaemonHealth;
  readonly vip: VipControl;
  readonly sync?: SyncPort;
  readonly data?: DataPort;
  readonly version: string;
  readonly apiUrl?: string;
  readonly apiAnswersPeers?: boolean;
  readonly readiness: Readiness;
  readonly role: NodeRole;
  readonly vipWitness: VipWitness;
  readonly flap: FlapWatch;
  /** Failsafe: why this node may not campaign now (FailsafePromise.hold), or null. */
  readonly campaignHold: () => string | null;
}

/** Could campaign now: not cooling down, ready, (warm) probes up. */
function isHealthy(p: SelfParts, now: number): boolean {
  return now >= p.role.coolDownUntilMs && p.readiness.problem() === null && (p.config.daemon.mode === "cold" || p.health.criticalUp());
}

/** The member key's body, with the last decision's reason. */
export function memberBody(p: SelfParts, decision: string): MemberBody {
  const { config, role, sync } = p;
  const notReady = p.readiness.problem();
  const hold = role.acting === "standby" ? p.campaignHold() : null;
  return {
    node: config.node.name,
    role: role.acting,
    healthy: isHealthy(p, p.clock.monotonicMs()),
    ...(notReady !== null ? { notReady } : {}),
    ...(hold !== null ? { campaignHold: hold } : {}),
    priority: config.node.priority,
    nofailover: config.node.nofailover,
    generation: sync?.generation() ?? 0,
    ...(sync ? { sync: sync.memberSummary() } : {}),
    ...(p.data ? { data: p.data.memberSummary() } : {}),
    address: config.node.address,
    version: p.version,
    decision,
    probes: Object.fromEntries(p.health.states().map((s) => [s.name, s.up])),
    vipHeld: p.vip.state().held === true,
    ...memberVipFields(p.vipWitness.truth(role.acting)),
    daemonRunning: role.daemonRunning,
    ...(p.apiUrl ? { api: p.apiUrl } : {}),
    // A loopback-bound API cannot be asked at apiUrl: a planned move to this node then goes on unasked.
    ...(p.apiUrl && p.apiAnswersPeers !== false ? { answersReady: true as const } : {}),
  };
}

export function nodeView(p: SelfParts, loop: { lease: LeaseState | null; etcdReachable: boolean; decision: string; lastCycleAtMs: number | null }): NodeView {
  const now = p.clock.monotonicMs();
  const { role, flap } = p;
  return {
    node: p.config.node.name,
    acting: role.acting,
    term: role.term,
    leaseRemainingMs: loop.lease ? Math.max(0, loop.lease.deadlineMs - now) : null,
    etcdReachable: loop.etcdReachable,
    decision: loop.decision,
    sinceLastCycleMs: loop.lastCycleAtMs === null ? null : now - loop.lastCycleAtMs,
    vipHeld: p.vip.state().held === true,
    ...p.vipWitness.view(role.acting),
    daemonRunning: role.daemonRunning,
    probes: p.health.states().map((s) => ({ name: s.name, critical: s.critical, up: s.up, detail: s.lastDetail })),
    healthy: isHealthy(p, now),
    notReady: p.readiness.problem(),
    flap: { damped: isDamped(flap.current()), moves: flap.current()?.moves ?? 0 },
  };
}
