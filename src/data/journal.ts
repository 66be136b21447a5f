// The primary's change journal for data roots (docs/data-replication-design.md §3).
// Pure: no I/O and no clock reads; every call is given the time. Events about
// paths become one pending entry per path (the latest event decides upsert or
// delete), an entry becomes ready once it is stable, and ready entries carry a
// sequence number the per-standby cursors of ship-plan.ts point into.
//
// Bounded: at most maxPending pending paths and maxReady ready entries. When a
// bound is hit, or the event source says it lost events, the journal gives up
// on incremental shipping from that point on: it raises `floor`, and every
// standby whose cursor is below the floor needs a full pass (one rsync of the
// whole root), which lists the tree instead of trusting the journal.
import { UnderstudyError } from "../errors/catalogue.js";

/**
 * What the watcher (or `understudy data notify`) says about a path relative
 * to the data root. change: written, maybe still open (waits for the
 * stability window). closed: written and closed (IN_CLOSE_WRITE, notify):
 * ready at once. remove, rename, dir: ready at once. A `dir` that arrived with
 * contents (moved in) and a rename of a directory are `recursive`.
 * overflow: the source lost events (IN_Q_OVERFLOW, a restarted watcher).
 */
export type DataEvent =
  | { readonly kind: "change" | "closed"; readonly path: string; readonly size?: number }
  | { readonly kind: "remove"; readonly path: string }
  | { readonly kind: "dir"; readonly path: string; readonly recursive?: boolean }
  | { readonly kind: "rename"; readonly path: string; readonly to: string; readonly recursive?: boolean; readonly size?: number }
  | { readonly kind: "overflow"; readonly why: string };

export type DataOp = "upsert" | "delete";

export interface ReadyEntry {
  readonly seq: number;
  readonly path: string;
  readonly op: DataOp;
  /** Ship the directory with everything below it (a tree moved in). */
  readonly recursive: boolean;
  /** Bytes to ship (0 for deletions and directories): the lag in bytes. */
  readonly size: number;
  /** First event of this change (monotonic ms): the lag in seconds counts from here. */
  readonly sinceMs: number;
  readonly readyAtMs: number;
}

export interface JournalLimits {
  /** A `change` is ready when no event touched its path for this long. */
  readonly stabilityWindowMs: number;
  readonly maxPending: number;
  readonly maxReady: number;
}

export const DEFAULT_JOURNAL_LIMITS: JournalLimits = { stabilityWindowMs: 250, maxPending: 100_000, maxReady: 100_000 };

interface Pending {
  op: DataOp;
  recursive: boolean;
  size: number;
  sinceMs: number;
  dueMs: number;
  /** Order of the last event: ties in due time keep event order (a rename's delete before its upsert). */
  order: number;
}

/** Why the floor last rose (for the full pass's reason sentence). */
export interface FloorChange {
  readonly seq: number;
  readonly why: string;
}

function positiveInt(setting: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new UnderstudyError("US_E_DATA_CONFIG", { setting, problem: `must be an integer >= ${min}`, value: String(value) });
  return value;
}

/** Relative, normalised, without `..`: what rsync --files-from will read back. */
export function checkDataPath(path: string): string {
  const parts = path.split("/");
  if (path === "" || path.startsWith("/") || path.includes("\0") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data event path", problem: "must be relative to the data root, normalised, without . or .. or NUL", value: JSON.stringify(path) });
  }
  return path;
}

export class ChangeJournal {
  readonly limits: JournalLimits;
  private readonly pending = new Map<string, Pending>();
  /** Insertion order is seq order: a path that becomes ready again is deleted and re-inserted. */
  private readonly ready = new Map<string, ReadyEntry>();
  private seq = 0;
  private events = 0;
  private floorAt: FloorChange = { seq: 0, why: "a new journal" };

  /** Throws US_E_DATA_CONFIG for a limit that is not a positive integer (the window may be 0). */
  constructor(limits: JournalLimits = DEFAULT_JOURNAL_LIMITS) {
    this.limits = {
      stabilityWindowMs: positiveInt("data.stability_window", limits.stabilityWindowMs, 0),
      maxPending: positiveInt("data.max_pending", limits.maxPending, 1),
      maxReady: positiveInt("data.max_ready", limits.maxReady, 1),
    };
  }

  /** The last sequence number handed out. */
  get head(): number {
    return this.seq;
  }

