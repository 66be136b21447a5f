import type { BanRecord, MemberRecord } from "../coordinator/port.js";

// Who may become primary, and in what order (docs/architecture.md, "Ranking"): healthy, ready,
// not tagged nofailover, not banned; newest synced generation first, then priority.

export function isBanned(node: string, bans: readonly BanRecord[]): boolean {
  return bans.some((b) => b.node === node);
}

export function eligible(m: MemberRecord, bans: readonly BanRecord[]): boolean {
  return m.healthy && !m.nofailover && m.role !== "fenced" && m.role !== "stopping" && !isBanned(m.node, bans);
}

export function outranks(m: Pick<MemberRecord, "generation" | "priority">, other: { generation: number; priority: number }): boolean {
  return m.generation > other.generation || (m.generation === other.generation && m.priority > other.priority);
}

export function bestCandidate(members: readonly MemberRecord[], bans: readonly BanRecord[]): MemberRecord | undefined {
  return members.filter((m) => eligible(m, bans)).sort((a, b) => b.generation - a.generation || b.priority - a.priority || a.node.localeCompare(b.node))[0];
}
