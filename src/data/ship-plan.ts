// The data shipping planner (docs/data-replication-design.md §4, §5, §8). Pure:
// no I/O, no clock reads. Given this node's role, the journal's head and floor
// and what the shipper knows of each standby, it returns one step per standby
// and a reason sentence; the shipper (not written yet) runs the rsync of each
// step, one at a time per standby, and reports back through `afterFailure`
// and the cursor it advances on success.
import type { ChangeJournal, ReadyEntry } from "./journal.js";

/** What the shipper knows of one standby. */
export interface StandbyShipState {
  readonly node: string;
  /** Its address as published in its member key (null: none). */
  readonly address: string | null;
  /** The term whose write modules it serves (its member key); it accepts only that term's batches. */
  readonly followingTerm: number | null;
  /** A former primary whose own files have not reached this primary yet (§7): nothing is shipped to it. */
  readonly rejoinPending: boolean;
  /**
   * This primary already merged its files in this term (it wrote data/rejoin/<node> done) and waits
   * for it to read the record and open this term's write module. Absent: false.
   */
  readonly rejoinDone?: boolean;
  /** Highest seq it acknowledged in this journal; null: no full pass yet in this journal. */
  readonly cursor: number | null;
  /** A full pass is asked for whatever the cursor (POST /resync, periodic reconcile), with why. */
  readonly fullPassAsked: string | null;
  /** Consecutive failed runs and when the next may start (monotonic ms). */
  readonly failures: number;
  readonly retryAtMs: number | null;
  readonly lastError: string | null;
  /** The last run failed on a full data volume (ENOSPC). */
  readonly diskFull: boolean;
  /** Free bytes on its data volume as it last reported them (null: not reported). */
  readonly freeBytes: number | null;
}

export interface ShipObservation {
  readonly nowMs: number;
  readonly node: string;
  /** This node acts as primary (the HA loop's `acting`). */
  readonly primary: boolean;
  /** Our term while primary. */
  readonly term: number | null;
  readonly journal: Pick<ChangeJournal, "head" | "floor" | "after" | "behind">;
  readonly standbys: readonly StandbyShipState[];
  readonly maxBatchFiles: number;
  readonly maxBatchBytes: number;
  /** A standby reporting less free space than this is paused before its first ENOSPC. */
  readonly reserveBytes: number;
}

export type StandbyStep =
  | { readonly node: string; readonly kind: "wait" | "pause" | "backoff" | "idle"; readonly reason: string }
  /** One rsync of the whole root (--delete on the standby); on success the cursor becomes `head`. */
  | { readonly node: string; readonly kind: "full"; readonly address: string; readonly term: number; readonly head: number; readonly reason: string }
  /**
   * Loss-free rejoin (§7, rejoin-exec.ts): pull the former primary's files from its read-only
   * module `r<term>-<root>` into an inbox, merge them here, write data/rejoin/<node> done. On
   * success its cursor is reset: the step after it is a full pass.
   */
  | { readonly node: string; readonly kind: "rejoin"; readonly address: string; readonly term: number; readonly reason: string }
  /** One rsync of `entries`; on success the cursor becomes `toSeq`. */
  | { readonly node: string; readonly kind: "batch"; readonly address: string; readonly term: number; readonly entries: readonly ReadyEntry[]; readonly toSeq: number; readonly reason: string };

export type ShipPlan = { readonly kind: "stop"; readonly reason: string } | { readonly kind: "ship"; readonly term: number; readonly steps: readonly StandbyStep[] };

export function planShip(o: ShipObservation): ShipPlan {
  if (!o.primary) return { kind: "stop", reason: "not shipping: this node is not the primary (only the primary ships data)" };
  if (o.term === null) return { kind: "stop", reason: "not shipping: acting as primary without a term" };
  const term = o.term;
  return { kind: "ship", term, steps: o.standbys.filter((s) => s.node !== o.node).map((s) => planStandby(o, term, s)) };
}

