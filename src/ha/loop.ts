import { describeError } from "../errors/catalogue.js";
import type { Config } from "../config/load.js";
import type { ClusterSnapshot, Coordinator, LeaderRecord, SwitchoverRequest, Subscription } from "../coordinator/port.js";
import type { DaemonController } from "../daemon/port.js";
import { ALWAYS_READY, type Readiness } from "../daemon/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { WakeSource } from "../platform/wake-ups.js";
import { eligible } from "./candidates.js";
import { Chronicle } from "./chronicle.js";
import { decide } from "./decide.js";
import type { HaEvent, HaEventListener, NodeView } from "./events.js";
import { SessionLease, type LeaseState } from "./lease.js";
import { configuredPart, type Action, type ConfiguredPart, type Decision, type Observation } from "./observation.js";
import type { DaemonHealth, SyncPort, VipControl } from "./ports.js";
import { NodeRole } from "./role.js";
import { MemberPublisher } from "./member.js";
import { FlapWatch } from "./flap-watch.js";
import { isDamped } from "./flap.js";
import { VipWitness, memberVipFields, vipNotFree } from "./vip-truth.js";
import type { FenceGuard } from "../fence/port.js";
import type { HookPort } from "../hooks/port.js";

export interface HaLoopDeps {
  readonly config: Config;
  readonly coordinator: Coordinator;
  readonly daemon: DaemonController;
  readonly vip: VipControl;
  readonly health: DaemonHealth;
  readonly clock: Clock;
  readonly log: Logger;
  readonly version: string;
  /** Grace after a daemon (re)start before failing probes count. */
  readonly probeGraceMs: number;
  /** Could this standby serve if promoted? Defaults to always. */
  readonly readiness?: Readiness;
  /** Advertised in the member key so the CLI can reach any node. */
  readonly apiUrl?: string;
  /** The fence guard process (DESIGN.md §4); tests may leave it out. */
  readonly fenceGuard?: FenceGuard;
  /** User hooks; only pre_promote is awaited (it may veto), the agent fires the others. */
  readonly hooks?: HookPort;
  /** The file sync engine; absent when no sync roots are configured. */
  readonly sync?: SyncPort;
  /** "Look again" notices from parts built before the loop (sync progress, readiness, tools, watchdog): each runs a cycle. */
  readonly wakeUps?: WakeSource;
}

/**
 * The imperative shell around decide(): observe (etcd snapshot, lease, daemon,
 * probes), decide, act. Cycles never overlap; triggers that arrive during a
 * cycle coalesce into one more. The lease deadline fences directly, without
 * waiting for a cycle or for etcd.
 */
export class HaLoop {
  private vacantSinceMs: number | null = null;
  private lastDecision: Decision | undefined;
  private lastSnapshot: ClusterSnapshot | null = null;
  /** The last leader this node saw, to say whom a failover replaced. */
  private lastLeader: LeaderRecord | null = null;
  private preferredReadySinceMs: number | null = null;
  private lastCycleAtMs: number | null = null;
  private etcdReachable = false;
  /** The VIP as it was when the last decision was taken (a handover's release record says whether the address is free). */
  private vipAtDecision: ReturnType<VipControl["state"]> | undefined;
  private readonly vipWitness: VipWitness;
  private running = false;
  private pending = false;
  private stopped = false;
  private tick: TimerHandle | undefined;
  private recheck: TimerHandle | undefined;
  private watch: Subscription | undefined;
  private cycleDone: Promise<void> = Promise.resolve();
  private readonly readiness: Readiness;
  private readonly chronicle: Chronicle;
  private readonly role: NodeRole;
  private readonly member: MemberPublisher;
  private readonly configured: ConfiguredPart;
  private readonly listeners: HaEventListener[] = [];
  private readonly flap: FlapWatch;
  readonly lease: SessionLease;

  constructor(private readonly deps: HaLoopDeps) {
    this.lease = new SessionLease(deps.coordinator, deps.config.election, deps.clock, deps.log, {
      onDeadline: (l) => this.fence(l),
      onChange: () => this.trigger("lease"),
      onRenewed: (l) => {
        if (this.role?.acting === "primary") this.role.armGuard(l);
      },
    });
    this.role = new NodeRole({
      config: deps.config, daemon: deps.daemon, vip: deps.vip, health: deps.health, clock: deps.clock, log: deps.log,
      emit: (e) => this.emit(e),
      retryIn: (ms, why) => this.recheckIn(ms, why),
      ...(deps.fenceGuard ? { guard: deps.fenceGuard } : {}),
    });
    deps.daemon.onUnexpectedExit((exit) => {
      deps.log.warn({ code: exit.code, signal: exit.signal }, "daemon exited unexpectedly");
      this.trigger("daemon exit");
    });
    deps.health.onChange(() => this.trigger("probe change"));
    deps.wakeUps?.onWake((why) => this.trigger(why));
    this.readiness = deps.readiness ?? ALWAYS_READY;
    this.chronicle = new Chronicle(deps.config.node.name, deps.coordinator, deps.clock, deps.log);
    this.member = new MemberPublisher(deps.coordinator, deps.clock, deps.log);
    this.configured = configuredPart(deps.config);
    this.flap = new FlapWatch(deps.coordinator, deps.clock, this.configured.flapSettings, deps.log);
    this.vipWitness = new VipWitness(deps.vip, deps.clock);
  }

