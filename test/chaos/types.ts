/**
 * What a chaos run records. Everything here is plain data written by the
 * recorders (ARP observer, daemon sampler, etcd watcher, workload, fault
 * runner) and read by the checker (checker.ts), which is a set of pure
 * functions over it: the checker never asks the cluster anything.
 *
 * Times are epoch milliseconds (Date.now() scale) taken on this machine; all
 * namespaces share its clock.
 */

/** One ARP sampling interval: which lab hosts answered "who has VIP". */
export interface ArpRecord {
  t: number;
  /** Host names (or raw MACs of unknown senders), sorted. */
  holders: string[];
}

/** One daemon sampling round: a TCP SYN to every node's transfer port. */
export interface DaemonRecord {
  t: number;
  /** Nodes that answered SYN-ACK (a listening daemon). */
  open: string[];
  /** Nodes that answered RST (nothing listening). Nodes in neither list did not answer in time. */
  closed: string[];
}

/** One put/delete seen by the etcd watcher (`etcdctl watch --prefix`). */
export interface EtcdEvent {
  /** Receive time in this process. */
  t: number;
  type: "put" | "delete";
  /** Key relative to the cluster prefix, e.g. "leader", "members/n1", "sync/generation". */
  key: string;
  /** Decoded value (UTF-8) for puts. */
  value?: string;
  createRevision: number;
  modRevision: number;
}

/** One history event, read from etcd at the end of the run. */
export interface HistoryRecord {
  kind: string;
  node: string;
  from: string | null;
  to: string | null;
  term: number | null;
  at: string;
  reason: string;
}

/** One SFTP upload attempt through the VIP. */
export interface UploadRecord {
  name: string;
  sha256: string;
  bytes: number;
  start: number;
  end: number;
  /** sftp exited 0 and listed the file: the upload was acknowledged. */
  ok: boolean;
  detail?: string;
}

/** One config edit: a new file written into the sync root of the node believed to be primary. */
export interface EditRecord {
  seq: number;
  /** The node whose live root received the file. */
  node: string;
  /** Path relative to the sync root. */
  file: string;
  sha256: string;
  t: number;
  /** false when the write itself failed (e.g. ENOSPC). */
  written: boolean;
  detail?: string;
}

/** A file seen in a rescue folder: node, path relative to the root, content hash. */
export interface RescuedFile {
  node: string;
  file: string;
  sha256: string;
}

/** A leader change seen during the run, and which acknowledged uploads the new primary lacked then. */
export interface DataPromotionRecord {
  /** When the run first saw the new leader (the watcher's leader). */
  t: number;
  node: string;
  /** When its data root was listed (after t). */
  listedAt: number;
  /** Uploads acknowledged before t that its data root did not hold at listedAt (names). */
  missing: string[];
  /** Acknowledged uploads before t. */
  acknowledged: number;
}

export interface FaultRecord {
  id: number;
  kind: string;
  target?: string;
  injectAt: number;
  healAt: number;
  /** End of the fault's measurement window: the cluster settled (or the settle bound passed). */
  settledAt: number;
  settled: boolean;
  /** Skipped: the fault does not apply in this mode or could not be injected. */
  skipped?: string;
  detail?: string;
}

/** An operator action (switchover) issued during the run. */
export interface OperatorRecord {
  t: number;
  end: number;
  action: string;
  via: string;
  code: number | null;
  detail?: string;
}

export interface Recording {
  /** Daemon mode: "cold" (understudy) makes two listening daemons a violation; "warm" (keepalived peer) does not. */
  mode: "cold" | "warm";
  controller: "understudy" | "keepalived";
  /** understudy: whether the agents ran with `election.failsafe: on` (recorded, not read by the checker). */
  failsafe?: boolean;
  nodes: string[];
  startedAt: number;
  endedAt: number;
  arpIntervalMs: number;
  arp: ArpRecord[];
  daemons: DaemonRecord[];
  etcd: EtcdEvent[];
  history: HistoryRecord[];
  uploads: UploadRecord[];
  /**
   * name → sha256 of every file where partners' uploads live at the end: the shared SFTP directory
   * (keepalived peer), or with data roots the final primary's data root.
   */
  storedUploads: Record<string, string>;
  /** "shared": one directory for every node (stand-in for shared storage); "replicated": a data root per node (src/data/). */
  uploadStorage?: "shared" | "replicated";
  /** Replicated: node → (name → sha256) of every node's data root at the end. */
  finalData?: Record<string, Record<string, string>>;
  /** Replicated: the new primary's data root, listed as soon as the run saw the leader change. */
  dataPromotions?: DataPromotionRecord[];
  edits: EditRecord[];
  /** node → (file → sha256) of the live sync root at the end. */
  finalRoots: Record<string, Record<string, string>>;
  rescued: RescuedFile[];
  faults: FaultRecord[];
  operator: OperatorRecord[];
}

export const VIOLATION_KINDS = ["vip_two_holders", "two_daemons_cold", "stale_promotion_unrecorded", "config_edit_lost", "upload_lost", "upload_unreplicated"] as const;
export type ViolationKind = (typeof VIOLATION_KINDS)[number];

export interface Violation {
  kind: ViolationKind;
  /** When it started (epoch ms), if it has a time. */
  at?: number;
  /** How long it lasted (ms), for sampled violations. */
  ms?: number;
  /** Fault kind whose window contains `at` ("none" between faults). */
  fault?: string;
  detail: string;
}
