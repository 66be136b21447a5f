import type { Clock, TimerHandle } from "../../src/platform/clock.js";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that only moves when the test says so. Timers fire in order during advance(). */
export class FakeClock implements Clock {
  private now: number;
  private wall: number;
  private seq = 0;
  private timers: Pending[] = [];

  constructor(startMs = 1_000_000, wallStartMs = Date.UTC(2026, 0, 1)) {
    this.now = startMs;
    this.wall = wallStartMs;
  }

  monotonicMs(): number {
    return this.now;
  }
  wallMs(): number {
    return this.wall + this.now;
  }
  /** One fake timeline serves both: tests share a FakeClock between "processes". */
  systemMonotonicMs(): number {
    return this.now;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const p: Pending = { at: this.now + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(p);
    return { cancel: () => (p.cancelled = true) };
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const h = this.setTimer(ms, () => resolve());
      signal?.addEventListener(
        "abort",
        () => {
          h.cancel();
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }
  /** Number of armed, uncancelled timers. */
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
  /** Move time forward by ms, firing due timers in order, letting promise callbacks run between them. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      await flushMicrotasks();
      const due = this.timers.filter((t) => !t.cancelled && t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.now = Math.max(this.now, due.at);
      due.cancelled = true;
      this.timers = this.timers.filter((t) => !t.cancelled);
      due.fn();
    }
    this.now = target;
    await flushMicrotasks();
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
