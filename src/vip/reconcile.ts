// Reconcile, don't react (vip-manager's applyLoop): the role sets a desired state,
// and a serial loop makes the interface match it, on every change and on a timer,
// so an address removed by hand comes back and one left behind goes away.
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { FloatingIp } from "./port.js";

export interface VipReconcilerOptions {
  /** How often desired vs actual is re-checked (vip.reconcile_interval). */
  readonly reconcileIntervalMs: number;
  /** How often a held address is announced again (vip.announce_interval). */
  readonly announceIntervalMs: number;
}

export interface VipState {
  readonly desired: boolean;
  /** What the last reconcile observed or made true; undefined before the first one. */
  readonly held: boolean | undefined;
  /** Description of the last failed reconcile; cleared by the next one that succeeds. */
  readonly lastError: string | undefined;
  /** Since when (monotonic ms) the address has been desired but not held; null when held or not desired. */
  readonly missingSinceMs?: number | null;
  /** MAC of another host that answered ARP for the address (duplicate check); null once we hold it. */
  readonly foreignMac?: string | null;
}

export type VipErrorListener = (error: unknown) => void;

interface Job {
  announce: boolean;
  /** Asked for by setDesired(): act at once instead of observing first (see reconcile()). */
  direct: boolean;
  promise: Promise<void>;
}

export class VipReconciler {
  private desired = false;
  private skipCheckOnce = false;
  private held: boolean | undefined;
  private lastError: string | undefined;
  private missingSinceMs: number | null = null;
  private foreignMac: string | null = null;
  private stopped = false;
  private timers: TimerHandle[] = [];
  /** The serial queue: every reconcile runs after the previous one settled. */
  private tail: Promise<void> = Promise.resolve();
  /** A reconcile queued but not started yet; later triggers join it instead of piling up. */
  private queued: Job | undefined;
  private readonly listeners = new Set<VipErrorListener>();

  constructor(
    private readonly ip: FloatingIp,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: VipReconcilerOptions,
  ) {
    for (const [path, value] of [
      ["vip.reconcile_interval", options.reconcileIntervalMs],
      ["vip.announce_interval", options.announceIntervalMs],
    ] as const) {
      // A zero interval would spin the timer; 100 ms is already below anything useful.
      if (!Number.isFinite(value) || value < 100) {
        throw new UnderstudyError("US_E_CONFIG_TIMING", { file: "(vip config)", path, problem: "must be at least 100ms", value: `${value}ms` });
      }
    }
  }