  /** A standby whose cursor is below `floor.seq` cannot be brought up to date from the journal: it needs a full pass. */
  get floor(): FloorChange {
    return this.floorAt;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get readyCount(): number {
    return this.ready.size;
  }

  record(e: DataEvent, nowMs: number): void {
    switch (e.kind) {
      case "overflow":
        this.overflow(`the event source lost events (${e.why})`);
        return;
      case "change":
        this.touch(checkDataPath(e.path), "upsert", false, e.size ?? 0, nowMs, nowMs + this.limits.stabilityWindowMs);
        return;
      case "closed":
        this.touch(checkDataPath(e.path), "upsert", false, e.size ?? 0, nowMs, nowMs);
        return;
      case "remove":
        this.touch(checkDataPath(e.path), "delete", false, 0, nowMs, nowMs);
        return;
      case "dir":
        this.touch(checkDataPath(e.path), "upsert", e.recursive ?? false, 0, nowMs, nowMs);
        return;
      case "rename":
        // Two entries: the old name goes, the new one arrives (rsync --fuzzy reuses the old blocks when it can).
        this.touch(checkDataPath(e.path), "delete", false, 0, nowMs, nowMs);
        this.touch(checkDataPath(e.to), "upsert", e.recursive ?? false, e.size ?? 0, nowMs, nowMs);
        return;
    }
  }

  private touch(path: string, op: DataOp, recursive: boolean, size: number, nowMs: number, dueMs: number): void {
    const p = this.pending.get(path);
    if (p) {
      // The latest event decides; a change after a close reopens the window, a close ends it.
      p.op = op;
      p.recursive = op === "upsert" && (recursive || p.recursive);
      p.size = size;
      p.dueMs = dueMs;
      p.order = ++this.events;
      return;
    }
    if (this.pending.size >= this.limits.maxPending) {
      this.overflow(`more than ${this.limits.maxPending} paths changed within the stability window`);
      return;
    }
    this.pending.set(path, { op, recursive, size, sinceMs: nowMs, dueMs, order: ++this.events });
  }

  /** Lost events: forget what is pending and take a sequence number as the new floor. */
  private overflow(why: string): void {
    this.pending.clear();
    this.seq += 1;
    this.floorAt = { seq: this.seq, why };
  }

  /**
   * Moves every pending entry whose window has passed to the ready log, in
   * (due time, event) order. Returns how many moved and when the next pending
   * entry falls due (null: nothing pending), for the executor's timer.
   */
  stabilise(nowMs: number): { readonly moved: number; readonly nextDueMs: number | null } {
    const due = [...this.pending.entries()].filter(([, p]) => p.dueMs <= nowMs).sort(([, a], [, b]) => a.dueMs - b.dueMs || a.order - b.order);
    for (const [path, p] of due) {
      this.pending.delete(path);
      this.ready.delete(path);
      this.seq += 1;
      this.ready.set(path, { seq: this.seq, path, op: p.op, recursive: p.recursive, size: p.size, sinceMs: p.sinceMs, readyAtMs: nowMs });
    }
    this.dropOldest();
    let nextDueMs: number | null = null;
    for (const p of this.pending.values()) if (nextDueMs === null || p.dueMs < nextDueMs) nextDueMs = p.dueMs;
    return { moved: due.length, nextDueMs };
  }

  private dropOldest(): void {
    let over = this.ready.size - this.limits.maxReady;
    if (over <= 0) return;
    let last = 0;
    for (const [path, e] of this.ready) {
      if (over-- <= 0) break;
      this.ready.delete(path);
      last = e.seq;
    }
    // A standby that had not acknowledged `last` missed a dropped entry.
    if (last >= this.floorAt.seq) this.floorAt = { seq: last, why: `more than ${this.limits.maxReady} changes waited for the slowest standby` };
  }

  /**
   * Ready entries after `cursor`, in seq order, at most `maxFiles` and about
   * `maxBytes` (the first entry is always included, however large). `more`:
   * entries after the last one returned.
   */
  after(cursor: number, maxFiles: number, maxBytes: number): { readonly entries: readonly ReadyEntry[]; readonly more: number } {
    const entries: ReadyEntry[] = [];
    let bytes = 0;
    let more = 0;
    for (const e of this.ready.values()) {
      if (e.seq <= cursor) continue;
      if (more > 0 || entries.length >= maxFiles || (entries.length > 0 && bytes + e.size > maxBytes)) {
        more += 1;
        continue;
      }
      entries.push(e);
      bytes += e.size;
    }
    return { entries, more };
  }

  /** Files, bytes and the oldest first-event time not yet acknowledged by a standby at `cursor`. */
  behind(cursor: number): { readonly files: number; readonly bytes: number; readonly oldestSinceMs: number | null } {
    let files = 0;
    let bytes = 0;
    let oldestSinceMs: number | null = null;
    for (const e of this.ready.values()) {
      if (e.seq <= cursor) continue;
      files += 1;
      bytes += e.size;
      if (oldestSinceMs === null || e.sinceMs < oldestSinceMs) oldestSinceMs = e.sinceMs;
    }
    return { files, bytes, oldestSinceMs };
  }

  /** Forgets entries every standby acknowledged (`upTo`: the lowest cursor among them). */
  trim(upTo: number): number {
    let n = 0;
    for (const [path, e] of this.ready) {
      if (e.seq > upTo) break;
      this.ready.delete(path);
      n += 1;
    }
    return n;
  }
}
