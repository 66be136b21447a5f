// GET /sync's `data` block (issue 14): data replication lag beside the config sync status, so
// one request answers "is this node safe to fail over to". GET /data (data.ts) has the rest
// (roots, journal, each standby's step and last error).
import type { DataLagRecord } from "../coordinator/port.js";
import type { DataStatus } from "../data/port.js";

export interface SyncDataBlock {
  readonly role: DataStatus["role"];
  readonly term: number | null;
  /** This node's own lag (a standby: as the primary last published it); null on the primary or when unknown. */
  readonly lag: DataLagRecord | null;
  /** The primary: one entry per standby it ships to; empty elsewhere. */
  readonly standbys: readonly (DataLagRecord & { readonly node: string })[];
}

export function syncDataBlock(s: DataStatus): SyncDataBlock {
  return {
    role: s.role,
    term: s.term,
    lag: s.self.lag,
    standbys: s.standbys.map((t) => ({ node: t.node, acked: t.acked, files: t.files, bytes: t.bytes, seconds: t.seconds, full: t.full, paused: t.paused })),
  };
}
