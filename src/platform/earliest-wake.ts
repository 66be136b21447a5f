// One pending wake-up that only ever moves earlier. The HA loop asks to look
// again at a time a decision named (a ranking delay, a restart backoff, a
// scheduled move, a drain poll); every cycle re-derives what it still needs,
// so a wake-up that comes too early costs one idempotent cycle, while one
// pushed later by a less urgent request would leave the urgent one waiting
// for the next tick. Hence: a request later than the pending one is dropped,
// an earlier one replaces it.
import type { Clock, TimerHandle } from "./clock.js";

export class EarliestWake {
  private handle: TimerHandle | undefined;
  private atMs = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly fire: (why: string) => void,
  ) {}

  /** Wake `ms` from now, unless a wake-up at or before then is already pending. Returns whether it (re)armed. */
  in(ms: number, why: string): boolean {
    if (this.closed) return false;
    const delay = Math.max(0, ms);
    const at = this.clock.monotonicMs() + delay;
    if (this.handle !== undefined && this.atMs <= at) return false;
    this.handle?.cancel();
    this.atMs = at;
    this.handle = this.clock.setTimer(delay, () => {
      this.handle = undefined;
      this.atMs = Number.POSITIVE_INFINITY;
      this.fire(why);
    });
    return true;
  }

  /** Cancel what is pending and arm nothing from now on. */
  close(): void {
    this.closed = true;
    this.handle?.cancel();
    this.handle = undefined;
  }
}
