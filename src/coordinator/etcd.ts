import { type ComparatorBuilder, Etcd3, type IOperation, type IWatchResponse, type Watcher } from "etcd3";
import { clientOptions } from "./etcd-options.js";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { clusterKeys, prefixEnd, type ClusterKeys } from "./keys.js";
import { decodeDataRejoin, decodeHistoryChecked, decodeLeader, encodeLeader, historyKey, type InvalidRecord } from "./records.js";
import type {
  BanRecord,
  DataRejoinRecord,
  HistoryEvent,
  ReleaseRecord,
  SwitchoverRequest,
  SyncGeneration,
  DataProgress,
  FailsafeMembers,
  CampaignResult,
  ClusterSnapshot,
  Coordinator,
  LeaderWatchEvent,
  LeaseGrant,
  MemberRecord,
  Subscription,
} from "./port.js";
import { KeepAliveChannel } from "./keepalive.js";
import { decodeSnapshot } from "./snapshot-decode.js";
import { SnapshotCache, inSnapshot, rawKv, snapshotRanges } from "./snapshot-cache.js";
import { classifyEtcdFailure } from "./etcd-failure.js";
import type { EtcdSecurity } from "../config/etcd-security.js";

export interface EtcdCoordinatorOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly cluster: string;
  readonly requestTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** TLS material and etcd credentials (readEtcdSecurity); absent: plain http, no auth. */
  readonly security?: EtcdSecurity;
  /** Called for every record read from etcd that fails validation (it is then treated as absent). */
  readonly onInvalidRecord?: (record: InvalidRecord) => void;
}

/**
 * The only code that speaks etcd. The etcd3 library's own retries and circuit
 * breaker are switched off: a breaker that refuses calls for 5 s after a blip
 * would delay failover, and the HA loop already retries on its own schedule.
 */
export class EtcdCoordinator implements Coordinator {
  private readonly client: Etcd3;
  private readonly keys: ClusterKeys;
  private readonly keepalive: KeepAliveChannel;
  private readonly watchers = new Set<Watcher>();
  /** The snapshot's keys kept current by the watch (snapshot-cache.ts). */
  private readonly cache: SnapshotCache;
  private fromView = 0;
  private closed = false;

  constructor(private readonly opts: EtcdCoordinatorOptions) {
    this.client = new Etcd3(clientOptions(opts));
    this.keys = clusterKeys(opts.prefix, opts.cluster);
    this.keepalive = new KeepAliveChannel(this.client, opts.clock, opts.requestTimeoutMs);
    this.cache = new SnapshotCache(inSnapshot(this.keys));
  }

  private deadline() {
    return { deadline: new Date(this.opts.clock.wallMs() + this.opts.requestTimeoutMs) };
  }

  /** The one guard on every write a primary makes: the leader key's mod revision is `term`. */
  private leads(term: number) {
    return this.client.if(this.keys.leader, "Mod", "==", term);
  }

  /** One txn applying `ops` only while `term` leads; false (nothing written) when it no longer does. */
  private guarded(what: string, term: number, ...ops: IOperation[]): Promise<boolean> {
    return this.commitIf(what, this.leads(term), ...ops);
  }

  /** One txn applying `ops` only if `ifs` holds; false (nothing written) when it does not. */
  private async commitIf(what: string, ifs: ComparatorBuilder, ...ops: IOperation[]): Promise<boolean> {
    return (
      await this.call(what, () =>
        ifs
          .then(...ops)
          .options(this.deadline())
          .commit(),
      )
    ).succeeded;
  }

