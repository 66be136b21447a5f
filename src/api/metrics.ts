import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { eventLoopDelayGauges, PROM_CLIENT_SAMPLE_MS } from "./loop-lag.js";
import type { WatchdogState, WatchdogStatus } from "../fence/port.js";
import { PROMOTION_KINDS, type HaEvent, type NodeView } from "../ha/events.js";
import type { ProbeState } from "../probes/port.js";
import type { SyncEvent, SyncStatus } from "../sync/engine.js";
import type { RejoinEvent } from "../data/rejoin-exec.js";
import type { DataStatus, ShipTargetStatus } from "../data/port.js";

/**
 * Prometheus metrics for one agent: gauges read the node's view at scrape
 * time; counters follow the HA loop's events. Base units, `understudy_` prefix.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  private readonly promotions: Counter<"kind">;
  private readonly demotions: Counter<"why">;
  private readonly fences: Counter;
  private readonly restarts: Counter;
  private readonly failoverSeconds: Gauge;
  private readonly promoteSeconds: Histogram;
  private readonly stalePromotions: Counter;
  private readonly dataLagPromotions: Counter;
  private readonly reloads: Counter<"what" | "result">;
  private dataShipRuns?: Counter<"standby" | "kind" | "result">;
  private syncCounters?: { pulls: Counter<"result">; pullSeconds: Histogram; applied: Counter<"kind">; rescues: Counter; published: Counter; hooks: Counter<"hook" | "result"> };

  /** `probeStates` (ProbeHealth.states) feeds the gauges of what probes measured: certificate expiry, free disk space. */
  constructor(view: () => NodeView, labels: { cluster: string; node: string }, probeStates?: () => readonly ProbeState[]) {
    const registry = this.registry;
    registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: registry, prefix: "understudy_", eventLoopMonitoringPrecision: PROM_CLIENT_SAMPLE_MS });
    eventLoopDelayGauges(registry, "understudy_");
    const gauge = scrapeGauge(registry, view);
    gauge(
      "understudy_role",
      "1 for the role this node acts in now",
      (v, g) => {
        g.set({ role: "primary" }, v.acting === "primary" ? 1 : 0);
        g.set({ role: "standby" }, v.acting === "standby" ? 1 : 0);
      },
      ["role"],
    );
    gauge("understudy_leader_term", "Term (the leader key's mod_revision) while primary, else 0", (v, g) => g.set(v.term ?? 0));
    gauge("understudy_lease_remaining_seconds", "Time to the local lease deadline", (v, g) => g.set((v.leaseRemainingMs ?? 0) / 1000));
    gauge("understudy_etcd_reachable", "1 when the last HA cycle could read etcd", (v, g) => g.set(v.etcdReachable ? 1 : 0));
    gauge("understudy_vip_held", "1 when this node has the floating IP", (v, g) => g.set(v.vipHeld ? 1 : 0));
    // VIP truth (docs/operations.md): a primary without its address, and the MAC of whoever answers for it instead.
    gauge("understudy_vip_missing_seconds", "While primary: how long this node has been without its floating IP (0 when held or standby)", (v, g) => g.set((v.vipMissingMs ?? 0) / 1000));
    gauge(
      "understudy_vip_foreign_holder",
      "1 (with the MAC) while another host answers ARP for this primary's floating IP",
      (v, g) => {
        g.reset();
        if (v.vipHolder) g.set({ mac: v.vipHolder }, 1);
      },
      ["mac"],
    );
    // Failsafe mode (docs/failsafe-design.md): serving on grants, a hold that could not start, a promise running.
    gauge("understudy_failsafe_holding", "1 while this primary serves past its lease on its members' failsafe grants (etcd unreachable)", (v, g) => g.set(v.failsafe?.holding ? 1 : 0));
    gauge(
      "understudy_failsafe_armed",
      "Primary with election.failsafe on: 1 when a failsafe hold could start now, 0 when it could not (the reason: failsafe.armedReason in GET /health); -1 elsewhere",
      (v, g) => g.set(v.failsafe?.armed === true ? 1 : v.failsafe?.armed === false ? 0 : -1),
    );
    gauge("understudy_failsafe_promise_seconds", "Until this node's failsafe promise (or start-up hold) ends: it does not campaign before; 0 when none", (v, g) =>
      g.set((v.failsafe?.promiseLeftMs ?? 0) / 1000),
    );
    gauge("understudy_daemon_running", "1 when the transfer daemon runs on this node", (v, g) => g.set(v.daemonRunning ? 1 : 0));
    gauge("understudy_healthy", "1 when this node may become primary", (v, g) => g.set(v.healthy ? 1 : 0));
    gauge("understudy_ha_cycle_age_seconds", "Since the HA loop last completed a cycle (a stuck loop grows this while HTTP still answers)", (v, g) =>
      g.set(v.sinceLastCycleMs === null ? -1 : v.sinceLastCycleMs / 1000),
    );
    gauge(
      "understudy_probe_up",
      "1 when the probe's listener answers (after rise/fall)",
      (v, g) => {
        for (const p of v.probes) g.set({ probe: p.name, critical: String(p.critical) }, p.up ? 1 : 0);
      },
      ["probe", "critical"],
    );
    gauge("understudy_flap_damped", "1 when flap damping holds the cluster (health-driven handovers reached election.flap.max_moves; `understudy flap clear`)", (v, g) =>
      g.set(v.flap?.damped ? 1 : 0),
    );
    gauge("understudy_flap_moves", "Health-driven handovers within election.flap.window since the last clear, cluster-wide, as this node last read history", (v, g) => g.set(v.flap?.moves ?? 0));
    this.reloads = new Counter({
      name: "understudy_trust_file_reloads_total",
      help: "Trust files (CA, token, API TLS, sync key) re-read after a change, by file and result (ok, or rejected: the last good content stays)",
      labelNames: ["what", "result"],
      registers: [registry],
    });
    if (probeStates) this.probeDataGauges(probeStates);
    this.promotions = new Counter({ name: "understudy_promotions_total", help: "Times this node became primary, by how", labelNames: ["kind"], registers: [registry] });
    this.demotions = new Counter({ name: "understudy_demotions_total", help: "Times this node stopped acting as primary, by why", labelNames: ["why"], registers: [registry] });
    // Known label values start at 0, so increase() over a range sees the first event too.
    for (const kind of PROMOTION_KINDS) this.promotions.inc({ kind }, 0);
    this.fences = new Counter({ name: "understudy_fence_events_total", help: "Times this node fenced itself at its lease deadline", registers: [registry] });
    this.restarts = new Counter({ name: "understudy_daemon_restarts_total", help: "Daemon restarts by the HA loop", registers: [registry] });
    this.failoverSeconds = new Gauge({
      name: "understudy_last_failover_duration_seconds",
      help: "From the leader vacancy to this node serving, for its last promotion after a vacancy",
      registers: [registry],
    });
    this.promoteSeconds = new Histogram({
      name: "understudy_promotion_duration_seconds",
      help: "From winning the election to the daemon started and the VIP added",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.stalePromotions = new Counter({
      name: "understudy_stale_promotions_total",
      help: "Times this node became primary while lagging the published sync generation (within maximum_lag_on_failover)",
      registers: [registry],
    });
    this.dataLagPromotions = new Counter({
      name: "understudy_data_lag_promotions_total",
      help: "Times this node became primary with a data lag over data.maximum_data_lag_on_failover (history data_lag_promotion)",
      registers: [registry],
    });
  }

  /** A trust file was re-read after a change (ok) or refused, keeping the last good content (rejected). */
  observeReload(what: string, result: "ok" | "rejected"): void {
    this.reloads.inc({ what, result });
  }

  /** Sync metrics (only when sync roots are configured): gauges read the engine's status at scrape time. */
  withSync(status: () => SyncStatus): this {
    const registry = this.registry;
    const gauge = scrapeGauge(registry, status);
    gauge("understudy_sync_generation", "Published sync generation this node holds in full", (s, g) => g.set(s.generation));
    gauge("understudy_sync_published_generation", "Newest sync generation published in etcd, as this node last read it", (s, g) => g.set(s.published?.generation ?? 0));
    gauge("understudy_sync_in_sync", "1 when this node holds the published generation", (s, g) => g.set(s.inSync ? 1 : 0));
    gauge("understudy_sync_lag_seconds", "How long this node has lagged the published generation (0 when in sync)", (s, g) => g.set((s.lagMs ?? 0) / 1000));
    gauge("understudy_sync_last_success_timestamp_seconds", "When a sync pass last completed, epoch seconds (0: never)", (s, g) => g.set(s.lastSuccessAt ? Date.parse(s.lastSuccessAt) / 1000 : 0));
    gauge("understudy_sync_consecutive_failures", "Failed sync passes since the last success", (s, g) => g.set(s.failures));
    // Roots are independent: one failing root leaves the others syncing, and shows here by name.
    gauge(
      "understudy_sync_root_in_sync",
      "1 when this root's live files are the published ones (a generation is in sync only when every root is)",
      (s, g) => {
        for (const r of s.roots) g.set({ root: r.name }, r.inSync ? 1 : 0);
      },
      ["root"],
    );
    gauge(
      "understudy_sync_root_consecutive_failures",
      "Failed attempts to sync this root since its last success",
      (s, g) => {
        for (const r of s.roots) g.set({ root: r.name }, r.failures);
      },
      ["root"],
    );
    const c = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [registry] });
    this.syncCounters = {
      pulls: c("understudy_sync_pulls_total", "Sync passes that pulled and applied a root (ok) or failed, by result", ["result"]) as Counter<"result">,
      pullSeconds: new Histogram({
        name: "understudy_sync_pull_duration_seconds",
        help: "rsync pull of one root, from spawn to exit",
        buckets: [0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 10, 60],
        registers: [registry],
      }),
      applied: c("understudy_sync_files_applied_total", "Files and links applied on this standby, by kind of change", ["kind"]) as Counter<"kind">,
      rescues: c("understudy_sync_rescues_total", "Rescue folders created for local files that differed from the last synced state"),
      published: c("understudy_sync_generations_published_total", "Sync generations this node published as primary"),
      hooks: c("understudy_sync_hook_runs_total", "Per-root change hooks run: post_sync (standby, after apply) and post_publish (primary, after publishing its own changes), by result", [
        "hook",
        "result",
      ]) as Counter<"hook" | "result">,
    };
    this.zeroSyncCounters();
    return this;
  }

  private zeroSyncCounters(): void {
    const m = this.syncCounters!;
    for (const result of ["ok", "error"]) m.pulls.inc({ result }, 0);
    for (const kind of ["added", "changed", "removed"]) m.applied.inc({ kind }, 0);
    for (const hook of ["post_sync", "post_publish"]) for (const result of ["ok", "error"]) m.hooks.inc({ hook, result }, 0);
  }

  observeSync(e: SyncEvent): void {
    const m = this.syncCounters;
    if (!m) return;
    switch (e.type) {
      case "applied":
        m.pulls.inc({ result: "ok" });
        m.pullSeconds.observe(e.pullMs / 1000);
        m.applied.inc({ kind: "added" }, e.summary.added.length);
        m.applied.inc({ kind: "changed" }, e.summary.changed.length);
        m.applied.inc({ kind: "removed" }, e.summary.removed.length);
        return;
      case "failed":
        m.pulls.inc({ result: "error" });
        return;
      case "rescued":
        m.rescues.inc();
        return;
      case "published":
        m.published.inc();
        return;
      case "hook":
        m.hooks.inc({ hook: e.hook, result: e.ok ? "ok" : "error" });
        return;
      case "synced":
        return;
    }
  }

  /**
   * Data replication metrics (only with data roots): per-standby gauges from the primary's shipper
   * (a standby exports none: its lag is the primary's figure), read from DataControl.status() at
   * scrape time; label sets follow the standbys shipped to now.
   */
  withData(status: () => DataStatus): this {
    const registry = this.registry;
    const perStandby = (name: string, help: string, read: (t: ShipTargetStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["standby"],
        registers: [registry],
        collect() {
          const g = this as Gauge<string>;
          g.reset();
          for (const t of status().standbys) g.set({ standby: t.node }, read(t));
        },
      });
    perStandby("understudy_data_lag_files", "Changes (files, deletions, directories) the standby has not acknowledged, as this primary's shipper counts them", (t) => t.files);
    perStandby("understudy_data_lag_bytes", "Bytes of the changes the standby has not acknowledged", (t) => t.bytes);
    perStandby("understudy_data_lag_seconds", "Age of the oldest change the standby has not acknowledged (0 when in sync)", (t) => t.seconds);
    perStandby("understudy_data_standby_paused", "1 while shipping to the standby is paused (its data volume is full)", (t) => (t.paused !== null ? 1 : 0));
    perStandby("understudy_data_full_pass_needed", "1 while the standby needs a full pass (its true lag is unknown until the pass lists the tree)", (t) => (t.full ? 1 : 0));
    perStandby("understudy_data_delete_limit_hit", "1 while a full pass to the standby is stopped at data.max_delete (is the primary's data root mounted?)", (t) => (deleteLimited(t) ? 1 : 0));
    new Gauge({
      name: "understudy_data_watch_degraded",
      help: "1 while the primary cannot watch the data root (the kernel's inotify limit, US_E_DATA_WATCH_LIMIT): it ships by full passes, its standbys' lag is unknown",
      labelNames: ["root"],
      registers: [registry],
      collect() {
        const g = this as Gauge<string>;
        g.reset();
        for (const r of status().roots) g.set({ root: r.name }, r.unwatched ? 1 : 0);
      },
    });
    const journal = scrapeGauge(registry, status);
    // 0 on a node that is not the primary (no journal).
    const read = (pick: (j: NonNullable<DataStatus["journal"]>) => number) => (s: DataStatus, g: Gauge<string>) => g.set(s.journal ? pick(s.journal) : 0);
    journal(
      "understudy_data_journal_head",
      "The primary's change journal: its last sequence number",
      read((j) => j.head),
    );
    journal(
      "understudy_data_journal_pending",
      "Changes waiting for their stability window (not shippable yet)",
      read((j) => j.pending),
    );
    journal(
      "understudy_data_journal_ready",
      "Changes ready to ship, kept until every standby acknowledged them",
      read((j) => j.ready),
    );
    journal("understudy_data_primary", "1 while this node ships data as the primary (with a term)", (s, g) => g.set(s.role === "primary" ? 1 : 0));
    this.dataShipRuns = new Counter({
      name: "understudy_data_ship_runs_total",
      help: "rsync runs to a standby (batch or full pass), by result",
      labelNames: ["standby", "kind", "result"],
      registers: [registry],
    });
    return this;
  }

  /** One rsync run to a standby finished (the data engine calls this). */
  observeDataShip(standby: string, kind: "batch" | "full", result: "ok" | "error"): void {
    this.dataShipRuns?.inc({ standby, kind, result });
  }

  /** Label sets come and go with the probes' data, so each scrape starts from an empty gauge. */
  private probeDataGauges(states: () => readonly ProbeState[]): void {
    const gauge = (name: string, help: string, labelNames: string[], read: (p: ProbeState, g: Gauge<string>) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          const g = this as Gauge<string>;
          g.reset();
          for (const p of states()) read(p, g);
        },
      });
    gauge("understudy_tls_certificate_expiry_timestamp_seconds", "notAfter of each certificate a probe checked (file path, or host:port of a listener), epoch seconds", ["probe", "cert"], (p, g) => {
      for (const [cert, at] of Object.entries(p.data?.certExpiresAt ?? {})) g.set({ probe: p.name, cert }, at);
    });
    gauge("understudy_disk_free_bytes", "Bytes free for unprivileged users on the volume of a disk probe", ["probe"], (p, g) => {
      if (p.data?.freeBytes !== undefined) g.set({ probe: p.name }, p.data.freeBytes);
    });
    gauge("understudy_disk_size_bytes", "Size of the volume of a disk probe", ["probe"], (p, g) => {
      if (p.data?.totalBytes !== undefined) g.set({ probe: p.name }, p.data.totalBytes);
    });
    gauge("understudy_probe_warning", "1 when the probe's last measurement warns (a certificate expires within cert_warning)", ["probe"], (p, g) => {
      if (p.data?.warning !== undefined) g.set({ probe: p.name }, p.data.warning ? 1 : 0);
    });
  }

  /** understudy_etcd_invalid_records_total{kind}: records read from etcd that failed validation and were ignored. */
  withInvalidRecords(totals: () => Readonly<Record<string, number>>): void {
    new Counter({
      name: "understudy_etcd_invalid_records_total",
      help: "Records read from etcd that failed validation and were ignored (each key revision once), by kind",
      labelNames: ["kind"],
      registers: [this.registry],
      collect() {
        const c = this as Counter<string>;
        c.reset();
        for (const [kind, n] of Object.entries(totals())) c.inc({ kind }, n);
      },
    });
  }

  /** understudy_watchdog_state{state}: 1 for the state the fence guard last reported. */
  withWatchdog(status: () => WatchdogStatus): void {
    const states: readonly WatchdogState[] = ["off", "unavailable", "ready", "active"];
    scrapeGauge(this.registry, status)(
      "understudy_watchdog_state",
      "The watchdog device the fence guard holds while primary: 1 for its current state (off, unavailable, ready, active)",
      (s, g) => {
        for (const state of states) g.set({ state }, s.state === state ? 1 : 0);
      },
      ["state"],
    );
  }

  private rejoinFiles?: Counter<"kind">;

  /** understudy_data_rejoin_files_total{kind}: a former primary's files this primary took at rejoin (src/data/rejoin-exec.ts). */
  withDataRejoin(): this {
    this.rejoinFiles = new Counter({
      name: "understudy_data_rejoin_files_total",
      help: "Files a returning former primary held that this primary lacked, taken at rejoin: moved into place (restored ones included), or kept beside a different file under a conflict name",
      labelNames: ["kind"],
      registers: [this.registry],
    });
    for (const kind of ["moved", "conflict"]) this.rejoinFiles.inc({ kind }, 0);
    return this;
  }

  observeDataRejoin(e: RejoinEvent): void {
    if (e.type === "data_rejoin_file") this.rejoinFiles?.inc({ kind: e.kind });
  }

  observe(event: HaEvent): void {
    switch (event.type) {
      case "promoted":
        this.promotions.inc({ kind: event.kind });
        this.promoteSeconds.observe(event.promoteMs / 1000);
        if (event.vacancyMs !== null) this.failoverSeconds.set(event.vacancyMs / 1000);
        return;
      case "demoted":
        this.demotions.inc({ why: event.why });
        return;
      case "fenced":
        this.fences.inc();
        return;
      case "daemon_restarted":
        this.restarts.inc();
        return;
      case "stale_promotion":
        this.stalePromotions.inc();
        return;
      case "data_lag_promotion":
        this.dataLagPromotions.inc();
        return;
      case "cycle":
        return;
    }
  }
}

/** The engine's flag, or (older engines) its step sentence from ship-plan.ts afterFailure. */
function deleteLimited(t: ShipTargetStatus): boolean {
  return t.deleteLimited ?? t.step.startsWith("stopped deleting on ");
}

/** A factory of gauges whose value is read from `source()` at scrape time. */
function scrapeGauge<S>(registry: Registry, source: () => S) {
  return (name: string, help: string, read: (s: S, g: Gauge<string>) => void, labelNames: string[] = []) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        read(source(), this as Gauge<string>);
      },
    });
}
