// The cluster's keys as of a revision, kept current by the watch: the last
// snapshot read with every watched event after it applied (the list + watch
// of client-go's informers; Patroni's etcd3 KVCache). A cycle woken by a watch
// event decides on it instead of reading etcd again: that read was 5-67 ms
// (median ~30) on a busy 2-core host, on the path from "the old primary
// released" to "the new one campaigns" (bench/switchover).
//
// It is a pure state holder; EtcdCoordinator feeds it. It answers only when
// what it holds is exactly etcd at its revision: a read made while the watch
// was connected (so every later event reaches it), no disconnect since, and
// every write this agent made already seen (read-your-writes: a primary must
// never decide on a view older than its own campaign).
import { prefixEnd, type ClusterKeys } from "./keys.js";
import type { RawKv } from "./snapshot-decode.js";

/** What the snapshot reads: [key, range end] (no end: that key alone). history/ and data/rejoin/ are left out. */
export function snapshotRanges(k: ClusterKeys): [string, Buffer | undefined][] {
  const prefix = (p: string): [string, Buffer] => [p, prefixEnd(p)];
  return [prefix(`${k.base}control/`), [k.leader, undefined], prefix(k.membersPrefix), [k.syncGeneration, undefined], [k.dataProgress, undefined], [k.failsafeMembers, undefined]];
}

/** Whether a key is one snapshotRanges reads. */
export function inSnapshot(k: ClusterKeys): (key: string) => boolean {
  const ranges = snapshotRanges(k);
  return (key) => ranges.some(([from, end]) => (end ? key.startsWith(from) : key === from));
}

/** An etcd key-value (gRPC's, from a range or a watch event) as the decoders take it. */
export function rawKv(kv: { key: Buffer; value: Buffer; mod_revision: string }): RawKv {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
}

export interface WatchedEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  /** Empty for a delete. */
  readonly value: string;
  readonly modRevision: number;
}

/** Events kept between two reads (to re-apply those a read raced); past this the view is dropped until a read. */
const MAX_PENDING_EVENTS = 10_000;

export class SnapshotCache {
  private kvs = new Map<string, RawKv>();
  /** Every event up to this revision is in kvs. */
  private revision = 0;
  /** The revision of the newest read taken in. */
  private readRevision = 0;
  private valid = false;
  /** Bumped on every connect and disconnect of the watch: a read that spans one is not trusted. */
  private epoch = 0;
  private connected = false;
  /** The highest revision of a write by this agent: the view answers only once it has reached it. */
  private wroteRevision = 0;
  /** Events newer than the last read, re-applied after the next one (it may have been answered before them). */
  private pending: WatchedEvent[] = [];

  /** @param inSnapshot whether a key is one the snapshot reads (history/ and the like are not). */
  constructor(private readonly inSnapshot: (key: string) => boolean) {}

  watchConnected(): void {
    this.epoch++;
    this.connected = true;
  }

  /** Events may have been lost: no view until a read made after the next connect. */
  watchDisconnected(): void {
    this.epoch++;
    this.connected = false;
    this.valid = false;
  }

  /** Call before a read; pass the token to readDone. */
  readStarting(): number {
    return this.connected ? this.epoch : -1;
  }

  /** A read at `revision` returned these keys (those of the snapshot's ranges). Reads may overlap. */
  readDone(token: number, kvs: readonly RawKv[], revision: number): void {
    // Older than what the view holds (a read that overlapped a newer one, or etcd restored from a
    // backup): the events it lacks may be gone from `pending`. Ignored; a later read replaces the view.
    if (revision < this.readRevision) return;
    this.readRevision = revision;
    this.kvs = new Map(kvs.map((kv) => [kv.key, kv]));
    this.revision = revision;
    // Events newer than the read, in order. Those it includes are not applied again: the watch may lag
    // behind the read, and a put the read saw deleted would come back (its delete not in yet).
    this.pending = this.pending.filter((e) => e.modRevision > revision);
    for (const e of this.pending) this.apply(e);
    this.valid = token !== -1 && token === this.epoch && this.connected;
  }

  /** One watched event, in revision order as etcd sends them. */
  event(e: WatchedEvent): void {
    if (this.pending.length >= MAX_PENDING_EVENTS) {
      // A read in flight must not make the view valid either: it would miss what is dropped here.
      this.epoch++;
      this.valid = false;
      this.pending = [];
    }
    // A lagging watch delivering what the last read already holds: nothing to apply or keep.
    if (e.modRevision <= this.readRevision) return;
    this.pending.push(e);
    this.apply(e);
  }

  /** This agent wrote at `revision` (a txn's header revision, whether it succeeded or not). */
  wrote(revision: number): void {
    if (revision > this.wroteRevision) this.wroteRevision = revision;
  }

  /**
   * A request of ours failed or timed out: a write may have been committed all the same, at a
   * revision we never learnt. No view until a read started after this one (reads in flight do not count).
   */
  outcomeUnknown(): void {
    this.epoch++;
    this.valid = false;
  }

  /** The keys and their revision, or null when only a read can tell. */
  view(): { kvs: RawKv[]; revision: number } | null {
    if (!this.valid || !this.connected || this.revision < this.wroteRevision) return null;
    return { kvs: [...this.kvs.values()], revision: this.revision };
  }

  private apply(e: WatchedEvent): void {
    if (e.modRevision > this.revision) this.revision = e.modRevision;
    if (!this.inSnapshot(e.key)) return;
    const held = this.kvs.get(e.key);
    // Only events newer than the read reach here, in order; a key at a newer revision is kept (defensive).
    if (held && held.modRevision >= e.modRevision) return;
    if (e.type === "delete") this.kvs.delete(e.key);
    else this.kvs.set(e.key, { key: e.key, value: e.value, modRevision: e.modRevision });
  }
}
