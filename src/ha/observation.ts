import type { ClusterSnapshot, DataLagRecord, LeaderRecord, MemberRecord, SwitchoverRequest } from "../coordinator/port.js";
import type { Config } from "../config/load.js";
import { DEFAULT_FLAP, type FlapSettings, type FlapView } from "./flap.js";
import type { VipObservation } from "./vip-truth.js";
import type { PromotionGates } from "./promotion.js";
import type { DrainView } from "./drain-plan.js";
import type { TargetCheckView } from "./target-check.js";
import type { DrainSummary } from "../coordinator/port.js";

/** What one HA cycle knows. Built by the loop, consumed by the pure decide(). */
export interface Observation {
  readonly nowMs: number;
  /** Wall clock, only to compare with scheduled times written by operators. */
  readonly wallNowMs: number;
  readonly self: { readonly name: string; readonly priority: number; readonly nofailover: boolean; readonly generation: number };
  readonly mode: "cold" | "warm";
  /** Whether this node currently acts as primary (VIP desired, daemon started in cold mode). */
  readonly acting: "primary" | "standby";
  /** When this node last came to act as primary (monotonic ms, its VIP added); null: standby, or not yet serving. */
  readonly servingSinceMs: number | null;
  /** Our term while acting primary. */
  readonly term: number | null;
  /** Our session lease and the local deadline before which etcd cannot expire it. */
  readonly lease: { readonly id: string; readonly deadlineMs: number } | null;
  /** The cluster as read from etcd this cycle; null when the read failed. */
  readonly cluster: ClusterSnapshot | null;
  readonly etcdError: string | null;
  /** When this node first saw the current leader vacancy (monotonic ms). */
  readonly vacantSinceMs: number | null;
  readonly daemon: {
    readonly running: boolean;
    /** Critical probes up (or still within the start-up grace). */
    readonly probesUp: boolean;
    /** Restarts in the recent window, by the HA loop. */
    readonly recentRestarts: number;
    /** Every failing critical probe fails for a reason the standbys share (synced certificate): the sentence, else null. */
    readonly sharedFailure?: string | null;
    /** When (monotonic ms) the last of those restarts was; null/absent: none in the window. */
    readonly lastRestartAtMs?: number | null;
  };
  readonly restartsBeforeHandover: number;
  readonly rankingDelayMs: number;
  /** This node may not campaign before this time (after handing over for failing health). */
  readonly coolDownUntilMs: number;
  /** Why this standby could not serve if promoted (failing readiness check), or null. */
  readonly notReady: string | null;
  readonly failback: { readonly policy: "manual" | "auto"; readonly preferred: string | null; readonly delayMs: number };
  /** Since when the preferred node has been an eligible standby, as seen by this node. */
  readonly preferredReadySinceMs: number | null;
  /** How long other standbys leave a vacancy to the named target of a switchover. */
  readonly switchoverWaitMs: number;
  /** How long a node that handed over or declined a promotion stays out of elections: max(10 s, 3 × election.ttl). */
  readonly coolDownMs: number;
  /** File sync (docs/architecture.md, "File sync"): the promotion gate. */
  readonly sync: {
    readonly enabled: boolean;
    /** Since when (monotonic ms) this node has lagged the published generation; null when it does not. */
    readonly behindSinceMs: number | null;
    /** A standby that lags longer than this does not take over by itself (`failover --force` does). */
    readonly maximumLagMs: number;
  };
  /** Flap damping: health-driven handovers counted cluster-wide from history (flap.ts); absent: not known, no damping. */
  readonly flap?: FlapView;
  /** What the floating IP adapter saw (acting primary with a VIP); absent: no VIP, or not observed. */
  readonly vip?: VipObservation;
  /** daemon.restart_backoff, doubled per recent restart up to restart_backoff_max; absent: no backoff. */
  readonly restartBackoff?: { readonly baseMs: number; readonly maxMs: number };
  /** Lease time a promotion needs left (adding the VIP must land before the fence could run); absent: 0. */
  readonly promotionBudgetMs?: number;
  /** A promotion under way this cycle (a won election or an adopted key): what its gates said so far (promotion.ts). */
  readonly promotion?: PromotionGates;
  /** Data replication (data roots configured): ranking by data lag and its gate (data-gate.ts); absent: none. */
  readonly data?: { readonly maximumLagBytes: number };
  /** Drained switchover on this node (drain-plan.ts): what can refuse sessions, the drain running, the last one aborted; absent: none. */
  readonly drain?: DrainView;
  /** A planned move's target, asked over its API before the move (target-check.ts); absent: this agent cannot ask. */
  readonly targetCheck?: TargetCheckView;
  /** Failsafe (docs/failsafe-design.md, S4/S6): a promise or the start-up hold keeps this node from campaigning until untilMs; absent: none. */
  readonly failsafeHold?: { readonly untilMs: number; readonly reason: string; readonly fromGrant: boolean };
  /** Failsafe, acting primary: the last round's outcome while etcd is unreachable; absent: no round ran. */
  readonly failsafeNote?: string;
  /** Failsafe, acting primary: a round extended the deadline since etcd last answered (it serves on grants). */
  readonly failsafeHolding?: boolean;
  /**
   * Failsafe, acting primary: members granted its requests, so their promises (S4) may run until
   * this instant (monotonic ms; the last granted round's end + ttl + fence margin), whether or not
   * their member keys say so yet. A move waits for it (switchover.ts). Absent: no grant.
   */
  readonly failsafeGrantsUntilMs?: number;
  /** How long a move waits for its target's failsafe hold: max(60 s, 2 × (ttl + fence margin)). Default 60 s. */
  readonly campaignHoldWaitMs?: number;
}

