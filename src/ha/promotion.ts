import { isBehind } from "../coordinator/port.js";
import type { WatchdogStatus } from "../fence/port.js";
import type { Action, Decision, Observation, StalePromotion } from "./observation.js";
import { dataLagMark } from "./data-gate.js";

// The promotion gates (pure): after a won election, or with the leader key
// naming me with my lease, a node not ready to serve gives a won or handed key
// back (not a forced failover's), the pre_promote hook may veto (won elections only),
// the watchdog must run with watchdog.mode required, and the lease must leave
// time to add the VIP before the fence could run. Which gates apply is decided
// here from the raw facts (hook configured, won or adopted, guard present,
// watchdog.mode). The executor asks each gate this asks for, within the same
// cycle (no etcd read in between), and decides again with the answer; this file
// turns the answers into take_over (marked stale when lagging the published
// sync generation) or decline, with a reason.

/** What a pre_promote hook run said (HookOutcome's decision-relevant part). */
export interface HookVerdict {
  readonly ok: boolean;
  readonly timedOut: boolean;
  readonly code: number | null;
  /** US_E_HOOK_VETO / US_E_HOOK_FAILED message when !ok. */
  readonly problem: string | null;
}

export interface PromotionGates {
  readonly term: number;
  /**
   * won: a campaign of this agent's run won the key (this cycle, or an earlier one whose promotion was
   * deferred or whose reply was lost); adopted: the key this agent found naming it at start (a restart).
   */
  readonly via: "won" | "adopted";
  /** The lease the key was won or found with; gone or replaced by the time of the gates: no promotion. */
  readonly leaseId: string;
  /** Whether a pre_promote hook is configured (fact; prePromoteApplies decides whether it runs). */
  readonly prePromoteConfigured: boolean;
  /** The hook's answer; undefined: not asked (yet, or it does not apply). */
  readonly prePromote: HookVerdict | undefined;
  readonly watchdogMode: "off" | "automatic" | "required";
  readonly watchdogDevice: string;
  /** Whether this agent has a fence guard to arm the watchdog with (fact). */
  readonly guardPresent: boolean;
  /** The watchdog's state once armed; undefined: not armed (yet, or it does not apply). */
  readonly watchdog: WatchdogStatus | undefined;
  /** The term of the last leader this node saw (to tell whether a release came from it). */
  readonly lastLeaderTerm: number | null;
  /** A won key this run did not campaign for: a planned move handed it over (the decision's wording only). */
  readonly handed?: boolean;
}

/** The pre_promote hook runs for won elections only: an adopted key was already mine, the hook not re-run. */
export function prePromoteApplies(g: PromotionGates): boolean {
  return g.via === "won" && g.prePromoteConfigured;
}

/** The watchdog gates a promotion when watchdog.mode is not off and a guard can arm it. */
export function watchdogApplies(g: PromotionGates): boolean {
  return g.watchdogMode !== "off" && g.guardPresent;
}

