import { describeError } from "../errors/catalogue.js";
import type { ClusterSnapshot, LeaderRecord, Subscription } from "../coordinator/port.js";
import { ALWAYS_READY, type Readiness } from "../daemon/port.js";
import type { TimerHandle } from "../platform/clock.js";
import { Chronicle } from "./chronicle.js";
import { decide } from "./decide.js";
import type { HaEvent, HaEventListener, NodeView } from "./events.js";
import { DecisionExecutor } from "./executor.js";
import { SessionLease, type LeaseState } from "./lease.js";
import { configuredPart, type ConfiguredPart, type Decision, type Observation } from "./observation.js";
import { observation, type ObservedParts } from "./observe.js";
import type { PromotionGates } from "./promotion.js";
import { EMPTY_MEMORY, track, type HaMemory } from "./track.js";
import { SerialRunner } from "../platform/serial.js";
import type { VipControl } from "./ports.js";
import { NodeRole } from "./role.js";
import { MemberPublisher } from "./member.js";
import { FlapWatch } from "./flap-watch.js";
import { VipWitness, releasedVip } from "./vip-truth.js";
import { memberBody, nodeView, type SelfParts } from "./self-report.js";
import { DrainRun } from "./drain-run.js";
import { TargetCheckRun } from "./target-check-run.js";
import type { FailsafePromise } from "./failsafe-promise.js";
import { buildFailsafe, type FailsafeRounds } from "./failsafe-rounds.js";
import { afterFailsafeHold } from "./failsafe-return.js";
import { configuredUnreadHoldMs, DataFollow, followSync } from "./follow.js";
import type { GrantAnswer, GrantRequest } from "./failsafe.js";

export type { HaLoopDeps } from "./loop-deps.js";
import type { HaLoopDeps } from "./loop-deps.js";
import { EarliestWake } from "../platform/earliest-wake.js";
import { adoptionAtStart, adoptionNote } from "./adoption.js";

/** E3b after an etcd error: the next try, while the failsafe deadline holds (etcd's request timeout bounds each). */
const FAILSAFE_RETURN_RETRY_MS = 100;

/**
 * The imperative shell around decide(): track, observe (etcd snapshot, lease,
 * daemon, probes), decide, act (executor.ts). Cycles never overlap; triggers
 * that arrive during a cycle coalesce into one more (SerialRunner). The lease
 * deadline fences directly, without waiting for a cycle or for etcd.
 */
export class HaLoop {
  /** Vacancy and failback bookkeeping, advanced once per cycle by track() before observing. */
  private memory: HaMemory = EMPTY_MEMORY;
  private lastDecision: Decision | undefined;
  private lastSnapshot: ClusterSnapshot | null = null;
  /** The last leader this node saw, to say whom a failover replaced. */
  private lastLeader: LeaderRecord | null = null;
  /** The leader key's term when start() adopted it with my lease from a previous run; null otherwise. */
  private adoptedTerm: number | null = null;
  private lastCycleAtMs: number | null = null;
  private etcdReachable = false;
  /** The VIP as it was when the last decision was taken (a handover's release record says whether the address is free). */
  private vipAtDecision: ReturnType<VipControl["state"]> | undefined;
  private readonly vipWitness: VipWitness;
  private stopped = false;
  private tick: TimerHandle | undefined;
  /** Look again at a time a decision named (the earliest pending request wins; nothing after stop()). */
  private readonly recheck: EarliestWake;
  private watch: Subscription | undefined;
  private readonly cycles: SerialRunner;
  private readonly executor: DecisionExecutor;
  private readonly readiness: Readiness;
  private readonly chronicle: Chronicle;
  private readonly role: NodeRole;
  private readonly member: MemberPublisher;
  private readonly configured: ConfiguredPart;
  private readonly dataFollow: DataFollow;
  private readonly listeners: HaEventListener[] = [];
  private readonly flap: FlapWatch;
  private readonly self: SelfParts;
  private readonly drain: DrainRun;
  private readonly failsafeRounds: FailsafeRounds;
  private readonly observing: ObservedParts;
  /** Whether every trigger folded into the next coalesced cycle was a watch event (it may then decide on the watched view). */
  private foldedOnlyWatch = true;
  readonly lease: SessionLease;
  /** This node's failsafe promises (S4–S6); the API answers grant requests through answerFailsafe(). */
  readonly failsafe: FailsafePromise;

