import type { ClusterSnapshot, MemberRecord, SwitchoverRequest } from "../coordinator/port.js";
import { bestCandidate, eligible } from "../ha/candidates.js";
import { SYNC_CATCH_UP_MS } from "../ha/switchover.js";

// The API's planner for switchover / failback / failover requests (pure): is
// the move possible against the cluster as etcd has it, and if so which node
// the request names, with a reason; if not, the refusal and its reason.

export interface MoveBody {
  to?: string;
  at?: string;
  reason?: string;
  force?: boolean;
  requested_by?: string;
  /** switchover only: drain for up to this long first (a duration like 30s). */
  drain?: string;
}

export type MovePlan =
  /** `to` null: no standby to name now; the releasing primary picks the best candidate. */
  /** `chosen`: `to` is this planner's pick, not the request's (SwitchoverRequest.chosen). */
  { readonly ok: true; readonly to: string | null; readonly chosen?: true; readonly reason: string } | { readonly ok: false; readonly status: number; readonly message: string };

/** A failback's target before the cluster is read: the node the request names, else failback.preferred. */
export function failbackTarget(to: string | undefined, preferred: string | null): { ok: true; to: string; namedBy: string } | { ok: false; status: number; message: string } {
  if (to !== undefined) return { ok: true, to, namedBy: "named by the request" };
  if (preferred) return { ok: true, to: preferred, namedBy: "failback.preferred" };
  return { ok: false, status: 412, message: "no preferred node: set failback.preferred or name one with `to`" };
}

/** The target of a move request and why, or why it is refused. */
export function planMove(snap: ClusterSnapshot, kind: SwitchoverRequest["kind"], body: MoveBody, wallNowMs: number, namedBy = "named by the request"): MovePlan {
  const problem = checkMove(snap, kind, body, wallNowMs);
  if (problem) return { ok: false, ...problem };
  if (body.to !== undefined) {
    const target = snap.members.find((m) => m.node === body.to);
    const waits =
      target && !(kind === "failover" && body.force) && catchingUp(target, snap, kind, wallNowMs)
        ? `; ${body.to} is catching up (generation ${target.generation} < ${snap.sync!.generation}): the primary waits up to ${SYNC_CATCH_UP_MS / 1000}s for it`
        : "";
    return { ok: true, to: body.to, reason: `${kind} to ${body.to}: ${namedBy}${kind === "failover" && body.force ? " (forced)" : ""}${waits}` };
  }
  // Name the target now: a request without one left the releasing primary free to win the
  // election again and hand over again, for ever (found by the chaos operator loop).
  const best = bestCandidate(
    snap.members.filter((m) => m.node !== snap.leader?.node && m.role === "standby"),
    snap.bans,
  );
  if (!best) return { ok: true, to: null, reason: `${kind} to the best candidate when the primary hands over: no live standby to name now` };
  return {
    ok: true,
    to: best.node,
    chosen: true,
    reason: `${kind} to ${best.node}: the best candidate (healthy, ready, sync generation ${best.generation}, priority ${best.priority}); another is taken if it does not answer that it is ready`,
  };
}

/** Why a move cannot be done now, or null. Pure, for tests. */
export function checkMove(snap: ClusterSnapshot, kind: SwitchoverRequest["kind"], body: MoveBody, wallNowMs: number): { status: number; message: string } | null {
  const leader = snap.leader;
  if (snap.switchover) return { status: 412, message: `a ${snap.switchover.kind} to ${snap.switchover.to ?? "the best candidate"} is already pending` };
  if (body.at !== undefined) {
    const at = Date.parse(body.at);
    if (Number.isNaN(at) || at < wallNowMs - 1000) return { status: 400, message: `at ${JSON.stringify(body.at)} must be a time in the future` };
  }
  if (kind !== "failover" && leader === null) return { status: 412, message: `there is no primary to ${kind} from; use failover --to NODE` };
  if (body.to !== undefined && leader?.node === body.to) return { status: 412, message: `${body.to} is already the primary` };
  const standbys = snap.members.filter((m) => m.node !== leader?.node);
  if (body.to === undefined) {
    return standbys.some((m) => eligible(m, snap.bans)) ? null : { status: 412, message: "no healthy, ready standby to switch over to" };
  }
  const target = standbys.find((m) => m.node === body.to);
  if (!target) return { status: 412, message: `${body.to} is not a live member of the cluster` };
  if (kind === "failover" && body.force) return null;
  const why = notEligible(target, snap, kind, wallNowMs);
  if (why) return { status: 412, message: `${body.to} ${why}${kind === "failover" ? "; repeat with force to fail over anyway" : ""}` };
  return null;
}

function notEligible(m: MemberRecord, snap: ClusterSnapshot, kind: SwitchoverRequest["kind"], wallNowMs: number): string | null {
  if (snap.bans.some((b) => b.node === m.node)) return "is banned";
  if (m.nofailover) return "is tagged nofailover";
  if (!m.healthy) return "is not healthy or not ready";
  // Not isBehind(snap.sync): a different question. A target is refused when a live member holds a
  // newer generation than it does (the ranking in ha/candidates.ts), record or not; with no
  // published record (sync: null) a lagging member is still refused (test/unit/api/api-move-plan.test.ts).
  // Unless it is catching up: the primary waits for that (below).
  const newest = Math.max(0, ...snap.members.map((x) => x.generation));
  if (m.generation < newest && !catchingUp(m, snap, kind, wallNowMs)) {
    const stuck = m.sync?.lastError ? `: ${m.sync.lastError.slice(0, 200)}` : m.sync?.behindSince ? ` since ${m.sync.behindSince}` : "";
    return `is behind in sync (generation ${m.generation} < ${newest})${stuck}`;
  }
  return eligible(m, snap.bans) ? null : "is not eligible";
}

/**
 * A target one config edit behind is normal while files change: it pulls within a second, and
 * the primary (primarySwitchover) waits up to SYNC_CATCH_UP_MS for it to hold the published
 * generation before it hands over, then cancels and records why. So a switchover or failback
 * to such a target is accepted when a primary is there to wait, the published record is the
 * newest generation, and the target's sync is not failing nor behind for that long already.
 * A failover (no primary needs to be there to wait) is not: it still needs force.
 */
function catchingUp(m: MemberRecord, snap: ClusterSnapshot, kind: SwitchoverRequest["kind"], wallNowMs: number): boolean {
  const pub = snap.sync;
  if (kind === "failover" || snap.leader === null || pub === null || m.generation >= pub.generation) return false;
  if (snap.members.some((x) => x.generation > pub.generation)) return false;
  if (m.sync === undefined || m.sync.failures > 0 || m.sync.lastError !== null) return false;
  return m.sync.behindSince === null || wallNowMs - Date.parse(m.sync.behindSince) < SYNC_CATCH_UP_MS;
}
