// The fence guard's wire contract, as the agent sees it. The guard itself is a
// native program (src/fence/native/, built to dist/fence/understudy-fence-guard);
// the messages are one JSON object per line over its unix socket, both ways,
// and a message the guard cannot use is logged and ignored
// (docs/architecture.md, "The fence guard").
import type { WatchdogSettings, WatchdogStatus } from "./port.js";

/** What the guard must undo at the deadline. */
export interface FenceOrders {
  /** `ip` argv that removes the VIP, e.g. ["ip","addr","del","198.18.0.100/24","dev","eth0"]; null: no VIP. */
  readonly dropVip: readonly string[] | null;
  /** vip.backend keepalived: write "1" here first, so keepalived goes to FAULT and cannot take the address back. */
  readonly keepalivedTrackFile?: string | null;
  /** Stop the daemon: signal the pid in this pidfile (process backend)... */
  readonly daemonPidfile: string | null;
  /** ...or run this command (command/systemd backends). Null for both: leave the daemon (warm mode). */
  readonly stopArgv: readonly string[] | null;
}

export type GuardMessage =
  /**
   * deadlineMs is on the host's CLOCK_MONOTONIC (Clock.systemMonotonicMs), so no transit delay can stretch it.
   * leaseEndMs (same clock): when etcd may expire the lease at the earliest; bounds the watchdog's feeding.
   */
  | { readonly arm: { readonly deadlineMs: number; readonly leaseEndMs?: number; readonly orders: FenceOrders } }
  | { readonly disarm: true }
  /** Sent by the agent on every (re)connection: the watchdog to use while armed, or null for none. */
  | { readonly watchdog: WatchdogSettings | null };

/** What the guard tells its agents: the watchdog's state, whenever it changes or settings arrive. */
export type GuardReply = { readonly watchdog: WatchdogStatus };
