// At start, the leader key may name this node: a restart while its lease
// lived (no failover: keep serving), or a planned move that handed the key to
// that lease while the previous run was dying (never served: the promotion
// gates apply, as to any handed key). Pure: the loop adopts the lease.
import type { ClusterSnapshot } from "../coordinator/port.js";

export interface StartAdoption {
  readonly lease: string;
  readonly term: number;
  /** The previous run served this key: its member key, on that lease, says primary (an older agent's states no lease). */
  readonly served: boolean;
}

/** null: the leader key names another node, or nobody. */
export function adoptionAtStart(snap: ClusterSnapshot, node: string): StartAdoption | null {
  const leader = snap.leader;
  if (!leader || leader.node !== node) return null;
  const mine = snap.members.find((m) => m.node === node);
  const served = mine?.role === "primary" && (mine.lease === undefined || mine.lease === leader.lease);
  return { lease: leader.lease, term: leader.term, served };
}

/** The start-up log line. */
export function adoptionNote(a: StartAdoption, adopted: boolean): string {
  if (!adopted) return "my previous lease is gone";
  return a.served ? "adopted my lease from a previous run: no failover" : "the leader key was handed to my lease while my previous run was down: promoting through every gate";
}
