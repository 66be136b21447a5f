// Key layout under <prefix>/<cluster>/ (docs/architecture.md). One place, so the etcd
// adapter, the in-memory fake and `understudy status` agree.

export interface ClusterKeys {
  readonly base: string;
  readonly leader: string;
  readonly membersPrefix: string;
  readonly pause: string;
  readonly switchover: string;
  readonly released: string;
  readonly bansPrefix: string;
  readonly historyPrefix: string;
  readonly syncGeneration: string;
  /** data/progress: the primary's per-standby replication lag (DataProgress). */
  readonly dataProgress: string;
  /** failsafe/members: the membership a failsafe primary asks, written under its term (docs/failsafe-design.md, E1). */
  readonly failsafeMembers: string;
  /** data/rejoin/<node>: the new primary's record that a former primary's files were merged. */
  dataRejoin(node: string): string;
  member(node: string): string;
  ban(node: string): string;
}

export function clusterKeys(prefix: string, cluster: string): ClusterKeys {
  const base = `${prefix.replace(/\/+$/, "")}/${cluster}/`;
  return {
    base,
    leader: `${base}leader`,
    membersPrefix: `${base}members/`,
    pause: `${base}control/pause`,
    switchover: `${base}control/switchover`,
    released: `${base}control/released`,
    bansPrefix: `${base}control/ban/`,
    historyPrefix: `${base}history/`,
    syncGeneration: `${base}sync/generation`,
    dataProgress: `${base}data/progress`,
    failsafeMembers: `${base}failsafe/members`,
    dataRejoin: (node) => `${base}data/rejoin/${node}`,
    member: (node) => `${base}members/${node}`,
    ban: (node) => `${base}control/ban/${node}`,
  };
}

/** The range_end that selects every key starting with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