/** The decision for a promotion under way (o.promotion set, acting standby). */
export function promotionGate(o: Observation): Decision {
  const g = o.promotion!;
  const t = `term ${g.term}`;
  const hook = prePromoteApplies(g);
  const dog = watchdogApplies(g);
  // A key handed over by a planned move (or won on an earlier cycle) is taken only by a node ready to
  // serve now: a campaign checks it first, a handed key's target had only its member key read. A
  // forced failover to this node overrides readiness, as its campaign does.
  const sw = o.cluster?.switchover;
  const forced = sw?.force === true && sw.to === o.self.name;
  if (g.via === "won" && o.notReady !== null && !forced) {
    const problem = `not ready to serve: ${o.notReady}`;
    return d(decline(o, g.term, "ready", problem), `declining the promotion (${t}): ${problem}; giving the leader key back and cooling down`);
  }
  if (hook && g.prePromote === undefined) return d([{ kind: "ask_gate", gate: "pre_promote", term: g.term }], `promotion (${t}): asking the pre_promote hook`);
  if (hook && g.prePromote !== undefined && !g.prePromote.ok) {
    const problem = g.prePromote.problem ?? "pre_promote hook vetoed the promotion";
    return d(decline(o, g.term, "pre_promote", problem), `declining the promotion (${t}): ${problem}; giving the leader key back and cooling down`);
  }
  if (dog && g.watchdog === undefined) {
    return d([{ kind: "ask_gate", gate: "watchdog", term: g.term }], `promotion (${t}): starting the watchdog ${g.watchdogDevice} before anything else (watchdog.mode ${g.watchdogMode})`);
  }
  const notes: string[] = [];
  if (hook) notes.push("the pre_promote hook agreed");
  else if (g.prePromoteConfigured) notes.push("the pre_promote hook is not run for an adopted key");
  if (g.watchdogMode !== "off" && !g.guardPresent) notes.push(`no fence guard to start watchdog ${g.watchdogDevice} with`);
  if (dog && g.watchdog !== undefined) {
    if (g.watchdog.state === "active") notes.push(`watchdog ${g.watchdogDevice} running`);
    else {
      const problem = `watchdog ${g.watchdogDevice} is not running (${g.watchdog.state}${g.watchdog.problem ? `: ${g.watchdog.problem}` : ""})`;
      if (g.watchdogMode === "required") {
        return d(decline(o, g.term, "watchdog", problem), `declining the promotion (${t}): ${problem}; giving the leader key back (watchdog.mode required) and cooling down`);
      }
      notes.push(`${problem}; promoting without it (watchdog.mode automatic)`);
    }
  }
  if (o.lease === null || o.lease.id !== g.leaseId || o.nowMs >= o.lease.deadlineMs) {
    return d([], `not promoting (${t}): the lease the leader key was taken with is gone`);
  }
  const left = o.lease.deadlineMs - o.nowMs;
  const budget = o.promotionBudgetMs ?? 0;
  if (left < budget) {
    return { ...d([], `not promoting yet: too little lease time left (${Math.round(left)}ms, adding the floating IP needs ${Math.round(budget)}ms); the next renewal retries`), afterRenewal: true };
  }
  // The predecessor committed its release after dropping the VIP: no need to probe for it. Not when it
  // never held the address (another host answered for it): then nobody knows it is free.
  const released = o.cluster?.released;
  const skip = g.via === "won" && released !== null && released !== undefined && released.term === g.lastLeaderTerm && released.vipNotFree === undefined;
  if (skip) notes.push(`${released!.node} released the floating IP, so no duplicate-address check`);
  const how = g.via === "adopted" ? `the leader key names me with my lease (${t})` : g.handed ? `the leader key was handed over to me (${t})` : `I won the election (${t})`;
  const stale = staleMark(o);
  const dataLag = dataLagMark(o, g.via);
  if (dataLag) notes.push(dataLag.reason);
  return d(
    [{ kind: "take_over", term: g.term, via: g.via, skipDuplicateCheck: skip, ...(stale ? { stale } : {}), ...(dataLag ? { dataLag } : {}) }],
    `taking over: ${how}${notes.length ? `; ${notes.join("; ")}` : ""}`,
  );
}

/**
 * A take-over while this node lags the published generation (syncGate let it
 * through within maximum_lag_on_failover, or a forced failover): the executor
 * records a stale promotion. An adopted key counts too (an agent restarted
 * while its lease lived held what it had published: not behind). A won
 * election promoted on a later cycle (deferred, or its reply lost) comes as
 * won; it came as adopted and was recorded as nothing (the chaos checker).
 */
function staleMark(o: Observation): StalePromotion | undefined {
  const pub = o.cluster?.sync;
  if (!o.sync.enabled || !pub || !isBehind(o.self.generation, pub)) return undefined;
  const lagMs = o.sync.behindSinceMs === null ? 0 : o.nowMs - o.sync.behindSinceMs;
  return {
    generation: o.self.generation,
    published: { generation: pub.generation, source: pub.source },
    lagMs,
    reason: "stale promotion: I became primary without the newest published files",
  };
}

/** Nothing was started: give the key to the next candidate and cool down, or the same node would win again at once. */
function decline(o: Observation, term: number, gate: "ready" | "pre_promote" | "watchdog", problem: string): Action[] {
  return [
    { kind: "decline", term, gate, problem },
    { kind: "cool_down", durationMs: o.coolDownMs },
  ];
}

/**
 * Restart backoff: the n-th restart within the window waits restart_backoff *
 * 2^(n-1) (at most restart_backoff_max) after the previous one. A decision
 * that would restart the daemon before then re-checks at that time instead.
 */
export function withRestartBackoff(o: Observation, decision: Decision): Decision {
  const until = restartBackoffUntil(o);
  if (until === null || !decision.actions.some((a) => a.kind === "restart_daemon")) return decision;
  const actions = decision.actions.map((a): Action => (a.kind === "restart_daemon" ? { kind: "recheck_at", atMs: until } : a));
  return d(actions, `waiting: restart backoff for ${Math.ceil(until - o.nowMs)}ms more, then ${decision.reason}`);
}

/** When the restart backoff ends (monotonic ms), or null when a restart may run now. */
export function restartBackoffUntil(o: Observation): number | null {
  const b = o.restartBackoff;
  const last = o.daemon.lastRestartAtMs ?? null;
  const n = o.daemon.recentRestarts;
  if (!b || last === null || n === 0) return null;
  const until = last + Math.min(b.baseMs * 2 ** (n - 1), b.maxMs);
  return until > o.nowMs ? until : null;
}

function d(actions: readonly Action[], reason: string): Decision {
  return { actions, reason };
}
