// Hardware-grade fencing (DESIGN.md §4): the Linux watchdog device, held open
// by the fence guard while this node is primary. The guard keeps it fed only
// while the lease is safely ahead; if the guard itself freezes, or its fence
// fails, the kernel resets the node before etcd can expire the lease.
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { basename } from "node:path";
import type { CommandRunner } from "../platform/command.js";

/** How early the last feed before the bound is aimed, for timer lateness. */
const FINAL_FEED_LEAD_MS = 50;

/** What the agent tells the guard (computed from config: see watchdogTimeoutS). */
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
 * The watchdog timeout that keeps a healthy primary fed and still resets a
 * frozen one in time. The guard may feed the device only while
 * `now + timeout <= leaseEnd - safety_margin`; renewals arrive every
 * renew_interval and move leaseEnd to about now + ttl, so feeding never pauses
 * while renewals succeed if timeout <= ttl - renew_interval - safety_margin,
 * less a quarter second for the renewal's round trip. Whole seconds: the
 * watchdog API's unit.
 */
export function watchdogTimeoutS(t: { ttlMs: number; renewIntervalMs: number }, safetyMarginMs: number): number {
  return Math.floor((t.ttlMs - t.renewIntervalMs - safetyMarginMs - 250) / 1000);
}

/** The device, as the guard uses it. Errors are thrown as Error with a readable message. */
export interface WatchdogDevice {
  /**
   * Make sure the device can be used and stopped again, set its timeout, and
   * return the timeout it now has (seconds). Must not leave it running.
   */
  prepare(timeoutS: number): Promise<number>;
  /** Open the device: the kernel starts counting down from the timeout. */
  open(): void;
  /** Feed it: the countdown starts again. */
  keepalive(): void;
  /** Write the magic close character and close: the kernel stops the countdown. */
  stop(): void;
}

/**
 * /dev/watchdog through the kernel's watchdog API: any write feeds it, a
 * written "V" followed by close stops it (magic close). The timeout is set
 * with util-linux `wdctl --settimeout` (Node has no ioctl) and read back from
 * sysfs, where `nowayout` and `state` are read too: a device that can never be
 * stopped (nowayout) or that something else already runs (systemd's
 * RuntimeWatchdogSec=, the watchdog daemon) is refused before it is touched.
 */
export class LinuxWatchdog implements WatchdogDevice {
  private fd: number | undefined;

  constructor(
    private readonly device: string,
    private readonly runner: CommandRunner,
    private readonly sysfsRoot = "/sys/class/watchdog",
  ) {}

  private get sysfs(): string {
    const name = basename(this.device);
    // The legacy /dev/watchdog is the first device's alias.
    const id = name === "watchdog" ? "watchdog0" : /^watchdog\d+$/.test(name) ? name : null;
    if (!id) throw new Error(`${this.device} is not a watchdog device name (/dev/watchdog or /dev/watchdogN)`);
    return `${this.sysfsRoot}/${id}`;
  }

  private read(attr: string): string {
    try {
      return readFileSync(`${this.sysfs}/${attr}`, "utf8").trim();
    } catch (e) {
      throw new Error(`cannot read ${this.sysfs}/${attr} (is the driver loaded, e.g. modprobe softdog, and CONFIG_WATCHDOG_SYSFS on?): ${(e as Error).message}`);
    }
  }

  async prepare(timeoutS: number): Promise<number> {
    if (this.fd !== undefined) throw new Error("already open");
    if (this.read("nowayout") !== "0") throw new Error("nowayout is set: once opened it could never be stopped, and a standby would be reset; load the driver with nowayout=0");
    const state = this.read("state");
    if (state !== "inactive") throw new Error(`it is already ${state}: something else holds it (systemd RuntimeWatchdogSec=, a watchdog daemon)`);
    const r = await this.runner.run(["wdctl", "--settimeout", String(timeoutS), this.device], { timeoutMs: 5000 });
    const now = Number(this.read("timeout"));
    if (!Number.isInteger(now) || now <= 0) throw new Error(`unreadable timeout ${JSON.stringify(now)}`);
    if (now > timeoutS) {
      const why = r.code === 0 ? "" : `: wdctl --settimeout exited ${r.code}: ${r.stderr.trim().split("\n")[0] ?? ""}`;
      throw new Error(`its timeout is ${now}s, longer than the ${timeoutS}s the lease allows${why}`);
    }
    if (this.read("state") !== "inactive") throw new Error("wdctl left it running (nowayout?)");
    return now;
  }

  open(): void {
    if (this.fd === undefined) this.fd = openSync(this.device, "w");
  }

  keepalive(): void {
    if (this.fd !== undefined) writeSync(this.fd, "1");
  }