  /** Map any failure to US_E_ETCD_TLS, US_E_ETCD_AUTH or US_E_ETCD_UNREACHABLE unless it is already one of ours. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const res = await withTimeout(fn(), this.opts.requestTimeoutMs, this.opts.clock);
      // Read-your-writes for the watched view: it answers only once it has seen this revision.
      const revision = (res as { header?: { revision?: string } } | undefined)?.header?.revision;
      if (revision !== undefined) this.cache.wrote(Number(revision));
      return res;
    } catch (e) {
      // A write that timed out may still commit: the watched view waits for a read made after it.
      this.cache.outcomeUnknown();
      throw this.failure(what, e);
    }
  }

  private failure(what: string, e: unknown): UnderstudyError {
    // A timeout or a broken keepalive stream is a transport failure like the library's own: classified, not passed on.
    if (isUnderstudyError(e) && e.code !== "US_E_ETCD_TIMEOUT" && e.code !== "US_E_ETCD_KEEPALIVE") return e;
    const f = classifyEtcdFailure(e);
    return new UnderstudyError(f.code, { endpoints: this.opts.endpoints.join(","), cause: `${what}: ${f.cause}` }, { cause: e });
  }

  async grantLease(ttlMs: number): Promise<LeaseGrant> {
    const ttlSec = Math.max(1, Math.ceil(ttlMs / 1000)); // config guarantees whole seconds
    const res = await this.call("lease grant", () => this.client.leaseClient.leaseGrant({ TTL: ttlSec, ID: 0 }, this.deadline()));
    if (res.error) throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: this.opts.endpoints.join(","), cause: res.error });
    return { id: String(res.ID), ttlMs: Number(res.TTL) * 1000 };
  }

  async keepAlive(leaseId: string): Promise<{ ttlMs: number }> {
    try {
      return await this.keepalive.send(leaseId);
    } catch (e) {
      throw this.failure("keepalive", e);
    }
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.call("lease revoke", () => this.client.leaseClient.leaseRevoke({ ID: leaseId }, this.deadline()));
  }

  async snapshot(options: { cached?: boolean } = {}): Promise<ClusterSnapshot> {
    const view = options.cached ? this.cache.view() : null;
    if (view) {
      this.fromView++;
      return decodeSnapshot(this.keys, view.kvs, view.revision, this.opts.onInvalidRecord);
    }
    // One read-only txn, so the cycle sees one revision; history/ is left out (it can be long).
    const token = this.cache.readStarting();
    const res = await this.call("snapshot", () =>
      this.client.kv.txn(
        {
          compare: [],
          success: snapshotRanges(this.keys).map(([from, end]) => ({ request_range: { key: Buffer.from(from), ...(end ? { range_end: end } : {}) } })),
        },
        this.deadline(),
      ),
    );
    const kvs = res.responses.flatMap((op) => op.response_range?.kvs ?? []).map(rawKv);
    const revision = Number(res.header.revision);
    this.cache.readDone(token, kvs, revision);
    return decodeSnapshot(this.keys, kvs, revision, this.opts.onInvalidRecord);
  }

  /**
   * Adds to `ifs`: unchanged since the snapshot a decision read (an absent key's mod revision is 0),
   * failsafe/members (E2) and the published sync generation (the stale-promotion mark is decided on it).
   */
  private viewHolds(ifs: ComparatorBuilder, readRevision: number): ComparatorBuilder {
    return ifs.and(this.keys.failsafeMembers, "Mod", "<", readRevision + 1).and(this.keys.syncGeneration, "Mod", "<", readRevision + 1);
  }

  /** The put that makes `node` the leader on `leaseId`: its revision is the new term. */
  private leaderPut(node: string, leaseId: string, acquiredAt: string) {
    return this.client
      .put(this.keys.leader)
      .value(encodeLeader(node, leaseId, acquiredAt))
      .lease(leaseId);
  }

  async campaign(node: string, leaseId: string, acquiredAt: string, readRevision?: number): Promise<CampaignResult> {
    const key = this.keys.leader;
    const res = await this.call("campaign txn", () => {
      const absent = this.client.if(key, "Create", "==", 0);
      return (readRevision === undefined ? absent : this.viewHolds(absent, readRevision))
        .then(this.leaderPut(node, leaseId, acquiredAt))
        .else(this.client.get(key))
        .options(this.deadline())
        .commit();
    });
    if (res.succeeded) {
      // The put is the txn's only write, so the key's mod_revision (the term) is the txn's revision.
      const term = Number(res.header.revision);
      return { won: true, leader: { node, lease: leaseId, term, acquiredAt } };
    }
    const kv = res.responses[0]?.response_range?.kvs[0];
    const leader = kv ? (decodeLeader(kv.value.toString(), Number(kv.mod_revision)) ?? null) : null;
    return { won: false, leader, vacant: kv === undefined };
  }

  resign(term: number): Promise<boolean> {
    return this.guarded("resign txn", term, this.client.delete().key(this.keys.leader));
  }

  async putMember(member: MemberRecord, leaseId: string): Promise<void> {
    await this.call("member put", () => this.client.put(this.keys.member(member.node)).value(JSON.stringify(member)).lease(leaseId).options(this.deadline()).exec());
  }

  async setPaused(paused: boolean): Promise<void> {
    if (paused) await this.call("pause put", () => this.client.put(this.keys.pause).value("true").options(this.deadline()).exec());
    else await this.call("pause delete", () => this.client.delete().key(this.keys.pause).options(this.deadline()).exec());
  }

  requestSwitchover(request: SwitchoverRequest): Promise<boolean> {
    const key = this.keys.switchover;
    return this.commitIf("switchover txn", this.client.if(key, "Create", "==", 0), this.client.put(key).value(JSON.stringify(request)));
  }

