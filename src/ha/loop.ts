import { describeError } from "../errors/catalogue.js";
import type { Config } from "../config/load.js";
import type { ClusterSnapshot, Coordinator, HistoryEvent, LeaderRecord, MemberRecord, MemberRole, SwitchoverRequest, Subscription } from "../coordinator/port.js";
import type { DaemonController } from "../daemon/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { decide } from "./decide.js";
import { SessionLease, type LeaseState } from "./lease.js";
import type { Action, Decision, Observation } from "./observation.js";
import type { DaemonHealth, VipControl } from "./ports.js";
import { ALWAYS_READY, type Readiness } from "../daemon/readiness.js";
import { HistoryRecorder } from "./history.js";
import type { HaEvent, HaEventListener, NodeView, PromotionKind } from "./events.js";
import { eligible } from "./candidates.js";

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
}

const RESTART_WINDOW_MS = 60_000;

/**
 * The imperative shell around decide(): observe (etcd snapshot, lease, daemon,
 * probes), decide, act. Cycles never overlap; triggers that arrive during a
 * cycle coalesce into one more. The lease deadline fences directly, without
 * waiting for a cycle or for etcd.
 */
export class HaLoop {
  private acting: "primary" | "standby" = "standby";
  private term: number | null = null;
  private epoch = 0;
  private vacantSinceMs: number | null = null;
  private restarts: number[] = [];
  private daemonStartedAt = -Infinity;
  private coolDownUntilMs = 0;
  private lastDecision: Decision | undefined;
  private lastSnapshot: ClusterSnapshot | null = null;
  private lastMember = "";
  private running = false;
  private pending = false;
  private stopped = false;
  private tick: TimerHandle | undefined;
  private recheck: TimerHandle | undefined;
  private watch: Subscription | undefined;
  private cycleDone: Promise<void> = Promise.resolve();
  private readonly readiness: Readiness;
  private readonly history: HistoryRecorder;
  /** The last leader this node saw, to say whom a failover replaced. */
  private lastLeader: LeaderRecord | null = null;
  private preferredReadySinceMs: number | null = null;
  private lastCycleAtMs: number | null = null;
  private etcdReachable = false;
  private readonly listeners: HaEventListener[] = [];
  readonly lease: SessionLease;

  constructor(private readonly deps: HaLoopDeps) {
    this.lease = new SessionLease(deps.coordinator, deps.config.election, deps.clock, deps.log, {
      onDeadline: (l) => this.fence(l),
      onChange: () => this.trigger("lease"),
    });
    deps.daemon.onUnexpectedExit((exit) => {
      deps.log.warn({ code: exit.code, signal: exit.signal }, "daemon exited unexpectedly");
      this.trigger("daemon exit");
    });
    deps.health.onChange(() => this.trigger("probe change"));
    this.readiness = deps.readiness ?? ALWAYS_READY;
    this.history = new HistoryRecorder(deps.coordinator, deps.log);
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
    this.deps.health.start();
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
    this.tick = this.deps.clock.setTimer(this.deps.config.election.renewIntervalMs, () => {
      this.trigger("tick");
      this.scheduleTick();
    });
  }

