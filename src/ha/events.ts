// What the HA loop reports as it acts, for metrics and webhooks. Listeners
// must not throw; the loop ignores what they return.

export const PROMOTION_KINDS = ["election", "failover", "handover", "switchover", "failback", "failover_forced", "adopted"] as const;
export type PromotionKind = (typeof PROMOTION_KINDS)[number];

export type HaEvent =
  | { readonly type: "promoted"; readonly kind: PromotionKind; readonly term: number; readonly vacancyMs: number | null; readonly promoteMs: number }
  | { readonly type: "demoted"; readonly why: string }
  | { readonly type: "fenced" }
  /** Promoted while lagging the published sync generation (within maximum_lag_on_failover). */
  | { readonly type: "stale_promotion"; readonly term: number; readonly generation: number; readonly published: number; readonly lagMs: number }
  /** Promoted while this node's data lag exceeded data.maximum_data_lag_on_failover (every candidate's did, or forced). */
  | { readonly type: "data_lag_promotion"; readonly term: number; readonly lagBytes: number | null }
  | { readonly type: "daemon_restarted" }
  | { readonly type: "cycle"; readonly etcdReachable: boolean };

export type HaEventListener = (event: HaEvent) => void;

/** This node as the API, metrics and status show it. */
export interface NodeView {
  readonly node: string;
  readonly acting: "primary" | "standby";
  readonly term: number | null;
  /** Until the local lease deadline; null without a lease. */
  readonly leaseRemainingMs: number | null;
  readonly etcdReachable: boolean;
  readonly decision: string;
  /** Monotonic ms since the last completed HA cycle. */
  readonly sinceLastCycleMs: number | null;
  readonly vipHeld: boolean;
  /** Acting primary without its floating IP: for how long (ms); null when held or not primary. */
  readonly vipMissingMs?: number | null;
  /** MAC of another host answering ARP for the floating IP (duplicate check), while this primary lacks it. */
  readonly vipHolder?: string | null;
  /** Why this primary does not hold its floating IP (the last add/check error). */
  readonly vipProblem?: string | null;
  readonly daemonRunning: boolean;
  readonly probes: readonly { readonly name: string; readonly critical: boolean; readonly up: boolean; readonly detail: string }[];
  /** Could campaign now: not cooling down, ready, (warm) probes up. */
  readonly healthy: boolean;
  readonly notReady: string | null;
  /** Flap damping as this node last read it from history (absent in older views). */
  readonly flap?: { readonly damped: boolean; readonly moves: number };
  /** Failsafe mode (docs/failsafe-design.md); absent: off here and no promise running. */
  readonly failsafe?: FailsafeView;
}

export interface FailsafeView {
  readonly enabled: boolean;
  /** Acting primary, serving past its lease on grants since etcd last answered. */
  readonly holding: boolean;
  /** Acting primary with failsafe on: whether a hold could start now, and why not; null on a standby. */
  readonly armed: boolean | null;
  readonly armedReason: string | null;
  /** Until this node's promise (or start-up hold) ends; 0: none. */
  readonly promiseLeftMs: number;
}
