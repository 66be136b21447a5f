import { describeError } from "../errors/catalogue.js";
import type { Config } from "../config/load.js";
import { type ClusterSnapshot, type Coordinator, type LeaderRecord, type SwitchoverRequest } from "../coordinator/port.js";
import type { FenceGuard, WatchdogStatus } from "../fence/port.js";
import type { HookPort } from "../hooks/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { Chronicle } from "./chronicle.js";
import { decide } from "./decide.js";
import type { HaEvent } from "./events.js";
import type { FlapWatch } from "./flap-watch.js";
import type { LeaseState, SessionLease } from "./lease.js";
import type { Action, DataLagPromotion, Decision, Observation, StalePromotion } from "./observation.js";
import type { DataPort, SyncPort, VipControl } from "./ports.js";
import type { HookVerdict, PromotionGates } from "./promotion.js";
import type { NodeRole } from "./role.js";
import type { DrainRun } from "./drain-run.js";
import type { TargetCheckRun } from "./target-check-run.js";
import type { FailsafePromise } from "./failsafe-promise.js";
import { releasedVip } from "./vip-truth.js";
import { SWITCHOVER_SETTLE_MS } from "./switchover.js";

// The executor of decide()'s actions: each action does what it says. It
// chooses nothing itself: which promotion gates apply, whether a take-over is
// stale and how long a cool-down lasts come from decide()/promotionGate()
// with their reasons. A promotion asks the gates decide() names and decides
// again with their answers in the same cycle, without reading etcd again.

export interface ExecutorDeps {
  readonly config: Config;
  readonly coordinator: Coordinator;
  readonly clock: Clock;
  readonly log: Logger;
  readonly fenceGuard?: FenceGuard;
  readonly hooks?: HookPort;
  readonly sync?: SyncPort;
  readonly data?: DataPort;
}

/** What the executor reads from and asks of the loop that owns it. */
export interface LoopHandle {
  readonly lease: SessionLease;
  readonly role: NodeRole;
  readonly drain: DrainRun;
  readonly targetCheck: TargetCheckRun | undefined;
  readonly chronicle: Chronicle;
  readonly flap: FlapWatch;
  /** Failsafe promises: a campaign is marked in flight through it, never while a promise holds (S5). */
  readonly failsafe: FailsafePromise;
  stopped(): boolean;
  trigger(why: string): void;
  recheckIn(ms: number, why: string): void;
  emit(event: HaEvent): void;
  /** This cycle's decision (a release record quotes it). */
  lastDecision(): Decision | undefined;
  /** The VIP as it was when this cycle's decision was taken. */
  vipAtDecision(): ReturnType<VipControl["state"]> | undefined;
  /** The VIP now (after a demotion this decision ran). */
  vipNow(): ReturnType<VipControl["state"]>;
  /** The last leader this node saw, to say whom a failover replaced. */
  lastLeader(): LeaderRecord | null;
  vacantSinceMs(): number | null;
  /** Observe again (reads only), with a promotion's gates as answered so far. */
  observe(snapshot: ClusterSnapshot | null, promotion: PromotionGates): Observation;
  /** The term of the leader key this agent adopted at start (a restart while its lease lived), else null. */
  adoptedAtStart(): number | null;
  /** Write the member key now if the sync generation it shows is not the one this node holds. */
  showGeneration(): Promise<void>;
}

export class DecisionExecutor {
  /** The last term a campaign of this run won (a key naming me under any other term was handed to me or adopted). */
  private wonTerm: number | null = null;

  constructor(
    private readonly deps: ExecutorDeps,
    private readonly loop: LoopHandle,
  ) {}

