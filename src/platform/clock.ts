// The only place that reads the wall clock or arms timers. Everything else gets
// a Clock, so timing logic is tested with test/fakes/clock.ts instead of sleeps.
import { recordLateness } from "./timer-lateness.js";

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds; never jumps with wall-clock steps. Use for deadlines. */
  monotonicMs(): number;
  /**
   * The host's CLOCK_MONOTONIC in milliseconds: the same timeline in every
   * process on this host, so a deadline can be handed to another process.
   */
  systemMonotonicMs(): number;
  /** Wall-clock milliseconds since the epoch; use only for timestamps shown to people. */
  wallMs(): number;
  /** Run `fn` once after `ms`. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** Resolve after `ms`, or reject with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * setTimeout's longest delay (2^31 - 1 ms, ~24.8 days); Node turns anything
 * longer into 1 ms, so a switchover scheduled months ahead would wake the HA
 * loop every millisecond. Longer waits fire at this bound; their owner looks
 * again and re-arms (every wake-up here is a "look again").
 */
export const MAX_TIMER_MS = 2_147_483_647;

const timerDelay = (ms: number): number => Math.min(MAX_TIMER_MS, Math.max(0, ms));

export class SystemClock implements Clock {
  monotonicMs(): number {
    return performance.now();
  }
  wallMs(): number {
    return Date.now();
  }
  systemMonotonicMs(): number {
    // libuv's hrtime reads CLOCK_MONOTONIC on Linux: shared by all processes on the host.
    return Number(process.hrtime.bigint() / 1000n) / 1000;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const delay = timerDelay(ms);
    const due = performance.now() + delay;
    const t = setTimeout(() => {
      recordLateness(due);
      fn();
    }, delay);
    return { cancel: () => clearTimeout(t) };
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = this.setTimer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      const onAbort = () => {
        t.cancel();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * Whether `p` resolves within `ms` on `clock` (false: the time ran out first;
 * `p` goes on). The timer is cancelled either way; a rejection of `p` passes
 * through. For the bounded waits of a stop or a yield.
 */
export async function settlesWithin(clock: Clock, ms: number, p: Promise<unknown>): Promise<boolean> {
  let timer: TimerHandle | undefined;
  try {
    return await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => (timer = clock.setTimer(ms, () => resolve(false))))]);
  } finally {
    timer?.cancel();
  }
}