  clearSwitchover(term: number, readRevision?: number): Promise<boolean> {
    const leads = this.leads(term);
    const ifs = readRevision === undefined ? leads : leads.and(this.keys.switchover, "Mod", "<", readRevision + 1);
    return this.commitIf("clear switchover txn", ifs, this.client.delete().key(this.keys.switchover));
  }

  async cancelSwitchover(readRevision?: number): Promise<void> {
    const remove = this.client.delete().key(this.keys.switchover);
    if (readRevision === undefined) await this.call("cancel switchover", () => remove.options(this.deadline()).exec());
    // An absent key's mod revision compares as 0: nothing to delete, and the txn succeeds harmlessly.
    else await this.commitIf("cancel switchover txn", this.client.if(this.keys.switchover, "Mod", "<", readRevision + 1), remove);
  }

  release(term: number, record: ReleaseRecord): Promise<boolean> {
    return this.guarded("release txn", term, this.client.delete().key(this.keys.leader), this.client.put(this.keys.released).value(JSON.stringify(record)));
  }

  async handOver(term: number, to: { readonly node: string; readonly lease: string }, record: ReleaseRecord, readRevision: number): Promise<number | null> {
    const res = await this.call("handover txn", () =>
      this.viewHolds(this.leads(term).and(this.keys.member(to.node), "Lease", "==", to.lease), readRevision)
        .then(this.leaderPut(to.node, to.lease, record.at), this.client.put(this.keys.released).value(JSON.stringify(record)))
        .options(this.deadline())
        .commit(),
    );
    // Both puts share the txn's revision: the key's new mod_revision, the successor's term.
    return res.succeeded ? Number(res.header.revision) : null;
  }

  async ban(record: BanRecord, ttlMs: number): Promise<void> {
    const grant = await this.grantLease(ttlMs);
    await this.call("ban put", () => this.client.put(this.keys.ban(record.node)).value(JSON.stringify(record)).lease(grant.id).options(this.deadline()).exec());
  }

  async unban(node: string): Promise<void> {
    await this.call("unban", () => this.client.delete().key(this.keys.ban(node)).options(this.deadline()).exec());
  }

  publishGeneration(term: number, generation: SyncGeneration): Promise<boolean> {
    return this.guarded("publish generation txn", term, this.client.put(this.keys.syncGeneration).value(JSON.stringify(generation)));
  }

  putDataRejoin(term: number, record: DataRejoinRecord): Promise<boolean> {
    return this.guarded("data rejoin txn", term, this.client.put(this.keys.dataRejoin(record.node)).value(JSON.stringify(record)));
  }

  publishDataProgress(term: number, progress: DataProgress): Promise<boolean> {
    return this.guarded("publish data progress txn", term, this.client.put(this.keys.dataProgress).value(JSON.stringify(progress)));
  }

  publishFailsafeMembers(term: number, record: FailsafeMembers | null): Promise<boolean> {
    const key = this.keys.failsafeMembers;
    return this.guarded("publish failsafe members txn", term, record ? this.client.put(key).value(JSON.stringify(record)) : this.client.delete().key(key));
  }

  async widenFailsafeMembers(record: FailsafeMembers, readRevision: number): Promise<boolean> {
    const key = this.keys.failsafeMembers;
    const res = await this.call("widen failsafe members txn", () =>
      this.client
        .if(this.keys.leader, "Create", "==", 0)
        .and(key, "Mod", "<", readRevision + 1)
        .then(this.client.put(key).value(JSON.stringify(record)))
        .options(this.deadline())
        .commit(),
    );
    return res.succeeded;
  }

  async dataRejoin(node: string): Promise<DataRejoinRecord | null> {
    const key = this.keys.dataRejoin(node);
    const res = await this.call("data rejoin range", () => this.client.kv.range({ key: Buffer.from(key) }, this.deadline()));
    const kv = res.kvs[0];
    if (!kv) return null;
    const d = decodeDataRejoin(kv.value.toString());
    if ("ok" in d && d.ok.node === node) return d.ok;
    const problem = "ok" in d ? `the key names ${node} but the record names ${d.ok.node}` : d.problem;
    this.opts.onInvalidRecord?.({ kind: "data_rejoin", key, modRevision: Number(kv.mod_revision), problem });
    return null;
  }

  async appendHistory(event: HistoryEvent, term: number | null): Promise<boolean> {
    const key = historyKey(this.keys.historyPrefix, event, this.opts.clock.wallMs());
    const put = this.client.put(key).value(JSON.stringify(event));
    if (term === null) await this.call("history put", () => put.options(this.deadline()).exec());
    else if (!(await this.guarded("history txn", term, put))) return false;
    await this.trimHistory().catch(() => undefined);
    return true;
  }

