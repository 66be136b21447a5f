// At start, the leader key may name this node: a restart while its lease
// lived (no failover: keep serving), or a planned move that handed the key to
// that lease while the previous run was dying (never served: the promotion
// gates apply, as to any handed key, and an address left behind goes first).
// Pure: the loop adopts the lease.
import type { ClusterSnapshot } from "../coordinator/port.js";

export interface StartAdoption {
  readonly lease: string;
  readonly term: number;
  /**
   * false only for a key handed to me that my previous run never served: the handover txn wrote
   * the key and the release record with one timestamp (acquiredAt = released.at), and my member
   * key on that lease does not say primary. A key my own campaign won counts as served even when
   * the member key had not caught up (a crash in the promoting cycle, a failed member put).
   */
  readonly served: boolean;
}

/** null: the leader key names another node, or nobody. */
export function adoptionAtStart(snap: ClusterSnapshot, node: string): StartAdoption | null {
  const leader = snap.leader;
  if (!leader || leader.node !== node) return null;
  const handed = snap.released !== null && snap.released.node !== node && snap.released.at === leader.acquiredAt;
  const mine = snap.members.find((m) => m.node === node);
  const servedHere = mine?.role === "primary" && (mine.lease === undefined || mine.lease === leader.lease);
  return { lease: leader.lease, term: leader.term, served: !handed || servedHere };
}

/** The start-up log line. */
export function adoptionNote(a: StartAdoption, adopted: boolean): string {
  if (!adopted) return "my previous lease is gone";
  return a.served ? "adopted my lease from a previous run: no failover" : "the leader key was handed to my lease while my previous run was down: promoting through every gate";
}
