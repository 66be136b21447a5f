// The Coordinator is the only way understudy talks to its DCS (etcd). It is
// split by consumer below (lease, leader key, members, control requests,
// history, sync generations), each part with its contract written on it, the
// way Patroni's AbstractDCS writes its own; the etcd adapter (etcd.ts) gives
// all of them, and tests use the strict fake in test/fakes/coordinator.ts.
//
// Rules for every method, unless its own comment says otherwise:
// - It gives up after the configured request timeout and rejects with
//   US_E_ETCD_UNREACHABLE (or US_E_ETCD_TLS / US_E_ETCD_AUTH when etcd refused
//   the connection or the credentials). It never retries by itself: the HA
//   loop retries on its own schedule, after reading the cluster again.
// - A write that timed out may still have been applied: callers re-read
//   before acting on the assumption that it was not.
// - A write guarded by `term` is one etcd transaction comparing the leader
//   key's mod_revision with `term`; it resolves false, without writing,
//   when `term` no longer leads. A deposed primary can never overwrite what
//   its successor wrote.
// - Everything read back is validated as untrusted input: a record that does
//   not decode is left out and reported (onInvalidRecord), never guessed at.

export type * from "./record-types.js";
import type {
  BanRecord,
  ClusterSnapshot,
  DataProgress,
  DataRejoinRecord,
  FailsafeMembers,
  HistoryEvent,
  LeaderRecord,
  MemberRecord,
  ReleaseRecord,
  SwitchoverRequest,
  SyncGeneration,
} from "./record-types.js";

export interface LeaseGrant {
  readonly id: string;
  /** The TTL etcd granted, which can exceed the one requested. */
  readonly ttlMs: number;
}

export interface CampaignResult {
  readonly won: boolean;
  /** The leader after the attempt: ourselves when won, the incumbent otherwise. */
  readonly leader: LeaderRecord | null;
  /**
   * Lost with the leader key absent: a compare on the view's revision failed (failsafe/members or
   * sync/generation written after it). False or absent when a key was there (even one that does not decode).
   */
  readonly vacant?: boolean;
}

export type LeaderWatchEvent =
  | { readonly type: "changed" }
  /** The watch was cancelled or reconnected: events may have been missed, re-list. */
  | { readonly type: "resync" };

export interface Subscription {
  close(): Promise<void>;
}

/** The session lease that every leader and member key of this node hangs on (used by ha/lease.ts). */
export interface LeaseStore {
  /** A new lease. Resolves with the TTL etcd granted, which may exceed `ttlMs` (etcd's minimum TTL): always use the granted one. */
  grantLease(ttlMs: number): Promise<LeaseGrant>;
  /**
   * Renew the lease once. `ttlMs` 0: the lease is gone (expired or revoked).
   * Renewals run one at a time; one that times out rejects and its late
   * answer is never credited to a later call (the caller's lease deadline is
   * computed from the send time of the last acknowledged renewal).
   */
  keepAlive(leaseId: string): Promise<{ readonly ttlMs: number }>;
  /** Revoke now: every key on the lease (leader, member) goes at once, so a standby need not wait out the TTL. */
  revokeLease(leaseId: string): Promise<void>;
}

/** The leader key: who is primary, and the term that fences every write a primary makes. */
export interface LeaderElection {
  /**
   * Create the leader key for `node` on `leaseId`, only if it is absent: one
   * compare-and-set, never an overwrite. won: the key's revision is the new
   * term (the term is the key's mod_revision: a handover's put starts one
   * too). Lost: `leader` is the incumbent as read in the same transaction.
   * Never retried blindly: after a timeout the caller reads the leader key again.
   * `readRevision`: the snapshot the decision read; the txn also requires that
   * neither failsafe/members (E2: a list rewritten meanwhile may no longer name
   * `node`) nor sync/generation (the promotion gate and its stale-promotion mark
   * read it) was written after it, and counts as lost (leader null) when one was.
   */
  campaign(node: string, leaseId: string, acquiredAt: string, readRevision?: number): Promise<CampaignResult>;
  /** Delete the leader key only while `term` leads; false when it no longer does (never deletes a successor's key). */
  resign(term: number): Promise<boolean>;
  /**
   * In one transaction guarded by `term`: delete the leader key and write
   * control/released. Call only after the VIP is dropped and the daemon stopped:
   * the successor reads the record as "the address is free".
   */
  release(term: number, record: ReleaseRecord): Promise<boolean>;
  /**
   * A planned move in one transaction guarded by `term`: put the leader key naming `to.node` on
   * `to.lease` (its new mod_revision is the successor's term) and write control/released. Call only
   * after the VIP is dropped and the daemon stopped, as for release. The txn also requires that
   * `to`'s member key hangs on that lease (the lease lives) and that neither failsafe/members nor
   * sync/generation was written after `readRevision`. Resolves the new term, or null when any of
   * that failed (nothing written: the caller releases instead).
   */
  handOver(term: number, to: { readonly node: string; readonly lease: string }, record: ReleaseRecord, readRevision: number): Promise<number | null>;
  /**
   * Calls `onEvent` on every change under the cluster prefix ("changed"), and
   * "resync" whenever events may have been missed (reconnect, error): the
   * subscriber then reads the whole snapshot again. Rejects if the watch
   * cannot be established within the request timeout (nothing is left
   * running then). Events are hints: they carry no data, read `snapshot`.
   */
  watchLeader(onEvent: (e: LeaderWatchEvent) => void): Promise<Subscription>;
}

