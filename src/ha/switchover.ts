import { isBehind, type MemberRecord, type SwitchoverRequest } from "../coordinator/port.js";
import { bestCandidate, eligible } from "./candidates.js";
import type { Decision, HandTo, Observation } from "./observation.js";
import { drainStep } from "./drain-plan.js";
import { refusedBy, targetStep } from "./target-check.js";

// Planned moves of the primary: operator switchover (now or scheduled),
// forced failover to a named node, and automatic failback to a preferred node.
// Pure functions: they return a Decision, or undefined to let decide() go on.

/** How long a switchover waits for its target to hold the published sync generation. */
export const SYNC_CATCH_UP_MS = 30_000;
/**
 * How long a new primary leaves its first connections to the daemon before it records a planned
 * move and clears the request: that write wakes every agent (a watch event each) and etcd, on the
 * cores the daemon's first sessions need (docs/benchmarks.md, planned switchover).
 */
export const SWITCHOVER_SETTLE_MS = 300;
/** How long a switchover waits for its target's failsafe hold to end, unless the observation says (campaignHoldWaitMs). */
const HOLD_WAIT_MAX_MS = 60_000;

/** Cancel the request, saying why in history ("not done: …") and in the decision. */
function cancel(sw: SwitchoverRequest, verdict: "not done" | "not possible", why: string): Decision {
  return { actions: [{ kind: "abort_switchover", why }], reason: `${sw.kind} ${verdict}: ${why}; cancelling` };
}