  constructor(private readonly deps: HaLoopDeps) {
    this.lease = new SessionLease(deps.coordinator, deps.config.election, deps.clock, deps.log, {
      onDeadline: (l) => this.fence(l),
      onChange: () => {
        this.failsafeRounds.kick();
        this.trigger("lease");
      },
      onRenewed: (l) => {
        if (this.role?.acting === "primary") this.role.armGuard(l);
      },
      // P1: a late keepalive starts a failsafe round (failsafe on only: no timer per keepalive otherwise).
      ...(deps.config.election.failsafe === "on" ? { onOverdue: () => this.failsafeRounds.kick() } : {}),
      // E3b: a primary holding on failsafe whose lease expired in etcd wins the key back before fencing.
      onGone: (l) => this.role.acting === "primary" && this.failsafeRounds.held() && deps.clock.monotonicMs() < l.deadlineMs,
    });
    this.role = new NodeRole({
      config: deps.config,
      daemon: deps.daemon,
      vip: deps.vip,
      health: deps.health,
      clock: deps.clock,
      log: deps.log,
      emit: (e) => this.emit(e),
      ...(deps.fenceGuard ? { guard: deps.fenceGuard } : {}),
    });
    deps.daemon.onUnexpectedExit((exit) => {
      deps.log.warn({ code: exit.code, signal: exit.signal }, "daemon exited unexpectedly");
      this.trigger("daemon exit");
    });
    deps.health.onChange(() => this.trigger("probe change"));
    deps.wakeUps?.onWake((why) => this.trigger(why));
    this.recheck = new EarliestWake(deps.clock, (why) => this.trigger(why));
    this.readiness = deps.readiness ?? ALWAYS_READY;
    this.chronicle = new Chronicle(deps.config.node.name, deps.coordinator, deps.clock, deps.log);
    this.member = new MemberPublisher(deps.coordinator, deps.clock, deps.log);
    this.configured = configuredPart(deps.config);
    this.flap = new FlapWatch(deps.coordinator, deps.clock, this.configured.flapSettings, deps.log);
    this.vipWitness = new VipWitness(deps.vip, deps.clock);
    const d = deps.drain;
    this.drain = new DrainRun(d && "gate" in d ? d : null, d && "unavailable" in d ? d.unavailable : null, deps.clock, deps.log);
    this.self = {
      ...deps,
      readiness: this.readiness,
      role: this.role,
      vipWitness: this.vipWitness,
      flap: this.flap,
      campaignHold: () => this.failsafe.hold(deps.clock.monotonicMs()),
    };
    [this.failsafe, this.failsafeRounds] = buildFailsafe(deps, this.lease, () => this.role);
    this.observing = {
      clock: deps.clock,
      health: deps.health,
      probeGraceMs: deps.probeGraceMs,
      sync: deps.sync,
      configured: this.configured,
      lease: this.lease,
      role: this.role,
      flap: this.flap,
      readiness: this.readiness,
      vipWitness: this.vipWitness,
      drain: this.drain,
      targetCheck: deps.targetPeers && new TargetCheckRun(deps.targetPeers, deps.clock, deps.log, (why) => this.trigger(why)),
      failsafeRounds: this.failsafeRounds,
      failsafe: this.failsafe,
      memory: () => this.memory,
    };
    this.dataFollow = new DataFollow({
      data: deps.data,
      holdMs: configuredUnreadHoldMs(deps.config, this.tickMs()),
      clock: deps.clock,
      log: deps.log,
      promise: () => ({ to: this.failsafe.promisedTo(), untilMs: this.failsafe.promisedUntilMs() }),
    });
    this.cycles = new SerialRunner(
      (why) => this.cycle(why),
      (e) => deps.log.error({ err: describeError(e) }, "HA cycle failed"),
    );
    this.executor = new DecisionExecutor(deps, {
      lease: this.lease,
      role: this.role,
      drain: this.drain,
      targetCheck: this.observing.targetCheck,
      chronicle: this.chronicle,
      flap: this.flap,
      failsafe: this.failsafe,
      stopped: () => this.stopped,
      trigger: (why) => this.trigger(why),
      recheckIn: (ms, why) => void this.recheck.in(ms, why),
      emit: (e) => this.emit(e),
      lastDecision: () => this.lastDecision,
      vipAtDecision: () => this.vipAtDecision,
      vipNow: () => this.deps.vip.state(),
      lastLeader: () => this.lastLeader,
      vacantSinceMs: () => this.memory.vacantSinceMs,
      observe: (snapshot, promotion) => this.observe(snapshot, null, promotion),
      showGeneration: () => this.showGeneration(),
      adoptedAtStart: () => this.adoptedTerm,
    });
  }

