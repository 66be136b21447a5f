// Write-behind for a long pull: while rsync fills a staging directory, flush
// that file system (`sync -f`, syncfs(2)) once a second, so the disk writes
// the staged bytes while the network still delivers the rest. The apply's
// one syncfs before its renames (apply.ts flushStaged) then finds little left
// to write. Without it, a first sync of 1 GiB left everything for that final
// flush: the page cache holds ~10 % of RAM before the kernel starts writing
// back by itself. Durability is unchanged (the final flush still runs); only
// when the writing happens moves. A pull shorter than the period (every
// small change) never spawns one.
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";

const PERIOD_MS = 1000;
const FLUSH_TIMEOUT_MS = 60_000;

export class WriteBehind {
  private timer: TimerHandle | undefined;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Flushes started (tests, logs). */
  flushes = 0;

  constructor(
    private readonly runner: CommandRunner,
    private readonly clock: Clock,
    private readonly dir: string,
  ) {
    this.arm();
  }

  /** No flush starts after this; resolves when the one running (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.running;
  }

  private arm(): void {
    this.timer = this.clock.setTimer(PERIOD_MS, () => {
      this.timer = undefined;
      if (this.stopped) return;
      this.flushes++;
      // A failed flush is harmless here: the apply's own flush decides.
      this.running = this.runner
        .run(["sync", "-f", this.dir], { timeoutMs: FLUSH_TIMEOUT_MS })
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.arm();
        });
    });
  }
}