  /** Start: adopt our own lease if the leader key still names us, then run cycles. */
  async start(): Promise<void> {
    const { coordinator, log, config } = this.deps;
    let adopted = false;
    try {
      const snap = await coordinator.snapshot();
      const leader = snap.leader;
      if (leader && leader.node === config.node.name) {
        adopted = (await this.lease.adopt(leader.lease).catch(() => null)) !== null;
        log.info({ lease: leader.lease, term: leader.term, adopted }, adopted ? "adopted my lease from a previous run: no failover" : "my previous lease is gone");
      }
    } catch (e) {
      log.warn({ err: describeError(e) }, "etcd not reachable at start; staying a standby");
    }
    // Unless we are still the leader, a VIP left behind by a crashed previous run must go.
    if (!adopted) await this.deps.vip.setDesired(false).catch((e: unknown) => log.error({ err: describeError(e) }, "cannot remove a leftover floating IP"));
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
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = true;
    this.cycleDone = this.runCycles(why);
  }

  private async runCycles(why: string): Promise<void> {
    try {
      do {
        this.pending = false;
        try {
          await this.cycle(why);
        } catch (e) {
          this.deps.log.error({ err: describeError(e) }, "HA cycle failed");
        }
        why = "coalesced";
      } while (this.pending && !this.stopped);
    } finally {
      this.running = false;
    }
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    // A safety net: watch events, exits, probes and the lease drive the cycles; this
    // catches anything missed without re-reading etcd several times a second at ttl 1s.
    const every = Math.max(this.deps.config.election.renewIntervalMs, 2000);
    this.tick = this.deps.clock.setTimer(every, () => {
      this.trigger("tick");
      this.scheduleTick();
    });
  }

  private recheckIn(ms: number, why: string): void {
    this.recheck?.cancel();
    this.recheck = this.deps.clock.setTimer(ms, () => this.trigger(why));
  }

  observe(snapshot: ClusterSnapshot | null, etcdError: string | null): Observation {
    const { clock, health, probeGraceMs } = this.deps;
    const now = clock.monotonicMs();
    if (snapshot && snapshot.leader === null) this.vacantSinceMs ??= now;
    else if (snapshot) this.vacantSinceMs = null;
    const fixed = this.configured;
    const preferred = snapshot?.members.find((m) => m.node === fixed.failback.preferred && m.role === "standby");
    if (snapshot) this.preferredReadySinceMs = preferred && eligible(preferred, snapshot.bans) ? (this.preferredReadySinceMs ?? now) : null;
    const lease = this.lease.state();
    return {
      ...fixed,
      self: { ...fixed.self, generation: this.deps.sync?.generation() ?? 0 },
      nowMs: now,
      wallNowMs: clock.wallMs(),
      acting: this.role.acting,
      term: this.role.term,
      lease: lease ? { id: lease.id, deadlineMs: lease.deadlineMs } : null,
      cluster: snapshot,
      etcdError,
      vacantSinceMs: this.vacantSinceMs,
      daemon: {
        running: this.role.daemonRunning,
        probesUp: health.criticalUp() || this.role.inStartGrace(now, probeGraceMs),
        recentRestarts: this.role.recentRestarts(now),
        sharedFailure: health.sharedFailure?.() ?? null,
      },
      ...(this.flap.current() ? { flap: this.flap.current()! } : {}),
      coolDownUntilMs: this.role.coolDownUntilMs,
      notReady: this.readiness.problem(),
      preferredReadySinceMs: this.preferredReadySinceMs,
      sync: { enabled: fixed.syncEnabled && this.deps.sync !== undefined, behindSinceMs: this.deps.sync?.behindSince() ?? null, maximumLagMs: fixed.maximumLagMs },
      ...(fixed.vipHoldTimeoutMs !== null && this.role.acting === "primary" ? { vip: this.vipWitness.observation(fixed.vipHoldTimeoutMs) } : {}),
    };
  }

