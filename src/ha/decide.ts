import { bestCandidate, compareDataLag, dataLagOf, eligible, isBanned, outranks, ranksAbove } from "./candidates.js";
import { dataGate, describeLag } from "./data-gate.js";
import type { DataProgress, MemberRecord } from "../coordinator/port.js";
import type { Action, Decision, Observation } from "./observation.js";
import { failback, primarySwitchover, standbySwitchover } from "./switchover.js";
import { isDamped } from "./flap.js";
import { dampedNote, stayInsteadOfHandover } from "./stay.js";
import { vipLost } from "./vip-truth.js";
import { promotionGate, withRestartBackoff } from "./promotion.js";
import { isBehind } from "../coordinator/port.js";
import { settleDrain } from "./drain-plan.js";
import { listedForCampaign, listToWiden } from "./failsafe.js";

// The pure HA decision core: no I/O, no clock reads. Every branch returns a
// reason sentence. Rule of thumb (docs/reliability.md): when in doubt, be a standby.

export function decide(o: Observation): Decision {
  // A promotion under way (gates asked this cycle, promotion.ts) is decided on its own.
  if (o.acting === "standby" && o.promotion) return promotionGate(o);
  // A drain (drain-plan.ts) ends with any decision that does not carry its switchover on.
  return settleDrain(o, o.acting === "primary" ? withRestartBackoff(o, decidePrimary(o)) : decideStandby(o));
}

function decidePrimary(o: Observation): Decision {
  const me = o.self.name;
  if (o.lease === null || o.nowMs >= o.lease.deadlineMs) {
    const why = o.etcdError ? ` and etcd unreachable (${o.etcdError})` : "";
    return d([{ kind: "demote" }], `demoting: lease deadline passed${why}`);
  }
  if (o.cluster === null) {
    const left = Math.max(0, Math.round(o.lease.deadlineMs - o.nowMs));
    const failsafe = o.failsafeNote ? `; ${o.failsafeNote}` : "";
    // P7: a failsafe hold can outlast any lease, so a failing daemon is restarted in place, and past
    // the restart budget the primary steps down (its standbys campaign once their promises end).
    if (o.failsafeHolding && !(o.daemon.running && o.daemon.probesUp)) {
      const what = o.daemon.running ? "critical probes are failing" : "the daemon is not running";
      if (o.daemon.recentRestarts < o.restartsBeforeHandover) {
        return d([{ kind: "restart_daemon" }], `restarting the daemon during a failsafe hold: ${what} (restart ${o.daemon.recentRestarts + 1} of ${o.restartsBeforeHandover})`);
      }
      return d([{ kind: "demote" }], `demoting: ${what} after ${o.restartsBeforeHandover} restart(s) and etcd is unreachable; a failsafe hold must not keep a dead service`);
    }
    return d([], `holding: etcd unreachable (${o.etcdError ?? "unknown error"}); lease valid for ${left}ms more, fencing at the deadline${failsafe}`);
  }
  const leader = o.cluster.leader;
  if (leader === null) return d([{ kind: "demote" }], "demoting: the leader key is gone");
  if (leader.node !== me || leader.term !== o.term) {
    return d([{ kind: "demote" }], `demoting: the leader key names ${leader.node} (term ${leader.term}), not me (term ${o.term})`);
  }
  const held = `I am ${me}, the primary with the lease (term ${o.term})`;
  // Operator requests run even when paused (as in Patroni's maintenance mode).
  const planned = primarySwitchover(o, leader.term);
  const serving = o.daemon.running && o.daemon.probesUp;
  // A move that only waits (its target's sync catch-up or failsafe hold, a schedule) does not keep a
  // primary whose service is down from restarting it or handing over meanwhile.
  if (planned && (serving || !planned.actions.every((a) => a.kind === "recheck_at"))) return planned;
  if (o.cluster.paused) return d([], `no action: paused; ${held}`);
  const vip = vipRule(o, leader.term, held, serving);
  if (vip) return vip;
  // Flap damping: the cluster stays put, so no automatic failback either.
  const damped = serving ? dampedNote(o) : null;
  if (damped !== null) return d([], `no action: ${held}; ${damped}`);
  if (o.daemon.running && o.daemon.probesUp) return failback(o, leader.term) ?? d([], `no action: ${held}`);

  const what = o.daemon.running ? "critical probes are failing" : "the daemon is not running";
  if (o.daemon.recentRestarts < o.restartsBeforeHandover) {
    return d([{ kind: "restart_daemon" }], `restarting the daemon: ${what} (restart ${o.daemon.recentRestarts + 1} of ${o.restartsBeforeHandover})`);
  }
  const heir = heirOf(o);
  // A failure the heir would share (synced certificate), or flap damping: stay and serve.
  const stay = heir ? stayInsteadOfHandover(o, what, heir.node) : null;
  if (stay) return stay;
  if (heir) {
    return d(
      [{ kind: "demote" }, { kind: "release", term: leader.term, why: "handover" }, { kind: "cool_down", durationMs: o.coolDownMs }],
      `handing over: ${what} after ${o.daemon.recentRestarts} restart(s); ${heir.node} is a healthy standby`,
    );
  }
  return d([{ kind: "restart_daemon" }], `restarting the daemon again: ${what} and no healthy standby to hand over to`);
}