/** The primary's side: carry out a request addressed to it, or finish one that moved the role here. */
export function primarySwitchover(o: Observation, term: number): Decision | undefined {
  const sw = o.cluster?.switchover;
  if (!sw) return undefined;
  const me = o.self.name;
  if (sw.from !== me) {
    // A move set for later that a failover overtook: the role is here before its time.
    if (sw.at !== null && Date.parse(sw.at) > o.wallNowMs) {
      const why = `the role came to ${me} (term ${term}) before the time set (${sw.at})`;
      return cancel(sw, "not done", why);
    }
    // The role came here, but the request named another node (its target gave the key back, or a
    // failover overtook the move): not done as asked, and not to be recorded as a move to me. A
    // chosen target passed over for me counts only when the requesting primary handed the key over.
    if (sw.to !== null && sw.to !== me && !(sw.chosen === true && handedForRequest(o, sw))) {
      const why = `the role went to ${me} (term ${term}), not to ${sw.to}`;
      return cancel(sw, "not done", why);
    }
    // The role came here because of the request (or it named me): record it and clear the key, once
    // the daemon has had its first connections to itself.
    const settleAtMs = o.servingSinceMs === null ? o.nowMs : o.servingSinceMs + SWITCHOVER_SETTLE_MS;
    if (settleAtMs > o.nowMs) {
      return {
        actions: [{ kind: "recheck_at", atMs: settleAtMs }],
        reason: `${sw.kind} done: I am ${me}, the new primary (term ${term}); recording it and clearing the request in ${Math.ceil(settleAtMs - o.nowMs)}ms, after the daemon's first connections`,
      };
    }
    return { actions: [{ kind: "complete_switchover", request: sw }], reason: `${sw.kind} done: I am ${me}, the new primary (term ${term})` };
  }
  if (sw.to === me) return { actions: [{ kind: "abort_switchover", why: `${me} is already the primary` }], reason: `${sw.kind} to myself: nothing to do, cancelling` };
  if (sw.at !== null) {
    const atMs = Date.parse(sw.at);
    if (atMs > o.wallNowMs) {
      return {
        actions: [{ kind: "recheck_at", atMs: o.nowMs + (atMs - o.wallNowMs) }],
        reason: `no action: I am ${me}, the primary (term ${term}); ${sw.kind}${sw.to ? ` to ${sw.to}` : ""} scheduled at ${sw.at}`,
      };
    }
  }
  const bans = o.cluster!.bans;
  const standbys = o.cluster!.members.filter((m) => m.node !== me && m.role === "standby");
  const passedOver: string[] = [];
  const named = sw.to !== null && sw.chosen !== true;
  const target = named ? standbys.find((m) => m.node === sw.to) : unnamedTarget(o, sw, standbys, passedOver);
  const forced = sw.kind === "failover" && sw.force;
  if (!target) {
    const why = sw.to === null ? "no healthy standby" : `${sw.to} is not a live standby${named ? "" : " and no other can be handed the key in one transaction"}`;
    return cancel(sw, "not possible", why);
  }
  if (!forced && !eligible(target, bans)) {
    const why = `${target.node} is not a healthy, ready standby`;
    return cancel(sw, "not possible", why);
  }
  const pub = o.cluster!.sync;
  if (!forced && pub && isBehind(target.generation, pub)) {
    // The target pulls within a second normally; a validator failing on it would keep it behind for good.
    const age = catchUpAgeMs(o, sw);
    if (!(age > SYNC_CATCH_UP_MS)) {
      return {
        actions: [{ kind: "recheck_at", atMs: o.nowMs + 250 }],
        reason: `${sw.kind}: waiting for ${target.node} to catch up to sync generation ${pub.generation} (it has ${target.generation})`,
      };
    }
    const why = `${target.node} did not catch up to sync generation ${pub.generation} within ${SYNC_CATCH_UP_MS / 1000}s (it has ${target.generation})`;
    return cancel(sw, "not possible", why);
  }
  // Failsafe (S4, S6): a held target would not campaign, even forced; released to it now, the role
  // would come back here a cycle later (seen in the chaos runs: two extra moves in 2.5 s). Held: its
  // member key says so, or it granted my requests lately (its key may not say so yet: etcd just
  // came back). The hold ends within ttl + fence_margin. The sentence does not count down: it is the
  // decision, published in the member key, which would otherwise be rewritten every recheck.
  const hold =
    target.campaignHold ??
    (o.failsafeGrantsUntilMs !== undefined && o.failsafeGrantsUntilMs > o.nowMs ? "it granted my failsafe requests lately; its promise runs up to ttl + fence_margin from the last" : undefined);
  if (hold !== undefined) {
    const maxMs = o.campaignHoldWaitMs ?? HOLD_WAIT_MAX_MS;
    if (!(catchUpAgeMs(o, sw) > maxMs)) {
      return {
        // The target's key changing wakes this node (watch); the grants' end is known; once a second anyway.
        actions: [{ kind: "recheck_at", atMs: target.campaignHold === undefined ? o.failsafeGrantsUntilMs! : o.nowMs + 1000 }],
        reason: `${sw.kind}: waiting for ${target.node} to be free to campaign (${hold})`,
      };
    }
    const why = `${target.node} was still held from campaigning after ${maxMs / 1000}s (${hold})`;
    return cancel(sw, "not possible", why);
  }
  // Asked before a drain starts (no use draining for a dead target) and again just before the move.
  const ask = (): { decision: Decision } | { note: string } => {
    const step = targetStep(o, sw, target, forced);
    return "cancel" in step ? { decision: cancel(sw, "not possible", step.cancel) } : step;
  };
  const before = o.drain?.active?.requestedAt !== sw.requestedAt ? ask() : null;
  if (before && "decision" in before) return before.decision;
  const drain = drainStep(o, sw, target.node);
  if ("decision" in drain) return drain.decision;
  const asked = ask();
  if ("decision" in asked) return asked.decision;
  const handTo = handOverTo(o, target);
  const notes = [asked.note, ...passedOver, handTo ? "the leader key passed in one transaction" : ""].filter((n) => n !== "");
  const ifNotHanded = passedOver.length > 0 && handTo ? { cancelIfNotHanded: `the leader key could not be handed to ${target.node} (the cluster changed); ${passedOver.join("; ")}` } : {};
  const how = notes.length > 0 ? ` (${notes.join("; ")})` : "";
  if (drain.move === null) {
    return {
      actions: [{ kind: "demote" }, { kind: "release", term, why: "switchover", ...(handTo ? { handTo } : {}), ...ifNotHanded }],
      reason: `${sw.kind}: handing over to ${target.node}${how}${drain.note ? ` ${drain.note}` : ""}${sw.reason ? ` (${sw.reason})` : ""}`,
    };
  }
  // New sessions stay refused until the VIP is gone and the key released: then accept again (end_drain).
  return {
    actions: [
      { kind: "demote" },
      { kind: "release", term, why: "switchover", drain: drain.move, ...(handTo ? { handTo } : {}), ...ifNotHanded },
      { kind: "end_drain", outcome: "moved", why: "handed over" },
    ],
    reason: `${sw.kind}: handing over to ${target.node}${how} ${drain.note}${sw.reason ? ` (${sw.reason})` : ""}`,
  };
}

