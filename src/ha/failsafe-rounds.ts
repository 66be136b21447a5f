import { describeError } from "../errors/catalogue.js";
import type { ClusterSnapshot } from "../coordinator/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { extensionAfterRound, membershipToPublish, planRound, type FailsafeMember } from "./failsafe.js";
import type { SessionLease } from "./lease.js";
import type { FailsafePeers, PromiseLedger } from "./ports.js";
import type { Config } from "../config/load.js";
import type { Coordinator } from "../coordinator/port.js";
import { FailsafePromise } from "./failsafe-promise.js";
import type { Observation } from "./observation.js";
import type { FailsafeView } from "./events.js";

/** The loop's failsafe parts from config: its promises (standby side) and its rounds (primary side). */
export function buildFailsafe(
  deps: {
    readonly config: Config;
    readonly clock: Clock;
    readonly log: Logger;
    readonly coordinator: Pick<Coordinator, "publishFailsafeMembers">;
    readonly failsafePeers?: FailsafePeers;
    readonly promiseLedger?: PromiseLedger;
  },
  lease: SessionLease,
  role: FailsafeRoundsDeps["role"],
): [FailsafePromise, FailsafeRounds] {
  const e = deps.config.election;
  const fs = { enabled: e.failsafe === "on", self: deps.config.node.name, leaseMs: e.ttlMs, fenceMarginMs: e.fenceMarginMs };
  const rounds = new FailsafeRounds({
    ...fs,
    renewIntervalMs: e.renewIntervalMs,
    clock: deps.clock,
    log: deps.log,
    lease,
    peers: deps.failsafePeers,
    role,
    publish: (term, record) => deps.coordinator.publishFailsafeMembers(term, record),
  });
  const promise = new FailsafePromise(deps.clock, fs, deps.promiseLedger);
  if (promise.ledgerProblem) deps.log.warn({ problem: promise.ledgerProblem }, "failsafe: the last run's promise record is unreadable; only this run's start-up hold applies");
  return [promise, rounds];
}

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
  /** Write failsafe/members (null: delete it) under the term (Coordinator.publishFailsafeMembers). */
  readonly publish: (term: number, record: { readonly term: number; readonly nodes: readonly string[] } | null) => Promise<boolean>;
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
  private listed: { readonly term: number; readonly nodes: readonly string[] } | null = null;
  private inFlight = false;
  private lastStartMs = -Infinity;
  private timer: TimerHandle | undefined;
  private lastReason = "";
  private stopped = false;
  /** A round extended the deadline since etcd last answered this primary (E3 decides on its return). */
  private heldOn = false;
  private listedInvalid = false;
  /** Until when members that granted may still hold their promises (S4), on this clock; -Infinity: none. */
  private grantsUntilMs = -Infinity;

  constructor(private readonly deps: FailsafeRoundsDeps) {}

  /** P2: the membership comes from the last snapshot etcd answered. */
  noteSnapshot(snapshot: ClusterSnapshot | null): void {
    if (!snapshot) return;
    this.members = snapshot.members.map((m) => ({ node: m.node, api: m.api ?? null }));
    this.listed = snapshot.failsafeMembers ?? null;
    this.listedInvalid = snapshot.failsafeMembersInvalid === true;
  }

  /** E1, after a cycle that read etcd: a primary keeps failsafe/members equal to the members it sees (and itself). */
  async publishMembership(snapshot: ClusterSnapshot | null): Promise<void> {
    const { deps } = this;
    const role = deps.role();
    if (!snapshot || role.acting !== "primary" || role.term === null) return;
    const record = membershipToPublish({ enabled: deps.enabled, self: deps.self, term: role.term, observed: snapshot.members.map((m) => m.node), listed: this.listed, invalid: this.listedInvalid });
    if (record === null) return;
    const written = await deps.publish(role.term, record === "delete" ? null : record).catch((e: unknown) => {
      deps.log.warn({ err: describeError(e) }, "cannot write failsafe/members; failsafe cannot hold until it is written");
      return false;
    });
    if (written) {
      this.listed = record === "delete" ? null : record;
      this.listedInvalid = false;
      deps.log.info({ nodes: record === "delete" ? [] : record.nodes, term: role.term }, record === "delete" ? "removed failsafe/members (failsafe is off here)" : "wrote failsafe/members");
    }
  }

  /** The observation's failsafe part: a standby's hold (S4/S6), a primary's last round outcome. */
  observed(promise: FailsafePromise, nowMs: number, acting: "primary" | "standby"): Pick<Observation, "failsafeHold" | "failsafeNote" | "failsafeHolding" | "failsafeGrantsUntilMs"> {
    const hold = promise.hold(nowMs);
    const note = acting === "primary" ? this.lastReason : "";
    return {
      ...(hold ? { failsafeHold: { untilMs: promise.promisedUntilMs(), reason: hold, fromGrant: promise.promisedTo() !== null } } : {}),
      ...(note ? { failsafeNote: note } : {}),
      ...(acting === "primary" && this.heldOn ? { failsafeHolding: true } : {}),
      ...(acting === "primary" && this.grantsUntilMs > nowMs ? { failsafeGrantsUntilMs: this.grantsUntilMs } : {}),
    };
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
      etcdFailing: deps.lease.error() !== null || deps.lease.overdue(),
      members: this.members,
      listed: this.listed,
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
      // A member that granted received the request before this instant: its promise runs at most
      // L + its margin from then (ours stands in for its margin; its member key tells the rest).
      const finishedAtMs = deps.clock.monotonicMs();
      if ([...answers.values()].some((a) => a.granted)) this.grantsUntilMs = Math.max(this.grantsUntilMs, finishedAtMs + deps.leaseMs + deps.fenceMarginMs);
      const current = deps.lease.state();
      const ext = extensionAfterRound(
        { startedAtMs, finishedAtMs: deps.clock.monotonicMs(), leaseMs: deps.leaseMs, asked: targets.map((t) => t.node), answers },
        (current ?? lease).deadlineMs,
        deps.fenceMarginMs,
      );
      // Fenced while the round ran (its last request times out at the deadline): extend nothing, but say why it did not hold.
      if (!current || deps.role().acting !== "primary") {
        if (ext.extendToMs === null) this.say(ext.reason, "warn");
        return;
      }
      if (ext.extendToMs !== null && deps.lease.extend(ext.extendToMs)) this.heldOn = true;
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

  /** For the node view (GET /health, /primary, /standby) and the metrics: holding, armed (could a hold start now?), the promise left. */
  view(promise: FailsafePromise, nowMs: number): FailsafeView | undefined {
    const { deps } = this;
    const promiseLeftMs = Math.max(0, Math.round(promise.promisedUntilMs() - nowMs));
    if (!deps.enabled && promiseLeftMs === 0) return undefined;
    const role = deps.role();
    const primary = role.acting === "primary";
    const plan =
      primary && deps.enabled
        ? planRound({ enabled: true, self: deps.self, acting: "primary", term: role.term, etcdFailing: true, members: this.members, listed: this.listed, roundInFlight: false })
        : null;
    const armed = plan === null ? null : plan.ask && deps.peers !== undefined;
    const armedReason = plan === null ? null : !deps.peers ? "no peer client (failsafe off at start)" : plan.reason;
    return { enabled: deps.enabled, holding: primary && this.heldOn, armed, armedReason, promiseLeftMs };
  }

  /** Whether this primary served past its lease on grants since etcd last answered it (E3). */
  held(): boolean {
    return this.heldOn;
  }

  /** E3 ran (or the node is no longer primary): the next outage starts afresh. */
  clearHold(): void {
    this.heldOn = false;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