function planStandby(o: ShipObservation, term: number, s: StandbyShipState): StandbyStep {
  const n = s.node;
  if (s.address === null) return { node: n, kind: "wait", reason: `waiting: ${n} publishes no address to ship to` };
  if (s.rejoinPending) return planRejoin(o, term, s, s.address);
  if (s.followingTerm !== term) {
    const what = s.followingTerm === null ? "it follows no term yet" : `it still follows term ${s.followingTerm}`;
    return { node: n, kind: "wait", reason: `waiting: ${n} does not accept term ${term}'s files yet (${what})` };
  }
  const room = s.freeBytes !== null && s.freeBytes < o.reserveBytes;
  if (s.diskFull || room) {
    const retryDue = s.retryAtMs !== null && o.nowMs >= s.retryAtMs;
    const spaceBack = s.freeBytes !== null && s.freeBytes >= o.reserveBytes;
    if (!(s.diskFull && (retryDue || spaceBack))) {
      const free = s.freeBytes === null ? "free space not reported" : `${bytes(s.freeBytes)} free`;
      const when =
        s.diskFull && s.retryAtMs !== null
          ? `retrying in ${Math.max(0, Math.round(s.retryAtMs - o.nowMs))}ms or when it reports ${bytes(o.reserveBytes)} free`
          : `until it reports ${bytes(o.reserveBytes)} free`;
      return { node: n, kind: "pause", reason: `paused: ${n}'s data volume is full (${free}, reserve ${bytes(o.reserveBytes)}); ${when}; the primary is not affected` };
    }
  } else if (s.failures > 0 && s.retryAtMs !== null && o.nowMs < s.retryAtMs) {
    return { node: n, kind: "backoff", reason: `waiting ${s.retryAtMs - o.nowMs}ms before retrying ${n} after ${s.failures} failure(s): ${s.lastError ?? "unknown error"}` };
  }
  const { journal } = o;
  const why = fullPassWhy(journal.floor, s);
  if (why !== null) {
    const behind = s.cursor === null ? "" : ` (${journal.behind(s.cursor).files} change(s) known behind)`;
    return { node: n, kind: "full", address: s.address, term, head: journal.head, reason: `full pass to ${n}: ${why}${behind}` };
  }
  const cursor = s.cursor!;
  const { entries, more } = journal.after(cursor, o.maxBatchFiles, o.maxBatchBytes);
  if (entries.length === 0) return { node: n, kind: "idle", reason: `in sync: ${n} holds every change up to seq ${cursor}` };
  const toSeq = entries[entries.length - 1]!.seq;
  const size = entries.reduce((a, e) => a + e.size, 0);
  const deletes = entries.filter((e) => e.op === "delete").length;
  const what = `${entries.length} change(s)${deletes > 0 ? ` (${deletes} deletion(s))` : ""}, ${bytes(size)}`;
  const retry = s.failures > 0 ? ` (retry ${s.failures})` : "";
  return {
    node: n,
    kind: "batch",
    address: s.address,
    term,
    entries,
    toSeq,
    reason: `shipping ${what} to ${n}: seq ${entries[0]!.seq}..${toSeq}${more > 0 ? `, ${more} more queued` : ""}${retry}`,
  };
}

/** A former primary in rejoin: pull and merge its files once per term, nothing shipped to it until it reads the done record. */
function planRejoin(o: ShipObservation, term: number, s: StandbyShipState, address: string): StandbyStep {
  const n = s.node;
  if (s.rejoinDone === true) {
    return { node: n, kind: "wait", reason: `waiting: ${n}'s files were merged here (rejoin done in term ${term}); nothing is shipped to it until it opens term ${term}'s write module` };
  }
  if (s.failures > 0 && s.retryAtMs !== null && o.nowMs < s.retryAtMs) {
    return { node: n, kind: "backoff", reason: `waiting ${s.retryAtMs - o.nowMs}ms before retrying the rejoin of ${n} after ${s.failures} failure(s): ${s.lastError ?? "unknown error"}` };
  }
  const retry = s.failures > 0 ? ` (retry ${s.failures})` : "";
  return {
    node: n,
    kind: "rejoin",
    address,
    term,
    reason: `rejoin: pulling ${n}'s files (a former primary) into this primary's tree before it becomes a replica; nothing is shipped to it until then${retry}`,
  };
}

