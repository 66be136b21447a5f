import type { DrainSummary, SwitchoverRequest } from "../coordinator/port.js";
import type { Decision, Observation } from "./observation.js";

// Drained switchover (docs/operations.md, "Drained switchover"), the pure
// part: before a switchover that asks for a drain, the primary refuses new
// sessions, waits until none is established on the service ports or the
// drain's duration ends, then moves as a plain switchover does. Phases:
// start, waiting, done (no session left), timed out (the rest are cut),
// aborted (the switchover will not happen: accept again).

/** What the executor side (drain-run.ts) knows, as decide() sees it. */
export interface DrainView {
  /** Why this node cannot drain (no service port known), or null. */
  readonly unavailable: string | null;
  /** What refuses new sessions here ("an nftables rule ..."), for sentences. */
  readonly method: string;
  /** The drain under way on this node, or null. */
  readonly active: ActiveDrain | null;
  /** The last drain that ended without a move, for its request: that request is cancelled, not drained again. */
  readonly aborted: { readonly requestedAt: string; readonly why: string } | null;
}

export interface ActiveDrain {
  /** The request it drains for (its requestedAt identifies it). */
  readonly requestedAt: string;
  /** When new sessions were refused (monotonic ms). */
  readonly startedAtMs: number;
  /** Sessions established when new ones were refused; null: not counted. */
  readonly initial: number | null;
  /** Sessions established at the last count; null: the count failed (countError says why). */
  readonly sessions: number | null;
  readonly countError: string | null;
  /** Why refusing new sessions failed, or null. */
  readonly gateProblem: string | null;
}

/** The drain's part in a switchover: a decision of its own (start, wait, abort), or go ahead with the move. */
export type DrainStep = { readonly decision: Decision } | { readonly move: DrainSummary | null; readonly note: string };

const plural = (n: number) => `${n} session${n === 1 ? "" : "s"}`;

/**
 * Called by primarySwitchover once the request is due, its target fit and in
 * sync. A request without drainMs moves at once (move: null), as before.
 */
export function drainStep(o: Observation, sw: SwitchoverRequest, target: string): DrainStep {
  const limitMs = sw.drainMs ?? 0;
  if (limitMs <= 0) return { move: null, note: "" };
  const drain = o.drain;
  const abort = (why: string, end: boolean): DrainStep => ({
    decision: {
      actions: [...(end ? [{ kind: "end_drain" as const, outcome: "aborted" as const, why }] : []), { kind: "abort_switchover", why }],
      reason: `${sw.kind} not possible: ${why}; cancelling`,
    },
  });
  if (!drain || drain.unavailable !== null) return abort(`cannot drain: ${drain?.unavailable ?? "this agent has no drain support"}`, false);
  if (drain.aborted?.requestedAt === sw.requestedAt && drain.active?.requestedAt !== sw.requestedAt) return abort(`its drain was aborted (${drain.aborted.why})`, false);
  const active = drain.active;
  if (!active || active.requestedAt !== sw.requestedAt) {
    return {
      decision: {
        actions: [{ kind: "start_drain", requestedAt: sw.requestedAt }],
        reason: `${sw.kind} to ${target}: refusing new sessions with ${drain.method} and draining for up to ${seconds(limitMs)}s`,
      },
    };
  }
  if (active.gateProblem !== null) return abort(`cannot refuse new sessions with ${drain.method}: ${active.gateProblem}`, true);
  const waitedMs = Math.max(0, o.nowMs - active.startedAtMs);
  const left = active.sessions;
  if (left === 0) {
    return {
      move: { drained: active.initial ?? 0, cut: 0, waitedMs: Math.round(waitedMs) },
      note: `after draining for ${seconds(waitedMs)}s: no session left (${plural(active.initial ?? 0)} drained)`,
    };
  }
  if (waitedMs >= limitMs) {
    const move: DrainSummary = left === null ? { drained: 0, waitedMs: Math.round(waitedMs) } : { drained: Math.max(0, (active.initial ?? left) - left), cut: left, waitedMs: Math.round(waitedMs) };
    const cut = left === null ? `sessions not counted (${active.countError ?? "count failed"})` : `cutting ${plural(left)}`;
    return { move, note: `after the drain timed out at ${seconds(limitMs)}s: ${cut}` };
  }
  const counted = left === null ? `sessions not counted (${active.countError ?? "count failed"})` : `${plural(left)} left`;
  return {
    decision: {
      actions: [{ kind: "drain_wait", atMs: Math.min(o.nowMs + 1000, active.startedAtMs + limitMs) }],
      reason: `${sw.kind} to ${target}: draining, ${counted}, ${seconds(waitedMs)}s of ${seconds(limitMs)}s waited (new sessions refused by ${drain.method})`,
    },
  };
}

/**
 * The safety rule every decision passes through (decide.ts): a drain lives
 * only while this node is the primary carrying out the request it drains for.
 * Any other decision (lease lost, etcd unreachable, request cancelled, the
 * switchover aborted, a demotion) ends it, so new sessions are accepted again.
 */
export function settleDrain(o: Observation, decision: Decision): Decision {
  const active = o.drain?.active;
  if (!active || decision.actions.some((a) => a.kind === "start_drain" || a.kind === "end_drain")) return decision;
  const why = drainEnded(o, decision, active);
  if (why === null) return decision;
  // A cancelled switchover's history event says how far its drain got.
  const left = active.sessions === null ? "sessions not counted" : `${plural(active.sessions)} left`;
  const progress = `drain ended after ${seconds(Math.max(0, o.nowMs - active.startedAtMs))}s with ${left}`;
  const actions = decision.actions.map((a) => (a.kind === "abort_switchover" ? { ...a, why: `${a.why}; ${progress}` } : a));
  return { actions: [...actions, { kind: "end_drain", outcome: "aborted", why }], reason: `${decision.reason}; ending the drain: ${why}` };
}

function drainEnded(o: Observation, decision: Decision, active: ActiveDrain): string | null {
  if (o.acting !== "primary") return "this node is no longer the primary";
  // One failed read (an etcd leader change) must not cancel a long drain: while the lease holds
  // the node stays primary and keeps draining; past the deadline the fence ends it (loop.ts).
  if (o.cluster === null) return o.failsafeHolding ? "etcd is unreachable and the primary holds on failsafe: no switchover can complete" : null;
  const sw = o.cluster.switchover;
  if (!sw || sw.requestedAt !== active.requestedAt) return "the switchover request is gone (cancelled)";
  if (decision.actions.some((a) => a.kind === "demote" || a.kind === "abort_switchover")) return "the switchover will not go ahead";
  return null;
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}