  /** Start: adopt our own lease if the leader key still names us, then run cycles. */
  async start(): Promise<void> {
    const { coordinator, log, config } = this.deps;
    let serving = false;
    try {
      const found = adoptionAtStart(await coordinator.snapshot(), config.node.name);
      if (found) {
        const adopted = (await this.lease.adopt(found.lease).catch(() => null)) !== null;
        serving = adopted && found.served;
        if (serving) this.adoptedTerm = found.term;
        log.info({ lease: found.lease, term: found.term, adopted }, adoptionNote(found, adopted));
      }
    } catch (e) {
      log.warn({ err: describeError(e) }, "etcd not reachable at start; staying a standby");
    }
    // Unless we still serve the leader key, a VIP left behind by a crashed previous run must go.
    if (!serving) await this.deps.vip.setDesired(false).catch((e: unknown) => log.error({ err: describeError(e) }, "cannot remove a leftover floating IP"));
    await this.drain.clearLeftover();
    await this.ensureWatch();
    // Cold standbys have no daemon to probe: NodeRole starts the probes on promotion.
    if (config.daemon.mode === "warm") this.deps.health.start();
    this.readiness.start();
    this.scheduleTick();
    this.trigger("start");
  }

  /** Watch the cluster prefix; retried from the cycle until it succeeds (etcd may be down at start). */
  private async ensureWatch(): Promise<void> {
    if (this.watch || this.stopped) return;
    try {
      this.watch = await this.deps.coordinator.watchLeader(() => this.trigger("watch"));
    } catch (e) {
      this.deps.log.warn({ err: describeError(e) }, "cannot watch etcd yet; relying on the periodic cycle until it works");
    }
  }

  /** Run a cycle now, or once more after the one in progress. */
  trigger(why: string): void {
    if (this.stopped) return;
    if (this.cycles.busy()) this.foldedOnlyWatch &&= why === "watch";
    this.cycles.trigger(why);
  }

  /**
   * A safety net: watch events, exits, probes and the lease drive the cycles; this catches anything
   * missed without re-reading etcd several times a second at ttl 1s.
   */
  private tickMs(): number {
    return Math.max(this.deps.config.election.renewIntervalMs, 2000);
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.tick = this.deps.clock.setTimer(this.tickMs(), () => {
      this.trigger("tick");
      this.scheduleTick();
    });
  }

  /** What this cycle knows, for decide(). Reads only: track() advanced the memory before. */
  observe(snapshot: ClusterSnapshot | null, etcdError: string | null, promotion?: PromotionGates): Observation {
    return observation(this.observing, snapshot, etcdError, promotion);
  }

