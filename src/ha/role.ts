import { describeError } from "../errors/catalogue.js";
import type { Config } from "../config/load.js";
import type { DaemonController } from "../daemon/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { HaEvent } from "./events.js";
import type { LeaseState } from "./lease.js";
import type { DaemonHealth, VipControl } from "./ports.js";
import type { FenceGuard } from "../fence/port.js";

const RESTART_WINDOW_MS = 60_000;

export interface RoleDeps {
  readonly config: Config;
  readonly daemon: DaemonController;
  readonly vip: VipControl;
  readonly health: DaemonHealth;
  readonly clock: Clock;
  readonly log: Logger;
  readonly emit: (event: HaEvent) => void;
  /** Separate process that fences if this one stops renewing (frozen, killed). */
  readonly guard?: FenceGuard;
}

/**
 * What this node does about its role: start/stop the daemon, add/drop the VIP,
 * restart a failing daemon. Holds the role state the HA loop observes; the
 * decisions (restart backoff, promotion gates and budget) are decide()'s.
 * Promotion and demotion are ordered for safety: the guard is armed before
 * anything starts, and the VIP is dropped first on the way down.
 */
export class NodeRole {
  acting: "primary" | "standby" = "standby";
  term: number | null = null;
  coolDownUntilMs = 0;
  /** When this node last came to act as primary (monotonic and wall ms, once its VIP was added); null while standby. */
  servingSince: { readonly monotonicMs: number; readonly wallMs: number } | null = null;
  private running = false;
  private epoch = 0;
  private restarts: number[] = [];
  private daemonStartedAt = -Infinity;

  constructor(private readonly deps: RoleDeps) {}

  /** Whether the daemon ran when last observed (observeDaemon) or since started/stopped here. */
  get daemonRunning(): boolean {
    return this.running;
  }

  /** Ask the daemon backend whether it runs (once per HA cycle, before the observation is built). */
  async observeDaemon(): Promise<void> {
    this.running = await this.deps.daemon.isRunning().catch(() => false);
  }

  /** Restarts within the recent window, and when the last of them was (monotonic ms; null: none). Reads only. */
  restartHistory(now: number): { count: number; lastAtMs: number | null } {
    const recent = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    return { count: recent.length, lastAtMs: recent[recent.length - 1] ?? null };
  }

  /** Whether failing probes are still forgiven because the daemon just (re)started. */
  inStartGrace(now: number, graceMs: number): boolean {
    return now - this.daemonStartedAt < graceMs;
  }

  /** Stay out of elections for durationMs (decide() chose it: Observation.coolDownMs). */
  coolDown(durationMs: number): void {
    this.coolDownUntilMs = this.deps.clock.monotonicMs() + durationMs;
  }

  /** Act as primary. decide() checked the gates and the lease time left (promotion.ts). */
  async promote(term: number, lease: LeaseState, skipDuplicateCheck = false): Promise<void> {
    const { clock, log, config, vip } = this.deps;
    const epoch = ++this.epoch;
    // Armed before anything is started, so nothing this node starts can outlive the lease.
    this.armGuard(lease);
    this.acting = "primary";
    this.term = term;
    this.restarts = [];
    const started = clock.monotonicMs();
    const cold = config.daemon.mode === "cold";
    const [d, v] = await Promise.allSettled([cold ? this.startDaemon() : Promise.resolve(), vip.setDesired(true, { skipDuplicateCheck })]);
    if (epoch !== this.epoch) {
      // Fenced while promoting: the fence already asked for the VIP to go; make sure it did.
      await this.undoPrimary();
      return;
    }
    if (d.status === "rejected") log.error({ err: describeError(d.reason) }, "daemon failed to start on promotion");
    if (v.status === "rejected") log.error({ err: describeError(v.reason) }, "floating IP not added on promotion; the reconciler retries");
    this.servingSince = { monotonicMs: clock.monotonicMs(), wallMs: clock.wallMs() };
    log.info({ term, took_ms: Math.round(this.servingSince.monotonicMs - started), duplicate_check: !skipDuplicateCheck }, "acting as primary");
    if (cold)
      this.deps.health.start(); // checks at once, then on each probe's interval
    else void this.deps.health.checkNow().catch(() => undefined);
  }

  /** Feed the fence guard the lease deadline (on the host-wide monotonic clock) while primary. */
  armGuard(lease: LeaseState): void {
    const { guard } = this.deps;
    const { deadline, leaseEnd } = this.guardTimes(lease);
    guard?.arm(deadline, leaseEnd);
  }

  /** The lease's local deadline and its earliest expiry in etcd, on the host-wide monotonic clock the guard reads. */
  guardTimes(lease: LeaseState): { deadline: number; leaseEnd: number } {
    const { clock, config } = this.deps;
    const deadline = lease.deadlineMs - clock.monotonicMs() + clock.systemMonotonicMs();
    return { deadline, leaseEnd: deadline + config.election.fenceMarginMs };
  }

  async startDaemon(): Promise<void> {
    this.daemonStartedAt = this.deps.clock.monotonicMs();
    await this.deps.daemon.start();
    this.running = true;
  }

  /** Stop a daemon this standby must not run (cold mode). */
  async stopDaemon(): Promise<void> {
    const { daemon, log } = this.deps;
    if (this.acting === "primary") return;
    try {
      await daemon.stop();
      this.running = false;
      log.warn("stopped a transfer daemon running on a cold standby");
    } catch (e) {
      log.error({ err: describeError(e) }, "cannot stop the daemon on a cold standby");
    }
  }

  /** Restart now; decide() waited out the backoff (promotion.ts restartBackoffUntil). */
  async restartDaemon(): Promise<void> {
    const { daemon, log, clock } = this.deps;
    const now = clock.monotonicMs();
    this.restarts = [...this.restarts.filter((t) => now - t < RESTART_WINDOW_MS), now];
    this.deps.emit({ type: "daemon_restarted" });
    try {
      await daemon.stop();
      await this.startDaemon();
    } catch (e) {
      log.error({ err: describeError(e) }, "daemon restart failed");
    }
  }

  /** Stop acting as primary: VIP first (what clients see), then the daemon in cold mode. */
  async demote(why: string): Promise<void> {
    if (this.acting !== "primary") return;
    this.epoch++;
    this.deps.log.warn({ term: this.term, why }, "stepping down to standby");
    this.deps.emit({ type: "demoted", why });
    this.acting = "standby";
    this.term = null;
    this.servingSince = null;
    await this.undoPrimary();
    this.deps.guard?.disarm();
  }

  private async undoPrimary(): Promise<void> {
    const { vip, daemon, config, log } = this.deps;
    const cold = config.daemon.mode === "cold";
    const results = await Promise.allSettled([vip.setDesired(false), cold ? daemon.stop() : Promise.resolve(), cold ? this.deps.health.stop() : Promise.resolve()]);
    for (const r of results) if (r.status === "rejected") log.error({ err: describeError(r.reason) }, "step-down action failed");
  }
}
