import type { ClusterSnapshot } from "../coordinator/port.js";
import type { DataPort, SyncPort } from "./ports.js";

// The HA loop telling the sync and data engines, after each cycle, who leads and
// what etcd says; the engines pull, publish, ship or receive on their own.

type Role = { readonly acting: "primary" | "standby"; readonly term: number | null };

/** Tell the sync engine who leads and what was published; it pulls or publishes on its own. */
export function followSync(sync: SyncPort | undefined, role: Role, snapshot: ClusterSnapshot | null): void {
  if (!sync) return;
  const leader = snapshot?.leader ?? null;
  sync.follow({
    acting: role.acting,
    term: role.term,
    leader: leader ? { node: leader.node, term: leader.term, address: snapshot!.members.find((m) => m.node === leader.node)?.address ?? null } : null,
    published: snapshot ? snapshot.sync : undefined,
  });
}

/** Tell data replication who leads and what each member says (receiving term, rejoin, free space); it ships or receives on its own. */
export function followData(data: DataPort | undefined, role: Role, snapshot: ClusterSnapshot | null): void {
  if (!data) return;
  // etcd not read this cycle: the leader and members are unknown, not gone. A primary keeps its
  // standbys and cursors (its lease fences it if it stays cut off); a standby keeps receiving the
  // term it follows (the engine's `unread`).
  if (!snapshot) {
    if (role.acting !== "primary") data.follow({ acting: role.acting, term: role.term, leader: null, members: [], unread: true });
    return;
  }
  const leader = snapshot.leader;
  const members = snapshot.members;
  data.follow({
    acting: role.acting,
    term: role.term,
    leader: leader ? { node: leader.node, term: leader.term, address: members.find((m) => m.node === leader.node)?.address ?? null } : null,
    members: members.map((m) => ({ node: m.node, address: m.address, ...(m.data ? { data: m.data } : {}) })),
    progress: snapshot.dataProgress ?? null,
  });
}
