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
//   key's create_revision with `term`; it resolves false, without writing,
//   when `term` no longer leads. A deposed primary can never overwrite what
//   its successor wrote.
// - Everything read back is validated as untrusted input: a record that does
//   not decode is left out and reported (onInvalidRecord), never guessed at.

export interface LeaderRecord {
  readonly node: string;
  /** The leader key's create_revision: the fencing token for this reign. */
  readonly term: number;
  /** Hex id of the lease the key is attached to. */
  readonly lease: string;
  readonly acquiredAt: string;
}

export type MemberRole = "primary" | "standby" | "fenced" | "starting" | "stopping";

export interface MemberRecord {
  readonly node: string;
  readonly role: MemberRole;
  /** May campaign: agent healthy and (in warm mode) daemon healthy; false during a post-handover cool-down. */
  readonly healthy: boolean;
  /** Why this node could not serve if promoted (failing readiness check, watchdog required but not usable); absent when ready. */
  readonly notReady?: string;
  /**
   * Failsafe (docs/failsafe-design.md S4, S6): why this standby may not campaign yet (a promise to
   * the primary, or the start-up hold), for at most ttl + fence_margin; absent when free. A
   * switchover to it waits for this to go rather than hand over to a node that cannot take it.
   */
  readonly campaignHold?: string;
  readonly priority: number;
  readonly nofailover: boolean;
  /** Sync generation this node holds in full (0: none, or no file sync configured). */
  readonly generation: number;
  /** File sync health, when sync is configured. */
  readonly sync?: MemberSyncSummary;
  /** Data replication (src/data/, docs/data.md); absent when the node has no data roots, and from older agents. */
  readonly data?: MemberDataSummary;
  readonly address: string;
  readonly version: string;
  readonly decision: string;
  readonly probes: Readonly<Record<string, boolean>>;
  readonly vipHeld: boolean;
  /** Acting primary without its floating IP: since when (ISO); absent when held (or not primary). */
  readonly vipMissingSince?: string;
  /** MAC of another host that answers ARP for the floating IP, as this node's duplicate check saw it. */
  readonly vipHolder?: string;
  /** Why the floating IP is not held (the last add/check error). */
  readonly vipProblem?: string;
  readonly daemonRunning: boolean;
  /** Base URL of this node's REST API, when it serves one. */
  readonly api?: string;
  readonly updatedAt: string;
}

export interface MemberSyncSummary {
  /** Since when this node has lagged the published generation (ISO); null when in sync. */
  readonly behindSince: string | null;
  readonly lastSuccessAt: string | null;
  /** "CODE: message" of the last failure, null after a success. */
  readonly lastError: string | null;
  readonly failures: number;
  /** Rescue folders created since the agent started. */
  readonly rescues: number;
  /** Why the node is not pulling right now, if it is waiting. */
  readonly waiting: string | null;
  /** Sync roots whose last attempt failed (the others went on); absent from older agents. */
  readonly failedRoots?: readonly string[];
  /** The reason sentence of the latest sync step (src/sync/plan.ts); absent from older agents. */
  readonly step?: string;
}

/** One standby's replication lag as the primary's shipper saw it (data/progress). */
export interface DataLagRecord {
  /** Highest journal sequence the standby acknowledged in the primary's journal of `term`; 0: none yet. */
  readonly acked: number;
  /** Changes (files, deletions, directories) the standby has not acknowledged. */
  readonly files: number;
  readonly bytes: number;
  /** Age of the oldest unacknowledged change, in seconds; 0 when in sync. */
  readonly seconds: number;
  /** It needs a full pass: its true lag is unknown until the pass lists the tree. */
  readonly full: boolean;
  /** Shipping to it is paused (its data volume is full); the reason sentence. */
  readonly paused: string | null;
}

/**
 * data/progress: written by the primary under its term, at most every data.progress_interval.
 * Not leased: ranking and the data-lag gate read it after the primary died.
 */
export interface DataProgress {
  readonly node: string;
  readonly term: number;
  /** The journal's last sequence number. */
  readonly head: number;
  readonly at: string;
  readonly standbys: Readonly<Record<string, DataLagRecord>>;
}

/** What a node says about its data replication in its member key. */
export interface MemberDataSummary {
  /** The term whose write modules this node serves (it accepts that leader's files); null: none (primary, or following no one, or rejoin pending). */
  readonly receiving: number | null;
  /** A former primary whose files the new primary must merge before it becomes a replica. */
  readonly rejoin: "pending" | null;
  /** Free bytes on its data volume (the smallest over its data roots); null when unknown. */
  readonly freeBytes: number | null;
  /** Its own lag, copied from data/progress (standby), or null. */
  readonly lag: DataLagRecord | null;
  /** The reason sentence of the latest data step (src/data/ship-plan.ts, or the standby's). */
  readonly step?: string;
}

/**
 * data/rejoin/<node>: written by a primary, under its term, about a former primary
 * whose files it pulled and merged into its own tree (src/data/rejoin-exec.ts).
 * The former primary clears its local marker (and may receive again) only on a
 * record with a term later than the one it took uploads in, and done: true.
 */
export interface DataRejoinRecord {
  /** The former primary. */
  readonly node: string;
  /** The primary that merged its files, and its term. */
  readonly by: string;
  readonly term: number;
  readonly done: boolean;
  /** Files moved into place (restored ones included) and kept beside a different file. */
  readonly moved: number;
  readonly conflicts: number;
  readonly at: string;
}