/** The standby a primary would hand over to (best ranked, not banned), or undefined. */
function heirOf(o: Observation) {
  return bestCandidate(
    o.cluster!.members.filter((m) => m.node !== o.self.name && m.role === "standby"),
    o.cluster!.bans,
    dataRanking(o),
  );
}

/** A primary that has not held its floating IP for vip.hold_timeout (issue 12). */
function vipRule(o: Observation, term: number, held: string, serving: boolean): Decision | null {
  const vipGone = vipLost(o);
  if (!vipGone) return null;
  if (o.vip?.foreignMac) {
    // Another host answers ARP for the address: every standby would meet the same host (a failure
    // the target shares), so handing over cannot help. Stay, say so; the operator removes the copy.
    return serving ? d([], `holding, not handing over: ${vipGone}; a standby would meet the same host, so a handover cannot help; ${held}`) : null;
  }
  const heir = heirOf(o);
  if (heir && !isDamped(o.flap)) {
    return d([{ kind: "demote" }, { kind: "release", term, why: "handover" }, { kind: "cool_down", durationMs: o.coolDownMs }], `handing over: ${vipGone}; ${heir.node} is a healthy standby`);
  }
  if (!serving) return null;
  if (heir) return d([], `holding, not handing over: ${vipGone}; ${dampedNote(o)}; ${held}`);
  return d([], `holding: ${vipGone}, and no healthy standby to hand over to; ${held}`);
}