/**
 * No target named by the requester (none, or the API's pick: SwitchoverRequest.chosen). First
 * choice: the API's pick, or with none the best candidate (ranked as a failover ranks them, data
 * lag included), one free to campaign first (failsafe holds, below), then any. When the first
 * choice answered this request "not ready", or the pick is no longer an eligible standby, the best
 * candidate that has not refused and can be handed the key in one transaction is taken instead
 * (Patroni's switchover without a candidate takes any healthy member): one dead or unready standby
 * does not cancel the move. When every candidate has refused, the one asked last is asked again
 * (while eligible) and targetStep cancels after TARGET_GIVE_UP_MS; a pick that is not eligible is
 * refused below as before. `passedOver` gets a sentence per node passed over, for the reason.
 */
function unnamedTarget(o: Observation, sw: SwitchoverRequest, standbys: readonly MemberRecord[], passedOver: string[]): MemberRecord | undefined {
  const bans = o.cluster!.bans;
  const progress = o.data ? (o.cluster!.dataProgress ?? null) : undefined;
  const pick = (pool: readonly MemberRecord[]) =>
    bestCandidate(
      pool.filter((m) => m.campaignHold === undefined),
      bans,
      progress,
    ) ?? bestCandidate(pool, bans, progress);
  // Why each node is not the one to move to for this request: its "not ready" answers, and the API's
  // pick when it is no longer an eligible standby.
  const passed = new Map<string, string>([...refusedBy(o.targetCheck, sw.requestedAt)].map(([node, why]) => [node, `it answered it is not ready (${why})`]));
  const pickRecord = sw.to === null ? undefined : standbys.find((m) => m.node === sw.to);
  if (sw.to !== null && !pickRecord) passed.set(sw.to, "it is no longer a live standby");
  else if (pickRecord && !eligible(pickRecord, bans)) passed.set(pickRecord.node, "it is not a healthy, ready standby");
  const first = sw.to === null ? pick(standbys) : pickRecord;
  if (first ? !passed.has(first.node) : sw.to === null) return first;
  // Another node than the first choice only when the key can be handed to it in the release's own
  // transaction (released instead, the standbys would wait for the node the request names, or all
  // campaign, and the old primary could win the key back and hand over again: the livelock the
  // API's naming prevents); if that transaction fails after all, the executor cancels the request.
  const next = pick(standbys.filter((m) => !passed.has(m.node) && handOverTo(o, m) !== undefined));
  if (next) {
    for (const [node, why] of passed) passedOver.push(`${node} passed over: ${why}`);
    return next;
  }
  // Every candidate refused: stay with the one asked last while it is eligible, so its run of
  // failures (TARGET_GIVE_UP_MS) is not restarted by a ranking that changes between asks.
  const last = o.targetCheck?.last;
  const sticky = last && last.requestedAt === sw.requestedAt ? standbys.find((m) => m.node === last.node) : undefined;
  return sticky && pick([sticky]) ? sticky : first;
}

/**
 * The requesting primary handed the key over for this request: its release record names it, for a
 * switchover, written after the request (agents' clocks may trail the API's by up to 5 s).
 */
function handedForRequest(o: Observation, sw: SwitchoverRequest): boolean {
  const r = o.cluster?.released;
  return !!r && r.node === sw.from && r.why === "switchover" && Date.parse(r.at) >= Date.parse(sw.requestedAt) - 5000;
}

/**
 * Whether the key can go to the target in the release's own transaction (one etcd commit and no
 * campaign: the target promotes on the watch event). Only when every member states its lease
 * (agents that do take a key handed to them; an older one reads the term from the key's create
 * revision, which a put keeps) and failsafe/members, when present, lists the target (E2: a node it
 * does not list must not lead). Otherwise the key is deleted and the target campaigns, as before.
 */