/** A planned move's target, to be handed the leader key in the release's txn; `revision`: the view it was chosen on. */
export interface HandTo {
  readonly node: string;
  readonly lease: string;
  readonly revision: number;
}

export type Action =
  | { readonly kind: "grant_lease" }
  | { readonly kind: "campaign" }
  | { readonly kind: "promote"; readonly term: number }
  | { readonly kind: "demote" }
  | { readonly kind: "resign"; readonly term: number }
  /** E2': add members to failsafe/members while the leader key is vacant (only if it is unchanged since `revision`). */
  | { readonly kind: "widen_failsafe_members"; readonly record: { readonly term: number; readonly nodes: readonly string[] }; readonly revision: number }
  /**
   * Delete the leader key and write control/released in one txn (after demote). With `handTo`: put
   * the key naming that node on its lease instead (the same txn, a new term), unless the cluster
   * changed after `revision` (then delete it as without).
   */
  | {
      readonly kind: "release";
      readonly term: number;
      readonly why: "switchover" | "handover";
      readonly drain?: DrainSummary;
      readonly handTo?: HandTo;
      /**
       * The target is not the request's first choice (switchover.ts passed one over): when the key
       * cannot be handed to it after all, the request is cancelled with this reason before the key
       * is released, so no standby waits for the node passed over and no one hands over again.
       */
      readonly cancelIfNotHanded?: string;
    }
  | { readonly kind: "complete_switchover"; readonly request: SwitchoverRequest }
  | { readonly kind: "abort_switchover"; readonly why: string }
  | { readonly kind: "request_failback"; readonly to: string }
  | { readonly kind: "restart_daemon" }
  | { readonly kind: "start_daemon" }
  /** Cold mode: a standby must not run the daemon (one left by an earlier run of the agent). */
  | { readonly kind: "stop_daemon" }
  /** Hold back from campaigning for this long (handed over or declined; Observation.coolDownMs). */
  | { readonly kind: "cool_down"; readonly durationMs: number }
  /** Re-run the cycle at this time (ranking delay running out). */
  | { readonly kind: "recheck_at"; readonly atMs: number }
  /** Drained switchover (drain-plan.ts): refuse new sessions and count the running ones. */
  | { readonly kind: "start_drain"; readonly requestedAt: string }
  /** Ask a planned move's target whether it is ready to take over (target-check.ts); the answer wakes the loop. */
  | { readonly kind: "check_target"; readonly node: string; readonly api: string; readonly requestedAt: string; readonly forced: boolean }
  /** Drain under way: count again and decide again at this time (at most a second away). */
  | { readonly kind: "drain_wait"; readonly atMs: number }
  /** Accept sessions again: after the move (moved), or when the switchover will not happen (aborted, remembered for its request). */
  | { readonly kind: "end_drain"; readonly outcome: "moved" | "aborted"; readonly why: string }
  /** Write a flap_damped history event (once per damping, until an operator clears it). */
  | { readonly kind: "record_flap_damped"; readonly reason: string }
  /** Ask a promotion gate (run the pre_promote hook, arm the watchdog), then decide again in the same cycle. */
  | { readonly kind: "ask_gate"; readonly gate: "pre_promote" | "watchdog"; readonly term: number }
  /** Every gate passed: act as primary (arm the guard, start the daemon in cold mode, add the VIP). */
  /** stale: promoted while lagging the published generation (promotion.ts staleMark): the executor records it. */
  /** dataLag: promoted while my data lag exceeded data.maximum_data_lag_on_failover (data-gate.ts dataLagMark): recorded too. */
  | {
      readonly kind: "take_over";
      readonly term: number;
      readonly via: "won" | "adopted";
      readonly skipDuplicateCheck: boolean;
      readonly stale?: StalePromotion;
      readonly dataLag?: DataLagPromotion;
    }
  /** A gate refused: give the won key back (a veto release, recorded in history); the watchdog gate disarms the guard first. */
  | { readonly kind: "decline"; readonly term: number; readonly gate: "ready" | "pre_promote" | "watchdog"; readonly problem: string };

