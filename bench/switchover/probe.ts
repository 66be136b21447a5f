/**
 * The switchover benchmark's use of bench/failover's Prober: finer resolution
 * at both ends of a short gap (--slow-ms), and picking the gap of a known move.
 */
import type { Lab } from "../../test/lab/harness/index.js";
import { type Attempt, Prober } from "../failover/lib.js";

export interface ProbeOptions {
  host?: string;
  intervalMs?: number;
  timeoutMs?: number;
  /** A new attempt on every tick once the newest in flight is older than this (default 15: every tick). */
  slowMs?: number;
  maxSeconds?: number;
}

/** The failover benchmark's Prober with --slow-ms (default 15: a new attempt on every 20 ms tick while failing). */
export const FineProber = {
  start: (lab: Lab, tag: string, opts: ProbeOptions = {}): Promise<Prober> => Prober.start(lab, tag, { ...opts, slowMs: opts.slowMs ?? 15 }),
};

/**
 * The longest interval without a banner (between consecutive successful
 * attempts, by banner time) that overlaps [from, to]: the gap of a move whose
 * moment is known (from the agent logs or the ARP observer), so an unrelated
 * hiccup elsewhere in the probe window cannot be taken for it. Also the
 * failure reasons seen inside it.
 */
export function gapAround(attempts: readonly Attempt[], from: number, to: number): { from: number; to: number; gapMs: number; reasons: Record<string, number> } | undefined {
  const ok = attempts.filter((a) => a.ok).sort((a, b) => a.end - b.end);
  let best: { from: number; to: number; gapMs: number } | undefined;
  for (let i = 1; i < ok.length; i++) {
    const a = ok[i - 1]!.end;
    const b = ok[i]!.end;
    if (b < from || a > to) continue;
    if (!best || b - a > best.gapMs) best = { from: a, to: b, gapMs: b - a };
  }
  if (!best) return undefined;
  const reasons: Record<string, number> = {};
  for (const x of attempts) if (!x.ok && x.end > best.from && x.end <= best.to) reasons[x.reason ?? "?"] = (reasons[x.reason ?? "?"] ?? 0) + 1;
  return { ...best, reasons };
}
