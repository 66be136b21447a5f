import type { ClusterSnapshot } from "../coordinator/port.js";
import type { Readiness } from "../daemon/port.js";
import type { Clock } from "../platform/clock.js";
import type { DrainRun } from "./drain-run.js";
import type { FailsafePromise } from "./failsafe-promise.js";
import type { FailsafeRounds } from "./failsafe-rounds.js";
import type { FlapWatch } from "./flap-watch.js";
import type { SessionLease } from "./lease.js";
import type { ConfiguredPart, Observation } from "./observation.js";
import type { DaemonHealth, SyncPort } from "./ports.js";
import type { PromotionGates } from "./promotion.js";
import type { NodeRole } from "./role.js";
import type { HaMemory } from "./track.js";
import type { TargetCheckRun } from "./target-check-run.js";
import type { VipWitness } from "./vip-truth.js";

/** The parts of the HA loop an observation reads (loop.ts builds them once). */
export interface ObservedParts {
  readonly clock: Clock;
  readonly health: DaemonHealth;
  /** Grace after a daemon (re)start before failing probes count. */
  readonly probeGraceMs: number;
  readonly sync: SyncPort | undefined;
  readonly configured: ConfiguredPart;
  readonly lease: SessionLease;
  readonly role: NodeRole;
  readonly flap: FlapWatch;
  readonly readiness: Readiness;
  readonly vipWitness: VipWitness;
  readonly drain: DrainRun;
  /** Asks a planned move's target (absent: no peer client). */
  readonly targetCheck: TargetCheckRun | undefined;
  readonly failsafeRounds: FailsafeRounds;
  readonly failsafe: FailsafePromise;
  /** The loop's memory as track() left it this cycle. */
  readonly memory: () => HaMemory;
}

/** What this cycle knows, for decide(): reads only, no etcd and no side effects. */
export function observation(p: ObservedParts, snapshot: ClusterSnapshot | null, etcdError: string | null, promotion?: PromotionGates): Observation {
  const { clock, health, role, configured: fixed } = p;
  const now = clock.monotonicMs();
  const lease = p.lease.state();
  const restarts = role.restartHistory(now);
  const memory = p.memory();
  const flap = p.flap.current();
  return {
    ...fixed,
    self: { ...fixed.self, generation: p.sync?.generation() ?? 0 },
    nowMs: now,
    wallNowMs: clock.wallMs(),
    acting: role.acting,
    term: role.term,
    servingSinceMs: role.servingSince?.monotonicMs ?? null,
    lease: lease ? { id: lease.id, deadlineMs: lease.deadlineMs } : null,
    cluster: snapshot,
    etcdError,
    vacantSinceMs: memory.vacantSinceMs,
    daemon: {
      running: role.daemonRunning,
      probesUp: health.criticalUp() || role.inStartGrace(now, p.probeGraceMs),
      recentRestarts: restarts.count,
      lastRestartAtMs: restarts.lastAtMs,
      sharedFailure: health.sharedFailure?.() ?? null,
    },
    ...(flap ? { flap } : {}),
    coolDownUntilMs: role.coolDownUntilMs,
    notReady: p.readiness.problem(),
    preferredReadySinceMs: memory.preferredReadySinceMs,
    sync: { enabled: fixed.syncEnabled && p.sync !== undefined, behindSinceMs: p.sync?.behindSince() ?? null, maximumLagMs: fixed.maximumLagMs },
    ...(fixed.vipHoldTimeoutMs !== null && role.acting === "primary" ? { vip: p.vipWitness.observation(fixed.vipHoldTimeoutMs) } : {}),
    ...(promotion ? { promotion } : {}),
    drain: p.drain.view(),
    ...(p.targetCheck ? { targetCheck: p.targetCheck.view() } : {}),
    ...p.failsafeRounds.observed(p.failsafe, now, role.acting),
  };
}
