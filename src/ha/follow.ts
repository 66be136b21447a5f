import type { Config } from "../config/load.js";
import { etcdRequestTimeoutMs } from "../config/timing.js";
import type { ClusterSnapshot } from "../coordinator/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { DataPort, SyncPort } from "./ports.js";

// The HA loop telling the sync and data engines, after each cycle, who leads and
// what etcd says; the engines pull, publish, ship or receive on their own.

type Role = { readonly acting: "primary" | "standby"; readonly term: number | null };

/** Tell the sync engine who leads and what was published; it pulls or publishes on its own. */
export function followSync(sync: SyncPort | undefined, role: Role, snapshot: ClusterSnapshot | null): void {
  if (!sync) return;
  const leader = snapshot?.leader ?? null;
  sync.follow({
    acting: role.acting,
    term: role.term,
    leader: leader ? { node: leader.node, term: leader.term, address: snapshot!.members.find((m) => m.node === leader.node)?.address ?? null } : null,
    published: snapshot ? snapshot.sync : undefined,
  });
}

/** What a standby knows of its last etcd read and of its failsafe promise (unreadHold). */
export interface UnreadFacts {
  readonly nowMs: number;
  /** Monotonic ms of the last successful read; null: none since start. */
  readonly lastReadAtMs: number | null;
  /** How long after it the followed term is kept without a promise (unreadHoldMs). */
  readonly holdMs: number;
  /** The leader of the last read. */
  readonly leader: string | null;
  /** The failsafe promise: to whom, and until when (monotonic ms). */
  readonly promisedTo: string | null;
  readonly promisedUntilMs: number;
}

/** One lease period after the last read, plus the time the next read takes to fail: ttl + fence_margin + request_timeout + the cycle tick. */
export function unreadHoldMs(c: { readonly ttlMs: number; readonly fenceMarginMs: number; readonly requestTimeoutMs: number; readonly tickMs: number }): number {
  return c.ttlMs + c.fenceMarginMs + c.requestTimeoutMs + c.tickMs;
}

/** unreadHoldMs for this node's config (the request timeout as the coordinator bounds it). */
export function configuredUnreadHoldMs(config: Pick<Config, "etcd" | "election">, tickMs: number): number {
  const { ttlMs, fenceMarginMs } = config.election;
  return unreadHoldMs({ ttlMs, fenceMarginMs, requestTimeoutMs: etcdRequestTimeoutMs(config), tickMs });
}

/**
 * Whether a standby that could not read etcd keeps receiving the term it follows, and why. Yes
 * while its last read is recent (one read that timed out under load must not cut a running full
 * pass) or while it has promised that term's leader not to campaign (failsafe: that primary holds
 * on this grant and ships on). Otherwise the term may have ended unseen: the write modules close,
 * and a deposed primary's sender still running (a frozen agent's rsync) is cut. Pure.
 */
export function unreadHold(f: UnreadFacts): { readonly keep: "recent" | "promise" | false; readonly reason: string } {
  if (f.lastReadAtMs === null) return { keep: false, reason: "etcd not read since start" };
  if (f.leader !== null && f.promisedTo === f.leader && f.nowMs < f.promisedUntilMs) {
    return { keep: "promise", reason: `failsafe: promised ${f.leader} for ${Math.round(f.promisedUntilMs - f.nowMs)}ms more` };
  }
  const age = f.nowMs - f.lastReadAtMs;
  if (age < f.holdMs) return { keep: "recent", reason: `last etcd read ${Math.round(age)}ms ago (kept up to ${f.holdMs}ms)` };
  return { keep: false, reason: `no etcd read for ${Math.round(age)}ms (over ${f.holdMs}ms) and no failsafe promise to ${f.leader ?? "a leader"}` };
}

/**
 * Tell data replication who leads and what each member says (receiving term, rejoin, free space); it
 * ships or receives on its own. `keepUnread`: unreadHold's answer, used when etcd was not read.
 */
export function followData(data: DataPort | undefined, role: Role, snapshot: ClusterSnapshot | null, keepUnread = false): void {
  if (!data) return;
  // etcd not read this cycle: the leader and members are unknown, not gone. A primary keeps its
  // standbys and cursors (its lease fences it if it stays cut off); a standby keeps receiving the
  // term it follows while unreadHold says so (the engine's `unread`), else it closes its modules.
  if (!snapshot) {
    if (role.acting !== "primary") data.follow({ acting: role.acting, term: role.term, leader: null, members: [], ...(keepUnread ? { unread: true } : {}) });
    return;
  }
  const leader = snapshot.leader;
  const members = snapshot.members;
  data.follow({
    acting: role.acting,
    term: role.term,
    leader: leader ? { node: leader.node, term: leader.term, address: members.find((m) => m.node === leader.node)?.address ?? null } : null,
    members: members.map((m) => ({ node: m.node, address: m.address, ...(m.data ? { data: m.data } : {}) })),
    progress: snapshot.dataProgress ?? null,
  });
}

/**
 * followData after each cycle, remembering the last read and deciding (unreadHold) whether a
 * standby whose read failed keeps receiving; says so once per change. While it keeps receiving,
 * a timer re-decides when the hold would end, so the bound holds even if no cycle completes.
 */
export class DataFollow {
  private lastRead: { readonly atMs: number; readonly leader: string | null } | null = null;
  /** unreadHold's last answer while etcd is unread (null: read): said once per change. */
  private kept: "recent" | "promise" | false | null = null;
  private recheck: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      readonly data: DataPort | undefined;
      readonly holdMs: number;
      readonly clock: Clock;
      readonly log: Logger;
      /** This node's failsafe promise (to whom, until when; monotonic ms). */
      readonly promise: () => { readonly to: string | null; readonly untilMs: number };
    },
  ) {}

  /** After a cycle; `readAtMs`: when its read of etcd began (monotonic), the age of what the snapshot says. */
  after(role: Role, snapshot: ClusterSnapshot | null, readAtMs: number): void {
    const { data } = this.deps;
    if (!data || this.stopped) return;
    this.recheck?.cancel();
    this.recheck = undefined;
    if (snapshot) {
      this.lastRead = { atMs: readAtMs, leader: snapshot.leader?.node ?? null };
      this.kept = null;
      followData(data, role, snapshot);
      return;
    }
    this.unread(role);
  }

  stop(): void {
    this.stopped = true;
    this.recheck?.cancel();
  }

  private unread(role: Role): void {
    const { data, clock, log } = this.deps;
    let keep: "recent" | "promise" | false = false;
    if (role.acting !== "primary") {
      const nowMs = clock.monotonicMs();
      const p = this.deps.promise();
      const r = this.lastRead;
      const hold = unreadHold({ nowMs, lastReadAtMs: r?.atMs ?? null, holdMs: this.deps.holdMs, leader: r?.leader ?? null, promisedTo: p.to, promisedUntilMs: p.untilMs });
      keep = hold.keep;
      if (this.kept !== keep)
        log.info({ reason: hold.reason }, keep ? `data: etcd unread, the write modules stay as they are: ${hold.reason}` : `data: etcd unread, no write module stays open: ${hold.reason}`);
      this.kept = keep;
      if (keep !== false) {
        const endsAt = keep === "promise" ? p.untilMs : r!.atMs + this.deps.holdMs;
        this.recheck = clock.setTimer(Math.max(1, endsAt - nowMs), () => {
          this.recheck = undefined;
          if (!this.stopped) this.unread(role);
        });
      }
    }
    followData(data, role, null, keep !== false);
  }
}
