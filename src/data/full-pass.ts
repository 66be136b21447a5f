// A full pass made durable by one barrier instead of one fsync per new file
// (docs/data-replication-design.md §6, "Durability of a full pass"). With
// data.fsync on, a batch of the stream keeps rsync's --fsync (a few files
// each); a full pass of a whole root (100,000 files at the issue size) spent
// most of its time in them: 1.63-1.99× plain rsync, 1.20× `rsync --fsync`.
// Now a full pass runs
//   1. the barrier once, as a probe: a standby whose agent predates the
//      barrier module (or whose root has another filesystem mounted below
//      it) answers "Unknown module" and gets the per-file pass;
//   2. rsync --ignore-existing without --fsync: only the names the standby
//      lacks, so nothing it holds is replaced by an unsynced file; the
//      barrier runs every 2 s meanwhile (write-behind, not counted);
//   3. the barrier (the standby's `sync --file-system` on the root);
//   4. the full pass as before, --fsync: what changed, deletions, modes.
//      On a first sync it finds nothing left to copy.
// The pass counts, and the cursor moves, only once all of it returned 0. A
// sync that failed (probe or barrier), or a barrier whose outcome is unknown,
// may leave files in the standby's cache only, with the primary's size and
// time: the next full pass of every root to it sends every file again, with
// --fsync (rewrite). planFullPass decides (pure); runFullPass runs it.
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import { barrierCommand, fullPassCommand, newFilesCommand, type DataRsyncOptions } from "./rsync-argv.js";
import { unknownModule } from "./ship-plan.js";
import { rsyncOutcome, type CommandOutcome } from "./warm-rsync.js";

/** How a full pass makes its files durable on the standby. */
export type FullPassDurability = "barrier" | "per-file" | "rewrite" | "none";

export type FullPassStep =
  | { readonly kind: "probe"; readonly reason: string }
  | { readonly kind: "copy"; readonly durability: FullPassDurability; readonly reason: string }
  | { readonly kind: "fail"; readonly reason: string };

/**
 * The next step of a full pass. `fsync`: data.fsync; `rewrite`: a sync of this standby's
 * data volume failed since this root's last complete pass; `bulk`: the standby has no cursor in
 * this journal (first pass of a term, reappeared, overflow), so it may lack much: a reconcile of a
 * standby in sync changes few files, and one pass with --fsync is cheaper than two walks; `probe`: the probe's outcome, once run.
 */
export function planFullPass(s: { readonly fsync: boolean; readonly rewrite: boolean; readonly bulk: boolean }, probe?: CommandOutcome): FullPassStep {
  if (!s.fsync) return { kind: "copy", durability: "none", reason: "data.fsync is off: the pass counts once rsync returns" };
  if (s.rewrite) return { kind: "copy", durability: "rewrite", reason: "a sync of the standby's data volume failed: every file is sent again, each fsynced" };
  if (!s.bulk) return { kind: "copy", durability: "per-file", reason: "a reconcile of a standby in sync: one pass, the few files it copies each fsynced" };
  if (probe === undefined) return { kind: "probe", reason: "asking the standby's barrier whether it has one" };
  if (probe.code === 0) return { kind: "copy", durability: "barrier", reason: "new files, one sync of the standby's data volume, then the pass with --fsync" };
  // No barrier module: an agent from before it, a root one sync would not cover, or a term it does not receive.
  if (unknownModule(probe.code, probe.stderr))
    return { kind: "copy", durability: "per-file", reason: "the standby has no barrier module for this root (an older agent, or one sync would not cover it): each file fsynced" };
  return { kind: "fail", reason: `the standby could not sync its data volume before the pass: ${lastLines(probe.stderr)}` };
}

export interface FullPassResult extends CommandOutcome {
  readonly durability: FullPassDurability;
  /** The barrier's time; null when none ran. */
  readonly barrierMs: number | null;
  /**
   * A sync of the standby's data volume failed (the probe's or the barrier's exec), or the barrier's
   * outcome is unknown after unsynced writes: the next pass of every root to it must rewrite.
   */
  readonly syncFailed: boolean;
}

/** The daemon ran the barrier's `sync --file-system` and it exited non-zero. */
function execFailed(r: CommandOutcome): boolean {
  return /pre-xfer exec returned failure/.test(r.stderr);
}

