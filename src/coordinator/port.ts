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
  readonly priority: number;
  readonly nofailover: boolean;
  /** Sync generation this node holds (0 until file sync exists). */
  readonly generation: number;
  readonly address: string;
  readonly version: string;
  readonly decision: string;
  readonly probes: Readonly<Record<string, boolean>>;
  readonly vipHeld: boolean;
  readonly daemonRunning: boolean;
  readonly updatedAt: string;
}

/** Everything under /<prefix>/<cluster>/ that one HA cycle needs, read at one revision. */
export interface ClusterSnapshot {
  readonly revision: number;
  readonly leader: LeaderRecord | null;
  readonly members: readonly MemberRecord[];
  readonly paused: boolean;
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
  watchLeader(onEvent: (e: LeaderWatchEvent) => void): Promise<Subscription>;
  close(): Promise<void>;
}