  observe(snapshot: ClusterSnapshot | null, etcdError: string | null): Observation {
    const { config, clock } = this.deps;
    const now = clock.monotonicMs();
    if (snapshot && snapshot.leader === null) this.vacantSinceMs ??= now;
    else if (snapshot) this.vacantSinceMs = null;
    this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    const lease = this.lease.state();
    const fb = config.failback;
    const preferred = fb.preferred ? snapshot?.members.find((m) => m.node === fb.preferred && m.role === "standby") : undefined;
    if (snapshot) this.preferredReadySinceMs = preferred && eligible(preferred, snapshot.bans) ? (this.preferredReadySinceMs ?? now) : null;
    return {
      nowMs: now,
      wallNowMs: clock.wallMs(),
      self: { name: config.node.name, priority: config.node.priority, nofailover: config.node.nofailover, generation: 0 },
      mode: config.daemon.mode,
      acting: this.acting,
      term: this.term,
      lease: lease ? { id: lease.id, deadlineMs: lease.deadlineMs } : null,
      cluster: snapshot,
      etcdError,
      vacantSinceMs: this.vacantSinceMs,
      daemon: {
        running: this.daemonRunningCache,
        probesUp: this.deps.health.criticalUp() || now - this.daemonStartedAt < this.deps.probeGraceMs,
        recentRestarts: this.restarts.length,
      },
      restartsBeforeHandover: config.daemon.restarts_before_handover,
      rankingDelayMs: config.election.rankingDelayMs,
      coolDownUntilMs: this.coolDownUntilMs,
      notReady: this.readiness.problem(),
      failback: { policy: fb.policy, preferred: fb.preferred ?? null, delayMs: fb.delay },
      preferredReadySinceMs: this.preferredReadySinceMs,
      switchoverWaitMs: Math.max(1000, 3 * config.election.rankingDelayMs),
    };
  }

