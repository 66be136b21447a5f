import { describeError } from "../errors/catalogue.js";
import type { Coordinator } from "../coordinator/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { ElectionTiming } from "../config/load.js";

export interface LeaseState {
  readonly id: string;
  /** Monotonic ms: send time of the last acknowledged keepalive + granted TTL - fence margin. */
  readonly deadlineMs: number;
  readonly grantedTtlMs: number;
}

export interface LeaseCallbacks {
  /** The local deadline passed without an acknowledged renewal. Always called before the state is cleared. */
  onDeadline(lease: LeaseState): void;
  /** A renewal reached or missed etcd; the loop re-evaluates. */
  onChange(): void;
  /** A grant, adoption or renewal moved the deadline (to feed the fence guard). */
  onRenewed?(lease: LeaseState): void;
  /**
   * etcd says the lease is gone. True: the caller re-acquires under a new lease (failsafe, E3b)
   * and the local deadline stays armed meanwhile; false or absent: fence now, as always.
   */
  onGone?(lease: LeaseState): boolean;
  /** A keepalive has gone unanswered for half a renew interval (failsafe starts its rounds then, P1). */
  onOverdue?(): void;
}

/**
 * Holds this agent's session lease: grant, keepalive every renew interval,
 * and a timer at the local deadline. etcd counts expiry from when it received
 * a keepalive, which is after we sent it, so our deadline (from the send time,
 * minus the fence margin) always falls before etcd's expiry.
 */
export class SessionLease {
  private current: LeaseState | null = null;
  private deadlineTimer: TimerHandle | undefined;
  private renewTimer: TimerHandle | undefined;
  private stopped = false;
  private lastError: string | null = null;
  private overdueSince: number | null = null;
  /** The current lease is one etcd reported gone, kept for a failsafe re-acquire (onGone). */
  private goneInEtcd = false;

  constructor(
    private readonly coordinator: Coordinator,
    private readonly timing: ElectionTiming,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly callbacks: LeaseCallbacks,
  ) {}

  state(): LeaseState | null {
    return this.current;
  }
  error(): string | null {
    return this.lastError;
  }
  /** A keepalive is unanswered for more than half a renew interval (etcd slow or gone, not yet failed). */
  overdue(): boolean {
    return this.overdueSince !== null;
  }

  async grant(): Promise<LeaseState> {
    const sentAt = this.clock.monotonicMs();
    const g = await this.coordinator.grantLease(this.timing.ttlMs);
    if (g.ttlMs !== this.timing.ttlMs) {
      this.log.warn({ requested_ms: this.timing.ttlMs, granted_ms: g.ttlMs }, "etcd granted a different lease TTL than requested; using the granted TTL");
    }
    return this.accept(g.id, sentAt, g.ttlMs, g.ttlMs);
  }

  /** Take over a lease from a previous run of this agent (restart without failover). Returns null if it is gone. */
  async adopt(id: string): Promise<LeaseState | null> {
    const sentAt = this.clock.monotonicMs();
    const ack = await this.coordinator.keepAlive(id);
    if (ack.ttlMs <= 0) return null;
    return this.accept(id, sentAt, ack.ttlMs, ack.ttlMs);
  }

  /** The session lease is one etcd reported gone, kept only for a failsafe re-acquire. */
  gone(): boolean {
    return this.goneInEtcd && this.current !== null;
  }

  private accept(id: string, sentAt: number, ttlMs: number, grantedTtlMs: number): LeaseState {
    this.goneInEtcd = false;
    this.current = { id, deadlineMs: sentAt + ttlMs - this.timing.fenceMarginMs, grantedTtlMs };
    this.lastError = null;
    this.armDeadline();
    this.scheduleRenew(sentAt);
    this.callbacks.onRenewed?.(this.current);
    return this.current;
  }

  private armDeadline(): void {
    this.deadlineTimer?.cancel();
    const lease = this.current;
    if (!lease) return;
    this.deadlineTimer = this.clock.setTimer(lease.deadlineMs - this.clock.monotonicMs(), () => {
      if (this.current !== lease) return; // superseded by a later renewal's state object
      this.current = null;
      this.renewTimer?.cancel();
      this.log.warn({ lease: lease.id, last_error: this.lastError }, "lease deadline passed without a renewal");
      this.callbacks.onDeadline(lease);
      // Best effort: if etcd is back, let a standby take over at once instead of at etcd's expiry.
      this.coordinator.revokeLease(lease.id).catch(() => undefined);
    });
  }

  private scheduleRenew(lastSentAt: number): void {
    this.renewTimer?.cancel();
    if (this.stopped) return;
    const due = lastSentAt + this.timing.renewIntervalMs - this.clock.monotonicMs();
    this.renewTimer = this.clock.setTimer(due, () => void this.renew().catch((e: unknown) => this.log.error({ err: describeError(e) }, "lease renewal threw"))); // renew() catches etcd errors itself: only a bug lands here
  }

