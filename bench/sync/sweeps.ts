/**
 * Which small-file changes ran while an agent was sweeping the 1 GiB root
 * (the periodic reconcile on the primary, verify on the standbys: src/sync/
 * sweep.ts), read from the agents' logs: a sweep walks the roots in order
 * (small, then big), logging one line per root when it is done, so the big
 * root's walk runs from the "of small" line to the "of big" line.
 */
import type { LogLine } from "../failover/lib.js";
import type { Iteration, Summary } from "./latency.js";
import { summarize } from "./latency.js";

export interface SweepWindow {
  node: string;
  fromMs: number;
  toMs: number;
}

const SWEPT = /^sync: periodic (reconcile|verify) of (small|big): /;

export function bigRootSweeps(logs: Record<string, readonly LogLine[]>): SweepWindow[] {
  const out: SweepWindow[] = [];
  for (const [node, lines] of Object.entries(logs)) {
    let smallDone: number | undefined;
    for (const l of lines) {
      const m = SWEPT.exec(l.msg);
      if (!m) continue;
      if (m[2] === "small") smallDone = l.time;
      else if (smallDone !== undefined) {
        out.push({ node, fromMs: smallDone, toMs: l.time });
        smallDone = undefined;
      }
    }
  }
  return out;
}

export interface DuringSweeps {
  sweeps: number;
  /** Median time one agent took to walk the big root. */
  sweepMsP50: number | null;
  /** Changes whose write-to-identical span overlapped some agent's sweep of the big root. */
  changes: number;
  identical: Summary | null;
}

export function duringSweeps(iterations: readonly Iteration[], sweeps: readonly SweepWindow[]): DuringSweeps {
  const overlapping = iterations.filter((it) => {
    const end = it.writtenAtMs + (it.identicalMs ?? 10_000);
    return sweeps.some((s) => it.writtenAtMs <= s.toMs && end >= s.fromMs);
  });
  const walks = sweeps.map((s) => s.toMs - s.fromMs);
  return {
    sweeps: sweeps.length,
    sweepMsP50: summarize(walks)?.p50 ?? null,
    changes: overlapping.length,
    identical: summarize(overlapping.map((x) => x.identicalMs)),
  };
}
