import type { HistoryEvent } from "../coordinator/port.js";

// Flap damping (docs/operations.md), like Pacemaker's migration-threshold and
// failure-timeout, counted cluster-wide from the history in etcd (which every
// node reads), not per node: health-driven handovers within `window` since the
// last operator clear. At `max_moves` the primary stays put instead of handing
// over again; it records a flap_damped event, and the cluster stays damped
// (whatever the window says) until `understudy flap clear` writes flap_clear.
// Failovers after a primary's death (lease expiry) and operator moves are not
// counted and not stopped: a dead primary serves nobody, and an operator knows.

export interface FlapSettings {
  /** 0 turns damping off. */
  readonly maxMoves: number;
  readonly windowMs: number;
}

export const DEFAULT_FLAP: FlapSettings = { maxMoves: 3, windowMs: 600_000 };

/** What decide() knows about recent moves, from history. */
export interface FlapView extends FlapSettings {
  /** Health-driven handovers within the window since the last clear. */
  readonly moves: number;
  /** The flap_damped event in force (newer than the last clear), if any. */
  readonly damped: { readonly at: string; readonly reason: string } | null;
}

/** The kinds of history event that count as health-driven moves. */
export function isHealthMove(e: HistoryEvent): boolean {
  // A handover is recorded by the node that took over from a primary that released the role for failing
  // health: "n2 released the role (handover)", or with the releaser's reason, "(handover: handing over: ...)".
  return e.kind === "handover" && /\(handover[):]/.test(e.reason);
}

/** Pure: the flap view from history events (any order) at wall time `nowMs`. */
export function flapView(events: readonly HistoryEvent[], nowMs: number, settings: FlapSettings): FlapView {
  const sorted = [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  let clearedAt = -Infinity;
  for (const e of sorted) if (e.kind === "flap_clear") clearedAt = Math.max(clearedAt, Date.parse(e.at));
  const after = sorted.filter((e) => Date.parse(e.at) > clearedAt);
  const damp = after.filter((e) => e.kind === "flap_damped").pop();
  const since = Math.max(clearedAt, nowMs - settings.windowMs);
  const moves = after.filter((e) => isHealthMove(e) && Date.parse(e.at) > since).length;
  return { ...settings, moves, damped: damp && settings.maxMoves > 0 ? { at: damp.at, reason: damp.reason } : null };
}

/** Damping holds the cluster now: already recorded, or the count reached the threshold. */
export function isDamped(f: FlapView | undefined): boolean {
  return f !== undefined && f.maxMoves > 0 && (f.damped !== null || f.moves >= f.maxMoves);
}

/** "3 health-driven handovers within 10m (max_moves 3)" */
export function flapSummary(f: FlapView): string {
  const win = f.windowMs % 60_000 === 0 ? `${f.windowMs / 60_000}m` : `${Math.round(f.windowMs / 1000)}s`;
  return `${f.moves} health-driven handover${f.moves === 1 ? "" : "s"} within ${win} (election.flap.max_moves ${f.maxMoves})`;
}