  private async renew(): Promise<void> {
    const lease = this.current;
    if (!lease || this.stopped) return;
    const sentAt = this.clock.monotonicMs();
    const same = () => this.current?.id === lease.id;
    let answered = false;
    // Only for a caller that acts on it (failsafe on): no extra timer per keepalive otherwise.
    const onOverdue = this.callbacks.onOverdue;
    const overdue = onOverdue
      ? this.clock.setTimer(this.timing.renewIntervalMs / 2, () => {
          if (answered || !same()) return;
          this.overdueSince = sentAt;
          onOverdue();
        })
      : undefined;
    try {
      const ack = await this.coordinator.keepAlive(lease.id).finally(() => {
        answered = true;
        overdue?.cancel();
        if (this.overdueSince === sentAt) this.overdueSince = null;
      });
      if (!same()) return;
      if (ack.ttlMs <= 0) {
        this.lastError = `lease ${lease.id} expired in etcd`;
        this.log.warn({ lease: lease.id }, "etcd reports the lease gone");
        // The current state: a failsafe round may have extended the deadline while this keepalive was out.
        if (this.callbacks.onGone?.(this.current ?? lease)) {
          // Kept with its deadline timer armed until takeNew() replaces it or the deadline fences.
          this.goneInEtcd = true;
          this.callbacks.onChange();
          return;
        }
        this.current = null;
        this.deadlineTimer?.cancel();
        this.callbacks.onDeadline(lease);
        this.callbacks.onChange();
        return;
      }
      const deadlineMs = Math.max(lease.deadlineMs, sentAt + ack.ttlMs - this.timing.fenceMarginMs);
      const wasFailing = this.lastError !== null;
      this.current = { ...this.current!, deadlineMs: Math.max(this.current!.deadlineMs, deadlineMs) };
      this.lastError = null;
      this.armDeadline();
      this.callbacks.onRenewed?.(this.current);
      if (wasFailing) {
        this.log.info({ lease: lease.id }, "lease renewals reach etcd again");
        this.callbacks.onChange();
      }
    } catch (e) {
      if (!same()) return;
      const first = this.lastError === null;
      this.lastError = describeError(e);
      if (first) {
        this.log.warn({ lease: lease.id, err: this.lastError, deadline_in_ms: Math.round(lease.deadlineMs - this.clock.monotonicMs()) }, "lease renewal failed");
        this.callbacks.onChange();
      }
    }
    // After a failure retry at once-ish (the next interval from this send), never faster.
    if (same()) this.scheduleRenew(sentAt);
  }

  /**
   * Failsafe (docs/failsafe-design.md, P4/P5): move the local deadline to a later one that a
   * complete round of grants gave, re-arm the deadline timer and feed the guard like a renewal.
   * Never moves it back; false when there is no lease or the deadline already passed.
   */
  extend(deadlineMs: number): boolean {
    const lease = this.current;
    if (!lease || this.clock.monotonicMs() >= lease.deadlineMs) return false;
    if (deadlineMs <= lease.deadlineMs) return true;
    this.current = { ...lease, deadlineMs };
    this.armDeadline();
    this.callbacks.onRenewed?.(this.current);
    return true;
  }

  /**
   * Failsafe, etcd back (E3): grant a new lease and run `campaign` with it while the current
   * deadline stays armed (a slow or lost campaign still fences on time). Won: the new lease
   * becomes the session's (deadline from its grant's send time, guard fed, renewals), the old
   * one is revoked. Lost, or the deadline passed meanwhile: the new lease is revoked; false.
   */
  async takeNew(campaign: (leaseId: string) => Promise<boolean>): Promise<boolean> {
    const old = this.current;
    if (!old || this.stopped) return false;
    const sentAt = this.clock.monotonicMs();
    const g = await this.coordinator.grantLease(this.timing.ttlMs);
    let won = false;
    // Same session, deadline not passed: a failsafe round may have extended it meanwhile (a new
    // state object, same id), which must not throw the won key away.
    const held = () => {
      const cur = this.current;
      return cur !== null && cur.id === old.id && this.clock.monotonicMs() < cur.deadlineMs;
    };
    try {
      won = await campaign(g.id);
    } finally {
      if (!won || !held()) this.coordinator.revokeLease(g.id).catch(() => undefined);
    }
    if (!won || !held()) return false;
    this.accept(g.id, sentAt, g.ttlMs, g.ttlMs);
    this.coordinator.revokeLease(old.id).catch(() => undefined);
    return true;
  }

  /** Drop a lease etcd no longer has (after a failed re-acquire): timers cancelled, no revoke. */
  abandon(): void {
    this.goneInEtcd = false;
    this.deadlineTimer?.cancel();
    this.renewTimer?.cancel();
    this.current = null;
  }

  /** Stop renewing; the deadline timer stays armed so a held role is still fenced on time. */
  stopRenewing(): void {
    this.stopped = true;
    this.renewTimer?.cancel();
  }

  /** Give the lease back (graceful stop). etcd deletes every key attached to it. */
  async revoke(): Promise<void> {
    const lease = this.current;
    this.stopRenewing();
    this.deadlineTimer?.cancel();
    this.current = null;
    if (lease) await this.coordinator.revokeLease(lease.id);
  }
}