/** A take-over while lagging the published sync generation (within maximum_lag_on_failover, or forced). */
export interface StalePromotion {
  readonly generation: number;
  readonly published: { readonly generation: number; readonly source: string };
  readonly lagMs: number;
  /** The sentence the executor logs. */
  readonly reason: string;
}

/** A take-over while this node's data lag exceeded data.maximum_data_lag_on_failover (every candidate's did, or forced). */
export interface DataLagPromotion {
  /** My lag in the record; null: not listed (unknown). */
  readonly lag: DataLagRecord | null;
  readonly maximumBytes: number;
  /** Who wrote the data/progress read, and in which term. */
  readonly progressNode: string;
  readonly progressTerm: number;
  /** The sentence logged and written to history. */
  readonly reason: string;
}

export interface Decision {
  readonly actions: readonly Action[];
  /** One sentence saying why; logged, published in the member key, asserted by tests. */
  readonly reason: string;
  /** Decide again after the next lease renewal (a promotion deferred for too little lease time), not at the next tick. */
  readonly afterRenewal?: true;
}

export type { ClusterSnapshot, LeaderRecord, MemberRecord };

export type ConfiguredPart = Pick<
  Observation,
  "mode" | "restartsBeforeHandover" | "rankingDelayMs" | "failback" | "switchoverWaitMs" | "coolDownMs" | "restartBackoff" | "promotionBudgetMs" | "data" | "campaignHoldWaitMs"
> & {
  readonly syncEnabled: boolean;
  readonly maximumLagMs: number;
  readonly self: Omit<Observation["self"], "generation">;
  readonly flapSettings: FlapSettings;
  /** vip.hold_timeout; null without a floating IP. */
  readonly vipHoldTimeoutMs: number | null;
};

/** The parts of every observation that come from config alone, computed once. */
export function configuredPart(config: Config): ConfiguredPart {
  const fb = config.failback;
  return {
    self: { name: config.node.name, priority: config.node.priority, nofailover: config.node.nofailover },
    mode: config.daemon.mode,
    restartsBeforeHandover: config.daemon.restarts_before_handover,
    rankingDelayMs: config.election.rankingDelayMs,
    failback: { policy: fb.policy, preferred: fb.preferred ?? null, delayMs: fb.delay },
    // The named target of a switchover campaigns at once; the others give it this long.
    switchoverWaitMs: Math.max(1000, 3 * config.election.rankingDelayMs),
    // A failsafe hold lasts ttl + fence margin: a move to a held node waits twice that, at least 60 s.
    campaignHoldWaitMs: Math.max(60_000, 2 * (config.election.ttlMs + config.election.fenceMarginMs)),
    // Long enough for another candidate's lease cycle to win the key first.
    coolDownMs: Math.max(10_000, 3 * config.election.ttlMs),
    syncEnabled: config.sync !== undefined,
    maximumLagMs: config.sync?.maximum_lag_on_failover ?? 0,
    flapSettings: config.election.flap ?? DEFAULT_FLAP,
    vipHoldTimeoutMs: config.vip && config.vip.backend !== "none" ? config.vip.hold_timeout : null,
    restartBackoff: { baseMs: config.daemon.restart_backoff, maxMs: config.daemon.restart_backoff_max },
    // Adding the VIP takes a duplicate check plus `ip addr add`: never start it so close to the deadline that it could land after the fence.
    promotionBudgetMs: Math.min(1000, (config.election.ttlMs - config.election.fenceMarginMs) / 2),
    ...(config.data ? { data: { maximumLagBytes: config.data.maximum_data_lag_on_failover } } : {}),
  };
}
