import type { BanRecord, HistoryEvent, LeaderRecord, MemberRecord, ReleaseRecord, SwitchoverRequest, SyncGeneration } from "./port.js";

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

function parseObject<T>(value: string, valid: (v: Partial<T>) => boolean): T | undefined {
  try {
    const v = JSON.parse(value) as Partial<T>;
    return v !== null && typeof v === "object" && valid(v) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

export const decodeSwitchover = (value: string) =>
  parseObject<SwitchoverRequest>(value, (v) => ["switchover", "failback", "failover"].includes(String(v.kind)));
export const decodeReleased = (value: string) => parseObject<ReleaseRecord>(value, (v) => typeof v.node === "string" && typeof v.term === "number");
export const decodeBan = (value: string) => parseObject<BanRecord>(value, (v) => typeof v.node === "string");
export const decodeSyncGeneration = (value: string) =>
  parseObject<SyncGeneration>(value, (v) => typeof v.generation === "number" && typeof v.digest === "string" && typeof v.roots === "object");
export const decodeHistory = (value: string) => parseObject<HistoryEvent>(value, (v) => typeof v.kind === "string" && typeof v.at === "string");

/** history/<zero-padded epoch ms>-<node>: keys sort in time order. */
export function historyKey(prefix: string, event: HistoryEvent, wallMs: number): string {
  return `${prefix}${String(wallMs).padStart(15, "0")}-${event.node}-${event.kind}`;
}
