import type { ClusterSnapshot } from "../coordinator/port.js";
import { eligible } from "./candidates.js";

// What the loop remembers from one cycle to the next about the cluster, as a
// pure step: the loop calls track() once per cycle, before it observes, so
// building the observation only reads.

export interface HaMemory {
  /** When this node first saw the current leader vacancy (monotonic ms); null while a leader exists. */
  readonly vacantSinceMs: number | null;
  /** Since when the failback.preferred node has been an eligible standby, as seen here; null when it is not. */
  readonly preferredReadySinceMs: number | null;
}

export const EMPTY_MEMORY: HaMemory = { vacantSinceMs: null, preferredReadySinceMs: null };

/** The memory after reading `snapshot` at `nowMs`; an unread snapshot (etcd unreachable) changes nothing. */
export function track(memory: HaMemory, snapshot: ClusterSnapshot | null, nowMs: number, preferred: string | null): HaMemory {
  if (!snapshot) return memory;
  const vacantSinceMs = snapshot.leader === null ? (memory.vacantSinceMs ?? nowMs) : null;
  const p = snapshot.members.find((m) => m.node === preferred && m.role === "standby");
  const preferredReadySinceMs = p && eligible(p, snapshot.bans) ? (memory.preferredReadySinceMs ?? nowMs) : null;
  return { vacantSinceMs, preferredReadySinceMs };
}
