// The periodic check of every root (`sync.reconcile_interval`), made off the
// pass so that it never holds up a pull or a publish (issue 16 part 5). Before,
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
// One sweep at a time: a slow one is not stacked by the next period. A side
// change or close aborts it between files.
import { describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { EngineRoot } from "./engine-types.js";
import type { Manifest } from "./manifest.js";
import { planSweep, type SweepVerdict, type SyncSide } from "./plan.js";

/** What a side lends the sweep (PrimarySide, StandbySide). */
export interface SweepTarget {
  readonly side: SyncSide;
  /** The manifest the root is compared with now (its identity tells whether the pass replaced it), or null. */
  reference(root: string): Manifest | null;
  /** The next pass rebuilds or verifies the root anyway. */
  due(root: string): boolean;
  /** Read the live root (buildManifest with these options). */
  read(root: EngineRoot, opts: { readonly signal: AbortSignal; readonly pace: () => Promise<void> }): Promise<Manifest>;
  /** Hand the root to the pass (a drift, or a read that failed: the pass reports it). */
  drifted(root: string, why: string): void;
}

const MAX_YIELD_MS = 1000;

export class RootSweep {
  private running: Promise<void> | null = null;
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
    if (this.running) return false;
    const controller = new AbortController();
    this.controller = controller;
    this.running = this.sweep(target, controller.signal).finally(() => {
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
      let live: Manifest;
      try {
        live = await target.read(r, { signal, pace: () => this.yieldToPass() });
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
    if (!this.pass.busy()) return;
    let timer: TimerHandle | undefined;
    await Promise.race([this.pass.idle(), new Promise<void>((r) => (timer = this.clock.setTimer(MAX_YIELD_MS, r)))]);
    timer?.cancel();
  }

  private handOver(target: SweepTarget, root: string, why: string): void {
    this.counts.drifts++;
    this.log.info({ root, side: target.side }, `sync: ${why}`);
    target.drifted(root, why);
  }
}
