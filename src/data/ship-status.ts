// One standby's status as the primary's shipper shows it (GET /data, metrics,
// `understudy data status`): its roots' states folded into one row. Pure.
import type { ChangeJournal } from "./journal.js";
import { lagOf, type DataLag, type StandbyShipState } from "./ship-plan.js";

export interface TargetStatus {
  readonly node: string;
  readonly step: string;
  readonly lastError: string | null;
  readonly lastSuccessAtMs: number | null;
  readonly acked: number;
  readonly lag: DataLag;
  readonly paused: string | null;
}

/** What the fold reads of one root's state for the standby. */
export type RootShipState = Pick<StandbyShipState, "cursor" | "fullPassAsked"> & {
  readonly step: string;
  readonly lastError: string | null;
  readonly lastSuccessAtMs: number | null;
};

/** Lags add up over the roots (seconds: the oldest), the first error and pause win, steps are joined. */
export function targetStatus(
  node: string,
  roots: readonly { readonly name: string; readonly journal: Pick<ChangeJournal, "floor" | "behind">; degraded?(): string | null }[],
  stateOf: (root: string) => RootShipState,
  nowMs: number,
): TargetStatus {
  let files = 0;
  let bytes = 0;
  let seconds = 0;
  let full = false;
  let acked = 0;
  let step = "";
  let lastError: string | null = null;
  let lastSuccessAtMs: number | null = null;
  let paused: string | null = null;
  for (const root of roots) {
    const s = stateOf(root.name);
    const lag = lagOf(root.journal, s, nowMs);
    files += lag.files;
    bytes += lag.bytes;
    seconds = Math.max(seconds, lag.seconds);
    // Unwatched, a change since the last pass is seen by nobody: the true lag is unknown.
    full ||= lag.full || (root.degraded?.() ?? null) !== null;
    acked += s.cursor ?? 0;
    step = step === "" ? s.step : `${step}; ${s.step}`;
    lastError ??= s.lastError;
    if (s.lastSuccessAtMs !== null) lastSuccessAtMs = Math.max(lastSuccessAtMs ?? 0, s.lastSuccessAtMs);
    if (s.step.startsWith("paused")) paused ??= s.step;
  }
  return { node, step, lastError, lastSuccessAtMs, acked, lag: { files, bytes, seconds, full }, paused };
}
