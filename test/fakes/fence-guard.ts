import type { FenceGuard, WatchdogStatus } from "../../src/fence/port.js";

export type FenceGuardCall = "arm" | "disarm" | "close" | "armWatchdog";

/**
 * A strict FenceGuard (src/fence/port.ts) that records every call. With no
 * watchdog (watchdog.mode off), armWatchdog fails the test: the loop must never
 * ask for it. `onCall` sees each call in order (for tests that check ordering).
 */
export class StrictFenceGuard implements FenceGuard {
  /** The deadlines arm() was given (host-wide monotonic ms), in order. */
  readonly arms: number[] = [];
  disarms = 0;
  closes = 0;
  readonly watchdogArms: { deadline: number; leaseEnd: number; timeoutMs: number }[] = [];

  constructor(
    private readonly watchdog: WatchdogStatus | null = null,
    private readonly onCall: (call: FenceGuardCall) => void = () => undefined,
  ) {}

  arm(deadlineSystemMs: number): void {
    this.arms.push(deadlineSystemMs);
    this.onCall("arm");
  }

  disarm(): void {
    this.disarms++;
    this.onCall("disarm");
  }

  async close(): Promise<void> {
    this.closes++;
    this.onCall("close");
  }

  watchdogStatus(): WatchdogStatus {
    return this.watchdog ?? { state: "off" };
  }

  async armWatchdog(deadlineSystemMs: number, leaseEndSystemMs: number, timeoutMs: number): Promise<WatchdogStatus> {
    if (!this.watchdog) throw new Error("unexpected armWatchdog: this guard has no watchdog (watchdog.mode off)");
    this.watchdogArms.push({ deadline: deadlineSystemMs, leaseEnd: leaseEndSystemMs, timeoutMs });
    this.onCall("armWatchdog");
    return this.watchdog;
  }
}