  private async cycle(why: string): Promise<void> {
    const { coordinator, daemon, log } = this.deps;
    let snapshot: ClusterSnapshot | null = null;
    let etcdError: string | null = null;
    try {
      snapshot = await coordinator.snapshot();
    } catch (e) {
      etcdError = describeError(e);
    }
    this.lastSnapshot = snapshot;
    if (snapshot) {
      if (!this.watch) await this.ensureWatch();
      await this.chronicle.flush();
    }
    this.role.daemonRunning = await daemon.isRunning().catch(() => false);
    // A primary failing its health may hand over: count the cluster's recent moves afresh.
    if (snapshot) await this.flap.refresh(this.role.acting === "primary" && !(this.role.daemonRunning && this.deps.health.criticalUp()));
    this.vipAtDecision = this.deps.vip.state();
    const decision = decide(this.observe(snapshot, etcdError ?? this.lease.error()));
    if (decision.reason !== this.lastDecision?.reason) log.info({ trigger: why, actions: decision.actions.map((a) => a.kind) }, decision.reason);
    this.lastDecision = decision;
    for (const action of decision.actions) {
      if (this.stopped) return;
      await this.act(action, snapshot);
    }
    if (snapshot?.leader) this.lastLeader = snapshot.leader;
    this.followSync(snapshot);
    await this.publishMember();
    this.etcdReachable = snapshot !== null;
    this.lastCycleAtMs = this.deps.clock.monotonicMs();
    this.emit({ type: "cycle", etcdReachable: this.etcdReachable });
  }

  /** Tell the sync engine who leads and what was published; it pulls or publishes on its own. */
  private followSync(snapshot: ClusterSnapshot | null): void {
    const sync = this.deps.sync;
    if (!sync) return;
    const leader = snapshot?.leader ?? null;
    sync.follow({
      acting: this.role.acting,
      term: this.role.term,
      leader: leader ? { node: leader.node, term: leader.term, address: snapshot!.members.find((m) => m.node === leader.node)?.address ?? null } : null,
      published: snapshot ? snapshot.sync : undefined,
    });
  }