function decideStandby(o: Observation): Decision {
  const me = o.self.name;
  // Cold mode: only the primary runs the daemon. One still running here (adopted from an agent that
  // was killed before its fence guard acted, or a promotion that failed half-way) goes first, unless
  // the leader key still names me with my live lease: then I am about to take my role back with it.
  const leaderKey = o.cluster?.leader;
  const mineStill = leaderKey?.node === me && o.lease !== null && leaderKey.lease === o.lease.id && o.nowMs < o.lease.deadlineMs;
  if (o.mode === "cold" && o.daemon.running && !mineStill) {
    return d([{ kind: "stop_daemon" }], "stopping the daemon: in cold mode only the primary runs it, and I am a standby");
  }
  const warm: Action[] = o.mode === "warm" && !o.daemon.running ? [{ kind: "start_daemon" }] : [];
  if (o.cluster === null) return d(warm, `no action: etcd unreachable (${o.etcdError ?? "unknown error"}); staying a standby`);
  if (o.lease === null || o.nowMs >= o.lease.deadlineMs) return d([...warm, { kind: "grant_lease" }], "acquiring a session lease");

  const leader = o.cluster.leader;
  if (leader !== null) {
    if (leader.node === me && leader.lease === o.lease.id) {
      // A grant given after an ambiguous campaign: the primary I promised may still serve on it (S4).
      if (o.failsafeHold?.fromGrant) return d([...warm, { kind: "resign", term: leader.term }], `resigning the leader key that names me (term ${leader.term}): ${o.failsafeHold.reason}`);
      return d([...warm, { kind: "promote", term: leader.term }], `promoting: the leader key names me with my lease (term ${leader.term})`);
    }
    if (leader.node === me) {
      return d([...warm, { kind: "resign", term: leader.term }], `removing a stale leader key of mine (lease ${leader.lease} is not my current lease)`);
    }
    // A promise running (S4): a cycle when it ends, so the member key drops its campaignHold at once
    // (a switchover to this node waits for that, switchover.ts).
    const wake: Action[] = o.failsafeHold ? [{ kind: "recheck_at", atMs: o.failsafeHold.untilMs }] : [];
    return d([...warm, ...wake], `no action: following ${leader.node} (term ${leader.term})`);
  }

  // A failsafe promise binds even a forced move: another node may still serve on its grant (S4).
  if (o.failsafeHold) return d([...warm, { kind: "recheck_at", atMs: o.failsafeHold.untilMs }], o.failsafeHold.reason);
  // E2, whatever this node's own setting: a failsafe primary may serve on grants it never asked of a node it does not list.
  if (o.cluster.failsafeMembersInvalid)
    return d(
      warm,
      "not campaigning: failsafe/members is present but unreadable, so a failsafe primary may serve on grants of nodes I cannot see (a primary with failsafe on rewrites it; see docs/operations.md)",
    );
  const list = o.cluster.failsafeMembers ?? null;
  const widen = list
    ? listToWiden(
        list.nodes,
        me,
        o.cluster.members.map((m) => m.node),
      )
    : null;
  if (list && widen) {
    const added = widen.filter((n) => !list.nodes.includes(n));
    return d(
      [...warm, { kind: "widen_failsafe_members", record: { term: list.term, nodes: widen }, revision: o.cluster.revision }],
      `adding ${added.join(", ")} to failsafe/members: no primary, and I gave no failsafe grant within ttl + fence margin, so no failsafe primary can be serving`,
    );
  }
  const unlisted = listedForCampaign(list?.nodes ?? null, me);
  if (unlisted) return d(warm, unlisted);
  const sw = o.cluster.switchover;
  if (isBanned(me, o.cluster.bans)) return d(warm, "no action: no primary, but I am banned from becoming primary");
  if (sw && sw.to === me && sw.force) return d([...warm, { kind: "campaign" }], `campaigning: forced ${sw.kind} to me`);
  if (o.cluster.paused) return d(warm, "no action: no primary, but the cluster is paused");
  if (o.self.nofailover) return d(warm, "no action: no primary, but I am tagged nofailover");
  if (o.nowMs < o.coolDownUntilMs) {
    return d(warm, `no action: no primary, but I handed over for failing health ${Math.round((o.coolDownUntilMs - o.nowMs) / 1000)}s before my cool-down ends`);
  }
  if (o.notReady !== null) return d(warm, `no action: no primary, but I am not ready to serve (${o.notReady})`);
  if (o.mode === "warm" && !(o.daemon.running && o.daemon.probesUp)) return d(warm, "no action: no primary, but my daemon is not healthy");
  // The sync gate before a planned move: the releasing primary waits for its target to hold the
  // published generation, but a primary that released for another reason (shutdown, a health
  // handover) waited for nothing, and a lagging target must not take over from a standby that
  // holds it. (A forced request campaigned above.)
  const stale = syncGate(o);
  if (stale?.blocked) return d(warm, stale.reason);
  const planned = sw ? standbySwitchover(o, sw) : undefined;
  if (planned) return d([...warm, ...planned.actions], planned.reason);
  const data = dataGate(o);
  if (data?.blocked) return d(warm, data.reason);

  // Not waited for: a member whose key still says primary while no leader key exists is the node
  // that just released the role (SIGTERM, switchover, handover). Its key lives until it revokes its
  // lease at the end of its stop, which takes a second or more on a busy machine: counted as a
  // candidate, every standby would wait the ranking delay for it and then race, best one or not.
  const progress = dataRanking(o);
  const self = { node: me, generation: o.self.generation, priority: o.self.priority };
  const better = o.cluster.members.filter(
    (m) => m.node !== me && m.role !== "primary" && eligible(m, o.cluster!.bans) && (progress === undefined ? outranks(m, o.self) : ranksAbove(m, self, progress)),
  );
  const note = (stale ? `; ${stale.reason}` : "") + (data ? `; ${data.reason}` : "");
  if (better.length === 0) return d([...warm, { kind: "campaign" }], `campaigning: no primary and I rank first (priority ${o.self.priority})${note}`);
  const since = o.vacantSinceMs ?? o.nowMs;
  const waited = o.nowMs - since;
  const top = bestCandidate(better, o.cluster.bans, progress)!;
  if (waited >= o.rankingDelayMs) {
    return d([...warm, { kind: "campaign" }], `campaigning: no primary for ${Math.round(waited)}ms and ${top.node} (ranked higher) has not taken over${note}`);
  }
  return d(
    [...warm, { kind: "recheck_at", atMs: since + o.rankingDelayMs }],
    `waiting: no primary; ${top.node} ranks higher (${rankedBy(top, self, progress)}), campaigning in ${Math.round(o.rankingDelayMs - waited)}ms if it does not`,
  );
}

