import type { ClusterKeys } from "./keys.js";
import type { BanRecord, ClusterSnapshot, DataProgress, FailsafeMembers, LeaderRecord, ReleaseRecord, SwitchoverRequest, SyncGeneration } from "./port.js";
import {
  checkMembers,
  decodeBanChecked,
  decodeDataProgress,
  decodeFailsafeMembers,
  decodeLeaderChecked,
  decodeMemberChecked,
  decodeReleasedChecked,
  decodeSwitchoverChecked,
  decodeSyncGenerationChecked,
  type Decoded,
  type InvalidRecord,
} from "./records.js";

/** One key-value as read from etcd, whichever client read it (gRPC or the JSON gateway). */
export interface RawKv {
  readonly key: string;
  readonly value: string;
  /** Its mod_revision: the leader key's is the term. */
  readonly modRevision: number;
}

/**
 * The cluster snapshot from the keys of one read-only txn: every record
 * checked (records.ts), the member cross-checks applied, and each refusal
 * reported. One definition, so the agent (EtcdCoordinator.snapshot) and
 * `understudy status` (the JSON gateway reader) see the cluster alike.
 */
export function decodeSnapshot(k: ClusterKeys, kvs: Iterable<RawKv>, revision: number, onInvalid?: (r: InvalidRecord) => void): ClusterSnapshot {
  let leader: LeaderRecord | null = null;
  const members: Parameters<typeof checkMembers>[0][number][] = [];
  const bans: BanRecord[] = [];
  let paused = false;
  let switchover: SwitchoverRequest | null = null;
  let released: ReleaseRecord | null = null;
  let sync: SyncGeneration | null = null;
  let dataProgress: DataProgress | null = null;
  let failsafeMembers: FailsafeMembers | null = null;
  let failsafeMembersInvalid = false;
  for (const { key, value, modRevision } of kvs) {
    const take = <T>(kind: InvalidRecord["kind"], d: Decoded<T>): T | null => {
      if ("ok" in d) return d.ok;
      onInvalid?.({ kind, key, modRevision, problem: d.problem });
      return null;
    };
    if (key === k.leader) leader = take("leader", decodeLeaderChecked(value, modRevision));
    else if (key === k.pause) paused = value !== "" && value !== "false";
    else if (key === k.switchover) switchover = take("switchover", decodeSwitchoverChecked(value));
    else if (key === k.released) released = take("released", decodeReleasedChecked(value));
    else if (key === k.syncGeneration) sync = take("sync", decodeSyncGenerationChecked(value));
    else if (key === k.dataProgress) dataProgress = take("data_progress", decodeDataProgress(value));
    else if (key === k.failsafeMembers) {
      failsafeMembers = take("failsafe_members", decodeFailsafeMembers(value));
      failsafeMembersInvalid = failsafeMembers === null;
    } else if (key.startsWith(k.bansPrefix)) {
      const b = take("ban", decodeBanChecked(value));
      if (b) bans.push(b);
    } else if (key.startsWith(k.membersPrefix)) {
      const record = take("member", decodeMemberChecked(value));
      if (record) members.push({ key, keyNode: key.slice(k.membersPrefix.length), modRevision, record });
    }
  }
  const checked = checkMembers(members, sync);
  for (const bad of checked.invalid) onInvalid?.(bad);
  return {
    revision,
    leader,
    members: checked.members,
    paused,
    switchover,
    released,
    bans,
    sync,
    ...(dataProgress ? { dataProgress } : {}),
    ...(failsafeMembers ? { failsafeMembers } : {}),
    ...(failsafeMembersInvalid ? { failsafeMembersInvalid: true } : {}),
  };
}
