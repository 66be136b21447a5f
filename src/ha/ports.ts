import type { DataProgress, MemberDataSummary, MemberSyncSummary, SyncGeneration } from "../coordinator/port.js";
import type { ProbeState } from "../probes/port.js";
import type { AnsweredRequest } from "./failsafe.js";

// What the HA loop needs from the VIP reconciler and the probe runner: the
// loop imports these shapes only, never an adapter (composition is in agent.ts).

/**
 * The floating IP as desired state (adapter: vip/reconcile.ts VipReconciler).
 *
 * Guarantees an implementation must give:
 * - `setDesired` records the state and reconciles at once; it resolves when
 *   that reconcile is done and rejects with its error (US_E_VIP_DUPLICATE,
 *   US_E_VIP_ADD...). Meanwhile it keeps reconciling on its own timer, so a
 *   rejected add is retried without the loop asking again.
 * - skipDuplicateCheck applies to the add this call causes only, never to a
 *   later repair.
 * - Reconciles never overlap; `state()` answers at once from the last one.
 * - After `release()` nothing re-adds the address, whatever `setDesired`
 *   says: shutdown must leave it removed. `release` rejects if the removal failed.
 */
export interface VipControl {
  /**
   * Record the desired state and reconcile now; rejects if adding/removing failed.
   * skipDuplicateCheck: the previous holder released the address (see ReleaseRecord).
   */
  setDesired(held: boolean, options?: { skipDuplicateCheck?: boolean }): Promise<void>;
  state(): {
    readonly desired: boolean;
    readonly held: boolean | undefined;
    readonly lastError: string | undefined;
    /** Since when (monotonic ms) the address has been desired but not held; null/absent when held or not desired. */
    readonly missingSinceMs?: number | null;
    /** MAC of another host answering ARP for the address, as the duplicate check saw it. */
    readonly foreignMac?: string | null;
  };
  /** Remove the address and stop reconciling (shutdown). */
  release(): Promise<void>;
}

/**
 * Per-listener health of the transfer daemon (adapter: probes/health.ts ProbeHealth).
 *
 * Guarantees an implementation must give:
 * - Every probe starts down and moves only after rise/fall consecutive
 *   results; `criticalUp()` answers at once from those debounced states
 *   (true when no probe is critical).
 * - `onChange` listeners run when a probe's debounced up/down flips, never
 *   for a repeat, and never after `stop()`.
 * - Each check settles within its probe's timeout, so `checkNow()` resolves
 *   within the longest timeout (after any check already in flight).
 * - `stop()` aborts checks in flight and resolves once none is running; a
 *   result that arrives after it is dropped. `start()` after `stop()` begins again.
 */
export interface DaemonHealth {
  criticalUp(): boolean;
  /** Why every failing critical probe fails for a reason the standbys share (synced certificate), or null. Optional for fakes. */
  sharedFailure?(): string | null;
  states(): ProbeState[];
  onChange(listener: () => void): void;
  checkNow(): Promise<unknown>;
  start(): void;
  stop(): Promise<void> | void;
}

/**
 * What the HA loop needs from the sync engine (src/sync/engine.ts).
 *
 * Guarantees an implementation must give:
 * - `generation()` only names a generation whose files this node holds in
 *   full (its own, published, or every root pulled and verified against the
 *   published digests); the candidate ranking and maximum_lag_on_failover
 *   rely on it. The state file records it atomically (DurableFs).
 * - `follow` returns at once; the pulls, publications and rescues it starts
 *   run in the background and report through the engine's events, never by
 *   throwing into the loop.
 * - `generation`, `behindSince` and `memberSummary` answer at once from memory.
 */
export interface SyncPort {
  /** The published generation this node holds in full. */
  generation(): number;
  /** Since when (monotonic ms) this node has lagged the published generation; null when it does not. */
  behindSince(): number | null;
  /** After each cycle: the role, and the leader and generation as read from etcd (undefined: not read). */
  follow(view: {
    readonly acting: "primary" | "standby";
    readonly term: number | null;
    readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
    readonly published: SyncGeneration | null | undefined;
  }): void;
  memberSummary(): MemberSyncSummary;
}

/**
 * What the HA loop needs from data replication (src/data/, docs/data.md).
 *
 * Guarantees an implementation must give:
 * - Only a node acting as primary with a term ships. `follow` with any other
 *   view stops every shipping rsync before it returns control to the loop's
 *   next action (the stop itself may finish in the background, but no new
 *   rsync starts after `follow` returned).
 * - `stopShipping` resolves only once no shipping rsync of this node is alive
 *   (SIGTERM, then SIGKILL after 1 s): the demote path awaits it before the
 *   floating IP is dropped.
 * - `follow` and `memberSummary` answer at once from memory; runs report
 *   through the engine's log and metrics, never by throwing into the loop.
 */
