// Drained switchover (docs/operations.md, "Drained switchover"): the ports the
// HA core uses to stop new transfer sessions on the primary and to count the
// ones still established. Adapters: nft.ts (the generic firewall gate),
// command-gate.ts (a daemon's own stop/resume commands), proc-net.ts (the
// kernel's socket table).

/**
 * Refuses new sessions while a drain runs. Contract: stopAccepting either
 * applies the refusal or rejects with a coded error and leaves nothing
 * applied; resumeAccepting is idempotent (safe when nothing was applied, safe
 * to call twice) and rejects only when the refusal may still be in place.
 */
export interface SessionGate {
  /** What refuses new sessions, for reason sentences: "an nftables rule (table inet understudy_drain)". */
  readonly method: string;
  stopAccepting(): Promise<void>;
  resumeAccepting(): Promise<void>;
  /** At agent start: remove a refusal a previous run left behind (crash mid-drain). May be a no-op. */
  clearLeftover(): Promise<void>;
}

/** Counts the transfer sessions established on the service ports right now (never guessed). */
export interface SessionCounter {
  /** The service ports counted, for reason sentences. */
  readonly ports: readonly number[];
  established(): Promise<number>;
}
