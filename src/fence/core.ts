import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import { WatchdogKeeper, type WatchdogDevice, type WatchdogSettings, type WatchdogStatus } from "./watchdog.js";

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

export interface GuardDeps {
  readonly clock: Clock;
  readonly runner: CommandRunner;
  readonly log: (line: string) => void;
  /** Signal a pid read from the pidfile; injectable for tests. */
  readonly kill: (pid: number, signal: NodeJS.Signals) => void;
  readonly readPid: (pidfile: string) => number | undefined;
  /** Write a small file (the keepalived track file); injectable for tests. */
  readonly writeFile?: (file: string, content: string) => void;
  /** Whether a pid still runs (signal 0); without it the guard waits the full second before SIGKILL. */
  readonly alive?: (pid: number) => boolean;
  /** The watchdog device at a path; without it the watchdog stays off. */
  readonly watchdog?: (path: string) => WatchdogDevice;
  /** Send a reply to every connected agent. */
  readonly reply?: (msg: GuardReply) => void;
  /** Called once the guard has nothing left to do (fenced, or disarmed with no agent). */
  readonly exit: (code: number) => void;
}

/**
 * The fence guard's logic, separate from the agent's event loop: it holds the
 * primary's lease deadline as last reported, and if the deadline passes with
 * no new heartbeat (agent frozen, killed, stuck on I/O) it drops the VIP and
 * stops the daemon itself, then exits. The deadline is measured on the
 * guard's own monotonic clock from when the heartbeat arrived, which is after
 * the agent computed it: the guard fires at most a pipe's latency after the
 * agent would have, well inside the fence margin before etcd expires the lease.
 */
export class GuardCore {
  private timer: TimerHandle | undefined;
  private orders: FenceOrders | null = null;
  private clients = 0;
  private fenced = false;
  readonly watchdog: WatchdogKeeper;

  constructor(private readonly deps: GuardDeps) {
    const device = deps.watchdog;
    this.watchdog = new WatchdogKeeper({
      clock: deps.clock,
      device: (path) => {
        if (!device) throw new Error("this guard cannot drive a watchdog");
        return device(path);
      },
      log: deps.log,
      report: (status) => deps.reply?.({ watchdog: status }),
    });
  }

  armed(): boolean {
    return this.timer !== undefined;
  }

  handle(msg: GuardMessage): void {
    if (this.fenced) return;
    if ("watchdog" in msg) {
      void this.watchdog.configure(msg.watchdog);
      return;
    }
    if ("disarm" in msg) {
      this.timer?.cancel();
      this.timer = undefined;
      this.orders = null;
      this.watchdog.release("disarmed (no longer primary)");
      return;
    }
    const { deadlineMs, leaseEndMs, orders } = msg.arm;
    this.orders = orders;
    this.timer?.cancel();
    const remaining = deadlineMs - this.deps.clock.systemMonotonicMs();
    this.timer = this.deps.clock.setTimer(Math.max(0, remaining), () => void this.fence());
    if (leaseEndMs !== undefined && remaining > 0) this.watchdog.hold(leaseEndMs);
  }

  connected(): void {
    this.clients++;
  }

  /** An agent went away. Disarmed and alone: nothing to guard. Armed: wait for the deadline (a restarted agent may reconnect). */
  disconnected(): void {
    this.clients = Math.max(0, this.clients - 1);
    if (this.clients === 0 && !this.armed() && !this.fenced) this.deps.exit(0);
  }

  /** The guard itself is being stopped: fence now if armed, else just go. */
  shutdown(): void {
    if (this.fenced) return;
    if (this.armed()) {
      this.timer?.cancel();
      void this.fence();
    } else {
      this.deps.exit(0);
    }
  }

  private async fence(): Promise<void> {
    const orders = this.orders;
    this.timer = undefined;
    this.fenced = true;
    this.watchdog.pause();
    let clean = true;
    this.deps.log("lease deadline passed without a heartbeat: fencing (dropping the VIP, stopping the daemon)");
    if (orders?.keepalivedTrackFile && this.deps.writeFile) {
      try {
        this.deps.writeFile(orders.keepalivedTrackFile, "1\n");
        this.deps.log(`keepalived track file ${orders.keepalivedTrackFile} set to 1 (FAULT)`);
      } catch (e) {
        clean = false;
        this.deps.log(`keepalived track file: ${String(e)}`);
      }
    }
    if (orders?.dropVip) {
      const r = await this.deps.runner.run(orders.dropVip, { timeoutMs: 2000 }).catch((e: unknown) => ({ code: -1, stderr: String(e) }));
      // `ip addr del` of an address that is not there: already gone, which is the goal.
      const gone = r.code === 0 || /Cannot assign requested address/.test(String(r.stderr));
      if (!gone) clean = false;
      this.deps.log(r.code === 0 ? "VIP removed" : gone ? "VIP was not present" : `VIP removal: exit ${r.code} ${String(r.stderr).trim()}`);
    }
    if (orders?.daemonPidfile) {
      const pid = this.deps.readPid(orders.daemonPidfile);
      if (pid !== undefined) {
        this.signal(pid, "SIGTERM");
        const alive = this.deps.alive;
        for (let waited = 0; waited < 1000 && (!alive || alive(pid)); waited += 50) await this.deps.clock.sleep(50);
        if (!alive || alive(pid)) this.signal(pid, "SIGKILL");
        this.deps.log(`daemon pid ${pid} stopped`);
      }
    } else if (orders?.stopArgv) {
      const r = await this.deps.runner.run(orders.stopArgv, { timeoutMs: 10_000 }).catch((e: unknown) => ({ code: -1, stderr: String(e) }));
      if (r.code !== 0) clean = false;
      this.deps.log(r.code === 0 ? "daemon stopped" : `daemon stop: exit ${r.code} ${String(r.stderr).trim()}`);
    }
    if (clean) this.watchdog.release("fenced cleanly");
    else if (this.watchdog.leaveRunning()) {
      // Stay, holding the device open and unfed, until the kernel resets the node: a watchdog
      // closed without the magic character is fed once more by the kernel ("watchdog did not
      // stop!"), so exiting would move the reset to exit + timeout, past lease_end - safety_margin.
      return;
    }
    this.deps.exit(0);
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try {
      this.deps.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}
