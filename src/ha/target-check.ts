import type { MemberRecord, SwitchoverRequest } from "../coordinator/port.js";
import type { Decision, Observation } from "./observation.js";
import type { TargetAnswer } from "./ports.js";

// A planned move asks its target before handing the role over (the pure
// part; target-check-run.ts asks). The member key says a standby is healthy
// for as long as its lease lives: a target whose agent was killed, hangs, or
// lost etcd keeps a healthy-looking key for up to election.ttl, and a leader
// key handed to it would leave the service down until that lease expired and
// a failover followed. So the old primary asks the target itself, over the
// agents' API (POST /handover/ready, MAC'd as the failsafe grants are), just
// before it steps down, as Patroni asks its candidate's REST API before a
// switchover; no usable answer within TARGET_GIVE_UP_MS cancels the move.

/** An answer older than this is asked again before the move (a drained move asks before and after its drain). */
export const TARGET_ANSWER_FRESH_MS = 1000;
/** One ask's time limit: a live agent answers in milliseconds. */
export const TARGET_ASK_TIMEOUT_MS = 1000;
/** After an answer that is not "ready", ask again this much later. */
export const TARGET_RETRY_MS = 500;
/** No usable answer for this long after the first failed one: the move is cancelled. */
export const TARGET_GIVE_UP_MS = 5000;

/** A judged answer, for this request and target. */
export interface TargetVerdict {
  readonly node: string;
  readonly requestedAt: string;
  /** When the answer (or its failure) came (monotonic ms). */
  readonly atMs: number;
  /** ready: take over now; unchecked: no authenticated question was possible (ports.ts, "cannot ask"), so the move goes on as before the check. */
  readonly outcome: "ready" | "not ready" | "unchecked";
  /** Why, for sentences: "it acts as primary", "HTTP 401: …", "no API token …". */
  readonly why: string;
}

/** What the executor side (target-check-run.ts) knows, as decide() sees it. */
export interface TargetCheckView {
  /** The ask in flight, if any. */
  readonly asking: { readonly node: string; readonly requestedAt: string } | null;
  readonly last: TargetVerdict | null;
  /** The first "not ready" of the current run of them for last's request and target (monotonic ms); null after a ready or unchecked one. */
  readonly failingSinceMs: number | null;
  /**
   * The nodes whose last answer to the request asked last was "not ready", with why (a request
   * naming no target passes over them while another candidate remains: switchover.ts). Absent: none.
   */
  readonly refused?: { readonly requestedAt: string; readonly nodes: readonly { readonly node: string; readonly why: string }[] };
}

/** The nodes that answered request `requestedAt` "not ready" (last answer each), node -> why. */
export function refusedBy(v: TargetCheckView | undefined, requestedAt: string): ReadonlyMap<string, string> {
  const r = v?.refused;
  return new Map(r && r.requestedAt === requestedAt ? r.nodes.map((n) => [n.node, n.why] as const) : []);
}

/** What the planner does with a target's answer: forced moves need it alive and a standby, not healthy. */
export function judgeAnswer(a: TargetAnswer, forced: boolean): { outcome: TargetVerdict["outcome"]; why: string } {
  if (a.kind === "cannot ask") return { outcome: "unchecked", why: a.why };
  if (a.kind === "no answer") return { outcome: "not ready", why: a.why };
  if (a.acting !== "standby") return { outcome: "not ready", why: "it acts as primary" };
  if (!a.loopAlive) return { outcome: "not ready", why: "its HA loop has stalled" };
  if (!a.etcdReachable) return { outcome: "not ready", why: "it cannot reach etcd" };
  if (!forced && !a.healthy) return { outcome: "not ready", why: "it says it is not healthy or not ready" };
  return { outcome: "ready", why: forced && !a.healthy ? "alive, a standby (not healthy: forced)" : "a healthy standby" };
}

export type TargetStep =
  | { readonly decision: Decision }
  | { readonly cancel: string }
  /** Go ahead with the move; note: what the check said, for the decision's sentence. */
  | { readonly note: string };

/** Called by primarySwitchover for the target it chose, before a drain starts and again before the move. */
export function targetStep(o: Observation, sw: SwitchoverRequest, target: MemberRecord, forced: boolean): TargetStep {
  const v = o.targetCheck;
  const who = target.node;
  // Only a test's loop has no peer client (the agent always wires one): nothing to say.
  if (!v) return { note: "" };
  if (!target.api) return { note: `${who} not asked: its member key names no API address` };
  // An agent from before the check, or an API bound to loopback: it cannot answer (and a 404 from one that says it can is no answer).
  if (target.answersReady !== true) return { note: `${who} not asked: its member key does not say its API answers (an older agent, or an API on loopback)` };
  const mine = <T extends { node: string; requestedAt: string }>(x: T | null): T | null => (x && x.node === who && x.requestedAt === sw.requestedAt ? x : null);
  const last = mine(v.last);
  const ask: Decision = {
    actions: [{ kind: "check_target", node: who, api: target.api, requestedAt: sw.requestedAt, forced }],
    reason: `${sw.kind} to ${who}: asking ${who} over its API whether it is ready to take over`,
  };
  if (last?.outcome === "unchecked") return { note: `${who} not asked: ${last.why}` };
  if (last?.outcome === "ready" && o.nowMs - last.atMs <= TARGET_ANSWER_FRESH_MS) return { note: `${who} answered it is ${last.why}` };
  if (mine(v.asking)) {
    // The answer wakes the loop; this recheck only covers an ask that never settles.
    return { decision: { actions: [{ kind: "recheck_at", atMs: o.nowMs + TARGET_ASK_TIMEOUT_MS + 250 }], reason: ask.reason } };
  }
  if (last?.outcome !== "not ready") return { decision: ask };
  const since = v.failingSinceMs ?? last.atMs;
  if (o.nowMs - since >= TARGET_GIVE_UP_MS) return { cancel: `${who} did not answer that it is ready to take over within ${TARGET_GIVE_UP_MS / 1000}s (${last.why})` };
  if (o.nowMs - last.atMs < TARGET_RETRY_MS) {
    return { decision: { actions: [{ kind: "recheck_at", atMs: last.atMs + TARGET_RETRY_MS }], reason: `${sw.kind} to ${who}: ${who} is not ready (${last.why}); asking again` } };
  }
  return { decision: ask };
}
