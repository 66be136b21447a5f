import type { MemberSyncSummary, SyncGeneration } from "../coordinator/port.js";
import type { ProbeState } from "../probes/port.js";

// What the HA loop needs from the VIP reconciler and the probe runner: the
// loop imports these shapes only, never an adapter (composition is in agent.ts).

export interface VipControl {
  /**
   * Record the desired state and reconcile now; rejects if adding/removing failed.
   * skipDuplicateCheck: the previous holder released the address (see ReleaseRecord).
   */
  setDesired(held: boolean, options?: { skipDuplicateCheck?: boolean }): Promise<void>;
  state(): {
    readonly desired: boolean;
    readonly held: boolean | undefined;
    readonly lastError: string | undefined;
    /** Since when (monotonic ms) the address has been desired but not held; null/absent when held or not desired. */
    readonly missingSinceMs?: number | null;
    /** MAC of another host answering ARP for the address, as the duplicate check saw it. */
    readonly foreignMac?: string | null;
  };
  /** Remove the address and stop reconciling (shutdown). */
  release(): Promise<void>;
}

export interface DaemonHealth {
  criticalUp(): boolean;
  /** Why every failing critical probe fails for a reason the standbys share (synced certificate), or null. Optional for fakes. */
  sharedFailure?(): string | null;
  states(): ProbeState[];
  onChange(listener: () => void): void;
  checkNow(): Promise<unknown>;
  start(): void;
  stop(): Promise<void> | void;
}

/** What the HA loop needs from the sync engine (src/sync/engine.ts). */
export interface SyncPort {
  /** The published generation this node holds in full. */
  generation(): number;
  /** Since when (monotonic ms) this node has lagged the published generation; null when it does not. */
  behindSince(): number | null;
  /** After each cycle: the role, and the leader and generation as read from etcd (undefined: not read). */
  follow(view: {
    readonly acting: "primary" | "standby";
    readonly term: number | null;
    readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
    readonly published: SyncGeneration | null | undefined;
  }): void;
  memberSummary(): MemberSyncSummary;
}