  /**
   * Called once per failed background reconcile (timer or start()) or periodic announcement, in order;
   * failures of setDesired()/release() reject their own promise instead.
   * A listener that throws is logged and does not stop the others.
   */
  onError(listener: VipErrorListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Arm the timers and reconcile once now (drops an address left behind by a crash while not desired). */
  start(): void {
    if (this.stopped || this.timers.length > 0) return;
    this.armTimers();
    this.background(false);
  }

  /**
   * Record the desired state and reconcile now. Resolves when that reconcile
   * completes; rejects with its error (add/remove failed, or US_E_VIP_DUPLICATE).
   * After stop() or release() it changes nothing: shutdown must not re-add the address.
   */
  setDesired(held: boolean, options: { skipDuplicateCheck?: boolean } = {}): Promise<void> {
    if (this.stopped) {
      this.logger.warn({ vip: this.ip.address, desired: held }, "floating IP reconciler is stopped; ignoring desired state");
      return Promise.resolve();
    }
    this.desired = held;
    this.noteTruth();
    // One-shot: only the add this call causes may skip the check, never a later repair.
    this.skipCheckOnce = held && options.skipDuplicateCheck === true;
    if (this.timers.length === 0) this.armTimers();
    return this.enqueue(false, true);
  }

  state(): VipState {
    return {
      desired: this.desired,
      held: this.held,
      lastError: this.lastError,
      ...(this.missingSinceMs !== null ? { missingSinceMs: this.missingSinceMs } : {}),
      ...(this.foreignMac !== null ? { foreignMac: this.foreignMac } : {}),
    };
  }

  /** Keep missingSinceMs and foreignMac in step with desired and held (VIP truth, docs/operations.md). */
  private noteTruth(): void {
    if (!this.desired || this.held === true) this.missingSinceMs = null;
    else this.missingSinceMs ??= this.clock.monotonicMs();
    if (this.held === true) this.foreignMac = null;
  }

  /** Cancel the timers. A reconcile already running finishes; none starts after it. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
  }

  /** Shutdown: stop, then remove the address (after any running reconcile). Rejects if removal fails. */
  release(): Promise<void> {
    this.desired = false;
    this.stop();
    const done = this.tail.then(() => this.run(() => this.removeNow()));
    this.tail = done.catch(() => undefined);
    return done;
  }

  private armTimers(): void {
    this.arm(this.options.reconcileIntervalMs, false);
    this.arm(this.options.announceIntervalMs, true);
  }

  private arm(ms: number, announce: boolean): void {
    const handle = this.clock.setTimer(ms, () => {
      this.timers = this.timers.filter((t) => t !== handle);
      if (this.stopped) return;
      this.arm(ms, announce); // re-arm first, so a slow reconcile does not stretch the period
      this.background(announce);
    });
    this.timers.push(handle);
  }

  private background(announce: boolean): void {
    this.enqueue(announce).catch((e: unknown) => this.report(e));
  }

  private enqueue(announce: boolean, direct = false): Promise<void> {
    if (this.queued) {
      this.queued.announce ||= announce;
      this.queued.direct ||= direct;
      return this.queued.promise;
    }
    const job: Job = { announce, direct, promise: Promise.resolve() };
    job.promise = this.tail.then(() => {
      if (this.queued === job) this.queued = undefined;
      if (this.stopped) return;
      return this.run(() => (job.direct ? this.apply() : this.reconcile(job.announce)));
    });
    this.queued = job;
    this.tail = job.promise.catch(() => undefined);
    return job.promise;
  }

  /**
   * A role change: add or remove without looking first. Both are idempotent
   * (an address already there, or already gone, is success), and skipping the
   * `ip -j addr show` takes 10-20 ms off every promotion and demotion; the
   * periodic reconcile still observes and repairs drift.
   */
  private async apply(): Promise<void> {
    if (this.desired) {
      const skipDuplicateCheck = this.skipCheckOnce;
      this.skipCheckOnce = false;
      await this.ip.add({ skipDuplicateCheck, notHeld: true }); // announces by itself
      this.held = true;
    } else {
      await this.removeNow();
    }
  }

  /** One pass: observe, then add, remove or (when asked) announce. */
  private async reconcile(announce: boolean): Promise<void> {
    const held = await this.ip.isHeld();
    this.held = held;
    // Read after observing, not before: a demotion (setDesired(false)) may land while `ip addr
    // show` runs (hundreds of ms under load, or a timer pass queued across a SIGSTOP). Acting
    // on the value read before it re-added the VIP on a fenced node beside the new primary.
    const desired = this.desired;
    if (desired && !held) {
      this.logger.info({ vip: this.ip.address }, "floating IP desired but not held: adding");
      const skipDuplicateCheck = this.skipCheckOnce;
      this.skipCheckOnce = false;
      await this.ip.add({ skipDuplicateCheck, notHeld: true }); // announces by itself
      this.held = true;
    } else if (!desired && held) {
      this.logger.info({ vip: this.ip.address }, "floating IP held but not desired: removing");
      await this.removeNow();
    } else if (desired && held && announce) {
      this.announceInBackground();
    }
  }

  /**
   * Not awaited: a series of arp_count packets takes arp_count seconds, and a
   * demotion queued behind it must not wait (remove() stops the series itself).
   */
  private announceInBackground(): void {
    this.ip.announce().catch((e: unknown) => {
      this.lastError = describeError(e);
      this.report(e);
    });
  }

  private async removeNow(): Promise<void> {
    await this.ip.remove();
    this.held = false;
  }

  /** Record the outcome of one pass in state(). */
  private async run(pass: () => Promise<void>): Promise<void> {
    try {
      await pass();
      this.lastError = undefined;
    } catch (e) {
      this.lastError = describeError(e);
      if (isUnderstudyError(e, "US_E_VIP_DUPLICATE") && typeof e.details.mac === "string") this.foreignMac = e.details.mac;
      throw e;
    } finally {
      this.noteTruth();
    }
  }

  private report(e: unknown): void {
    this.logger.warn({ vip: this.ip.address, err: describeError(e) }, "floating IP reconcile failed; retrying on the next interval");
    for (const listener of this.listeners) {
      try {
        listener(e);
      } catch (thrown) {
        this.logger.error({ err: describeError(thrown) }, "floating IP onError listener threw");
      }
    }
  }
}
