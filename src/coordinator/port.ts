// The Coordinator is the only way understudy talks to its DCS (etcd). It is a
// narrow contract so decide() can be tested against test/fakes/coordinator.ts.
//
// Backend contract:
// - campaign() MUST be a single compare-and-set (create the leader key only if
//   absent, attached to the caller's lease). Never retried blindly: on a
//   timeout the caller re-reads the leader key before trying again.
// - resign() MUST compare the leader key's create_revision with the caller's
//   term, so a node can never delete a successor's key.
// - keepAlive() reports the TTL etcd granted on renewal; ttlMs 0 means the
//   lease is gone. A keepalive that times out MUST NOT later be reported as
//   acknowledged (the caller's deadline is computed from its send time).
// - every call gives up after the configured request timeout and throws
//   US_E_ETCD_UNREACHABLE; the HA loop retries on its own schedule.

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
  readonly priority: number;
  readonly nofailover: boolean;
  /** Sync generation this node holds in full (0: none, or no file sync configured). */
  readonly generation: number;
  /** File sync health, when sync is configured. */
  readonly sync?: MemberSyncSummary;
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
}

/** control/ban/<node>: the node may not become primary until the key's lease expires. */
export interface BanRecord {
  readonly node: string;
  readonly until: string;
  readonly requestedBy: string;
  readonly reason: string;
}

export type HistoryKind = "failover" | "switchover" | "failback" | "handover" | "fence" | "veto" | "pause" | "resume" | "ban" | "unban" | "request" | "stale_promotion" | "rescue"
  /** Flap damping (src/ha/flap.ts): the cluster stopped moving for health; cleared by an operator. */
  | "flap_damped" | "flap_clear";

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
}

export type LeaderWatchEvent =
  | { readonly type: "changed" }
  /** The watch was cancelled or reconnected: events may have been missed, re-list. */
  | { readonly type: "resync" };

export interface Subscription {
  close(): Promise<void>;
}

export interface Coordinator {
  grantLease(ttlMs: number): Promise<LeaseGrant>;
  keepAlive(leaseId: string): Promise<{ readonly ttlMs: number }>;
  revokeLease(leaseId: string): Promise<void>;
  snapshot(): Promise<ClusterSnapshot>;
  campaign(node: string, leaseId: string, acquiredAt: string): Promise<CampaignResult>;
  resign(term: number): Promise<boolean>;
  putMember(member: MemberRecord, leaseId: string): Promise<void>;
  setPaused(paused: boolean): Promise<void>;
  /** Put control/switchover unless one is pending; false when one already is. */
  requestSwitchover(request: SwitchoverRequest): Promise<boolean>;
  /** Delete control/switchover, but only while `term` is the leader's (the new primary confirms it took over). */
  clearSwitchover(term: number): Promise<boolean>;
  /** Cancel a pending switchover (operator). */
  cancelSwitchover(): Promise<void>;
  /** In one txn guarded by `term`: delete the leader key and write control/released. */
  release(term: number, record: ReleaseRecord): Promise<boolean>;
  /** Ban a node from candidacy for ttlMs (the key lives on its own lease). */
  ban(record: BanRecord, ttlMs: number): Promise<void>;
  unban(node: string): Promise<void>;
  /** Publish a sync generation, only while `term` is the leader's; false when it is not. */
  publishGeneration(term: number, generation: SyncGeneration): Promise<boolean>;
  /** Append an event; when `term` is given only while it is still the leader's. */
  appendHistory(event: HistoryEvent, term: number | null): Promise<void>;
  /** The newest `limit` events, oldest first. */
  history(limit: number): Promise<HistoryEvent[]>;
  watchLeader(onEvent: (e: LeaderWatchEvent) => void): Promise<Subscription>;
  close(): Promise<void>;
}