export interface DataPort {
  /** After each cycle: the role, the leader, and each member's address and data summary as read from etcd. */
  follow(view: {
    readonly acting: "primary" | "standby";
    readonly term: number | null;
    readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
    readonly members: readonly { readonly node: string; readonly address: string | null; readonly data?: MemberDataSummary }[];
    /** data/progress as read this cycle (null: none); absent when etcd was not read. A standby copies its own entry (ownLag). */
    readonly progress?: DataProgress | null;
    /** true: etcd was not read this cycle, so `leader` and `members` are unknown rather than absent. */
    readonly unread?: boolean;
  }): void;
  stopShipping(): Promise<void>;
  /**
   * Awaited by a take-over before the daemon starts and the floating IP comes up: no write module
   * of any term stays open in the daemon config, and the former-primary marker of `term` is on
   * disk (rejoin). May throw; the take-over logs it and goes on (the next cycles retry both).
   */
  beforeServe(term: number): Promise<void>;
  memberSummary(): MemberDataSummary;
}

/** One member's failsafe answer as the primary counts it (docs/failsafe-design.md, P4). */
export type FailsafeVerdict = { readonly granted: true } | { readonly granted: false; readonly why: string };

/**
 * The other agents' POST /failsafe/grant, as the failsafe primary asks them
 * (adapter: api/failsafe-peers.ts; docs/failsafe-design.md, "Messages").
 *
 * Guarantees an implementation must give:
 * - `ask` sends one request to each target, concurrently, each with a fresh
 *   nonce, and resolves within `timeoutMs` (plus scheduling) with a verdict
 *   for every target; it never rejects.
 * - A verdict is `granted: true` only for a 200 answer whose MAC verifies
 *   with the cluster token and whose node, lease and nonce are the ones asked;
 *   anything else (timeout, refusal, bad MAC, HTTP error) is `granted: false`
 *   with a sentence saying why.
 */
export interface FailsafePeers {
  ask(
    targets: readonly { readonly node: string; readonly api: string }[],
    request: { readonly node: string; readonly term: number; readonly leaseMs: number },
    timeoutMs: number,
  ): Promise<ReadonlyMap<string, FailsafeVerdict>>;
}

/** A planned move's target, as it answered POST /handover/ready (target-check.ts judges it). */
export type TargetAnswer =
  | {
      readonly kind: "answer";
      readonly acting: "primary" | "standby";
      /** Could campaign now (GET /standby's rule). */
      readonly healthy: boolean;
      readonly etcdReachable: boolean;
      /** Its HA loop cycled within its liveness limit (GET /liveness's rule). */
      readonly loopAlive: boolean;
    }
  /** Timeout, refusal, an answer that does not verify: the target is not known to be alive and ready. */
  | { readonly kind: "no answer"; readonly why: string }
  /** No authenticated question is possible: this node has no token and no mutual TLS to the target, or the target can authenticate nothing (no token, no client CA). */
  | { readonly kind: "cannot ask"; readonly why: string };

/**
 * The target's POST /handover/ready, as the primary asks it before a planned
 * move (adapter: api/handover-ready-client.ts).
 *
 * Guarantees an implementation must give:
 * - `ask` resolves within `timeoutMs` (plus scheduling) and never rejects.
 * - `answer` only for a 200 whose node and nonce are the ones asked and whose
 *   MAC verifies with the cluster token (or, without a token, that came over
 *   mutual TLS); anything else is `no answer` with a sentence saying why.
 */
export interface TargetPeers {
  ask(target: { readonly node: string; readonly api: string }, from: { readonly node: string; readonly term: number }, timeoutMs: number): Promise<TargetAnswer>;
}

/** Where a failsafe promise (S6) and the replay marks (S7) outlive the agent (src/platform/promise-ledger.ts): written before an answer leaves. */
export interface PromiseLedger {
  /** The last run's promise: its end on the host's monotonic clock (null: another boot) and its length; null: none. */
  load(): {
    readonly record: { readonly untilSystemMs: number | null; readonly forMs: number; readonly answered: readonly AnsweredRequest[] } | null;
    readonly problem?: string;
  };
  /** Durable once it resolves; rejects when it cannot write. forMs 0: no promise runs, only the marks (S7). */
  save(record: { readonly untilSystemMs: number; readonly forMs: number; readonly answered: readonly AnsweredRequest[] }): Promise<void>;
}
