import type { Logger } from "../platform/logger.js";
import type { InvalidRecord } from "./records.js";

/**
 * Where records refused by the coordinator's validation go: one warning per
 * key and revision (the same bad record is read on every cycle), and a count
 * per kind for `understudy_etcd_invalid_records_total`.
 */
export class InvalidRecordLog {
  private readonly seen = new Map<string, number>();
  private readonly counts: Record<string, number> = {};

  constructor(private readonly log: Logger) {}

  report(r: InvalidRecord): void {
    if (this.seen.get(r.key) === r.modRevision) return;
    // Bounded: a flood of junk keys must not grow this map without end.
    if (this.seen.size >= 1000) this.seen.clear();
    this.seen.set(r.key, r.modRevision);
    this.counts[r.kind] = (this.counts[r.kind] ?? 0) + 1;
    this.log.warn({ kind: r.kind, key: r.key, mod_revision: r.modRevision, problem: r.problem }, "ignoring an invalid record read from etcd");
  }

  /** Invalid records seen so far (each key revision once), by kind. */
  totals(): Readonly<Record<string, number>> {
    return this.counts;
  }
}
