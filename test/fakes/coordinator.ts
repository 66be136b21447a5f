import { UnderstudyError } from "../../src/errors/catalogue.js";
import type {
  FailsafeMembers,
  BanRecord,
  DataRejoinRecord,
  HistoryEvent,
  ReleaseRecord,
  SwitchoverRequest,
  SyncGeneration,
  DataProgress,
  CampaignResult,
  ClusterSnapshot,
  Coordinator,
  LeaderRecord,
  LeaderWatchEvent,
  LeaseGrant,
  MemberRecord,
  Subscription,
} from "../../src/coordinator/port.js";
import type { Clock } from "../../src/platform/clock.js";

interface FakeLease {
  id: string;
  ttlMs: number;
  expiresAt: number;
}

/**
 * An in-memory etcd with the Coordinator's semantics: leases expire by the
 * (fake) clock and delete their keys, campaign is compare-and-set, resign
 * compares the term. `unreachable = true` makes every call fail like a partition.
 */
export class FakeCoordinator implements Coordinator {
  unreachable = false;
  /** etcd's minimum TTL: grants are raised to it, as real etcd does. */
  minTtlMs = 1000;
  revision = 1;
  leader: LeaderRecord | null = null;
  readonly members = new Map<string, { member: MemberRecord; lease: string }>();
  paused = false;
  switchover: SwitchoverRequest | null = null;
  /** The mod revision requestSwitchover gave control/switchover (0: set directly by a test, or absent). */
  switchoverRevision = 0;
  released: ReleaseRecord | null = null;
  sync: SyncGeneration | null = null;
  /** data/progress (not on a lease: it outlives the primary that wrote it). */
  dataProgress: DataProgress | null = null;
  /** failsafe/members (not on a lease, like data/progress). */
  failsafeMembers: FailsafeMembers | null = null;
  /** The mod revision of failsafe/members (0: absent), as etcd's compare sees it. */
  failsafeMembersRevision = 0;
  /** The mod revision of sync/generation when publishGeneration wrote it (0: absent, or set directly). */
  syncRevision = 0;
  /** Runs once inside the next campaign, before its compares: a write the campaigner's view has not seen. */
  beforeCampaign: (() => void) | null = null;
  /** The next won campaign commits, then its reply is lost (the caller gets an error, as on a cut connection). */
  loseCampaignReply = false;
  readonly bans = new Map<string, { record: BanRecord; lease: string }>();
  readonly historyEvents: HistoryEvent[] = [];
  /** data/rejoin/<node> records. */
  readonly dataRejoins = new Map<string, DataRejoinRecord>();
  readonly leases = new Map<string, FakeLease>();
  readonly calls: string[] = [];
  private nextLease = 0x100;
  private watchers = new Set<(e: LeaderWatchEvent) => void>();

  constructor(private readonly clock: Clock) {}

  /**
   * A quorum loss: every call fails like `unreachable`, and no lease expires (no raft leader to
   * expire it). Ending it with quorumBack() extends every lease by its TTL, as etcd's new leader does.
   */
  quorumLost = false;

  quorumBack(): void {
    const now = this.clock.monotonicMs();
    for (const l of this.leases.values()) l.expiresAt = now + l.ttlMs;
    this.quorumLost = false;
  }