/** Why the journal cannot bring this standby up to date (null: it can). */
function fullPassWhy(floor: ChangeJournal["floor"], s: Pick<StandbyShipState, "cursor" | "fullPassAsked">): string | null {
  if (s.fullPassAsked !== null) return s.fullPassAsked;
  if (s.cursor === null) return "first pass in this journal (promotion, agent start or a standby that appeared)";
  if (s.cursor < floor.seq) return `its cursor ${s.cursor} is below the journal's floor ${floor.seq}: ${floor.why}`;
  return null;
}

/** Lag of one standby for the member key, status, metrics and the promotion gate. */
export interface DataLag {
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Its true lag is unknown until a full pass lists the tree. */
  readonly full: boolean;
}

export function lagOf(journal: Pick<ChangeJournal, "floor" | "behind">, s: Pick<StandbyShipState, "cursor" | "fullPassAsked">, nowMs: number): DataLag {
  const full = fullPassWhy(journal.floor, s) !== null;
  const b = journal.behind(s.cursor ?? 0);
  return { files: b.files, bytes: b.bytes, seconds: b.oldestSinceMs === null ? 0 : Math.max(0, (nowMs - b.oldestSinceMs) / 1000), full };
}

// ---------------------------------------------------------------- failures

export type ShipFailureKind = "disk-full" | "fenced" | "delete-limit" | "transient";

/**
 * rsync's daemon named no such module: this term's write module is not open there (another term,
 * another host), or the module asked for is one the standby does not render (full-pass.ts: no barrier).
 */
export function unknownModule(code: number, stderr: string): boolean {
  return code === 5 && /unknown module/i.test(stderr);
}

/**
 * rsync's exit and stderr after a failed run. disk-full: ENOSPC on the
 * receiver. fenced: the standby serves no module for this term (it follows
 * another leader, §1), nothing was written. delete-limit: a full pass hit
 * --max-delete (exit 25): the primary's root may not be mounted; retried
 * slowly, never with a higher limit. Anything else is retried with
 * backoff from the same cursor: a batch is idempotent.
 */
export function classifyShipFailure(code: number, stderr: string): ShipFailureKind {
  if (/No space left on device|Disk quota exceeded/i.test(stderr)) return "disk-full";
  if (unknownModule(code, stderr)) return "fenced";
  if (code === 25) return "delete-limit";
  return "transient";
}

const FIRST_RETRY_MS = 200;
export const DISK_FULL_RETRY_MS = 30_000;

/** After a failed run: when to try again, whether the standby is now paused for space, and the sentence. */
export function afterFailure(
  s: Pick<StandbyShipState, "node" | "failures">,
  kind: ShipFailureKind,
  nowMs: number,
  retryMaxMs: number,
  /** data.disk_full_retry: how long a full standby (or a stopped delete) waits before the next try. */
  pauseMs: number = DISK_FULL_RETRY_MS,
): { readonly failures: number; readonly retryAtMs: number; readonly diskFull: boolean; readonly reason: string } {
  const failures = s.failures + 1;
  if (kind === "disk-full") {
    return { failures, retryAtMs: nowMs + pauseMs, diskFull: true, reason: `paused: ${s.node}'s data volume is full; retrying in ${pauseMs}ms or when it reports free space` };
  }
  if (kind === "delete-limit") {
    return {
      failures,
      retryAtMs: nowMs + pauseMs,
      diskFull: false,
      reason: `stopped deleting on ${s.node}: a full pass would delete more than max_delete files (is this primary's data root mounted?); retrying in ${pauseMs}ms with no deletion at all (--max-delete=0) until this primary's agent restarts or another node becomes primary`,
    };
  }
  const delay = Math.min(retryMaxMs, FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 20));
  const why = kind === "fenced" ? `${s.node} refused this term's module (it follows another leader)` : `the run to ${s.node} failed`;
  return { failures, retryAtMs: nowMs + delay, diskFull: false, reason: `${why}; retrying in ${delay}ms after ${failures} failure(s)` };
}

/** 1536 -> "1.5 KiB": reason sentences only. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
