// What the rest of the agent (API, CLI via the API, metrics) asks of data replication
// (src/data/, docs/data.md). The HA loop's side is DataPort in src/ha/ports.ts.
import type { DataLagRecord, DataProgress, MemberDataSummary } from "../coordinator/port.js";

/** One data root as this node sees it. */
export interface DataRootStatus {
  readonly name: string;
  readonly path: string;
  /** Free bytes on the root's filesystem; null when statfs failed. */
  readonly freeBytes: number | null;
  /** Primary: why the root cannot be watched (US_E_DATA_WATCH_LIMIT; it ships by full passes meanwhile), or null. */
  readonly unwatched?: string | null;
}

/** One standby as this primary's shipper sees it. */
export interface ShipTargetStatus extends DataLagRecord {
  readonly node: string;
  /** The reason sentence of its latest step (src/data/ship-plan.ts). */
  readonly step: string;
  /** "CODE: message" of the last failed run; null after a success. */
  readonly lastError: string | null;
  readonly lastSuccessAt: string | null;
  /** A full pass to it stopped at data.max_delete (the primary's root may be unmounted); absent: read from `step`. */
  readonly deleteLimited?: boolean;
}

export interface DataStatus {
  readonly role: "primary" | "standby" | "none";
  readonly term: number | null;
  readonly roots: readonly DataRootStatus[];
  /** Primary: the journal's head sequence and its pending/ready sizes. */
  readonly journal: { readonly head: number; readonly pending: number; readonly ready: number } | null;
  /** Primary: one entry per standby it ships to. */
  readonly standbys: readonly ShipTargetStatus[];
  /** This node's member-key summary (receiving term, rejoin, its own lag). */
  readonly self: MemberDataSummary;
}

/**
 * Guarantees:
 * - `notify` answers at once: it resolves each path to a data root and journals it as
 *   closed (shippable now); paths outside every data root are returned in `ignored`, never
 *   an error. On a node that is not primary it accepts nothing and says so (`role`).
 * - `status` answers at once from memory.
 * - `progress` is what the primary would write to data/progress now (null when not primary).
 */
export interface DataControl {
  notify(paths: readonly string[]): { readonly role: DataStatus["role"]; readonly accepted: number; readonly ignored: readonly string[] };
  status(): DataStatus;
  progress(): DataProgress | null;
}
