import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { HaEvent, NodeView } from "../ha/events.js";
import type { ProbeState } from "../probes/port.js";

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

  /** `probeStates` (ProbeHealth.states) feeds the gauges of what probes measured: certificate expiry, free disk space. */
  constructor(view: () => NodeView, labels: { cluster: string; node: string }, probeStates?: () => readonly ProbeState[]) {
    const registry = this.registry;
    registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: registry, prefix: "understudy_" });
    const gauge = (name: string, help: string, read: (v: NodeView, g: Gauge<string>) => void, labelNames: string[] = []) =>
      new Gauge({
        name, help, labelNames, registers: [registry],
        collect() {
          read(view(), this as Gauge<string>);
        },
      });
    gauge("understudy_role", "1 for the role this node acts in now", (v, g) => {
      g.set({ role: "primary" }, v.acting === "primary" ? 1 : 0);
      g.set({ role: "standby" }, v.acting === "standby" ? 1 : 0);
    }, ["role"]);
    gauge("understudy_leader_term", "Term (leader key create_revision) while primary, else 0", (v, g) => g.set(v.term ?? 0));
    gauge("understudy_lease_remaining_seconds", "Time to the local lease deadline", (v, g) => g.set((v.leaseRemainingMs ?? 0) / 1000));
    gauge("understudy_etcd_reachable", "1 when the last HA cycle could read etcd", (v, g) => g.set(v.etcdReachable ? 1 : 0));
    gauge("understudy_vip_held", "1 when this node has the floating IP", (v, g) => g.set(v.vipHeld ? 1 : 0));
    gauge("understudy_daemon_running", "1 when the transfer daemon runs on this node", (v, g) => g.set(v.daemonRunning ? 1 : 0));
    gauge("understudy_healthy", "1 when this node may become primary", (v, g) => g.set(v.healthy ? 1 : 0));
    gauge("understudy_probe_up", "1 when the probe's listener answers (after rise/fall)", (v, g) => {
      for (const p of v.probes) g.set({ probe: p.name, critical: String(p.critical) }, p.up ? 1 : 0);
    }, ["probe", "critical"]);
    if (probeStates) this.probeDataGauges(probeStates);
    this.promotions = new Counter({ name: "understudy_promotions_total", help: "Times this node became primary, by how", labelNames: ["kind"], registers: [registry] });
    this.demotions = new Counter({ name: "understudy_demotions_total", help: "Times this node stopped acting as primary, by why", labelNames: ["why"], registers: [registry] });
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
  }

  /** Label sets come and go with the probes' data, so each scrape starts from an empty gauge. */
  private probeDataGauges(states: () => readonly ProbeState[]): void {
    const gauge = (name: string, help: string, labelNames: string[], read: (p: ProbeState, g: Gauge<string>) => void) =>
      new Gauge({
        name, help, labelNames, registers: [this.registry],
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
      case "cycle":
        return;
    }
  }
}
