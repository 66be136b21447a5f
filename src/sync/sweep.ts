// The periodic check of every root (`sync.reconcile_interval`), made beside
// the pass so that a pull or a publish does not wait for it (issue 16 part 5). Before,
// the check was a step of the pass: a 1 GiB root took 0.5–1 s to walk, and a
// small change that arrived meanwhile waited for it (the sync benchmark's p99).
//
// A sweep only reads: it walks each root in turn (hash cache and hash worker
// shared with the pass), and planSweep() says what the result means. On a
// difference the side marks the root for the pass (the primary rebuilds and
// publishes it, a standby verifies it: rescue, then pull), so every change to
// live files still happens in the pass, one at a time. A result read while the
// pass replaced the reference it is compared with is dropped (the pass's own
// check is newer), as is one for a root the pass will check anyway.
//
// One sweep at a time: a slow one is not stacked by the next period (that
// period's sweep is skipped, at debug). A side change or close aborts it
// between files, once its hashes in flight (at most 2) are done. It hashes
// at most 2 files at once, since the hash worker serves requests in order
// and a pass's hashes queue behind them, and it does not prune the shared
// hash cache (an apply may be adding entries meanwhile).
import { describeError } from "../errors/catalogue.js";
import { settlesWithin, type Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { EngineRoot } from "./engine-types.js";
import type { Manifest, WalkOptions } from "./manifest.js";
import { planSweep, type SweepVerdict, type SyncSide } from "./plan.js";

/** What a side lends the sweep (PrimarySide, StandbySide). */
export interface SweepTarget {
  readonly side: SyncSide;
  /** The manifest the root is compared with now (its identity tells whether the pass replaced it), or null. */
  reference(root: string): Manifest | null;
  /** The next pass rebuilds or verifies the root anyway. */
  due(root: string): boolean;
  /** Read the live root (buildManifest with these options). */
  read(root: EngineRoot, opts: WalkOptions): Promise<Manifest>;
  /** Hand the root to the pass (a drift, or a read that failed: the pass reports it). */
  drifted(root: string, why: string): void;
}

const MAX_YIELD_MS = 1000;
/** A sweep stops waiting for passes after this much waiting in total: a stream of passes cannot stretch it for ever. */
const MAX_WAIT_PER_SWEEP_MS = 10_000;
/** Files a sweep hashes at once: the hash worker serves requests in order, so a pass's hashes queue behind these. */
const SWEEP_HASHES_IN_FLIGHT = 2;

export class RootSweep {
  private running: Promise<void> | null = null;
  /** How long the running sweep has waited for passes. */
  private waitedMs = 0;
  private controller: AbortController | null = null;
  /** Sweeps finished, and roots handed to the pass: for status and tests. */
  readonly counts = { sweeps: 0, drifts: 0 };

  constructor(
    private readonly roots: readonly EngineRoot[],
    private readonly log: Logger,
    private readonly clock: Clock,
    /** The engine's passes: while one runs, the sweep waits between directories (up to MAX_YIELD_MS each time). */
    private readonly pass: { busy(): boolean; idle(): Promise<void> },
  ) {}

  /** Start a sweep of every root unless one is running. Returns whether one started. */
  start(target: SweepTarget): boolean {
    if (this.running) {
      this.log.debug({ side: target.side }, "sync: the previous sweep is still running; this period's is skipped");
      return false;
    }
    const controller = new AbortController();
    this.controller = controller;
    this.waitedMs = 0;
    this.running = this.sweep(target, controller.signal)
      .catch((e: unknown) => this.log.error({ err: describeError(e), side: target.side }, "sync: a sweep failed past its own error handling"))
      .finally(() => {
        this.running = null;
        this.controller = null;
      });
    return true;
  }

  /** Whether a sweep is running. */
  busy(): boolean {
    return this.running !== null;
  }

  /** Resolves when no sweep runs (never rejects). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Abort the running sweep between files (side change, close); idle() tells when it ended. */
  abort(): void {
    this.controller?.abort();
  }

  private async sweep(target: SweepTarget, signal: AbortSignal): Promise<void> {
    for (const r of this.roots) {
      if (signal.aborted) return;
      const before = target.reference(r.name);
      // Nothing to learn from reading it: say why without reading.
      const first = planSweep({ side: target.side, root: r.name, reference: before?.digest ?? null, changedMeanwhile: false, due: target.due(r.name) });
      if (first.kind !== "read") {
        this.log.debug({ root: r.name, side: target.side }, `sync: ${first.reason}`);
        continue;
      }
      let live: Manifest;
      try {
        live = await target.read(r, { signal, pace: () => this.yieldToPass(), hashesInFlight: SWEEP_HASHES_IN_FLIGHT, prune: false });
      } catch (e) {
        if (signal.aborted) return;
        // Not judged here: the pass reads the root again and reports the failure its own way.
        this.handOver(target, r.name, `could not read ${r.name} (${describeError(e)}): the next pass checks it`);
        continue;
      }
      if (signal.aborted) return; // the walk may end on its last file after the abort
      const now = target.reference(r.name);
      const verdict: SweepVerdict = planSweep({
        side: target.side,
        root: r.name,
        reference: now?.digest ?? null,
        live: live.digest,
        changedMeanwhile: now !== before,
        due: target.due(r.name),
      });
      if (verdict.kind === "drift") this.handOver(target, r.name, verdict.reason);
      else this.log.debug({ root: r.name, side: target.side }, `sync: ${verdict.reason}`);
    }
    this.counts.sweeps++;
  }

  /**
   * Beside the pass is not enough: the sweep's walk shares the event loop (and
   * on a 2-core host the CPU) with the pass, and slowed a pull that ran during
   * it from ~0.3 s to ~1 s in the sync benchmark. So before each directory it
   * lets a running pass finish first, waiting at most MAX_YIELD_MS at a time so
   * a stream of passes cannot starve it.
   */
  private async yieldToPass(): Promise<void> {
    if (!this.pass.busy() || this.waitedMs >= MAX_WAIT_PER_SWEEP_MS) return;
    const t0 = this.clock.monotonicMs();
    await settlesWithin(this.clock, MAX_YIELD_MS, this.pass.idle());
    this.waitedMs += this.clock.monotonicMs() - t0;
  }

  private handOver(target: SweepTarget, root: string, why: string): void {
    this.counts.drifts++;
    this.log.info({ root, side: target.side }, `sync: ${why}`);
    target.drifted(root, why);
  }
}