/** Runs one full pass as planFullPass says; never throws (a spawn failure is code -1). */
export async function runFullPass(o: {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly rsync: DataRsyncOptions;
  readonly maxDelete: number;
  readonly rewrite: boolean;
  /** planFullPass's `bulk`: the standby has no cursor in this journal. */
  readonly bulk: boolean;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}): Promise<FullPassResult> {
  const runWith = (argv: string[], signal: AbortSignal): Promise<CommandOutcome> => rsyncOutcome(() => o.runner.run(argv, { timeoutMs: o.timeoutMs, signal }));
  const run = (argv: string[]) => runWith(argv, o.signal);
  const ok = (r: CommandOutcome) => r.code === 0 || r.code === 24;
  const settings = { fsync: o.rsync.fsync ?? true, rewrite: o.rewrite, bulk: o.bulk };
  let step = planFullPass(settings);
  let probe: CommandOutcome | undefined;
  if (step.kind === "probe") step = planFullPass(settings, (probe = await run(barrierCommand(o.rsync))));
  if (step.kind !== "copy") return { code: -1, stderr: step.reason, durability: "barrier", barrierMs: null, syncFailed: probe !== undefined && execFailed(probe) };
  const { durability } = step;
  const whole = (fsync: boolean) => run(fullPassCommand({ ...o.rsync, fsync, maxDelete: o.maxDelete, rewrite: durability === "rewrite" }));
  if (durability !== "barrier") return { ...(await whole(durability !== "none")), durability, barrierMs: null, syncFailed: false };
  // 1. The names the standby lacks, unsynced: nothing is renamed over a file it holds (and may
  //    have acknowledged), so a crash before the barrier loses only what was never acknowledged.
  //    Write-behind meanwhile: the disk works while the copy takes the CPU and the link.
  const fresh = await writeBehind(run(newFilesCommand({ ...o.rsync, fsync: false })), (signal) => runWith(barrierCommand(o.rsync), signal), {
    clock: o.clock,
    signal: o.signal,
    failed: (r) => !ok(r),
  });
  if (!ok(fresh) || o.signal.aborted) return { ...fresh, durability, barrierMs: null, syncFailed: false };
  // 2. The barrier: all of it on the standby's disk.
  const started = o.clock.monotonicMs();
  const barrier = await run(barrierCommand(o.rsync));
  const barrierMs = Math.round(o.clock.monotonicMs() - started);
  if (barrier.code !== 0) {
    const stderr = `the new files are copied but the standby could not sync its data volume (the next pass sends every file again): ${lastLines(barrier.stderr)}`;
    return { code: barrier.code, stderr, durability, barrierMs, syncFailed: !o.signal.aborted };
  }
  // 3. The full pass as before, each file fsynced: what changed, modes and times, deletions.
  return { ...(await whole(true)), durability, barrierMs, syncFailed: false };
}

/** How often the standby's data volume is synced while the new files are copied (writeBehind). */
export const WRITE_BEHIND_MS = 2000;

/**
 * Runs the barrier WRITE_BEHIND_MS after the last one returned (one at a time) until `copy`
 * settles, and waits for the one in flight: the final barrier then finds about the last interval's
 * files unwritten instead of the whole copy (the kernel may hold gigabytes dirty for 30 s). Their
 * outcomes do not count: only the barrier after the copy makes the pass durable, and it runs
 * whatever these did. A copy that `failed` (or threw) aborts the one in flight: its failure is
 * reported now, not after a sync that may take minutes.
 */
async function writeBehind<T>(
  copy: Promise<T>,
  barrier: (signal: AbortSignal) => Promise<unknown>,
  o: { readonly clock: Clock; readonly signal: AbortSignal; readonly failed: (r: T) => boolean },
): Promise<T> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal.addEventListener("abort", onAbort, { once: true });
  let done = false;
  let timer: TimerHandle | undefined;
  let inFlight: Promise<unknown> | undefined;
  const arm = () => {
    timer = o.clock.setTimer(WRITE_BEHIND_MS, () => {
      if (done || stop.signal.aborted) return;
      inFlight = barrier(stop.signal)
        .catch(() => undefined)
        .finally(() => {
          inFlight = undefined;
          if (!done) arm();
        });
    });
  };
  arm();
  try {
    const r = await copy;
    if (o.failed(r)) stop.abort();
    return r;
  } catch (e) {
    stop.abort();
    throw e;
  } finally {
    done = true;
    timer?.cancel();
    await inFlight;
    o.signal.removeEventListener("abort", onAbort);
  }
}

function lastLines(stderr: string): string {
  return stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 400) || "no message";
}