  private async cycle(why: string): Promise<void> {
    const { coordinator, clock, log } = this.deps;
    let snapshot: ClusterSnapshot | null = null;
    let etcdError: string | null = null;
    const readAtMs = clock.monotonicMs();
    try {
      // Woken by watch events only (one, or several folded): the watched view already holds the change. Ticks
      // and every other wake-up read etcd: they catch a stalled watch and an unreachable etcd. A failsafe hold always reads (E3b).
      const watchOnly = why === "watch" || (why === "coalesced" && this.foldedOnlyWatch);
      this.foldedOnlyWatch = true;
      snapshot = await coordinator.snapshot({ cached: watchOnly && !this.failsafeRounds.held() });
    } catch (e) {
      etcdError = describeError(e);
    }
    this.lastSnapshot = snapshot;
    this.failsafeRounds.noteSnapshot(snapshot);
    if (this.role.acting !== "primary") {
      this.failsafeRounds.clearHold();
      // Stepped down (P7) while keeping a lease etcd had dropped: a standby needs a live one.
      if (this.lease.gone()) this.lease.abandon();
    } else if (snapshot && this.failsafeRounds.held() && (await this.failsafeReturn(snapshot))) return;
    if (snapshot) {
      if (!this.watch) await this.ensureWatch();
      await this.chronicle.flush();
    }
    await this.role.observeDaemon();
    // A primary failing its health may hand over: count the cluster's recent moves afresh.
    if (snapshot) await this.flap.refresh(this.role.acting === "primary" && !(this.role.daemonRunning && this.deps.health.criticalUp()));
    this.vipAtDecision = this.deps.vip.state();
    this.memory = track(this.memory, snapshot, clock.monotonicMs(), this.configured.failback.preferred);
    await this.drain.refresh();
    const decision = decide(this.observe(snapshot, etcdError ?? this.lease.error()));
    if (decision.reason !== this.lastDecision?.reason) log.info({ trigger: why, actions: decision.actions.map((a) => a.kind) }, decision.reason);
    this.lastDecision = decision;
    for (const action of decision.actions) {
      if (this.stopped) return;
      await this.executor.act(action, snapshot);
    }
    this.lastLeader = snapshot?.leader ?? this.lastLeader;
    if (snapshot?.leader) this.failsafe.observeLeader(snapshot.leader.node, snapshot.leader.term);
    await this.failsafeRounds.publishMembership(snapshot);
    this.failsafeRounds.kick();
    followSync(this.deps.sync, this.role, snapshot);
    this.dataFollow.after(this.role, snapshot, readAtMs);
    await this.publishMember();
    this.etcdReachable = snapshot !== null;
    this.lastCycleAtMs = this.deps.clock.monotonicMs();
    this.emit({ type: "cycle", etcdReachable: this.etcdReachable });
  }

  /** E3: the first snapshot after a failsafe hold; true when it changed the term or fenced (the cycle ends there). */
  private async failsafeReturn(snapshot: ClusterSnapshot): Promise<boolean> {
    const { config, coordinator, clock, log } = this.deps;
    // The hold stays set until this is done: a keepalive finding the lease gone meanwhile must not fence (onGone).
    const r = await afterFailsafeHold({ snapshot, self: config.node.name, term: this.role.term!, lease: this.lease, coordinator, clock, log });
    if (r === "retry") {
      // Still holding on failsafe: the next cycle that reads etcd runs E3 again.
      this.recheck.in(FAILSAFE_RETURN_RETRY_MS, "failsafe: new-term campaign retry");
      return true;
    }
    this.failsafeRounds.clearHold();
    if (r === "continue") return false;
    if ("newTerm" in r) this.role.term = r.newTerm;
    else {
      const held = this.lease.state();
      this.lease.abandon();
      this.fence(held, r.fence);
    }
    this.trigger("failsafe: etcd is back");
    return true;
  }

  /** Lease deadline passed (or E3 found the key lost): fence now, whatever the cycle is doing. */
  private fence(lease: LeaseState | null, why = "lease deadline passed"): void {
    if (this.role.acting === "primary") {
      this.deps.log.error({ lease: lease?.id ?? null, term: this.role.term }, `fencing: ${why}; dropping the floating IP and stopping the daemon`);
      this.chronicle.fenced(this.role.term, why === "lease deadline passed" ? (this.lease.error() ?? "no renewal acknowledged") : why);
      this.emit({ type: "fenced" });
      // Kill the data shippers at once, without holding the VIP drop for them (the term-scoped module fences the rest).
      this.deps.data?.stopShipping().catch((e: unknown) => this.deps.log.error({ err: describeError(e) }, "fencing: stopping data shipping failed"));
      this.role.demote("lease deadline").catch((e: unknown) => this.deps.log.error({ err: describeError(e) }, "fencing: stepping down failed"));
      void this.drain.end("aborted", "fenced: the lease deadline passed");
    }
    this.trigger("lease deadline");
  }

