// The fence guard port (docs/architecture.md, "The fence guard"): what the
// HA core may rely on from the separate process that fences this node if the
// agent stops renewing its lease. The adapter is FenceGuardLink (client.ts)
// talking to the native guard (native/); tests use strict fakes of this
// interface.
//
// The watchdog device has no port of its own in TypeScript: the agent never
// opens it. The native guard drives it (native/watchdog.c: checks nowayout and
// the timeout, opens it on a primary's heartbeat, feeds it never past
// leaseEnd - safety margin - timeout, magic-closes it on disarm), so that a
// frozen guard or a stalled host is reset before etcd can expire the lease.
// The agent only says what it wants (WatchdogSettings) and reads back what
// the guard reports (WatchdogStatus), both through the FenceGuard below.

/** What the agent tells the guard to hold while primary (computed from config: config/watchdog.ts). */
export interface WatchdogSettings {
  readonly mode: "automatic" | "required";
  readonly device: string;
  /** The timeout the guard sets on the device, whole seconds. */
  readonly timeoutS: number;
  /** The device resets the node at least this long before the lease could expire in etcd. */
  readonly safetyMarginMs: number;
}

/**
 * off: not configured. unavailable: configured but unusable (see problem).
 * ready: checked and its timeout set, not running. active: open and being fed.
 */
export type WatchdogState = "off" | "unavailable" | "ready" | "active";

export interface WatchdogStatus {
  readonly state: WatchdogState;
  readonly device?: string;
  readonly timeoutS?: number;
  readonly problem?: string;
}

/**
 * The fence guard, as the HA loop sees it.
 *
 * Guarantees an implementation must give:
 * - Deadlines are absolute times on the host-wide CLOCK_MONOTONIC
 *   (Clock.systemMonotonicMs), never durations: a message delivered late
 *   cannot stretch the deadline it carries.
 * - Once `arm(deadline)` has been called, and until `disarm()`, the guard
 *   fences (drops the floating IP, stops the daemon) when the deadline passes
 *   without a later `arm`, even if this process freezes or dies.
 * - `arm` and `disarm` never throw and never block: a guard problem is
 *   logged, and the lease deadline in the agent still fences on its own.
 * - `armWatchdog` resolves within `timeoutMs` (with the last known status if
 *   the guard did not answer in time); it never rejects.
 * - After `close()`, nothing is sent, no guard is started, no timer is armed.
 */
export interface FenceGuard {
  /** Fence at this deadline unless re-armed before it. leaseEnd: the earliest etcd may expire the lease; the watchdog is fed only well before it. */
  arm(deadlineSystemMs: number, leaseEndSystemMs?: number): void;
  disarm(): void;
  close(): Promise<void>;
  /** The watchdog as the guard last reported it. */
  watchdogStatus(): WatchdogStatus;
  /** Arm, and wait (at most timeoutMs) for the guard to say whether the watchdog runs. */
  armWatchdog(deadlineSystemMs: number, leaseEndSystemMs: number, timeoutMs: number): Promise<WatchdogStatus>;
}