/**
 * The promotion gate (docs/architecture.md, "Ranking"): a standby that lags the published sync
 * generation never takes over while an eligible standby holds it, and takes
 * over by itself only within maximum_lag_on_failover (a stale promotion:
 * promotionGate marks take_over stale, the executor records it). Null when this node holds the published generation.
 */
export function syncGate(o: Observation): { blocked: boolean; reason: string } | null {
  const pub = o.cluster?.sync;
  if (!o.sync.enabled || !pub || !isBehind(o.self.generation, pub)) return null;
  const mine = `my files are at generation ${o.self.generation}, the primary published ${pub.generation}`;
  const holder = bestCandidate(
    o.cluster!.members.filter((m) => m.node !== o.self.name && !isBehind(m.generation, pub)),
    o.cluster!.bans,
  );
  if (holder) return { blocked: true, reason: `no action: no primary, but ${mine} and ${holder.node} holds it` };
  const lagMs = o.sync.behindSinceMs === null ? 0 : o.nowMs - o.sync.behindSinceMs;
  if (lagMs > o.sync.maximumLagMs) {
    return {
      blocked: true,
      reason: `no action: no primary, but ${mine}, behind for ${Math.round(lagMs / 1000)}s, over maximum_lag_on_failover (${Math.round(o.sync.maximumLagMs / 1000)}s); \`understudy failover --to ${o.self.name} --force\` overrides`,
    };
  }
  return { blocked: false, reason: `stale: ${mine} (behind for ${Math.round(lagMs)}ms, within maximum_lag_on_failover) and no live standby holds it` };
}

/** Why `top` ranks above me, for the waiting sentence: data lag when that decided it, else its priority. */
function rankedBy(top: MemberRecord, self: { node: string; generation: number }, progress: DataProgress | null | undefined): string {
  if (progress === undefined || top.generation !== self.generation) return `priority ${top.priority}`;
  const mine = dataLagOf(self.node, progress);
  const theirs = dataLagOf(top.node, progress);
  if (compareDataLag(theirs, mine) === 0) return `priority ${top.priority}`;
  return `data lag ${describeLag(theirs)}, mine ${describeLag(mine)}`;
}

/** The data/progress ranking reads: undefined when this node has no data roots (ranking as before). */
function dataRanking(o: Observation) {
  return o.data ? (o.cluster?.dataProgress ?? null) : undefined;
}

function d(actions: readonly Action[], reason: string): Decision {
  return { actions, reason };
}
