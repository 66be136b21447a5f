import type { ClusterSnapshot, MemberRecord } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { Observation } from "./observation.js";
import type { VipControl } from "./ports.js";

// "Primary without its VIP" and "VIP held by a host that is not the primary"
// (docs/operations.md): states with reasons, not log lines. Pure: decide() uses
// vipLost(), the status table and the API use vipFindings().

/** What the VIP adapter saw this cycle (acting primary). */
export interface VipObservation {
  /** Since when (monotonic ms) the address has been desired but not held; null when held. */
  readonly missingSinceMs: number | null;
  /** MAC of another host answering ARP for the address (duplicate check); null when none seen. */
  readonly foreignMac: string | null;
  /** The last add/check failure, e.g. "US_E_TOOL_MISSING: arping ...". */
  readonly problem: string | null;
  /** vip.hold_timeout: a primary without its VIP this long hands over (local cause) or holds (another host has it): decide.ts. */
  readonly holdTimeoutMs: number;
}

/** Why the address is not here, for a reason sentence: the foreign MAC first, else the last error. */
export function vipMissingCause(v: Pick<VipObservation, "foreignMac" | "problem">): string {
  if (v.foreignMac) return `held by ${v.foreignMac}, another host answers ARP for it`;
  return v.problem ? v.problem.slice(0, 300) : "not added yet";
}

/** Null while the primary holds its VIP (or has been without it for less than vip.hold_timeout); else the reason. */
export function vipLost(o: Observation): string | null {
  const v = o.vip;
  if (!v || v.missingSinceMs === null) return null;
  const missingMs = o.nowMs - v.missingSinceMs;
  if (missingMs < v.holdTimeoutMs) return null;
  return `primary without the floating IP for ${Math.round(missingMs / 1000)}s, over vip.hold_timeout ${Math.round(v.holdTimeoutMs / 1000)}s (${vipMissingCause(v)})`;
}

/** One line per VIP problem in the cluster, as status and /cluster show them; empty when all is well. */
export function vipFindings(snap: Pick<ClusterSnapshot, "leader" | "members">): string[] {
  const out: string[] = [];
  const primary = snap.leader?.node;
  for (const m of snap.members) {
    if (m.node === primary && (m.vipMissingSince !== undefined || m.vipHolder !== undefined)) {
      const cause = m.vipHolder ? `VIP held by ${m.vipHolder} (another host answers ARP for it)` : (m.vipProblem ?? "the address is not on its interface");
      out.push(`primary ${m.node} without its floating IP${m.vipMissingSince ? ` since ${m.vipMissingSince}` : ""}: ${cause}`);
    } else if (m.node !== primary && m.vipHeld) {
      out.push(`VIP held by ${m.node}, which is not the primary${primary ? ` (${primary} is)` : ""}`);
    }
  }
  return out;
}

/** The member key's VIP fields for a node acting primary without its address (absent otherwise). */
export function memberVipFields(v: { missingSince: string | null; foreignMac: string | null; problem: string | null }): Partial<Pick<MemberRecord, "vipMissingSince" | "vipHolder" | "vipProblem">> {
  if (v.missingSince === null) return {};
  return {
    vipMissingSince: v.missingSince,
    ...(v.foreignMac ? { vipHolder: v.foreignMac } : {}),
    ...(v.problem ? { vipProblem: v.problem.slice(0, 500) } : {}),
  };
}

type VipState = ReturnType<VipControl["state"]>;

/** Set when this node does not know the address to be free: its successor must run the duplicate check. */
export function vipNotFree(v: VipState | undefined): { vipNotFree?: string } {
  if (!v) return {};
  if (v.foreignMac) return { vipNotFree: `held by ${v.foreignMac}` };
  if (v.desired && v.held !== true) return { vipNotFree: (v.lastError ?? "not held").slice(0, 500) };
  return {};
}

/**
 * Read after stepping down, for the release record: set when the address may
 * still be on this node (its removal failed, or another demotion is still
 * removing it). The successor then runs the duplicate-address check, which
 * this node's ARP answer fails, instead of adding the address beside it.
 */
function vipLeftBehind(now: VipState): { vipNotFree?: string } {
  if (now.desired || now.held === false) return {};
  return { vipNotFree: `still on the old primary after it stepped down${now.lastError ? `: ${now.lastError}` : ""}`.slice(0, 500) };
}

/**
 * A release record's VIP field: free only if the address is gone from here now (read after
 * stepping down) and was ours, or nobody's, when the release was decided; a foreign MAC seen
 * then is what the record says.
 */
export function releasedVip(now: VipState, atDecision: VipState | undefined): { vipNotFree?: string } {
  return { ...vipLeftBehind(now), ...vipNotFree(atDecision) };
}

/** Reads the VIP reconciler for the HA loop: the observation, the member key's fields, the API view. */
export class VipWitness {
  /** Wall-clock ISO time of missingSinceMs, computed once so the member key does not change every cycle. */
  private missingIso: { mono: number; iso: string } | null = null;

  constructor(
    private readonly vip: Pick<VipControl, "state">,
    private readonly clock: Clock,
  ) {}

  observation(holdTimeoutMs: number): VipObservation {
    const v = this.vip.state();
    return { missingSinceMs: v.missingSinceMs ?? null, foreignMac: v.foreignMac ?? null, problem: v.lastError ?? null, holdTimeoutMs };
  }

  /** Only an acting primary can be "without its VIP". */
  truth(acting: "primary" | "standby"): { missingSince: string | null; missingMs: number | null; foreignMac: string | null; problem: string | null } {
    const v = this.vip.state();
    const since = acting === "primary" ? (v.missingSinceMs ?? null) : null;
    if (since === null) {
      this.missingIso = null;
      return { missingSince: null, missingMs: null, foreignMac: null, problem: null };
    }
    const now = this.clock.monotonicMs();
    if (this.missingIso?.mono !== since) this.missingIso = { mono: since, iso: new Date(this.clock.wallMs() - (now - since)).toISOString() };
    return { missingSince: this.missingIso.iso, missingMs: Math.max(0, now - since), foreignMac: v.foreignMac ?? null, problem: v.lastError ?? null };
  }

  view(acting: "primary" | "standby"): { vipMissingMs: number | null; vipHolder: string | null; vipProblem: string | null } {
    const t = this.truth(acting);
    return { vipMissingMs: t.missingMs, vipHolder: t.foreignMac, vipProblem: t.problem };
  }
}
