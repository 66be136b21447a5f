// How long the sync engine's pass has been running, said out loud. Passes run
// one at a time (SerialRunner), so a pass that cannot end stops every later
// one: a standby that was demoted while its watcher started once stopped
// following for good, silently (the failsafe chaos run). This shows the
// running pass in status, warns every LONG_PASS_MS it goes on, and bounds how
// long a stop waits for it.
import { settlesWithin, type Clock, type TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";

/** How long a pass runs before it is reported (and again each time as long). */
const LONG_PASS_MS = 10 * 60_000;
/** How long a stop waits for the running pass. */
const CLOSE_WAIT_MS = 10_000;

export interface RunningPass {
  readonly since: string;
  readonly forMs: number;
  readonly step: string;
}

export class PassWatch {
  private start: { readonly mono: number; readonly wall: number } | null = null;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    /** The step the pass is on (the engine's latest planner reason). */
    private readonly step: () => string,
    private readonly side: () => string,
  ) {}

  began(): void {
    this.start = { mono: this.clock.monotonicMs(), wall: this.clock.wallMs() };
    this.arm();
  }

  ended(): void {
    this.start = null;
    this.timer?.cancel();
    this.timer = undefined;
  }

  running(): RunningPass | null {
    const s = this.start;
    return s ? { since: new Date(s.wall).toISOString(), forMs: Math.round(this.clock.monotonicMs() - s.mono), step: this.step() } : null;
  }

  /**
   * Wait for the running pass and sweep (`idle`), but not for ever: a pass that cannot end
   * would hold the agent's stop until systemd kills it. After CLOSE_WAIT_MS it is left as a
   * crash would leave it (a pull only writes its staging copy, made again at the next start)
   * unless `applying()`: an apply between its first live change and its saved state is waited
   * for, since cut there the next start would rescue the primary's files it already placed.
   */
  async endOrLeave(idle: Promise<void>, applying: () => boolean): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    if (await settlesWithin(this.clock, CLOSE_WAIT_MS, idle)) return;
    if (applying()) {
      this.log.warn({ waited_ms: CLOSE_WAIT_MS }, `sync: waiting for the apply in progress before stopping (step: ${this.step()})`);
      await idle;
      return;
    }
    this.log.warn({ waited_ms: CLOSE_WAIT_MS }, `sync: the running pass did not end within ${CLOSE_WAIT_MS / 1000} s of the stop; left as it is (step: ${this.step()})`);
  }

  private arm(): void {
    this.timer = this.clock.setTimer(LONG_PASS_MS, () => {
      if (!this.start || this.stopped) return;
      const minutes = Math.round((this.clock.monotonicMs() - this.start.mono) / 60_000);
      this.log.warn({ side: this.side(), running_min: minutes }, `sync: a pass has run for ${minutes} min; no other pass runs until it ends (step: ${this.step()})`);
      this.arm();
    });
  }
}