  private async act(action: Action, snapshot: ClusterSnapshot | null): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    const warn = (what: string) => (e: unknown) => log.warn({ err: describeError(e) }, what);
    switch (action.kind) {
      case "grant_lease":
        // With a lease the next decision may be to campaign: make it now, not at the next tick.
        if (await this.lease.grant().then(() => true, warn("cannot grant a session lease"))) this.trigger("lease granted");
        return;
      case "campaign":
        await this.campaign(snapshot);
        return;
      case "promote": {
        const lease = this.lease.state();
        if (lease && (await this.watchdogGate(action.term, lease))) await this.role.promote(action.term, lease);
        if (this.role.acting === "primary") this.emit({ type: "promoted", kind: "adopted", term: action.term, vacancyMs: null, promoteMs: 0 });
        return;
      }
      case "demote":
        await this.role.demote("decision");
        return;
      case "resign":
        await coordinator.resign(action.term).catch(warn("resign failed"));
        return;
      case "release": {
        const record = {
          node: config.node.name, term: action.term, at: new Date(clock.wallMs()).toISOString(), why: action.why,
          ...(this.lastDecision ? { reason: this.lastDecision.reason.slice(0, 2000) } : {}),
          ...vipNotFree(this.vipAtDecision),
        };
        if (await coordinator.release(action.term, record).catch(() => false)) log.info({ term: action.term, why: action.why }, "released the leader key");
        else log.warn({ term: action.term }, "release not applied; the lease expires on its own");
        return;
      }
      case "complete_switchover":
        if (this.role.term !== null) await this.chronicle.switchoverDone(action.request, snapshot, this.role.term);
        return;
      case "abort_switchover":
        await this.chronicle.switchoverAborted(snapshot?.switchover, action.why);
        return;
      case "request_failback": {
        const request: SwitchoverRequest = {
          kind: "failback", from: config.node.name, to: action.to, at: null, force: false,
          requestedBy: `policy on ${config.node.name}`, reason: "failback policy auto", requestedAt: new Date(clock.wallMs()).toISOString(),
        };
        await coordinator.requestSwitchover(request).catch(warn("cannot request the failback"));
        this.trigger("failback requested");
        return;
      }
      case "restart_daemon":
        await this.role.restartDaemon();
        return;
      case "start_daemon":
        await this.role.startDaemon();
        return;
      case "stop_daemon":
        await this.role.stopDaemon();
        this.trigger("stray daemon stopped");
        return;
      case "cool_down":
        this.role.coolDown();
        return;
      case "recheck_at":
        this.recheckIn(action.atMs - clock.monotonicMs(), "recheck");
        return;
      case "record_flap_damped":
        this.flap.damped(this.chronicle.flapDamped(this.role.term, action.reason), action.reason);
        return;
    }
  }

  private async campaign(snapshot: ClusterSnapshot | null): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    const lease = this.lease.state();
    if (!lease) return;
    const result = await coordinator.campaign(config.node.name, lease.id, new Date(clock.wallMs()).toISOString());
    if (!result.won) {
      log.info({ leader: result.leader?.node, term: result.leader?.term }, "lost the election race");
      return;
    }
    const term = result.leader!.term;
    log.info({ term }, "won the election");
    if (!(await this.prePromote(term, snapshot))) return;
    if (!(await this.watchdogGate(term, lease))) return;
    const started = clock.monotonicMs();
    // The predecessor committed its release after dropping the VIP: no need to probe for it.
    const released = snapshot?.released;
    // Not when it never held the address (another host answered for it): then nobody knows it is free.
    const skipDuplicateCheck = released !== null && released !== undefined && released.term === this.lastLeader?.term && released.vipNotFree === undefined;
    await this.role.promote(term, lease, skipDuplicateCheck);
    if (this.role.acting !== "primary") return;
    const now = clock.monotonicMs();
    const promoteMs = Math.round(now - started);
    const vacancyMs = this.vacantSinceMs !== null ? Math.round(now - this.vacantSinceMs) : null;
    this.emit({ type: "promoted", kind: this.chronicle.promotionKind(snapshot, this.lastLeader), term, vacancyMs, promoteMs });
    if (!snapshot?.switchover) {
      this.chronicle.takeover(term, snapshot, this.lastLeader, { promote_ms: promoteMs, ...(vacancyMs !== null ? { vacancy_ms: vacancyMs } : {}) });
    }
    this.noteStalePromotion(term, snapshot);
  }

  /** Promoted while lagging the published generation (the gate allowed it, within maximum_lag_on_failover): say so loudly. */
  private noteStalePromotion(term: number, snapshot: ClusterSnapshot | null): void {
    const sync = this.deps.sync;
    const pub = snapshot?.sync;
    if (!sync || !pub) return;
    const generation = sync.generation();
    if (generation >= pub.generation) return;
    const since = sync.behindSince();
    const lagMs = since === null ? 0 : this.deps.clock.monotonicMs() - since;
    this.deps.log.error({ term, generation, published: pub.generation, source: pub.source, lag_ms: Math.round(lagMs) }, "stale promotion: I became primary without the newest published files");
    this.chronicle.stalePromotion(term, generation, pub, lagMs);
    this.emit({ type: "stale_promotion", term, generation, published: pub.generation, lagMs });
  }

  /**
   * The watchdog starts before anything else does. With watchdog.mode
   * required (Patroni's `watchdog: required`) a node whose watchdog does not
   * run gives the key back and cools down, like a vetoed promotion; with
   * automatic it promotes anyway and says so.
   */
  private async watchdogGate(term: number, lease: LeaseState): Promise<boolean> {
    const { config, fenceGuard, log } = this.deps;
    if (config.watchdog.mode === "off" || !fenceGuard?.armWatchdog) return true;
    const { deadline, leaseEnd } = this.role.guardTimes(lease);
    const status = await fenceGuard.armWatchdog(deadline, leaseEnd, 1000);
    if (status.state === "active") return true;
    const problem = `watchdog ${config.watchdog.device} is not running (${status.state}${status.problem ? `: ${status.problem}` : ""})`;
    if (config.watchdog.mode === "automatic") {
      log.warn({ term }, `${problem}; promoting without it (watchdog.mode automatic)`);
      return true;
    }
    log.error({ term }, `${problem}; giving the leader key back (watchdog.mode required)`);
    fenceGuard.disarm();
    await this.decline(term, problem, "watchdog");
    return false;
  }

  /**
   * The pre_promote hook may veto a promotion we won (exit non-zero or time
   * out): the node declines it.
   */
  private async prePromote(term: number, snapshot: ClusterSnapshot | null): Promise<boolean> {
    const { hooks, config, log } = this.deps;
    if (!hooks?.configured("pre_promote")) return true;
    const reason = this.chronicle.promotionKind(snapshot, this.lastLeader);
    const verdict = await hooks.run("pre_promote", { role: "primary", previousRole: "standby", term, node: config.node.name, cluster: config.cluster, reason });
    if (verdict.ok) return true;
    const problem = verdict.problem ?? "pre_promote hook vetoed the promotion";
    log.warn({ term, code: verdict.code, timed_out: verdict.timedOut }, problem);
    await this.decline(term, problem, "pre_promote veto");
    return false;
  }

  /** A won election this node will not serve: nothing was started, so give the key to the next candidate and cool down, or the same node would win again at once. */
  private async decline(term: number, problem: string, trigger: string): Promise<void> {
    const { config, coordinator, clock } = this.deps;
    await coordinator.release(term, { node: config.node.name, term, at: new Date(clock.wallMs()).toISOString(), why: "veto" }).catch(() => false);
    this.role.coolDown();
    this.chronicle.vetoed(term, problem);
    this.trigger(trigger);
  }

  /** Lease deadline passed: fence now, whatever the cycle is doing. */
  private fence(lease: LeaseState): void {
    if (this.role.acting === "primary") {
      this.deps.log.error({ lease: lease.id, term: this.role.term }, "fencing: lease deadline passed; dropping the floating IP and stopping the daemon");
      this.chronicle.fenced(this.role.term, this.lease.error() ?? "no renewal acknowledged");
      this.emit({ type: "fenced" });
      void this.role.demote("lease deadline");
    }
    this.trigger("lease deadline");
  }

  private isHealthy(now: number): boolean {
    const { config, health } = this.deps;
    return now >= this.role.coolDownUntilMs && this.readiness.problem() === null && (config.daemon.mode === "cold" || health.criticalUp());
  }

  private async publishMember(): Promise<void> {
    const { config, clock, version, vip } = this.deps;
    const lease = this.lease.state();
    if (!lease) return;
    const notReady = this.readiness.problem();
    await this.member.publish(
      {
        node: config.node.name,
        role: this.role.acting,
        healthy: this.isHealthy(clock.monotonicMs()),
        ...(notReady !== null ? { notReady } : {}),
        priority: config.node.priority,
        nofailover: config.node.nofailover,
        generation: this.deps.sync?.generation() ?? 0,
        ...(this.deps.sync ? { sync: this.deps.sync.memberSummary() } : {}),
        address: config.node.address,
        version,
        decision: this.lastDecision?.reason ?? "",
        probes: Object.fromEntries(this.deps.health.states().map((s) => [s.name, s.up])),
        vipHeld: vip.state().held === true,
        ...memberVipFields(this.vipWitness.truth(this.role.acting)),
        daemonRunning: this.role.daemonRunning,
        ...(this.deps.apiUrl ? { api: this.deps.apiUrl } : {}),
      },
      lease.id,
    );
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
    const now = this.deps.clock.monotonicMs();
    const lease = this.lease.state();
    return {
      node: this.deps.config.node.name,
      acting: this.role.acting,
      term: this.role.term,
      leaseRemainingMs: lease ? Math.max(0, lease.deadlineMs - now) : null,
      etcdReachable: this.etcdReachable,
      decision: this.lastDecision?.reason ?? "",
      sinceLastCycleMs: this.lastCycleAtMs === null ? null : now - this.lastCycleAtMs,
      vipHeld: this.deps.vip.state().held === true,
      ...this.vipWitness.view(this.role.acting),
      daemonRunning: this.role.daemonRunning,
      probes: this.deps.health.states().map((p) => ({ name: p.name, critical: p.critical, up: p.up, detail: p.lastDetail })),
      healthy: this.isHealthy(now),
      notReady: this.readiness.problem(),
      flap: { damped: isDamped(this.flap.current()), moves: this.flap.current()?.moves ?? 0 },
    };
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
    this.recheck?.cancel();
    await this.cycleDone.catch(() => undefined);
    this.lease.stopRenewing();
    const wasPrimary = this.role.acting === "primary";
    const term = this.role.term;
    const vipBefore = this.deps.vip.state();
    await this.role.demote("shutdown");
    if (wasPrimary && term !== null) {
      // Release first (the successor may skip its duplicate-address check), then revoke the lease.
      const record = { node: config.node.name, term, at: new Date(clock.wallMs()).toISOString(), why: "shutdown" as const, ...vipNotFree(vipBefore) };
      await coordinator.release(term, record).catch(() => false);
    }
    await this.deps.health.stop();
    this.readiness.stop();
    await this.deps.vip.release().catch((e: unknown) => log.error({ err: describeError(e) }, "VIP release failed"));
    if (config.daemon.mode === "warm") await this.deps.daemon.stop().catch(() => undefined);
    await this.watch?.close().catch(() => undefined);
    await this.lease.revoke().catch((e: unknown) => log.warn({ err: describeError(e) }, "lease revoke failed; standbys take over at expiry"));
    log.info({ was_primary: wasPrimary }, "stopped");
  }
}
