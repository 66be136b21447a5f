import type { LeaderRecord, MemberRecord } from "./port.js";

// Values are JSON. A value we cannot parse is treated as absent/unknown by the
// callers (when in doubt, be a standby), never as ours.

export interface LeaderValue {
  readonly node: string;
  readonly lease: string;
  readonly acquired_at: string;
}

export function encodeLeader(node: string, lease: string, acquiredAt: string): string {
  const v: LeaderValue = { node, lease, acquired_at: acquiredAt };
  return JSON.stringify(v);
}

export function decodeLeader(value: string, createRevision: number): LeaderRecord | undefined {
  try {
    const v = JSON.parse(value) as Partial<LeaderValue>;
    if (typeof v.node !== "string" || typeof v.lease !== "string") return undefined;
    return { node: v.node, lease: v.lease, term: createRevision, acquiredAt: String(v.acquired_at ?? "") };
  } catch {
    return undefined;
  }
}

export function decodeMember(value: string): MemberRecord | undefined {
  try {
    const v = JSON.parse(value) as MemberRecord;
    return typeof v.node === "string" && typeof v.role === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}