  private daemonRunningCache = false;

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
      await this.history.flush();
    }
    this.daemonRunningCache = await daemon.isRunning().catch(() => false);
    const decision = decide(this.observe(snapshot, etcdError ?? this.lease.error()));
    if (decision.reason !== this.lastDecision?.reason) log.info({ trigger: why, actions: decision.actions.map((a) => a.kind) }, decision.reason);
    this.lastDecision = decision;
    for (const action of decision.actions) {
      if (this.stopped) return;
      await this.act(action, snapshot);
    }
    if (snapshot?.leader) this.lastLeader = snapshot.leader;
    await this.publishMember();
    this.etcdReachable = snapshot !== null;
    this.lastCycleAtMs = this.deps.clock.monotonicMs();
    this.emit({ type: "cycle", etcdReachable: this.etcdReachable });
  }

  private async act(action: Action, snapshot: ClusterSnapshot | null): Promise<void> {
    const { coordinator, config, clock, log } = this.deps;
    switch (action.kind) {
      case "grant_lease":
        try {
          await this.lease.grant();
        } catch (e) {
          log.warn({ err: describeError(e) }, "cannot grant a session lease");
        }
        return;
      case "campaign": {
        const lease = this.lease.state();
        if (!lease) return;
        const result = await coordinator.campaign(config.node.name, lease.id, new Date(clock.wallMs()).toISOString());
        if (result.won) {
          log.info({ term: result.leader?.term }, "won the election");
          const started = clock.monotonicMs();
          // The predecessor committed its release after dropping the VIP: no need to probe for it.
          const released = snapshot?.released;
          const skipDuplicateCheck = released !== null && released !== undefined && released.term === this.lastLeader?.term;
          await this.promote(result.leader!.term, lease, skipDuplicateCheck);
          if (this.acting === "primary") {
            const promoteMs = clock.monotonicMs() - started;
            const vacancyMs = this.vacantSinceMs !== null ? clock.monotonicMs() - this.vacantSinceMs : null;
            this.emit({ type: "promoted", kind: this.promotionKind(snapshot), term: result.leader!.term, vacancyMs, promoteMs });
            this.recordTakeover(result.leader!.term, snapshot, promoteMs);
          }
        } else {
          log.info({ leader: result.leader?.node, term: result.leader?.term }, "lost the election race");
        }
        return;
      }
      case "promote": {
        const lease = this.lease.state();
        if (lease) await this.promote(action.term, lease);
        if (this.acting === "primary") this.emit({ type: "promoted", kind: "adopted", term: action.term, vacancyMs: null, promoteMs: 0 });
        return;
      }
      case "demote":
        await this.demote("decision");
        return;
      case "resign":
        await coordinator.resign(action.term).catch((e: unknown) => log.warn({ err: describeError(e) }, "resign failed"));
        return;
      case "release": {
        const record = { node: config.node.name, term: action.term, at: new Date(clock.wallMs()).toISOString(), why: action.why };
        const ok = await coordinator.release(action.term, record).catch((e: unknown) => {
          log.warn({ err: describeError(e) }, "release failed; the lease expires on its own");
          return false;
        });
        if (ok) log.info({ term: action.term, why: action.why }, "released the leader key");
        return;
      }
      case "complete_switchover":
        await this.completeSwitchover(action.request, snapshot);
        return;
      case "abort_switchover": {
        const sw = snapshot?.switchover;
        await coordinator.cancelSwitchover().catch((e: unknown) => log.warn({ err: describeError(e) }, "cannot cancel the switchover"));
        if (sw) this.history.record(this.event(sw.kind, { from: sw.from, to: sw.to, reason: `not done: ${action.why}`, requestedBy: sw.requestedBy }), null);
        return;
      }
      case "request_failback": {
        const request: SwitchoverRequest = {
          kind: "failback", from: config.node.name, to: action.to, at: null, force: false,
          requestedBy: `policy on ${config.node.name}`, reason: "failback policy auto", requestedAt: new Date(clock.wallMs()).toISOString(),
        };
        await coordinator.requestSwitchover(request).catch((e: unknown) => log.warn({ err: describeError(e) }, "cannot request the failback"));
        this.trigger("failback requested");
        return;
      }
      case "restart_daemon":
        await this.restartDaemon();
        return;
      case "start_daemon":
        await this.startDaemon();
        return;
      case "cool_down":
        this.coolDownUntilMs = clock.monotonicMs() + Math.max(10_000, 3 * config.election.ttlMs);
        return;
      case "recheck_at":
        this.recheck?.cancel();
        this.recheck = clock.setTimer(action.atMs - clock.monotonicMs(), () => this.trigger("ranking delay"));
        return;
    }
  }

  private async promote(term: number, lease: LeaseState, skipDuplicateCheck = false): Promise<void> {
    const { clock, log, config, vip } = this.deps;
    // Adding the VIP takes a duplicate check plus `ip addr add`: never start it so close
    // to the deadline that it could land after the fence has run. The next renewal retries.
    const left = lease.deadlineMs - clock.monotonicMs();
    const budget = Math.min(1000, (config.election.ttlMs - config.election.fenceMarginMs) / 2);
    if (left < budget) {
      log.warn({ term, lease_left_ms: Math.round(left), budget_ms: budget }, "not promoting yet: too little lease time left");
      return;
    }
    const epoch = ++this.epoch;
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
    log.info({ term, took_ms: Math.round(clock.monotonicMs() - started), duplicate_check: !skipDuplicateCheck }, "acting as primary");
    void this.deps.health.checkNow().catch(() => undefined);
  }

  private async startDaemon(): Promise<void> {
    this.daemonStartedAt = this.deps.clock.monotonicMs();
    await this.deps.daemon.start();
    this.daemonRunningCache = true;
  }

  private async restartDaemon(): Promise<void> {
    const { daemon, log, clock, config } = this.deps;
    const n = this.restarts.length;
    const backoff = n === 0 ? 0 : Math.min(config.daemon.restart_backoff * 2 ** (n - 1), config.daemon.restart_backoff_max);
    const last = this.restarts[this.restarts.length - 1] ?? -Infinity;
    const wait = last + backoff - clock.monotonicMs();
    if (wait > 0) {
      this.recheck?.cancel();
      this.recheck = clock.setTimer(wait, () => this.trigger("restart backoff"));
      return;
    }
    this.restarts.push(clock.monotonicMs());
    this.emit({ type: "daemon_restarted" });
    try {
      await daemon.stop();
      await this.startDaemon();
    } catch (e) {
      log.error({ err: describeError(e) }, "daemon restart failed");
    }
  }

  /** Stop acting as primary: VIP first (what clients see), then the daemon in cold mode. */
  private async demote(why: string): Promise<void> {
    if (this.acting !== "primary") return;
    this.epoch++;
    this.deps.log.warn({ term: this.term, why }, "stepping down to standby");
    this.emit({ type: "demoted", why });
    this.acting = "standby";
    this.term = null;
    await this.undoPrimary();
  }

  private async undoPrimary(): Promise<void> {
    const { vip, daemon, config, log } = this.deps;
    const results = await Promise.allSettled([vip.setDesired(false), config.daemon.mode === "cold" ? daemon.stop() : Promise.resolve()]);
    for (const r of results) if (r.status === "rejected") log.error({ err: describeError(r.reason) }, "step-down action failed");
  }

  /** Lease deadline passed: fence now, whatever the cycle is doing. */
  private fence(lease: LeaseState): void {
    if (this.acting === "primary") {
      this.deps.log.error({ lease: lease.id, term: this.term }, "fencing: lease deadline passed; dropping the floating IP and stopping the daemon");
      this.history.record(this.event("fence", { from: this.deps.config.node.name, reason: `lease deadline passed (${this.lease.error() ?? "no renewal acknowledged"})` }), null);
      this.emit({ type: "fenced" });
      void this.demote("lease deadline");
    }
    this.trigger("lease deadline");
  }

  private async publishMember(): Promise<void> {
    const { config, coordinator, clock, version, vip, log } = this.deps;
    const lease = this.lease.state();
    if (!lease) return;
    const now = clock.monotonicMs();
    const role: MemberRole = this.acting;
    const probes = Object.fromEntries(this.deps.health.states().map((s) => [s.name, s.up]));
    const healthy = this.isHealthy(now);
    const body = {
      node: config.node.name,
      role,
      healthy,
      priority: config.node.priority,
      nofailover: config.node.nofailover,
      generation: 0,
      address: config.node.address,
      version,
      decision: this.lastDecision?.reason ?? "",
      probes,
      vipHeld: vip.state().held === true,
      daemonRunning: this.daemonRunningCache,
      ...(this.deps.apiUrl ? { api: this.deps.apiUrl } : {}),
    };
    const key = JSON.stringify(body) + lease.id;
    if (key === this.lastMember) return;
    const member: MemberRecord = { ...body, updatedAt: new Date(clock.wallMs()).toISOString() };
    try {
      await coordinator.putMember(member, lease.id);
      this.lastMember = key;
    } catch (e) {
      log.debug({ err: describeError(e) }, "member key not written");
    }
  }

  private event(kind: HistoryEvent["kind"], fields: Partial<HistoryEvent>): HistoryEvent {
    return {
      kind,
      at: new Date(this.deps.clock.wallMs()).toISOString(),
      node: this.deps.config.node.name,
      from: null,
      to: null,
      term: this.term,
      reason: "",
      ...fields,
    };
  }

  private promotionKind(snapshot: ClusterSnapshot | null): PromotionKind {
    const sw = snapshot?.switchover;
    if (sw) return sw.kind === "failover" ? "failover_forced" : sw.kind;
    const released = snapshot?.released;
    if (released && released.term === this.lastLeader?.term) return "handover";
    if (this.lastLeader !== null && this.lastLeader.node !== this.deps.config.node.name) return "failover";
    return "election";
  }

  /** After winning an election: record a failover (vacancy after a death) or a handover (a release). */
  private recordTakeover(term: number, snapshot: ClusterSnapshot | null, promoteMs: number): void {
    const me = this.deps.config.node.name;
    const released = snapshot?.released;
    const previous = this.lastLeader?.node ?? null;
    if (snapshot?.switchover) return; // completeSwitchover records it
    const vacancyMs = this.vacantSinceMs !== null ? this.deps.clock.monotonicMs() - this.vacantSinceMs : undefined;
    const durations = { promote_ms: Math.round(promoteMs), ...(vacancyMs !== undefined ? { vacancy_ms: Math.round(vacancyMs) } : {}) };
    if (released && released.term === this.lastLeader?.term) {
      this.history.record(this.event("handover", { from: released.node, to: me, term, reason: `${released.node} released the role (${released.why})`, durations }), term);
    } else if (previous !== null && previous !== me) {
      this.history.record(this.event("failover", { from: previous, to: me, term, reason: `${previous}'s lease expired`, durations }), term);
    }
  }

  /** The new primary confirms a switchover/failback/failover request took effect and clears it. */
  private async completeSwitchover(sw: SwitchoverRequest, snapshot: ClusterSnapshot | null): Promise<void> {
    const term = this.term;
    if (term === null) return;
    const released = snapshot?.released;
    const gap = released && released.node === sw.from ? this.deps.clock.wallMs() - Date.parse(released.at) : undefined;
    this.history.record(
      this.event(sw.kind, {
        from: sw.from, to: this.deps.config.node.name, term, reason: sw.reason, requestedBy: sw.requestedBy,
        ...(gap !== undefined ? { durations: { handover_ms: Math.max(0, Math.round(gap)) } } : {}),
      }),
      term,
    );
    await this.deps.coordinator.clearSwitchover(term).catch((e: unknown) => this.deps.log.warn({ err: describeError(e) }, "cannot clear the switchover request"));
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

  private isHealthy(now: number): boolean {
    const { config, health } = this.deps;
    return now >= this.coolDownUntilMs && this.readiness.problem() === null && (config.daemon.mode === "cold" || health.criticalUp());
  }

  view(): NodeView {
    const now = this.deps.clock.monotonicMs();
    const lease = this.lease.state();
    return {
      node: this.deps.config.node.name,
      acting: this.acting,
      term: this.term,
      leaseRemainingMs: lease ? Math.max(0, lease.deadlineMs - now) : null,
      etcdReachable: this.etcdReachable,
      decision: this.lastDecision?.reason ?? "",
      sinceLastCycleMs: this.lastCycleAtMs === null ? null : now - this.lastCycleAtMs,
      vipHeld: this.deps.vip.state().held === true,
      daemonRunning: this.daemonRunningCache,
      probes: this.deps.health.states().map((p) => ({ name: p.name, critical: p.critical, up: p.up, detail: p.lastDetail })),
      healthy: this.isHealthy(now),
      notReady: this.readiness.problem(),
    };
  }

  status(): { acting: string; term: number | null; decision: string; lease: LeaseState | null; snapshot: ClusterSnapshot | null } {
    return { acting: this.acting, term: this.term, decision: this.lastDecision?.reason ?? "", lease: this.lease.state(), snapshot: this.lastSnapshot };
  }

  /**
   * Graceful stop (SIGTERM): quiesce the daemon, drop the VIP, then revoke the
   * lease so a standby takes over at once instead of after the TTL.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tick?.cancel();
    this.recheck?.cancel();
    await this.cycleDone.catch(() => undefined);
    this.lease.stopRenewing();
    const wasPrimary = this.acting === "primary";
    const term = this.term;
    await this.demote("shutdown");
    if (wasPrimary && term !== null) {
      // Release first (the successor may skip its duplicate-address check), then revoke the lease.
      const record = { node: this.deps.config.node.name, term, at: new Date(this.deps.clock.wallMs()).toISOString(), why: "shutdown" as const };
      await this.deps.coordinator.release(term, record).catch(() => false);
    }
    await this.deps.health.stop();
    this.readiness.stop();
    await this.deps.vip.release().catch((e: unknown) => this.deps.log.error({ err: describeError(e) }, "VIP release failed"));
    if (this.deps.config.daemon.mode === "warm") await this.deps.daemon.stop().catch(() => undefined);
    await this.watch?.close().catch(() => undefined);
    await this.lease.revoke().catch((e: unknown) => this.deps.log.warn({ err: describeError(e) }, "lease revoke failed; standbys take over at expiry"));
    this.deps.log.info({ was_primary: wasPrimary }, "stopped");
  }
}