  async act(action: Action, snapshot: ClusterSnapshot | null): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    const { role, lease, chronicle } = this.loop;
    const warn = (what: string) => (e: unknown) => log.warn({ err: describeError(e) }, what);
    switch (action.kind) {
      case "grant_lease":
        // With a lease the next decision may be to campaign: make it now, not at the next tick.
        if (await lease.grant().then(() => true, warn("cannot grant a session lease"))) this.loop.trigger("lease granted");
        return;
      case "campaign":
        await this.campaign(snapshot);
        return;
      case "promote":
        // The key names me with my lease. Adopted only when it is the one found at start (a restart while
        // the lease lived); else a campaign of this run won it and its promotion was deferred (too little
        // lease time) or its reply lost (the txn committed), or a planned move handed it to me: a won
        // election, every gate and mark applying.
        await this.promotion(this.loop.adoptedAtStart() === action.term ? "adopted" : "won", action.term, snapshot);
        return;
      case "ask_gate":
        // Only asked from within promotion(), which answers it and decides again.
        log.error({ gate: action.gate }, "a promotion gate was asked outside a promotion; ignored");
        return;
      case "take_over":
        await this.takeOver(action, snapshot);
        return;
      case "decline":
        await this.decline(action);
        return;
      case "demote":
        // Every data rsync of this term is dead before the floating IP goes (docs/data-replication-design.md §2).
        await this.deps.data?.stopShipping().catch(warn("stopping data shipping failed"));
        await role.demote("decision");
        return;
      case "resign":
        await coordinator.resign(action.term).catch(warn("resign failed"));
        return;
      case "widen_failsafe_members":
        await coordinator.widenFailsafeMembers(action.record, action.revision).catch(warn("widening failsafe/members failed"));
        this.loop.trigger("failsafe/members widened");
        return;
      case "release": {
        const last = this.loop.lastDecision();
        const record = {
          node: config.node.name,
          term: action.term,
          at: new Date(clock.wallMs()).toISOString(),
          why: action.why,
          ...(last ? { reason: last.reason.slice(0, 2000) } : {}),
          ...releasedVip(this.loop.vipNow(), this.loop.vipAtDecision()),
          ...(action.drain ? { drain: action.drain } : {}),
        };
        const to = action.handTo;
        if (to) {
          // Timed out and applied after all: the release below compares the old term and writes nothing.
          const next = await coordinator.handOver(action.term, to, record, to.revision).catch((e: unknown) => {
            log.warn({ term: action.term, to: to.node, err: describeError(e) }, "handing the leader key over failed; releasing it");
            return undefined;
          });
          if (typeof next === "number") {
            log.info({ term: action.term, why: action.why, to: to.node, next_term: next }, "handed the leader key over");
            return;
          }
          if (next === null) {
            log.info({ term: action.term, to: to.node }, "the leader key was not handed over (the target's lease or the cluster changed); releasing it");
            if (action.cancelIfNotHanded !== undefined) await chronicle.switchoverAborted(snapshot?.switchover, action.cancelIfNotHanded, snapshot?.revision);
          }
        }
        if (await coordinator.release(action.term, record).catch(() => false)) log.info({ term: action.term, why: action.why }, "released the leader key");
        else log.warn({ term: action.term }, "release not applied; the lease expires on its own");
        return;
      }
      case "complete_switchover":
        if (role.term !== null) await chronicle.switchoverDone(action.request, snapshot, role.term, role.servingSince?.wallMs);
        return;
      case "abort_switchover":
        await chronicle.switchoverAborted(snapshot?.switchover, action.why, snapshot?.revision);
        return;
      case "request_failback": {
        const request: SwitchoverRequest = {
          kind: "failback",
          from: config.node.name,
          to: action.to,
          at: null,
          force: false,
          requestedBy: `policy on ${config.node.name}`,
          reason: "failback policy auto",
          requestedAt: new Date(clock.wallMs()).toISOString(),
        };
        await coordinator.requestSwitchover(request).catch(warn("cannot request the failback"));
        this.loop.trigger("failback requested");
        return;
      }
      case "restart_daemon":
        await role.restartDaemon();
        return;
      case "start_daemon":
        await role.startDaemon();
        return;
      case "stop_daemon":
        await role.stopDaemon();
        this.loop.trigger("stray daemon stopped");
        return;
      case "cool_down":
        role.coolDown(action.durationMs);
        return;
      case "recheck_at":
        this.loop.recheckIn(action.atMs - clock.monotonicMs(), "recheck");
        return;
      case "start_drain":
        await this.loop.drain.begin(action.requestedAt);
        this.loop.trigger("drain started");
        return;
      case "check_target":
        if (role.term !== null) this.loop.targetCheck?.start(action, { node: config.node.name, term: role.term });
        return;
      case "drain_wait":
        this.loop.recheckIn(action.atMs - clock.monotonicMs(), "drain");
        return;
      case "end_drain":
        await this.loop.drain.end(action.outcome, action.why);
        return;
      case "record_flap_damped":
        this.loop.flap.damped(chronicle.flapDamped(role.term, action.reason), action.reason);
        return;
    }
  }

  private async campaign(snapshot: ClusterSnapshot | null): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    // The others rank on the member key, and it is the record of what this node held when it took over.
    await this.loop.showGeneration();
    const lease = this.loop.lease.state();
    if (!lease) return;
    // S5: checked and marked in one synchronous step; a grant request refuses while the mark is set.
    if (!this.loop.failsafe.beginCampaign()) {
      log.info("not campaigning: a failsafe promise holds");
      return;
    }
    try {
      const result = await coordinator.campaign(config.node.name, lease.id, new Date(clock.wallMs()).toISOString(), snapshot?.revision);
      if (!result.won && result.vacant === true) {
        // The key is vacant: the view this campaign was decided on is older than failsafe/members or
        // the published generation. The next cycle decides on a view that has them (the txn's revision).
        log.info({ view_revision: snapshot?.revision }, "not elected: the cluster changed after the view I decided on (failsafe membership or published generation); deciding again");
        this.loop.trigger("campaign on an old view");
        return;
      }
      if (!result.won) {
        log.info({ leader: result.leader?.node, term: result.leader?.term }, "lost the election race");
        return;
      }
      const term = result.leader!.term;
      this.wonTerm = term;
      log.info({ term }, "won the election");
      await this.promotion("won", term, snapshot);
    } finally {
      this.loop.failsafe.endCampaign();
    }
  }

  /**
   * Ask the promotion gates decide() names one at a time, deciding again after
   * each answer (promotion.ts): the raw facts go in, promotionGate says which
   * gates apply. Bounded: each gate is asked once.
   */
  private async promotion(via: "won" | "adopted", term: number, snapshot: ClusterSnapshot | null): Promise<void> {
    const { config, hooks, fenceGuard, log } = this.deps;
    const lease = this.loop.lease.state();
    if (!lease) return;
    let gates: PromotionGates = {
      term,
      via,
      leaseId: lease.id,
      prePromoteConfigured: hooks?.configured("pre_promote") ?? false,
      prePromote: undefined,
      watchdogMode: config.watchdog.mode,
      watchdogDevice: config.watchdog.device,
      guardPresent: fenceGuard !== undefined,
      watchdog: undefined,
      lastLeaderTerm: this.loop.lastLeader()?.term ?? null,
      // The reply to a campaign that committed can be lost: then a won key reads as handed (wording only).
      handed: via === "won" && this.wonTerm !== term,
    };
    for (let step = 0; step < 3; step++) {
      const decision = decide(this.loop.observe(snapshot, gates));
      const ask = decision.actions.find((a) => a.kind === "ask_gate");
      if (!ask) {
        log[gateLogLevel(decision, gates)]({ term, via }, decision.reason);
        // Deferred for too little lease time: the next renewal gives more; look again then, not at the next tick.
        if (decision.afterRenewal) this.loop.recheckIn(config.election.renewIntervalMs, "promotion deferred for lease time");
        for (const action of decision.actions) {
          if (this.loop.stopped()) return;
          await this.act(action, snapshot);
        }
        return;
      }
      log.info({ term, via }, decision.reason);
      if (ask.gate === "pre_promote") gates = { ...gates, prePromote: await this.prePromote(term, snapshot) };
      else gates = { ...gates, watchdog: await this.armWatchdog(lease) };
    }
  }

  /** Run the pre_promote hook (it may veto by exiting non-zero or timing out). */
  private async prePromote(term: number, snapshot: ClusterSnapshot | null): Promise<HookVerdict> {
    const { hooks, config, log } = this.deps;
    const reason = this.loop.chronicle.promotionKind(snapshot, this.loop.lastLeader());
    const v = await hooks!.run("pre_promote", { role: "primary", previousRole: "standby", term, node: config.node.name, cluster: config.cluster, reason });
    if (!v.ok) log.warn({ term, code: v.code, timed_out: v.timedOut }, v.problem ?? "pre_promote hook vetoed the promotion");
    return { ok: v.ok, timedOut: v.timedOut, code: v.code, problem: v.problem };
  }

  /** Start the watchdog (guard armed with the lease) and wait at most 1s for it to say whether it runs. */
  private armWatchdog(lease: LeaseState): Promise<WatchdogStatus> {
    const { deadline, leaseEnd } = this.loop.role.guardTimes(lease);
    return this.deps.fenceGuard!.armWatchdog(deadline, leaseEnd, 1000);
  }

  private async takeOver(action: Extract<Action, { kind: "take_over" }>, snapshot: ClusterSnapshot | null): Promise<void> {
    const { clock } = this.deps;
    const { role, chronicle } = this.loop;
    const lease = this.loop.lease.state();
    if (!lease) return;
    const { term } = action;
    const started = clock.monotonicMs();
    // Facts about the files this promotion may lack, recorded whichever way the key came and before
    // the take-over acts: the key is this node's from now on, and a promotion that fails (the VIP add
    // refused, the lease lost) or an agent killed while it runs would otherwise take them along (a
    // chaos run saw a stale term with no record). Sent at once, not awaited: the take-over does not wait on etcd.
    if (action.stale) this.recordStalePromotion(term, action.stale);
    if (action.dataLag) this.recordDataLagPromotion(term, action.dataLag);
    if (action.stale || action.dataLag) void chronicle.flush();
    // Before the first upload is acknowledged: no old term's write module open here, and the
    // former-primary marker on disk (docs/data.md, "Rejoin").
    await this.deps.data?.beforeServe(term).catch((e: unknown) => this.deps.log.error({ err: describeError(e), term }, "data: preparing the data roots before serving failed (retried every cycle)"));
    await role.promote(term, lease, action.skipDuplicateCheck);
    if (role.acting !== "primary") return;
    if (action.via === "adopted") {
      this.loop.emit({ type: "promoted", kind: "adopted", term, vacancyMs: null, promoteMs: 0 });
    } else {
      const now = clock.monotonicMs();
      const promoteMs = Math.round(now - started);
      const vacantSince = this.loop.vacantSinceMs();
      const vacancyMs = vacantSince !== null ? Math.round(now - vacantSince) : null;
      const lastLeader = this.loop.lastLeader();
      this.loop.emit({ type: "promoted", kind: chronicle.promotionKind(snapshot, lastLeader), term, vacancyMs, promoteMs });
      if (!snapshot?.switchover) {
        chronicle.takeover(term, snapshot, lastLeader, { promote_ms: promoteMs, ...(vacancyMs !== null ? { vacancy_ms: vacancyMs } : {}) });
      }
    }
    // The first cycle as primary (a switchover request to clear, generations to publish): a key handed
    // over comes with no write of this node's own that would wake one. Not at once: the daemon's first
    // connections through the address just added come first (SWITCHOVER_SETTLE_MS).
    this.loop.recheckIn(SWITCHOVER_SETTLE_MS, "took over");
  }

  /** promotionGate marked the take-over over the data-lag limit (data-gate.ts): record it, loudly. */
  private recordDataLagPromotion(term: number, mark: DataLagPromotion): void {
    this.deps.log.error({ term, lag_bytes: mark.lag?.bytes ?? null, lag_files: mark.lag?.files ?? null, maximum_bytes: mark.maximumBytes, progress_term: mark.progressTerm }, mark.reason);
    this.loop.chronicle.dataLagPromotion(term, mark);
    this.loop.emit({ type: "data_lag_promotion", term, lagBytes: mark.lag?.bytes ?? null });
  }

  /** promotionGate marked the take-over stale (lagging the published generation): record it, loudly. */
  private recordStalePromotion(term: number, stale: StalePromotion): void {
    const { generation, published, lagMs } = stale;
    this.deps.log.error({ term, generation, published: published.generation, source: published.source, lag_ms: Math.round(lagMs) }, stale.reason);
    this.loop.chronicle.stalePromotion(term, generation, published, lagMs);
    this.loop.emit({ type: "stale_promotion", term, generation, published: published.generation, lagMs });
  }

  /** A won key this node will not serve: nothing was started, so give it to the next candidate (the cool-down is its own action). */
  private async decline(action: Extract<Action, { kind: "decline" }>): Promise<void> {
    const { config, coordinator, clock, fenceGuard } = this.deps;
    if (action.gate === "watchdog") fenceGuard?.disarm();
    const { term } = action;
    // Never served, but an address left by a previous run (or being removed) is not free.
    const record = { node: config.node.name, term, at: new Date(clock.wallMs()).toISOString(), why: "veto" as const, ...releasedVip(this.loop.vipNow(), undefined) };
    await coordinator.release(term, record).catch(() => false);
    this.loop.chronicle.vetoed(term, action.problem);
    this.loop.trigger(action.gate === "pre_promote" ? "pre_promote veto" : action.gate);
  }
}

/** A refused watchdog is an error (as a fence problem), a veto or a delay a warning, a clean take-over news. */
function gateLogLevel(decision: Decision, gates: PromotionGates): "info" | "warn" | "error" {
  const declined = decision.actions.find((a) => a.kind === "decline");
  if (declined) return declined.gate === "watchdog" ? "error" : "warn";
  if (!decision.actions.some((a) => a.kind === "take_over")) return "warn";
  const watchdogDown = gates.watchdog !== undefined && gates.watchdog.state !== "active";
  return watchdogDown ? "warn" : "info";
}
