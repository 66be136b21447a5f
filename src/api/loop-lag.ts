import { monitorEventLoopDelay } from "node:perf_hooks";
import { Gauge, type Registry } from "prom-client";

/**
 * How often the event-loop delay is sampled. prom-client's default metrics
 * sample every 10 ms: a timer that wakes the agent 100 times a second, 0.45 %
 * of a core in an otherwise idle Node (docs/benchmarks.md, idle agent), about
 * half of an idle agent's CPU. Every 100 ms, any stall of 100 ms or more is
 * still seen; shorter ones cannot matter to a 2 s HA cycle.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** prom-client's own sampler, which cannot be switched off alone: once every 10 s it costs nothing. */
export const PROM_CLIENT_SAMPLE_MS = 10_000;

const STATS = ["min", "max", "mean", "stddev", "p50", "p90", "p99"] as const;
type Stat = (typeof STATS)[number];

/**
 * The `<prefix>nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`
 * gauges, replacing prom-client's (same names) with a sampler every
 * EVENT_LOOP_SAMPLE_MS. Node's histogram records the time between samples, so
 * a value is the delay beyond the sampling interval (0 on an idle loop), as
 * prom-client's read at its 10 ms default within 10 ms. Since the last scrape,
 * like prom-client's (Node starts a new interval at each reset, so a stall in
 * the first interval after a scrape is not seen). Call after collectDefaultMetrics.
 */
export function eventLoopDelayGauges(registry: Registry, prefix: string): void {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  histogram.enable();
  const intervalNs = EVENT_LOOP_SAMPLE_MS * 1e6;
  const seen = (ns: number) => Number.isFinite(ns) && histogram.count > 0;
  const beyond = (ns: number) => (seen(ns) ? Math.max(0, ns - intervalNs) / 1e9 : 0);
  const read: Record<Stat, () => number> = {
    min: () => beyond(histogram.min),
    max: () => beyond(histogram.max),
    mean: () => beyond(histogram.mean),
    stddev: () => (seen(histogram.stddev) ? histogram.stddev / 1e9 : 0),
    p50: () => beyond(histogram.percentile(50)),
    p90: () => beyond(histogram.percentile(90)),
    p99: () => beyond(histogram.percentile(99)),
  };
  const name = (stat: Stat) => `${prefix}nodejs_eventloop_lag_${stat}_seconds`;
  const help = (stat: Stat) => `Event loop delay since the last scrape, ${stat}: beyond the ${EVENT_LOOP_SAMPLE_MS} ms sampling interval (0 when idle)`;
  for (const stat of STATS) registry.removeSingleMetric(name(stat));
  // The first one registered carries the collect: a scrape reads metrics in registration order, so it
  // sets every gauge from one histogram before the others are read, then starts the next window.
  const gauges: Gauge[] = [];
  const collect = () => {
    STATS.forEach((stat, i) => gauges[i]!.set(read[stat]()));
    histogram.reset();
  };
  for (const stat of STATS) gauges.push(new Gauge({ name: name(stat), help: help(stat), registers: [registry], ...(gauges.length === 0 ? { collect } : {}) }));
}
