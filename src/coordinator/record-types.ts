// The records understudy keeps in etcd under /<prefix>/<cluster>/, as the
// Coordinator (port.ts) returns them after validation (records.ts decodes
// them; docs/architecture.md lists the keys).

export interface LeaderRecord {
  readonly node: string;
  /** The leader key's mod_revision: the fencing token for this reign (a campaign creates the key, a handover puts it). */
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
  /** Its API answers POST /handover/ready (src/ha/target-check.ts): a planned move asks it first. Absent from older agents. */
  readonly answersReady?: true;
  /**
   * The lease this key hangs on. Stating it is how an agent says it takes a leader key handed to it
   * on that lease in one transaction (a planned move; the term is the key's mod revision): a
   * primary hands over that way only when every member states one. Absent from older agents.
   */
  readonly lease?: string;
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
  /**
   * `to` is the API's pick of the best candidate when the request was made (the requester named
   * none): the primary may pass over it for another candidate that answers it is ready
   * (src/ha/switchover.ts). Absent: named by the requester (or an older API), never swapped.
   */
  readonly chosen?: boolean;
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
  /** A planned move's outcome: the request's requestedAt, so `switchover` (CLI) finds its own request's event. */
  readonly requestedAt?: string;
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
