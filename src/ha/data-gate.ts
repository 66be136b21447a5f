import { isBehind, type DataLagRecord, type DataProgress } from "../coordinator/port.js";
import { bestCandidate, compareDataLag, dataLagOf, eligible } from "./candidates.js";
import type { DataLagPromotion, Observation } from "./observation.js";

// The data-lag promotion gate (pure; docs/architecture.md, "Ranking"), the data twin of
// syncGate: a standby whose data lag in the last primary's data/progress exceeds
// data.maximum_data_lag_on_failover (bytes) does not take over while an eligible member with
// less lag could; when every candidate exceeds it, the best one takes over and the promotion
// is recorded (history data_lag_promotion). Unknown lag (not listed, or a full pass needed)
// counts as exceeding. No data/progress at all (never written) blocks nobody.

export interface DataGateVerdict {
  readonly blocked: boolean;
  readonly reason: string;
}

/** Null when data roots are not configured here, or my lag is within the limit. */
export function dataGate(o: Observation): DataGateVerdict | null {
  if (!o.data || !o.cluster) return null;
  const progress = o.cluster.dataProgress ?? null;
  if (progress === null) return { blocked: false, reason: "no data/progress was ever written, so the data-lag gate blocks nobody" };
  const me = o.self.name;
  const mine = dataLagOf(me, progress);
  const max = o.data.maximumLagBytes;
  if (within(mine, max)) return null;
  const what = `my data lag is ${describeLag(mine)} in ${source(progress)}, over maximum_data_lag_on_failover (${size(max)})`;
  const pub = o.cluster.sync;
  const iAmBehind = o.sync.enabled && isBehind(o.self.generation, pub);
  // Only a member that would itself take over: eligible, ready, not behind the config files (unless I am too).
  const less = o.cluster.members.filter(
    (m) =>
      m.node !== me &&
      m.role !== "primary" &&
      eligible(m, o.cluster!.bans) &&
      m.notReady === undefined &&
      (iAmBehind || !o.sync.enabled || !isBehind(m.generation, pub)) &&
      compareDataLag(dataLagOf(m.node, progress), mine) < 0,
  );
  const better = bestCandidate(less, o.cluster.bans, progress);
  if (better) return { blocked: true, reason: `no action: no primary, but ${what} and ${better.node} has less (${describeLag(dataLagOf(better.node, progress))})` };
  return { blocked: false, reason: `data lag: ${what} and no eligible member has less; taking over anyway (recorded as data_lag_promotion)` };
}

/**
 * A won take-over while my data lag exceeds the limit (every candidate did, or a forced
 * failover): the executor records it in history as data_lag_promotion.
 */
export function dataLagMark(o: Observation, via: "won" | "adopted"): DataLagPromotion | undefined {
  if (via !== "won" || !o.data || !o.cluster?.dataProgress) return undefined;
  const progress = o.cluster.dataProgress;
  const lag = dataLagOf(o.self.name, progress);
  const max = o.data.maximumLagBytes;
  if (within(lag, max)) return undefined;
  return {
    lag,
    maximumBytes: max,
    progressNode: progress.node,
    progressTerm: progress.term,
    reason: `data lag promotion: I became primary with data lag ${describeLag(lag)} in ${source(progress)}, over maximum_data_lag_on_failover (${size(max)}); files ${progress.node} shipped after that are not here until it rejoins`,
  };
}

function within(lag: DataLagRecord | null, max: number): boolean {
  return lag !== null && !lag.full && lag.bytes <= max;
}

function source(p: DataProgress): string {
  return `${p.node}'s data/progress of term ${p.term}`;
}

export function describeLag(lag: DataLagRecord | null): string {
  if (lag === null) return "unknown (not listed)";
  if (lag.full) return `unknown (a full pass is needed; ${lag.files} files / ${size(lag.bytes)} known)`;
  return `${lag.files} files / ${size(lag.bytes)}`;
}

/** Bytes for people: 512 B, 1.5 KiB, 64.0 MiB, 2.0 GiB. */
export function size(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) ((v /= 1024), i++);
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