/** What one HA cycle, the API and the CLI read. */
export interface ClusterReader {
  /**
   * Everything under the cluster prefix but history, read at one revision (one read-only transaction).
   * `cached`: the watch-maintained view of the same keys when it is exact (snapshot-cache.ts), else a read.
   */
  snapshot(options?: { cached?: boolean }): Promise<ClusterSnapshot>;
  /** The newest `limit` history events, oldest first. */
  history(limit: number): Promise<HistoryEvent[]>;
}

/** members/<node>: what each agent says about itself. */
export interface MemberRegistry {
  /** Put this node's member key on its session lease (so it vanishes with the agent). Last write wins; no guard. */
  putMember(member: MemberRecord, leaseId: string): Promise<void>;
}

/** control/: what operators ask of the cluster (API, CLI) and what the primary confirms. */
export interface ControlRequests {
  setPaused(paused: boolean): Promise<void>;
  /** Put control/switchover unless one is pending (compare-and-set on its absence); false when one already is. */
  requestSwitchover(request: SwitchoverRequest): Promise<boolean>;
  /**
   * Delete control/switchover, but only while `term` is the leader's (the new primary confirms it took
   * over) and, with `readRevision`, only if the request was not written after that revision (a newer
   * request, put after the view the move was decided on, stays).
   */
  clearSwitchover(term: number, readRevision?: number): Promise<boolean>;
  /**
   * Cancel a pending switchover. Without `readRevision` (the operator's DELETE) whatever is pending;
   * with it (an agent's decision) only a request written up to that revision. Resolves also when none is pending.
   */
  cancelSwitchover(readRevision?: number): Promise<void>;
  /** Ban a node from candidacy for ttlMs: the key lives on its own lease, so the ban ends even if no one lifts it. */
  ban(record: BanRecord, ttlMs: number): Promise<void>;
  unban(node: string): Promise<void>;
}

/** history/: the cluster's log of failovers, switchovers, fences and operator actions. */
export interface HistoryLog {
  /**
   * Append an event; when `term` is given, only while it is still the
   * leader's (resolves false when it is not: nothing was written). Old events
   * beyond the kept count are trimmed, best effort: a failed trim never fails
   * the append.
   */
  appendHistory(event: HistoryEvent, term: number | null): Promise<boolean>;
}

/** sync/generation: the primary's published file generation (used by sync/engine.ts). */
export interface GenerationPublisher {
  /** Publish only while `term` is the leader's; false, and nothing written, when it is not. */
  publishGeneration(term: number, generation: SyncGeneration): Promise<boolean>;
}

/** data/rejoin/<node>: the loss-free rejoin's hand-over record (src/data/rejoin-exec.ts, rejoin-marker.ts). */
export interface DataRejoinRecords {
  /** Put data/rejoin/<record.node> only while `term` is the leader's; false, and nothing written, when it is not. */
  putDataRejoin(term: number, record: DataRejoinRecord): Promise<boolean>;
  /** data/rejoin/<node>; null when absent (or refused by validation: reported, treated as absent). */
  dataRejoin(node: string): Promise<DataRejoinRecord | null>;
}

/** data/progress: the primary's per-standby data lag (used by src/data/progress.ts). */
export interface DataProgressPublisher {
  /**
   * Put data/progress only while `term` is the leader's (one txn, like publishGeneration); false,
   * and nothing written, when it is not. Not on a lease: ranking and the data-lag gate read the
   * record after the primary that wrote it died.
   */
  publishDataProgress(term: number, progress: DataProgress): Promise<boolean>;
}

/** failsafe/members (docs/failsafe-design.md, E1). */
export interface FailsafeMembership {
  /** Put failsafe/members (null: delete it) only while `term` is the leader's (one txn, like publishGeneration); false when it is not. */
  publishFailsafeMembers(term: number, record: FailsafeMembers | null): Promise<boolean>;
  /** E2': put failsafe/members only while the leader key is absent and the list unchanged since `readRevision`; false otherwise. */
  widenFailsafeMembers(record: FailsafeMembers, readRevision: number): Promise<boolean>;
}

/** The whole DCS contract, as the etcd adapter gives it. */
export interface Coordinator
  extends FailsafeMembership, LeaseStore, LeaderElection, ClusterReader, MemberRegistry, ControlRequests, HistoryLog, GenerationPublisher, DataRejoinRecords, DataProgressPublisher {
  /** Cancel every watch (each cancel bounded by the request timeout), then close the client; a watch asked for afterwards rejects. */
  close(): Promise<void>;
}

/**
 * Whether a node that holds generation `held` in full lags the published
 * generation. Generations are totally ordered: each publication is numbered
 * max(published, held by the publisher) + 1 under a term-guarded txn, so a
 * higher number is always a later publication. A node holding a number above
 * the record's (an etcd restored from a backup) is not behind: it holds newer
 * files than the record names. No published record: nothing to lag.
 * The one definition, beside the record it reads, used by the sync engine (lag, displacement) and by the
 * promotion gate (src/ha/decide.ts syncGate).
 */
export function isBehind(held: number, published: { readonly generation: number } | null | undefined): boolean {
  return published != null && held < published.generation;
}