  private gate(what: string): void {
    this.calls.push(what);
    if (this.quorumLost) throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: `${what}: etcd has no quorum` });
    this.expire();
    if (this.unreachable) throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: `${what}: partitioned` });
  }

  /** Expire leases whose time has come, deleting their keys (as etcd does). */
  expire(): void {
    const now = this.clock.monotonicMs();
    for (const l of [...this.leases.values()]) if (l.expiresAt <= now) this.dropLease(l.id);
  }

  private dropLease(id: string): void {
    this.leases.delete(id);
    let changed = false;
    if (this.leader?.lease === id) {
      this.leader = null;
      this.revision++;
      changed = true;
    }
    for (const [node, m] of this.members) if (m.lease === id) (this.members.delete(node), (changed = true));
    for (const [node, b] of this.bans) if (b.lease === id) (this.bans.delete(node), (changed = true));
    if (changed) this.notify();
  }

  private notify(): void {
    for (const w of this.watchers) w({ type: "changed" });
  }

  async grantLease(ttlMs: number): Promise<LeaseGrant> {
    this.gate("grantLease");
    const granted = Math.max(this.minTtlMs, Math.ceil(ttlMs / 1000) * 1000);
    const id = (this.nextLease++).toString(16);
    this.leases.set(id, { id, ttlMs: granted, expiresAt: this.clock.monotonicMs() + granted });
    return { id, ttlMs: granted };
  }

  async keepAlive(leaseId: string): Promise<{ ttlMs: number }> {
    this.gate("keepAlive");
    const l = this.leases.get(leaseId);
    if (!l) return { ttlMs: 0 };
    l.expiresAt = this.clock.monotonicMs() + l.ttlMs;
    return { ttlMs: l.ttlMs };
  }

  async revokeLease(leaseId: string): Promise<void> {
    this.gate("revokeLease");
    this.dropLease(leaseId);
  }

  /** Per snapshot() call: whether the caller accepted the watched view (`cached`). */
  readonly snapshotCached: boolean[] = [];

  async snapshot(options: { cached?: boolean } = {}): Promise<ClusterSnapshot> {
    this.gate("snapshot");
    this.snapshotCached.push(options.cached === true);
    return {
      revision: this.revision,
      leader: this.leader,
      members: [...this.members.values()].map((m) => m.member),
      paused: this.paused,
      switchover: this.switchover,
      released: this.released,
      bans: [...this.bans.values()].map((b) => b.record),
      sync: this.sync,
      ...(this.dataProgress ? { dataProgress: this.dataProgress } : {}),
      ...(this.failsafeMembers ? { failsafeMembers: this.failsafeMembers } : {}),
    };
  }

  async campaign(node: string, leaseId: string, acquiredAt: string, readRevision?: number): Promise<CampaignResult> {
    this.gate("campaign");
    if (!this.leases.has(leaseId)) throw new Error(`campaign with unknown lease ${leaseId}`);
    const racing = this.beforeCampaign;
    this.beforeCampaign = null;
    racing?.();
    if (this.leader) return { won: false, leader: this.leader };
    // E2: failsafe/members written after the snapshot the campaign decided on.
    if (readRevision !== undefined && this.failsafeMembersRevision > readRevision) return { won: false, leader: null, vacant: true };
    // The published generation written after that snapshot (the stale-promotion mark reads it).
    if (readRevision !== undefined && this.syncRevision > readRevision) return { won: false, leader: null, vacant: true };
    this.revision++;
    this.leader = { node, lease: leaseId, term: this.revision, acquiredAt };
    this.notify();
    if (this.loseCampaignReply) {
      this.loseCampaignReply = false;
      throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: "campaign txn: the reply was lost after the commit" });
    }
    return { won: true, leader: this.leader };
  }

  async resign(term: number): Promise<boolean> {
    this.gate("resign");
    if (this.leader?.term !== term) return false;
    this.leader = null;
    this.revision++;
    this.notify();
    return true;
  }

  async putMember(member: MemberRecord, leaseId: string): Promise<void> {
    this.gate("putMember");
    if (!this.leases.has(leaseId)) throw new Error(`putMember with unknown lease ${leaseId}`);
    this.members.set(member.node, { member, lease: leaseId });
    this.revision++;
  }

  async setPaused(paused: boolean): Promise<void> {
    this.gate("setPaused");
    this.paused = paused;
    this.notify();
  }

  async requestSwitchover(request: SwitchoverRequest): Promise<boolean> {
    this.gate("requestSwitchover");
    if (this.switchover) return false;
    this.switchover = request;
    this.revision++;
    this.switchoverRevision = this.revision;
    this.notify();
    return true;
  }

  async clearSwitchover(term: number, readRevision?: number): Promise<boolean> {
    this.gate("clearSwitchover");
    if (this.leader?.term !== term) return false;
    if (readRevision !== undefined && this.switchoverRevision > readRevision) return false;
    if (this.switchover) this.revision++;
    this.switchover = null;
    this.switchoverRevision = 0;
    this.notify();
    return true;
  }

  async cancelSwitchover(readRevision?: number): Promise<void> {
    this.gate("cancelSwitchover");
    if (readRevision !== undefined && this.switchover && this.switchoverRevision > readRevision) return;
    if (this.switchover) this.revision++;
    this.switchover = null;
    this.switchoverRevision = 0;
    this.notify();
  }

  async release(term: number, record: ReleaseRecord): Promise<boolean> {
    this.gate("release");
    if (this.leader?.term !== term) return false;
    this.leader = null;
    this.released = record;
    this.revision++;
    this.notify();
    return true;
  }

  async handOver(term: number, to: { readonly node: string; readonly lease: string }, record: ReleaseRecord, readRevision: number): Promise<number | null> {
    this.gate("handOver");
    if (this.leader?.term !== term) return null;
    // The target's member key on that lease (a live lease), and nothing the campaign would also compare written since.
    if (this.members.get(to.node)?.lease !== to.lease || !this.leases.has(to.lease)) return null;
    if (this.failsafeMembersRevision > readRevision || this.syncRevision > readRevision) return null;
    this.revision++;
    this.leader = { node: to.node, lease: to.lease, term: this.revision, acquiredAt: record.at };
    this.released = record;
    this.notify();
    return this.revision;
  }

  async ban(record: BanRecord, ttlMs: number): Promise<void> {
    this.gate("ban");
    const g = await this.grantLease(ttlMs);
    this.bans.set(record.node, { record, lease: g.id });
    this.notify();
  }

  async unban(node: string): Promise<void> {
    this.gate("unban");
    this.bans.delete(node);
    this.notify();
  }

  async publishGeneration(term: number, generation: SyncGeneration): Promise<boolean> {
    this.gate("publishGeneration");
    if (this.leader?.term !== term) return false;
    this.sync = generation;
    this.revision++;
    this.syncRevision = this.revision;
    this.notify();
    return true;
  }

  async putDataRejoin(term: number, record: DataRejoinRecord): Promise<boolean> {
    this.gate("putDataRejoin");
    if (this.leader?.term !== term) return false;
    this.dataRejoins.set(record.node, record);
    this.revision++;
    this.notify();
    return true;
  }

  async publishFailsafeMembers(term: number, record: FailsafeMembers | null): Promise<boolean> {
    this.gate("publishFailsafeMembers");
    if (this.leader?.term !== term) return false;
    this.failsafeMembers = record;
    this.revision++;
    this.failsafeMembersRevision = record ? this.revision : 0;
    this.notify();
    return true;
  }

  async widenFailsafeMembers(record: FailsafeMembers, readRevision: number): Promise<boolean> {
    this.gate("widenFailsafeMembers");
    if (this.leader || this.failsafeMembersRevision > readRevision) return false;
    this.failsafeMembers = record;
    this.revision++;
    this.failsafeMembersRevision = this.revision;
    this.notify();
    return true;
  }

  async publishDataProgress(term: number, progress: DataProgress): Promise<boolean> {
    this.gate("publishDataProgress");
    if (this.leader?.term !== term) return false;
    this.dataProgress = progress;
    this.revision++;
    this.notify();
    return true;
  }

  async dataRejoin(node: string): Promise<DataRejoinRecord | null> {
    this.gate("dataRejoin");
    return this.dataRejoins.get(node) ?? null;
  }

  async appendHistory(event: HistoryEvent, term: number | null): Promise<boolean> {
    this.gate("appendHistory");
    if (term !== null && this.leader?.term !== term) return false;
    this.historyEvents.push(event);
    return true;
  }

  async history(limit: number): Promise<HistoryEvent[]> {
    this.gate("history");
    return this.historyEvents.slice(-limit);
  }

  async watchLeader(onEvent: (e: LeaderWatchEvent) => void): Promise<Subscription> {
    this.gate("watchLeader");
    this.watchers.add(onEvent);
    return { close: async () => void this.watchers.delete(onEvent) };
  }

  async close(): Promise<void> {
    this.watchers.clear();
  }
}