function handOverTo(o: Observation, target: MemberRecord): HandTo | undefined {
  const c = o.cluster!;
  if (target.lease === undefined || !c.members.every((m) => m.lease !== undefined)) return undefined;
  if (c.failsafeMembers && !c.failsafeMembers.nodes.includes(target.node)) return undefined;
  return { node: target.node, lease: target.lease, revision: c.revision };
}

/**
 * How long the target has had to catch up: since the request was due (its `at`, else when it was
 * made), less the time a drain for it has run (at most its duration): a sync generation published
 * during a long drain is not held against the target. Bounded: drainMs + SYNC_CATCH_UP_MS at most.
 */
function catchUpAgeMs(o: Observation, sw: SwitchoverRequest): number {
  const due = Math.max(Date.parse(sw.requestedAt), sw.at !== null ? Date.parse(sw.at) : 0);
  const active = o.drain?.active;
  const drained = active && active.requestedAt === sw.requestedAt ? Math.min(Math.max(0, o.nowMs - active.startedAtMs), sw.drainMs ?? 0) : 0;
  return o.wallNowMs - due - drained;
}

/**
 * A standby's side while the leader key is absent and a request names a
 * target: the target campaigns at once; the others give it switchoverWaitMs,
 * unless its member key is gone (its agent stopped, or its lease expired,
 * taking a key handed to it along): then the election goes on as without a
 * request.
 */
export function standbySwitchover(o: Observation, sw: SwitchoverRequest): Decision | undefined {
  if (sw.to === null) return undefined;
  const me = o.self.name;
  if (sw.to === me) {
    return { actions: [{ kind: "campaign" }], reason: `campaigning: ${sw.kind} to me${sw.force ? " (forced)" : ""}` };
  }
  if (o.cluster && !o.cluster.members.some((m) => m.node === sw.to)) return undefined;
  const since = o.vacantSinceMs ?? o.nowMs;
  if (o.nowMs - since < o.switchoverWaitMs) {
    return {
      actions: [{ kind: "recheck_at", atMs: since + o.switchoverWaitMs }],
      reason: `waiting: ${sw.kind} to ${sw.to} in progress`,
    };
  }
  return undefined;
}

/** Automatic failback: hand the role to the preferred node once it has been ready for `delay`. */
export function failback(o: Observation, term: number): Decision | undefined {
  const fb = o.failback;
  if (fb.policy !== "auto" || fb.preferred === null || fb.preferred === o.self.name || !o.cluster) return undefined;
  const preferred = o.cluster.members.find((m) => m.node === fb.preferred && m.role === "standby");
  // Not "behind the published record" (isBehind): a different question, whether the preferred node
  // holds at least the files this primary holds, so the handover loses nothing this node has.
  if (!preferred || !eligible(preferred, o.cluster.bans) || preferred.generation < o.self.generation || o.preferredReadySinceMs === null) {
    return undefined;
  }
  // Its last failback did not go through because it did not answer that it was ready: not again
  // before `delay` has passed since, or a target that cannot answer would be asked every 6 s for ever.
  const unanswered = o.targetCheck?.last;
  if (unanswered && unanswered.node === fb.preferred && unanswered.outcome === "not ready" && o.nowMs - unanswered.atMs < fb.delayMs) {
    return {
      actions: [{ kind: "recheck_at", atMs: unanswered.atMs + fb.delayMs }],
      reason: `no action: I am ${o.self.name}, the primary (term ${term}); failing back to ${fb.preferred} again in ${Math.ceil((unanswered.atMs + fb.delayMs - o.nowMs) / 1000)}s: it did not answer that it was ready (${unanswered.why})`,
    };
  }
  const waited = o.nowMs - o.preferredReadySinceMs;
  if (waited >= fb.delayMs) {
    return {
      actions: [{ kind: "request_failback", to: fb.preferred }],
      reason: `failback: ${fb.preferred} (preferred) has been a healthy standby for ${Math.round(waited / 1000)}s`,
    };
  }
  return {
    actions: [{ kind: "recheck_at", atMs: o.preferredReadySinceMs + fb.delayMs }],
    reason: `no action: I am ${o.self.name}, the primary (term ${term}); failing back to ${fb.preferred} in ${Math.ceil((fb.delayMs - waited) / 1000)}s`,
  };
}
