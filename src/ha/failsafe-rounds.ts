import { describeError } from "../errors/catalogue.js";
import type { ClusterSnapshot } from "../coordinator/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { extensionAfterRound, planRound, type FailsafeMember } from "./failsafe.js";
import type { SessionLease } from "./lease.js";
import type { FailsafePeers } from "./ports.js";

export interface FailsafeRoundsDeps {
  readonly self: string;
  readonly enabled: boolean;
  /** election.ttl: the lease period a grant is asked for (L). */
  readonly leaseMs: number;
  readonly fenceMarginMs: number;
  readonly renewIntervalMs: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly lease: SessionLease;
  readonly peers: FailsafePeers | undefined;
  /** The role as the loop holds it now. */
  readonly role: () => { readonly acting: "primary" | "standby"; readonly term: number | null };
}

/**
 * The primary's side of failsafe mode (docs/failsafe-design.md, P1–P5): while
 * its lease renewals fail, one round of grant requests every renew interval
 * to every member of the last membership read from etcd; a complete round
 * moves the lease's local deadline (and so the fence guard's) to round start
 * + L - m. The decisions are planRound's and extensionAfterRound's; this
 * class only times and runs the rounds. Without peers or with failsafe off it
 * never runs a round: the lease fences at its deadline as before.
 */
export class FailsafeRounds {
  private members: readonly FailsafeMember[] = [];
  private inFlight = false;
  private lastStartMs = -Infinity;
  private timer: TimerHandle | undefined;
  private lastReason = "";
  private stopped = false;

  constructor(private readonly deps: FailsafeRoundsDeps) {}

  /** P2: the membership comes from the last snapshot etcd answered. */
  noteSnapshot(snapshot: ClusterSnapshot | null): void {
    if (snapshot) this.members = snapshot.members.map((m) => ({ node: m.node, api: m.api ?? null }));
  }

  /** The last round's outcome, for the decision sentence; "" when none ran. */
  note(): string {
    return this.lastReason;
  }

  /** Called on every lease change and cycle: start a round if one is due (P1). */
  kick(): void {
    const { deps } = this;
    if (this.stopped || !deps.enabled || !deps.peers) return;
    const role = deps.role();
    const plan = planRound({
      enabled: deps.enabled,
      self: deps.self,
      acting: role.acting,
      term: role.term,
      etcdFailing: deps.lease.error() !== null,
      members: this.members,
      roundInFlight: this.inFlight,
    });
    if (!plan.ask) {
      if (plan.reason.startsWith("failsafe cannot hold")) this.say(plan.reason, "warn");
      if (deps.lease.error() === null) this.lastReason = "";
      return;
    }
    const now = deps.clock.monotonicMs();
    const due = this.lastStartMs + deps.renewIntervalMs;
    if (now < due) {
      this.timer?.cancel();
      this.timer = deps.clock.setTimer(due - now, () => this.kick());
      return;
    }
    void this.round(plan.targets, role.term!).catch((e: unknown) => deps.log.error({ err: describeError(e) }, "failsafe round threw"));
  }

  private async round(targets: readonly { node: string; api: string }[], term: number): Promise<void> {
    const { deps } = this;
    const lease = deps.lease.state();
    if (!lease) return;
    this.inFlight = true;
    const startedAtMs = deps.clock.monotonicMs();
    this.lastStartMs = startedAtMs;
    try {
      // P3: never wait past the deadline the round means to extend.
      const timeoutMs = Math.max(0, Math.min(deps.renewIntervalMs, lease.deadlineMs - startedAtMs));
      const answers = targets.length === 0 ? new Map() : await deps.peers!.ask(targets, { node: deps.self, term, leaseMs: deps.leaseMs }, timeoutMs);
      const current = deps.lease.state();
      if (!current || deps.role().acting !== "primary") return;
      const ext = extensionAfterRound(
        { startedAtMs, finishedAtMs: deps.clock.monotonicMs(), leaseMs: deps.leaseMs, asked: targets.map((t) => t.node), answers },
        current.deadlineMs,
        deps.fenceMarginMs,
      );
      if (ext.extendToMs !== null) deps.lease.extend(ext.extendToMs);
      this.say(ext.reason, ext.extendToMs === null ? "warn" : "info");
    } finally {
      this.inFlight = false;
    }
    this.kick();
  }

  /** Log a round's outcome when it differs from the last one (a steady failsafe logs once). */
  private say(reason: string, level: "info" | "warn"): void {
    if (reason === this.lastReason) return;
    this.lastReason = reason;
    this.deps.log[level]({ node: this.deps.self }, reason);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
