import type { ProbeState } from "../probes/port.js";

// What the HA loop needs from the VIP reconciler and the probe runner: the
// loop imports these shapes only, never an adapter (composition is in agent.ts).

export interface VipControl {
  /**
   * Record the desired state and reconcile now; rejects if adding/removing failed.
   * skipDuplicateCheck: the previous holder released the address (see ReleaseRecord).
   */
  setDesired(held: boolean, options?: { skipDuplicateCheck?: boolean }): Promise<void>;
  state(): { readonly desired: boolean; readonly held: boolean | undefined; readonly lastError: string | undefined };
  /** Remove the address and stop reconciling (shutdown). */
  release(): Promise<void>;
}

export interface DaemonHealth {
  criticalUp(): boolean;
  states(): ProbeState[];
  onChange(listener: () => void): void;
  checkNow(): Promise<unknown>;
  start(): void;
  stop(): Promise<void> | void;
}