/** An operator's request to move the primary (control/switchover). */
export interface SwitchoverRequest {
  /** switchover: planned, to a healthy standby; failback: to the preferred node; failover: forced. */
  readonly kind: "switchover" | "failback" | "failover";
  /** The primary when the request was made: it carries the request out. Null when there was none. */
  readonly from: string | null;
  /** Target node; null = the best candidate. */
  readonly to: string | null;
  /** ISO time for a scheduled switchover; null = now. */
  readonly at: string | null;
  /** Failover only: allow a target that is unhealthy or not ready. */
  readonly force: boolean;
  readonly requestedBy: string;
  readonly reason: string;
  readonly requestedAt: string;
  /** Drained switchover: refuse new sessions and wait up to this long for running ones before moving; absent: move at once. */
  readonly drainMs?: number;
}

/**
 * Written by a primary in the same transaction that deletes its leader key
 * after it dropped the VIP and stopped the daemon: the successor knows the
 * address is free and may skip the duplicate-address check.
 */
export interface ReleaseRecord {
  readonly node: string;
  readonly term: number;
  readonly at: string;
  /** veto: the pre_promote hook refused; nothing was started, the address is free. */
  readonly why: "switchover" | "shutdown" | "handover" | "veto";
  /** The releaser's reason (its decision), shown in the successor's history event. */
  readonly reason?: string;
  /**
   * Set when the releaser did not hold the floating IP (another host answered for it, or the
   * add kept failing): the address is not known to be free, so the successor checks it.
   */
  readonly vipNotFree?: string;
  /** A drained switchover: sessions that ended during the drain, those cut by the move, and how long it waited. */
  readonly drain?: DrainSummary;
}

/** How a drain before a switchover ended (src/ha/drain-plan.ts). */
export interface DrainSummary {
  /** Sessions established when new ones were refused that ended before the move. */
  readonly drained: number;
  /** Sessions still established at the move (cut by it); absent when they could not be counted. */
  readonly cut?: number;
  readonly waitedMs: number;
}

/** control/ban/<node>: the node may not become primary until the key's lease expires. */
export interface BanRecord {
  readonly node: string;
  readonly until: string;
  readonly requestedBy: string;
  readonly reason: string;
}

export type HistoryKind =
  | "failover"
  | "switchover"
  | "failback"
  | "handover"
  | "fence"
  | "veto"
  | "pause"
  | "resume"
  | "ban"
  | "unban"
  | "request"
  | "stale_promotion"
  | "rescue"
  /** Flap damping (src/ha/flap.ts): the cluster stopped moving for health; cleared by an operator. */
  | "flap_damped"
  | "flap_clear"
  /** A former primary's data files merged into the new primary's tree (src/data/, docs/data.md). */
  | "data_rejoin"
  /** Promoted although every candidate's data lag exceeded data.maximum_data_lag_on_failover. */
  | "data_lag_promotion";

/** history/<key>: one event in the cluster's life, newest last. */
export interface HistoryEvent {
  readonly kind: HistoryKind;
  readonly at: string;
  readonly node: string;
  readonly from: string | null;
  readonly to: string | null;
  readonly term: number | null;
  readonly reason: string;
  readonly requestedBy?: string;
  /** Measured durations in milliseconds (e.g. gap_ms, promote_ms). */
  readonly durations?: Readonly<Record<string, number>>;
  /** Counts the event is about (data_rejoin: moved, restored, conflicts, bytes). */
  readonly counts?: Readonly<Record<string, number>>;
}

/** sync/generation: what the primary last published of its sync roots. */
export interface SyncGeneration {
  readonly generation: number;
  /** Digest over every root's manifest digest. */
  readonly digest: string;
  /** Manifest digest per sync root name. */
  readonly roots: Readonly<Record<string, string>>;
  readonly files: number;
  readonly source: string;
  readonly term: number;
  readonly publishedAt: string;
  /**
   * Set by a primary promoted while it lagged (a recorded stale promotion): the
   * generation it did not have. Its source, on rejoining, rescues what it holds
   * that differs from the incoming files, since no standby pulled them.
   */
  readonly displaced?: { readonly source: string; readonly generation: number };
}

/** Everything under /<prefix>/<cluster>/ that one HA cycle needs, read at one revision. */
export interface ClusterSnapshot {
  readonly revision: number;
  readonly leader: LeaderRecord | null;
  readonly members: readonly MemberRecord[];
  readonly paused: boolean;
  readonly switchover: SwitchoverRequest | null;
  readonly released: ReleaseRecord | null;
  readonly bans: readonly BanRecord[];
  /** The newest published sync generation; null before the first publication. */
  readonly sync: SyncGeneration | null;
  /** data/progress: the last primary's per-standby data lag; null/absent when never written (or invalid). */
  readonly dataProgress?: DataProgress | null;
  /** failsafe/members (docs/failsafe-design.md, E1): absent when never written (or invalid). */
  readonly failsafeMembers?: FailsafeMembers | null;
  /** failsafe/members is present but does not decode: E2 cannot be checked, so nobody campaigns (decide.ts). */
  readonly failsafeMembersInvalid?: boolean;
}

/** failsafe/members: every node a failsafe primary of `term` asks; only listed nodes may campaign (E2). */
export interface FailsafeMembers {
  readonly term: number;
  readonly nodes: readonly string[];
}

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
   * compare-and-set, never an overwrite. won: the key's create_revision is the
   * new term. Lost: `leader` is the incumbent as read in the same transaction.
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
  /** Delete control/switchover, but only while `term` is the leader's (the new primary confirms it took over). */
  clearSwitchover(term: number): Promise<boolean>;
  /** Cancel a pending switchover (operator). Resolves also when none is pending. */
  cancelSwitchover(): Promise<void>;
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