  /** Keep the newest HISTORY_KEEP events. */
  private async trimHistory(): Promise<void> {
    const prefix = this.keys.historyPrefix;
    const count = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }, this.deadline());
    const excess = Number(count.count) - HISTORY_KEEP;
    if (excess <= 0) return;
    const oldest = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: true, limit: excess, sort_order: "Ascend", sort_target: "Key" }, this.deadline());
    const last = oldest.kvs[oldest.kvs.length - 1];
    if (last) await this.client.kv.deleteRange({ key: Buffer.from(prefix), range_end: Buffer.concat([last.key, Buffer.from([0])]) }, this.deadline());
  }

  async history(limit: number): Promise<HistoryEvent[]> {
    const prefix = this.keys.historyPrefix;
    const res = await this.call("history range", () =>
      this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), limit, sort_order: "Descend", sort_target: "Key" }, this.deadline()),
    );
    const events: HistoryEvent[] = [];
    for (const kv of res.kvs) {
      const d = decodeHistoryChecked(kv.value.toString());
      if ("ok" in d) events.push(d.ok);
      else this.opts.onInvalidRecord?.({ kind: "history", key: kv.key.toString(), modRevision: Number(kv.mod_revision), problem: d.problem });
    }
    return events.reverse();
  }

  async watchLeader(onEvent: (e: LeaderWatchEvent) => void): Promise<Subscription> {
    // Watch the whole cluster prefix: leader changes, member health and pause all feed decisions.
    // The watcher is attached to the library's watch manager from the moment it exists, not from
    // when it connects: one that does not connect in time must be cancelled here, or the manager
    // keeps reconnecting it for ever (after close(), every 200 ms: an agent that never exits).
    if (this.closed) throw new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: this.opts.endpoints.join(","), cause: "watch: the etcd client is closed" });
    const watcher: Watcher = this.client.watch().prefix(this.keys.base).watcher();
    this.watchers.add(watcher);
    const cancel = async () => {
      if (!this.watchers.delete(watcher)) return;
      this.cache.watchDisconnected();
      // Bounded: a cancel waits for etcd's answer, which never comes over a dead connection.
      await withTimeout(watcher.cancel(), this.opts.requestTimeoutMs, this.opts.clock).catch(() => undefined);
    };
    try {
      await this.call(
        "watch",
        () =>
          new Promise<void>((resolve, reject) => {
            watcher.once("connected", () => resolve());
            watcher.once("error", (e: Error) => reject(e));
          }),
      );
    } catch (e) {
      await cancel();
      throw e;
    }
    this.cache.watchConnected();
    // A whole response at once (a txn's events share one): the cycle an event wakes reads the view
    // synchronously, and must not see a release's delete without its control/released put.
    watcher.on("data", (res: IWatchResponse) => {
      if (res.events.length === 0) return; // a progress notice
      for (const ev of res.events) this.cache.event({ type: ev.type === "Delete" ? "delete" : "put", ...rawKv(ev.kv), ...(ev.type === "Delete" ? { value: "" } : {}) });
      // history/ is not in the snapshot, and every cycle reads what it needs of it: appending and
      // trimming it (several writes per move) wakes no cycle on any node.
      if (res.events.some((ev) => !ev.kv.key.toString().startsWith(this.keys.historyPrefix))) onEvent({ type: "changed" });
    });
    // After a reconnect events may have been compacted away: the loop re-lists.
    watcher.on("connected", () => {
      this.cache.watchConnected();
      onEvent({ type: "resync" });
    });
    watcher.on("disconnected", () => {
      this.cache.watchDisconnected();
      onEvent({ type: "resync" });
    });
    watcher.on("error", (e: Error) => {
      this.cache.watchDisconnected();
      this.opts.log.warn({ err: describeError(e) }, "etcd watch error; re-listing");
      onEvent({ type: "resync" });
    });
    return { close: cancel };
  }

  /** How many snapshots the watched view answered (the rest were reads). */
  snapshotsFromView(): number {
    return this.fromView;
  }

  /** Watchers not cancelled yet (cancelled here at close, before the client goes). */
  openWatchers(): number {
    return this.watchers.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    // Every watcher first: one left attached would be re-established by the library for ever.
    await Promise.all(
      [...this.watchers].map(async (w) => {
        this.watchers.delete(w);
        await withTimeout(w.cancel(), this.opts.requestTimeoutMs, this.opts.clock).catch(() => undefined);
      }),
    );
    this.keepalive.close();
    this.client.close();
  }
}

const HISTORY_KEEP = 1000;

async function withTimeout<T>(p: Promise<T>, ms: number, clock: Clock): Promise<T> {
  // A plain timer, not an AbortSignal: this runs for every etcd call, several per second.
  let timer: TimerHandle | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimer(ms, () => reject(new UnderstudyError("US_E_ETCD_TIMEOUT", { request: "a request", timeout_ms: ms })));
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    timer?.cancel();
  }
}
