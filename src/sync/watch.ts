// Watches the sync roots on the primary. Events are HINTS, never the truth:
// they only say "recompute this root's manifest soon". Bursts are coalesced
// into one onChange per debounce window, and a periodic full reconcile (all
// roots) catches whatever the watcher missed or dropped. (The sync engine
// turns that one off and sweeps its roots itself, beside its passes:
// sweep.ts.)
//
// The reconcile runs on a Clock timer, not node-cron: it is an interval, not a
// calendar schedule; a Clock timer is driven by FakeClock in tests, follows
// the monotonic clock (cron follows the wall clock and jumps with NTP steps),
// and needs no dependency.
import { resolve, sep } from "node:path";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import { dirTreeSource } from "./watch-source.js";

export type ChangeCause = "events" | "reconcile";

/** Receives raw hints from a watch source. */
export interface WatchSink {
  /** Something happened at or under `path` (absolute). */
  event(path: string): void;
  error(e: unknown): void;
}

export interface WatchSource {
  /** Resolves once the source sees changes (the initial scan is done). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export type WatchSourceFactory = (roots: readonly string[], sink: WatchSink) => WatchSource;

export interface TreeWatcherOptions {
  readonly roots: readonly string[];
  readonly clock: Clock;
  /**
   * Called with the roots that changed, as normalised by path.resolve (no
   * trailing slash). Never called concurrently: roots
   * that change while it runs are delivered in the next call. A rejection
   * goes to onError and does not stop the watcher.
   */
  readonly onChange: (rootsChanged: ReadonlySet<string>, cause: ChangeCause) => void | Promise<void>;
  /** Watcher errors (as US_E_SYNC_WATCH) and onChange failures. */
  readonly onError: (e: unknown) => void;
  /** Quiet time that ends a burst. Default 20 ms. */
  readonly debounceMs?: number;
  /** Longest a burst may postpone delivery, so a tree that never goes quiet still syncs. Default 250 ms. */
  readonly maxDelayMs?: number;
  /**
   * Full reconcile period. Default 60 000 ms. null: none (the sync engine
   * checks its roots itself, off the pass: sweep.ts).
   */
  readonly reconcileMs?: number | null;
  /** Default dirTreeSource() (watch-source.ts). Tests inject a fake. */
  readonly source?: WatchSourceFactory;
}

function checkMs(setting: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting, problem: `must be at least ${min} ms`, value: String(value) });
  }
  return value;
}

export class TreeWatcher {
  private readonly roots: string[];
  private readonly opts: TreeWatcherOptions;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly reconcileMs: number | null;
  private source: WatchSource | undefined;
  private pending = new Set<string>();
  private pendingReconcile = false;
  private burstStartedAt: number | undefined;
  private flushTimer: TimerHandle | undefined;
  private reconcileTimer: TimerHandle | undefined;
  private running = false;
  private closed = false;
  private release: () => void = () => {};
  /** Settles on close(): start() stops waiting for a source that will never be ready. */
  private readonly closing = new Promise<void>((res) => (this.release = res));

  /** Validates timing at construction (US_E_SYNC_CONFIG). */
  constructor(opts: TreeWatcherOptions) {
    this.opts = opts;
    this.roots = [...new Set(opts.roots.map((r) => resolve(r)))];
    if (this.roots.length === 0) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.roots", problem: "must list at least one root", value: "[]" });
    }
    this.debounceMs = checkMs("sync.debounce", opts.debounceMs ?? 20, 0);
    this.maxDelayMs = checkMs("sync.max_delay", opts.maxDelayMs ?? 250, this.debounceMs);
    this.reconcileMs = opts.reconcileMs === null ? null : checkMs("sync.reconcile_interval", opts.reconcileMs ?? 60_000, 1000);
  }

  /**
   * Start watching and arm the reconcile timer; resolves when the source is
   * ready, or when close() is called first. The sync engine's pass awaits
   * this: a node demoted during the watcher's first scan closed it, and a
   * `ready` that never came held that pass, and every pass after it, for
   * ever (the standby stopped following; seen in the failsafe chaos run).
   */
  async start(): Promise<void> {
    if (this.source || this.closed) return;
    const factory = this.opts.source ?? dirTreeSource();
    this.source = factory(this.roots, {
      event: (path) => this.hint(path),
      error: (e) => this.report(new UnderstudyError("US_E_SYNC_WATCH", { cause: describeError(e) }, { cause: e })),
    });
    this.armReconcile();
    await Promise.race([this.source.ready, this.closing]);
  }

  /** Queue every root for delivery now, as the periodic reconcile does (e.g. for POST /resync). */
  reconcileNow(): void {
    if (this.closed) return;
    for (const r of this.roots) this.pending.add(r);
    this.pendingReconcile = true;
    this.burstStartedAt ??= this.opts.clock.monotonicMs();
    this.arm(0);
  }

  /** Stop watching and cancel timers; a start() still waiting for the source returns. No onChange starts after this resolves. */
  async close(): Promise<void> {
    this.closed = true;
    this.release();
    this.flushTimer?.cancel();
    this.reconcileTimer?.cancel();
    this.flushTimer = this.reconcileTimer = undefined;
    const s = this.source;
    this.source = undefined;
    await s?.close();
  }

  private hint(path: string): void {
    if (this.closed) return;
    const root = this.rootOf(resolve(path));
    // An event outside every root is unexpected; a hint for all roots costs one extra manifest.
    for (const r of root === undefined ? this.roots : [root]) this.pending.add(r);
    const now = this.opts.clock.monotonicMs();
    this.burstStartedAt ??= now;
    this.arm(Math.min(this.debounceMs, this.burstStartedAt + this.maxDelayMs - now));
  }

  /** onError must not throw into a timer or a detached promise; a throwing handler is ignored. */
  private report(e: unknown): void {
    try {
      this.opts.onError(e);
    } catch {
      // Nowhere left to send it.
    }
  }

  private rootOf(path: string): string | undefined {
    let best: string | undefined;
    for (const r of this.roots) {
      if ((path === r || path.startsWith(r.endsWith(sep) ? r : r + sep)) && (best === undefined || r.length > best.length)) best = r;
    }
    return best;
  }

  private arm(delayMs: number): void {
    this.flushTimer?.cancel();
    this.flushTimer = this.opts.clock.setTimer(Math.max(0, delayMs), () => {
      this.flushTimer = undefined;
      this.flush();
    });
  }

  private armReconcile(): void {
    if (this.reconcileMs === null) return;
    this.reconcileTimer = this.opts.clock.setTimer(this.reconcileMs, () => {
      if (this.closed) return;
      this.reconcileNow();
      this.armReconcile();
    });
  }

  private flush(): void {
    if (this.closed || this.running || this.pending.size === 0) return;
    const batch: ReadonlySet<string> = this.pending;
    const cause: ChangeCause = this.pendingReconcile ? "reconcile" : "events";
    this.pending = new Set();
    this.pendingReconcile = false;
    this.burstStartedAt = undefined;
    this.running = true;
    void (async () => {
      try {
        await this.opts.onChange(batch, cause);
      } catch (e) {
        this.report(e);
      } finally {
        this.running = false;
        // Hints that arrived meanwhile: their debounce may already have expired.
        if (this.pending.size > 0 && this.flushTimer === undefined) this.arm(0);
      }
    })();
  }
}
