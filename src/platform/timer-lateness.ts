// How late the agent's own timers fire: the event loop's delay as the agent's
// scheduled work (lease renewals, HA cycles, probes) felt it. SystemClock
// records every timer it runs here, so measuring the loop needs no sampler of
// its own: Node's monitorEventLoopDelay woke an idle agent every 100 ms for
// it, 0.09 % of a core in an otherwise idle Node (docs/benchmarks.md).
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";

/** Nanoseconds each timer of this process ran after it was due (at least 1: the histogram takes no 0). */
export const timerLateness: RecordableHistogram = createHistogram();

/**
 * A timer due at `dueMs` (performance.now() time) runs now: record how late.
 * Node counts a delay from the loop's cached time, so a timer armed late in a
 * long tick may run before `dueMs`: it counts as on time (the floor, 1 ns).
 * Never throws (it runs inside every timer): a due time that is not a number
 * (a NaN delay, which Node runs after 1 ms) is not recorded.
 */
export function recordLateness(dueMs: number): void {
  const lateNs = Math.round((performance.now() - dueMs) * 1e6);
  if (Number.isFinite(lateNs)) timerLateness.record(Math.max(1, lateNs));
}