  stop(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      writeSync(fd, "V");
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * The guard's use of the device: prepared when the agent configures it,
 * opened on the first heartbeat of a primary, fed on a timer but never past
 * `leaseEnd - safety_margin - timeout`, so that if feeding stops (the guard
 * frozen, the machine stalled) the reset lands before the lease can expire in
 * etcd. Stopped (magic close) on disarm and after a clean fence; left running
 * after a fence that failed, so the reset is the fence.
 */
export class WatchdogKeeper {
  private status: WatchdogStatus = { state: "off" };
  private settings: WatchdogSettings | null = null;
  private timeoutS = 0;
  private leaseEndMs = -Infinity;
  private timer: { cancel(): void } | undefined;
  private preparing: Promise<void> | undefined;
  private dev: WatchdogDevice | undefined;
  /** Settings received while active, applied when the device is stopped. */
  private pending: WatchdogSettings | undefined;

  constructor(
    private readonly deps: {
      readonly clock: { systemMonotonicMs(): number; setTimer(ms: number, fn: () => void): { cancel(): void } };
      readonly device: (path: string) => WatchdogDevice;
      readonly log: (line: string) => void;
      readonly report: (status: WatchdogStatus) => void;
    },
  ) {}

  current(): WatchdogStatus {
    return this.status;
  }

  private set(status: WatchdogStatus): void {
    this.status = status;
    this.deps.report(status);
  }

  /** (Re)configure; while active, the device stays as it is until the next disarm (a restarted agent re-sends its settings). */
  configure(settings: WatchdogSettings | null): Promise<void> {
    if (this.status.state === "active") {
      if (settings === null) {
        this.release("the agent turned the watchdog off");
        this.settings = null;
        this.set({ state: "off" });
      } else {
        // New settings (a restarted agent's) take effect once the device is stopped.
        if (JSON.stringify(settings) !== JSON.stringify(this.settings)) this.pending = settings;
        this.deps.report(this.status);
      }
      return Promise.resolve();
    }
    const same = settings !== null && this.settings !== null && JSON.stringify(settings) === JSON.stringify(this.settings);
    if (same && this.status.state !== "unavailable") {
      this.deps.report(this.status);
      return this.preparing ?? Promise.resolve();
    }
    this.settings = settings;
    if (!settings) {
      this.set({ state: "off" });
      return Promise.resolve();
    }
    this.preparing = (async () => {
      const device = this.deps.device(settings.device);
      try {
        this.timeoutS = await device.prepare(settings.timeoutS);
        if (this.settings !== settings) return;
        this.dev = device;
        this.deps.log(`watchdog ${settings.device} ready: timeout ${this.timeoutS}s, fed until ${settings.safetyMarginMs}ms + timeout before the lease ends`);
        this.set({ state: "ready", device: settings.device, timeoutS: this.timeoutS });
      } catch (e) {
        if (this.settings !== settings) return;
        const problem = e instanceof Error ? e.message : String(e);
        this.deps.log(`watchdog ${settings.device} unavailable: ${problem}`);
        this.set({ state: "unavailable", device: settings.device, problem });
      } finally {
        this.preparing = undefined;
      }
    })();
    return this.preparing;
  }

  /** A primary's heartbeat: open the device if needed, and feed it up to the new bound. */
  hold(leaseEndMs: number): void {
    const s = this.settings;
    if (!s || !this.dev || (this.status.state !== "ready" && this.status.state !== "active")) return;
    this.leaseEndMs = leaseEndMs;
    if (this.status.state === "ready") {
      if (this.lastFeedAt() < this.deps.clock.systemMonotonicMs()) {
        // Opening starts the countdown now: only with the whole timeout still ahead of the bound.
        this.deps.log("watchdog not started: too little lease left to open it safely");
        this.deps.report(this.status);
        return;
      }
      try {
        this.dev.open();
      } catch (e) {
        const problem = `cannot open: ${e instanceof Error ? e.message : String(e)}`;
        this.deps.log(`watchdog ${s.device} ${problem}`);
        this.set({ state: "unavailable", device: s.device, problem });
        return;
      }
      this.deps.log(`watchdog ${s.device} started (timeout ${this.timeoutS}s)`);
      this.set({ state: "active", device: s.device, timeoutS: this.timeoutS });
    }
    this.feed();
  }

  /** The last moment a feed still lets the reset land before leaseEnd - safety_margin. */
  private lastFeedAt(): number {
    return this.leaseEndMs - (this.settings?.safetyMarginMs ?? 0) - this.timeoutS * 1000;
  }

  private feed(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.status.state !== "active" || !this.dev) return;
    const now = this.deps.clock.systemMonotonicMs();
    const last = this.lastFeedAt();
    if (now > last) return; // no more: the next heartbeat may allow it again
    try {
      this.dev.keepalive();
    } catch (e) {
      this.deps.log(`watchdog keepalive failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    // The last feed is aimed a little before the bound, so a timer that fires late still lands
    // in time (a feed found past the bound is skipped, which would bring the reset up to one
    // interval earlier, into the fence guard's own time).
    let next = now + Math.min(500, this.timeoutS * 250);
    if (next > last) next = last - FINAL_FEED_LEAD_MS;
    if (next > now) this.timer = this.deps.clock.setTimer(next - now, () => this.feed());
  }

  /** Stop feeding (the fence starts); the device keeps counting. */
  pause(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Magic close: the node is no longer primary, or it fenced cleanly. */
  release(why: string): void {
    this.pause();
    if (this.status.state !== "active" || !this.dev) return;
    try {
      this.dev.stop();
      this.deps.log(`watchdog stopped: ${why}`);
    } catch (e) {
      this.deps.log(`watchdog stop failed (${e instanceof Error ? e.message : String(e)}): the node will be reset`);
      return;
    }
    this.set({ state: "ready", device: this.settings!.device, timeoutS: this.timeoutS });
    const pending = this.pending;
    this.pending = undefined;
    if (pending) void this.configure(pending);
  }

  /**
   * The fence could not finish: keep the device running so the kernel resets
   * the node. True when it runs: the caller must then keep it open (not exit).
   */
  leaveRunning(): boolean {
    this.pause();
    if (this.status.state !== "active") return false;
    this.deps.log(`fence incomplete: the watchdog is left running and resets this node within ${this.timeoutS}s`);
    return true;
  }
}
