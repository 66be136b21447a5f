// The former primary's side of a loss-free rejoin (docs/data-replication-design.md §7).
//
// A node that acts as primary with a term writes a small durable marker under
// its state_dir, "I took uploads as primary in term T", before it serves
// uploads. The marker survives a crash and a reboot: when the node comes back
// and another node leads a later term, it is a former primary that may hold
// acknowledged uploads the new primary never received. While the marker is
// set it reports rejoin "pending" in its member key, serves its data roots
// read-only to the new primary (`r<term>-<root>`, rejoin-serve.ts) and opens
// no write module, so nothing is shipped to it and nothing it holds is
// deleted. It clears the marker only when it reads the new primary's
// data/rejoin/<node> record with a later term and done: true (its files are
// in that primary's tree). Pure planner first, then the store (DurableFs).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { DurableFs } from "../platform/durable-fs.js";
import type { DataRejoinRecord, DataRejoinRecords } from "../coordinator/port.js";
import { describeError } from "../errors/catalogue.js";
import type { Logger } from "../platform/logger.js";

/** What the marker file holds: the last term this node took uploads as primary in; null: cleared. */
export interface RejoinMarker {
  readonly term: number;
}

export interface MarkerObservation {
  readonly node: string;
  /** The marker as read from disk (null: none, or cleared). */
  readonly marker: RejoinMarker | null;
  /** This node acts as primary with this term (null: it does not, or has no term). */
  readonly primaryTerm: number | null;
  /** The leader as last read from etcd (null: none known). */
  readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
  /** data/rejoin/<this node> as last read (null: none). */
  readonly record: DataRejoinRecord | null;
}

export type MarkerPlan = {
  /** write: set the marker to `term`; clear: remove it; keep: leave it as it is. */
  readonly action: { readonly kind: "write"; readonly term: number } | { readonly kind: "clear" } | { readonly kind: "keep" };
  /** Report rejoin "pending" in the member key, open no write module. */
  readonly pending: boolean;
  /** While pending: serve the data roots read-only to this leader for its term (`r<term>-<root>`); null: serve nothing. */
  readonly serve: { readonly term: number; readonly address: string } | null;
  readonly reason: string;
};

export function planRejoinMarker(o: MarkerObservation): MarkerPlan {
  const m = o.marker;
  if (o.primaryTerm !== null) {
    const t = o.primaryTerm;
    if (m !== null && m.term === t) return { action: { kind: "keep" }, pending: false, serve: null, reason: `primary in term ${t}: marked as taking uploads in this term` };
    return {
      action: { kind: "write", term: t },
      pending: false,
      serve: null,
      reason: `primary in term ${t}: marking that this node takes uploads in term ${t} (it must hand its files to any later primary before it receives again)`,
    };
  }
  if (m === null) return { action: { kind: "keep" }, pending: false, serve: null, reason: "not a former primary: nothing to hand over" };
  const r = o.record;
  if (r !== null && r.node === o.node && r.done && r.term > m.term) {
    return {
      action: { kind: "clear" },
      pending: false,
      serve: null,
      reason: `rejoined: ${r.by} merged this node's files in term ${r.term} (${r.moved} moved, ${r.conflicts} conflict(s)); it may receive again`,
    };
  }
  const l = o.leader;
  if (l === null || l.node === o.node) {
    return { action: { kind: "keep" }, pending: false, serve: null, reason: `former primary of term ${m.term}: no other leader yet, its files stay here until one merges them` };
  }
  if (l.term <= m.term) {
    return {
      action: { kind: "keep" },
      pending: false,
      serve: null,
      reason: `former primary of term ${m.term}: ${l.node}'s term ${l.term} is not later, its files stay here until a later primary merges them`,
    };
  }
  const serve = l.address === null ? null : { term: l.term, address: l.address };
  const where = serve === null ? `, which publishes no address yet` : "";
  return {
    action: { kind: "keep" },
    pending: true,
    serve,
    reason: `rejoin pending: this node took uploads as primary in term ${m.term} and ${l.node} leads term ${l.term}${where}; its files go to ${l.node} before it receives any`,
  };
}

/** The marker file under state_dir. */
export const MARKER_FILE = "data-rejoin-marker.json";

/** Reads and writes the marker durably (fsync, rename, directory fsync: DurableFs). */
export class RejoinMarkerStore {
  private readonly file: string;

  constructor(
    stateDir: string,
    private readonly fs: DurableFs,
  ) {
    this.file = join(stateDir, MARKER_FILE);
  }

  /** The marker; null when absent or cleared. A file that does not decode counts as set at term 0 (never lose track of a possible former primary). */
  async read(): Promise<RejoinMarker | null> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    try {
      const v = JSON.parse(text) as { term?: unknown };
      if (v.term === null) return null;
      if (typeof v.term === "number" && Number.isSafeInteger(v.term) && v.term >= 0) return { term: v.term };
    } catch {
      /* below */
    }
    return { term: 0 };
  }

  async apply(plan: MarkerPlan): Promise<void> {
    if (plan.action.kind === "write") await this.fs.writeFileAtomic(this.file, `${JSON.stringify({ term: plan.action.term })}\n`, 0o600);
    else if (plan.action.kind === "clear") await this.fs.writeFileAtomic(this.file, `${JSON.stringify({ term: null })}\n`, 0o600);
  }
}

/**
 * The marker's executor, called by the data engine at every HA cycle (and at
 * once when the node becomes primary, before it serves uploads). It reads
 * data/rejoin/<node> only while the marker is set and another node leads a
 * later term, and writes the marker only when the plan says so. A failed
 * write or read is logged and retried at the next call; the last plan stands
 * meanwhile, so a node that cannot read etcd stays pending (it keeps its
 * files) rather than receiving.
 */
export class FormerPrimarySide {
  private marker: RejoinMarker | null | undefined;
  private last: MarkerPlan = { action: { kind: "keep" }, pending: false, serve: null, reason: "former primary marker not read yet" };

  constructor(
    private readonly store: RejoinMarkerStore,
    private readonly records: DataRejoinRecords,
    private readonly log: Logger,
  ) {}

  /** The latest plan (for the member summary and the daemon config renderer). */
  get plan(): MarkerPlan {
    return this.last;
  }

  /** The marker as this side last read or wrote it (undefined: not read yet; null: none). */
  get cachedMarker(): RejoinMarker | null | undefined {
    return this.marker;
  }

  async update(o: Omit<MarkerObservation, "marker" | "record">): Promise<MarkerPlan> {
    try {
      if (this.marker === undefined) this.marker = await this.store.read();
      const m = this.marker;
      const mayClear = m !== null && o.primaryTerm === null && o.leader !== null && o.leader.node !== o.node && o.leader.term > m.term;
      const record = mayClear ? await this.records.dataRejoin(o.node) : null;
      const plan = planRejoinMarker({ ...o, marker: m, record });
      if (plan.action.kind !== "keep") {
        await this.store.apply(plan);
        this.marker = plan.action.kind === "write" ? { term: plan.action.term } : null;
        this.log.info({ marker: this.marker }, plan.reason);
      } else if (plan.pending !== this.last.pending || plan.reason !== this.last.reason) {
        this.log.info({ marker: m }, plan.reason);
      }
      this.last = plan;
    } catch (e) {
      this.log.warn({ err: describeError(e) }, "former primary marker: read or write failed; retrying next cycle");
      // Never fail open: without the record (etcd unreachable) a former primary stays pending; a marker
      // that could not be read counts as a former primary of term 0.
      this.last = planRejoinMarker({ ...o, marker: this.marker ?? { term: 0 }, record: null });
    }
    return this.last;
  }
}
