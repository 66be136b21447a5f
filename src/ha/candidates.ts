import type { BanRecord, DataLagRecord, DataProgress, MemberRecord } from "../coordinator/port.js";

// Who may become primary, and in what order (docs/architecture.md, "Ranking"): healthy, ready,
// not tagged nofailover, not banned; newest synced generation first, then (data roots) less
// data lag, then priority.

export function isBanned(node: string, bans: readonly BanRecord[]): boolean {
  return bans.some((b) => b.node === node);
}

export function eligible(m: MemberRecord, bans: readonly BanRecord[]): boolean {
  return m.healthy && !m.nofailover && m.role !== "fenced" && m.role !== "stopping" && !isBanned(m.node, bans);
}

export function outranks(m: Pick<MemberRecord, "generation" | "priority">, other: { generation: number; priority: number }): boolean {
  return m.generation > other.generation || (m.generation === other.generation && m.priority > other.priority);
}

/** `progress` (data roots configured): ties on generation are broken by data lag before priority. */
export function bestCandidate(members: readonly MemberRecord[], bans: readonly BanRecord[], progress?: DataProgress | null): MemberRecord | undefined {
  return members
    .filter((m) => eligible(m, bans))
    .sort((a, b) => b.generation - a.generation || compareDataLag(dataLagOf(a.node, progress), dataLagOf(b.node, progress)) || b.priority - a.priority || a.node.localeCompare(b.node))[0];
}

// Data lag (docs/data.md, "Ranking and the gate"): after the sync generation, a candidate with
// less data lag in the last primary's data/progress ranks first (fewer bytes, then fewer files).

/** A candidate as ranking sees it. */
export interface RankedNode {
  readonly node: string;
  readonly generation: number;
  readonly priority: number;
}

/**
 * A node's data lag in `progress`: its entry; zero for the record's writer (it was the source);
 * null when unknown (no record, or not listed). Unknown and `full` (a full pass needed) rank
 * after every known lag.
 */
export function dataLagOf(node: string, progress: DataProgress | null | undefined): DataLagRecord | null {
  if (!progress) return null;
  if (node === progress.node) return { acked: progress.head, files: 0, bytes: 0, seconds: 0, full: false, paused: null };
  return progress.standbys[node] ?? null;
}

/** Negative when `a` has less data lag than `b` (ranks first); 0 when equal or both unknown. */
export function compareDataLag(a: DataLagRecord | null, b: DataLagRecord | null): number {
  const unknownA = a === null || a.full ? 1 : 0;
  const unknownB = b === null || b.full ? 1 : 0;
  if (unknownA !== unknownB || unknownA === 1) return unknownA - unknownB;
  return a!.bytes - b!.bytes || a!.files - b!.files;
}

/** Like `outranks`, with data lag between the generation and the priority when `progress` is given. */
export function ranksAbove(m: RankedNode, other: RankedNode, progress: DataProgress | null | undefined): boolean {
  if (m.generation !== other.generation) return m.generation > other.generation;
  const lag = compareDataLag(dataLagOf(m.node, progress), dataLagOf(other.node, progress));
  if (lag !== 0) return lag < 0;
  return m.priority > other.priority;
}