  private async publishMember(): Promise<void> {
    const lease = this.lease.state();
    if (lease) await this.member.publish(memberBody(this.self, this.lastDecision?.reason ?? ""), lease.id);
  }

  /**
   * Before a campaign: the member key shows the generation this node campaigns with. A pull applied
   * since the last cycle was otherwise written at the cycle's end, after the campaign, so for that
   * moment the key said "behind" (the other standbys rank on it; the chaos checker judges a promotion
   * by it). One write, only when the key does not show it; a failed write does not stop the campaign.
   */
  private async showGeneration(): Promise<void> {
    const generation = this.deps.sync?.generation();
    const lease = this.lease.state();
    if (generation === undefined || !lease || this.member.shows(generation, lease.id)) return;
    await this.publishMember();
  }

  /** POST /failsafe/grant: the planner's answer, with the role and the last leader seen in etcd (S1). */
  answerFailsafe(request: GrantRequest): Promise<GrantAnswer> {
    const l = this.lastLeader;
    return this.failsafe.answer(request, { acting: this.role.acting, lastLeader: l ? { node: l.node, term: l.term } : null });
  }

  onEvent(listener: HaEventListener): void {
    this.listeners.push(listener);
  }

  private emit(event: HaEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (e) {
        this.deps.log.warn({ err: describeError(e) }, "HA event listener threw");
      }
    }
  }

  view(): NodeView {
    const lease = this.lease.state();
    const failsafe = this.failsafeRounds.view(this.failsafe, this.deps.clock.monotonicMs());
    return { ...nodeView(this.self, { lease, etcdReachable: this.etcdReachable, decision: this.lastDecision?.reason ?? "", lastCycleAtMs: this.lastCycleAtMs }), ...(failsafe ? { failsafe } : {}) };
  }

  status(): { acting: string; term: number | null; decision: string; lease: LeaseState | null; snapshot: ClusterSnapshot | null } {
    return { acting: this.role.acting, term: this.role.term, decision: this.lastDecision?.reason ?? "", lease: this.lease.state(), snapshot: this.lastSnapshot };
  }

  /**
   * Graceful stop (SIGTERM): quiesce the daemon, drop the VIP, then release
   * the leader key and revoke the lease so a standby takes over at once
   * instead of after the TTL.
   */
  async stop(): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    this.stopped = true;
    this.tick?.cancel();
    this.recheck.close();
    this.failsafeRounds.stop();
    this.dataFollow.stop();
    this.member.stop();
    await this.cycles.stop();
    this.lease.stopRenewing();
    const wasPrimary = this.role.acting === "primary";
    const term = this.role.term;
    const vipBefore = this.deps.vip.state();
    // No data rsync of this term may outlive the floating IP.
    await this.deps.data?.stopShipping().catch((e: unknown) => log.error({ err: describeError(e) }, "stopping data shipping failed"));
    await this.role.demote("shutdown");
    if (wasPrimary && term !== null) {
      // Release first (the successor may skip its duplicate-address check), then revoke the lease.
      const record = { node: config.node.name, term, at: new Date(clock.wallMs()).toISOString(), why: "shutdown" as const, ...releasedVip(this.deps.vip.state(), vipBefore) };
      await coordinator.release(term, record).catch(() => false);
    }
    // After the release (the successor need not wait for a slow resume command), bounded by the gate's timeout.
    await this.drain.end("aborted", "the agent is stopping", { wait: true });
    await this.deps.health.stop();
    this.readiness.stop();
    await this.deps.vip.release().catch((e: unknown) => log.error({ err: describeError(e) }, "VIP release failed"));
    if (config.daemon.mode === "warm") await this.deps.daemon.stop().catch(() => undefined);
    await this.watch?.close().catch(() => undefined);
    await this.lease.revoke().catch((e: unknown) => log.warn({ err: describeError(e) }, "lease revoke failed; standbys take over at expiry"));
    log.info({ was_primary: wasPrimary }, "stopped");
  }
}
