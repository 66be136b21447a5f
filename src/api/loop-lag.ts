import { Gauge, type Registry } from "prom-client";
import { timerLateness } from "../platform/timer-lateness.js";

/** prom-client's own sampler, which cannot be switched off alone: once every 10 s it costs nothing. */
export const PROM_CLIENT_SAMPLE_MS = 10_000;

const STATS = ["min", "max", "mean", "stddev", "p50", "p90", "p99"] as const;
type Stat = (typeof STATS)[number];

/**
 * The `<prefix>nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`
 * gauges, replacing prom-client's (same names): how late the agent's own
 * timers fired since the last scrape (src/platform/timer-lateness.ts), 0 when
 * none fired. A stall shows when a lease renewal, an HA cycle or a probe was
 * due during it (an idle agent at ttl 5 s has one due at least every 1.25 s,
 * the lease's), which is when a stall matters to the agent; no sampler wakes
 * the process for it. prom-client's read at 10 ms cost an idle agent half its
 * CPU, and a 100 ms sampler still 0.09 % of a core. Call after
 * collectDefaultMetrics.
 */
export function eventLoopDelayGauges(registry: Registry, prefix: string): void {
  const h = timerLateness;
  const seen = (ns: number) => Number.isFinite(ns) && h.count > 0;
  const seconds = (ns: number) => (seen(ns) ? ns / 1e9 : 0);
  const read: Record<Stat, () => number> = {
    min: () => seconds(h.min),
    max: () => seconds(h.max),
    mean: () => seconds(h.mean),
    stddev: () => seconds(h.stddev),
    p50: () => seconds(h.percentile(50)),
    p90: () => seconds(h.percentile(90)),
    p99: () => seconds(h.percentile(99)),
  };
  const name = (stat: Stat) => `${prefix}nodejs_eventloop_lag_${stat}_seconds`;
  const help = (stat: Stat) => `How late the agent's timers fired since the last scrape, ${stat} (0 when none fired)`;
  for (const stat of STATS) registry.removeSingleMetric(name(stat));
  // The first one registered carries the collect: a scrape reads metrics in registration order, so it
  // sets every gauge from one histogram before the others are read, then starts the next window.
  const gauges: Gauge[] = [];
  const collect = () => {
    STATS.forEach((stat, i) => gauges[i]!.set(read[stat]()));
    h.reset();
  };
  for (const stat of STATS) gauges.push(new Gauge({ name: name(stat), help: help(stat), registers: [registry], ...(gauges.length === 0 ? { collect } : {}) }));
}
