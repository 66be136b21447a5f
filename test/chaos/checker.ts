/**
 * The independent checker: pure functions over a Recording (types.ts). It
 * reads what the observers saw on the wire (ARP answers for the VIP, SYN-ACKs
 * from the nodes' transfer ports), what etcd went through (a watch on the
 * cluster prefix, and the history written by the agents), and what the
 * workload was told (acknowledged uploads, config edits), and reports:
 *
 *  - vip_two_holders:            an ARP sampling interval in which two hosts answered for the VIP
 *  - two_daemons_cold:           a sampling round in which two nodes' transfer daemons accepted connections (cold mode only)
 *  - stale_promotion_unrecorded: a node became primary while it lacked the newest published sync generation,
 *                                and no `stale_promotion` history event says so
 *  - config_edit_lost:           an acknowledged config edit that is neither on every node at the end,
 *                                nor in a rescue folder, nor covered by a recorded stale promotion
 *  - upload_lost:                an acknowledged upload missing (or different) where uploads live at the end: the
 *                                shared storage, or with data roots the final primary's data root (after rejoin)
 *  - upload_unreplicated:        with data roots, an acknowledged upload missing on some node at the end (data-checks.ts)
 *
 * plus, per fault, how long nobody answered for the VIP and how long uploads failed.
 */
import {
  VIOLATION_KINDS,
  type ArpRecord,
  type DaemonRecord,
  type EditRecord,
  type EtcdEvent,
  type FaultRecord,
  type HistoryRecord,
  type Recording,
  type UploadRecord,
  type Violation,
  type ViolationKind,
} from "./types.js";
import { checkReplicatedUploads, dataRpoTable, formatDataRpo, type DataRpoRow } from "./data-checks.js";

// ------------------------------------------------------------------ helpers

/** p-th percentile (0..100), nearest rank; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** The fault whose measurement window [injectAt, settledAt] contains t, if any. */
export function faultAt(faults: readonly FaultRecord[], t: number): FaultRecord | undefined {
  return faults.find((f) => !f.skipped && t >= f.injectAt && t <= f.settledAt);
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

// ------------------------------------------------------------ sampled checks

/** Runs of consecutive samples matching `bad`, as [first, last] index pairs. */
function runs<T>(samples: readonly T[], bad: (s: T) => boolean): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = 0; i < samples.length; i++) {
    if (bad(samples[i]!)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.push([start, i - 1]);
      start = -1;
    }
  }
  if (start >= 0) out.push([start, samples.length - 1]);
  return out;
}

/** Every run of ARP intervals in which two or more hosts answered for the VIP: one violation per run. */
export function checkVipHolders(arp: readonly ArpRecord[], intervalMs: number, faults: readonly FaultRecord[] = []): Violation[] {
  return runs(arp, (s) => s.holders.length >= 2).map(([a, b]) => {
    const first = arp[a]!;
    const last = arp[b]!;
    const who = [...new Set(arp.slice(a, b + 1).flatMap((s) => s.holders))].sort();
    return {
      kind: "vip_two_holders" as const,
      at: first.t,
      ms: Math.round(last.t - first.t + intervalMs),
      fault: faultAt(faults, first.t)?.kind ?? "none",
      detail: `${who.join(" and ")} answered ARP for the VIP in ${b - a + 1} consecutive sample(s)`,
    };
  });
}

/** Every run of sampling rounds in which two or more nodes' daemons listened (cold mode only). */
export function checkColdDaemons(daemons: readonly DaemonRecord[], mode: "cold" | "warm", faults: readonly FaultRecord[] = []): Violation[] {
  if (mode !== "cold") return [];
  return runs(daemons, (s) => s.open.length >= 2).map(([a, b]) => {
    const first = daemons[a]!;
    const last = daemons[b]!;
    const who = [...new Set(daemons.slice(a, b + 1).flatMap((s) => s.open))].sort();
    return {
      kind: "two_daemons_cold" as const,
      at: first.t,
      ms: Math.round(last.t - first.t),
      fault: faultAt(faults, first.t)?.kind ?? "none",
      detail: `${who.join(" and ")} accepted connections on the transfer port in ${b - a + 1} consecutive round(s)`,
    };
  });
}

// ------------------------------------------------------------ etcd timeline

/** Watch events in revision order, each (key, modRevision) once. */
export function orderedEvents(events: readonly EtcdEvent[]): EtcdEvent[] {
  const seen = new Set<string>();
  const out: EtcdEvent[] = [];
  for (const e of [...events].sort((x, y) => x.modRevision - y.modRevision || x.t - y.t)) {
    const id = `${e.key}@${e.modRevision}@${e.type}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(e);
  }
  return out;
}

function parseJson<T>(s: string | undefined): T | undefined {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined;
  }
}

export interface LeaderSpan {
  node: string;
  term: number;
  from: number;
  /** Infinity while it still holds at the end of the record. */
  to: number;
}

/** Who the leader key named, over time (receive times of the watch events). */
export function leaderTimeline(events: readonly EtcdEvent[]): LeaderSpan[] {
  const out: LeaderSpan[] = [];
  let cur: LeaderSpan | undefined;
  for (const e of orderedEvents(events)) {
    if (e.key !== "leader") continue;
    if (e.type === "delete") {
      if (cur) cur.to = e.t;
      cur = undefined;
      continue;
    }
    const v = parseJson<{ node?: string }>(e.value);
    if (!v?.node) continue;
    // The term is the key's mod_revision: a campaign creates the key, a handover puts it (a new term).
    if (cur && cur.term === e.modRevision && cur.node === v.node) continue;
    if (cur) cur.to = e.t;
    cur = { node: v.node, term: e.modRevision, from: e.t, to: Number.POSITIVE_INFINITY };
    out.push(cur);
  }
  return out;
}

export function leaderAt(spans: readonly LeaderSpan[], t: number): LeaderSpan | undefined {
  return spans.find((s) => t >= s.from && t < s.to);
}

export interface Promotion {
  node: string;
  term: number;
  t: number;
  /** Latest published sync generation when the leader key was created. */
  published?: number;
  /** The node's member-record generation just before, and (when it wrote one before publishing anything) just after. */
  before?: number;
  after?: number;
  /** true: it lacked the published generation; false: it had it; undefined: cannot tell (no sync, no member record). */
  stale?: boolean;
}

/**
 * Every new term of the leader key (a campaign's create, a handover's put),
 * with what the promoted node held. A node counts as stale when its member
 * record before the promotion shows an older generation than the published
 * one, and its first member record after the promotion (if written before it
 * published anything itself) agrees: the second look rules out a member key
 * that merely lagged a pull finished a moment before the campaign.
 */
export function promotions(events: readonly EtcdEvent[]): Promotion[] {
  const ev = orderedEvents(events);
  const out: Promotion[] = [];
  let published: number | undefined;
  const memberGen = new Map<string, number>();
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i]!;
    if (e.key === "sync/generation" && e.type === "put") {
      const g = parseJson<{ generation?: number }>(e.value)?.generation;
      if (typeof g === "number") published = g;
    } else if (e.key.startsWith("members/")) {
      const node = e.key.slice("members/".length);
      if (e.type === "delete") memberGen.delete(node);
      else {
        const g = parseJson<{ generation?: number }>(e.value)?.generation;
        if (typeof g === "number") memberGen.set(node, g);
      }
    } else if (e.key === "leader" && e.type === "put") {
      // Every put of the leader key starts a term (a campaign's create, a handover's put; keepalives write nothing).
      const node = parseJson<{ node?: string }>(e.value)?.node;
      if (!node) continue;
      const p: Promotion = { node, term: e.modRevision, t: e.t };
      if (published !== undefined) p.published = published;
      const before = memberGen.get(node);
      if (before !== undefined) p.before = before;
      for (let j = i + 1; j < ev.length; j++) {
        const f = ev[j]!;
        if (f.key === "sync/generation" && f.type === "put") {
          const src = parseJson<{ source?: string }>(f.value)?.source;
          if (src === node) break;
        }
        if (f.key === `members/${node}` && f.type === "put") {
          const g = parseJson<{ generation?: number }>(f.value)?.generation;
          if (typeof g === "number") p.after = g;
          break;
        }
      }
      if (p.published !== undefined && p.published > 0 && p.before !== undefined) {
        p.stale = p.before < p.published && (p.after === undefined || p.after < p.published);
      }
      out.push(p);
    }
  }
  return out;
}

/** Stale promotions with no `stale_promotion` history event for their term. */
export function checkStalePromotions(proms: readonly Promotion[], history: readonly HistoryRecord[], faults: readonly FaultRecord[] = []): Violation[] {
  const recorded = new Set(history.filter((h) => h.kind === "stale_promotion" && h.term !== null).map((h) => h.term));
  return proms
    .filter((p) => p.stale === true && !recorded.has(p.term))
    .map((p) => ({
      kind: "stale_promotion_unrecorded" as const,
      at: p.t,
      fault: faultAt(faults, p.t)?.kind ?? "none",
      detail: `${p.node} became primary (term ${p.term}) holding generation ${p.before}${p.after !== undefined ? `/${p.after}` : ""} while ${p.published} was published, and no stale_promotion event was recorded`,
    }));
}

// ------------------------------------------------------------- config edits

/**
 * replicated: on every node at the end; rescued: in a rescue folder (reported, not silent);
 * lost_reported: the first promotion after the edit was a stale promotion recorded in the history;
 * missing: none of these (a violation when the edit was acknowledged); not_written: the write failed.
 */
export type EditOutcome = "replicated" | "rescued" | "lost_reported" | "missing" | "not_written";

export interface EditVerdict {
  edit: EditRecord;
  /** Made on the primary and it was still the primary (same term) ackMs later. */
  acked: boolean;
  outcome: EditOutcome;
  /** Nodes whose final root lacks it (for missing/partial). */
  lacking: string[];
}

export function editVerdicts(rec: Pick<Recording, "edits" | "etcd" | "finalRoots" | "rescued" | "history" | "nodes">, ackMs = 1000): EditVerdict[] {
  const spans = leaderTimeline(rec.etcd);
  const proms = promotions(rec.etcd);
  const recordedStale = new Set(rec.history.filter((h) => h.kind === "stale_promotion").map((h) => h.term));
  return rec.edits.map((edit) => {
    const a = leaderAt(spans, edit.t);
    const b = leaderAt(spans, edit.t + ackMs);
    const acked = edit.written && a?.node === edit.node && b?.node === edit.node && a.term === b.term;
    if (!edit.written) return { edit, acked, outcome: "not_written" as const, lacking: [] };
    const lacking = rec.nodes.filter((n) => rec.finalRoots[n]?.[edit.file] !== edit.sha256);
    let outcome: EditOutcome;
    if (lacking.length === 0) outcome = "replicated";
    else if (rec.rescued.some((r) => r.file === edit.file && r.sha256 === edit.sha256)) outcome = "rescued";
    else if (recordedStale.has(proms.find((p) => p.t > edit.t)?.term ?? Number.NaN)) outcome = "lost_reported";
    else outcome = "missing";
    return { edit, acked, outcome, lacking };
  });
}

export function checkEdits(verdicts: readonly EditVerdict[], faults: readonly FaultRecord[] = []): Violation[] {
  return verdicts
    .filter((v) => v.acked && v.outcome === "missing")
    .map((v) => ({
      kind: "config_edit_lost" as const,
      at: v.edit.t,
      fault: faultAt(faults, v.edit.t)?.kind ?? "none",
      detail: `edit ${v.edit.file} made on ${v.edit.node} (named by the leader key then and 1 s later) is missing on ${v.lacking.join(", ")} and in no rescue folder`,
    }));
}

// ------------------------------------------------------------------ uploads

export function checkUploads(uploads: readonly UploadRecord[], stored: Readonly<Record<string, string>>, faults: readonly FaultRecord[] = [], where = "in the shared storage"): Violation[] {
  return uploads
    .filter((u) => u.ok && stored[u.name] !== u.sha256)
    .map((u) => ({
      kind: "upload_lost" as const,
      at: u.end,
      fault: faultAt(faults, u.end)?.kind ?? "none",
      detail: `${u.name} (${u.bytes} B) was acknowledged but is ${stored[u.name] === undefined ? "missing" : "different"} ${where}`,
    }));
}

// ----------------------------------------------------------- unavailability

/** Intervals during which uploads failed: from a failed attempt's start to the next successful attempt's start. */
export function uploadOutages(uploads: readonly UploadRecord[]): Array<{ from: number; to: number }> {
  const out: Array<{ from: number; to: number }> = [];
  let open: number | undefined;
  const sorted = [...uploads].sort((a, b) => a.start - b.start);
  for (const u of sorted) {
    if (!u.ok) open ??= u.start;
    else if (open !== undefined) {
      out.push({ from: open, to: u.start });
      open = undefined;
    }
  }
  if (open !== undefined) out.push({ from: open, to: sorted[sorted.length - 1]!.end });
  return out;
}

/** Milliseconds within [from, to] during which no host answered ARP for the VIP (a sample stands for at most 4 intervals). */
export function noHolderMs(arp: readonly ArpRecord[], intervalMs: number, from: number, to: number): number {
  let ms = 0;
  for (let i = 0; i < arp.length; i++) {
    const s = arp[i]!;
    if (s.t > to) break;
    if (s.holders.length > 0) continue;
    const next = arp[i + 1]?.t ?? s.t + intervalMs;
    ms += overlap(s.t, Math.min(next, s.t + 4 * intervalMs), from, to);
  }
  return Math.round(ms);
}

export interface FaultMeasure {
  id: number;
  kind: string;
  target?: string;
  settled: boolean;
  windowMs: number;
  noHolderMs: number;
  outageMs: number;
  violations: number;
}

export function measureFaults(rec: Pick<Recording, "faults" | "arp" | "arpIntervalMs" | "uploads">, violations: readonly Violation[] = []): FaultMeasure[] {
  const outages = uploadOutages(rec.uploads);
  return rec.faults
    .filter((f) => !f.skipped)
    .map((f) => {
      const m: FaultMeasure = {
        id: f.id,
        kind: f.kind,
        settled: f.settled,
        windowMs: Math.round(f.settledAt - f.injectAt),
        noHolderMs: noHolderMs(rec.arp, rec.arpIntervalMs, f.injectAt, f.settledAt),
        outageMs: Math.round(outages.reduce((sum, o) => sum + overlap(o.from, o.to, f.injectAt, f.settledAt), 0)),
        violations: violations.filter((v) => v.at !== undefined && v.at >= f.injectAt && v.at <= f.settledAt).length,
      };
      if (f.target !== undefined) m.target = f.target;
      return m;
    });
}

export interface KindRow {
  kind: string;
  injected: number;
  skipped: number;
  unsettled: number;
  violations: number;
  noHolderMedianMs: number;
  noHolderP95Ms: number;
  outageMedianMs: number;
  outageP95Ms: number;
}

export function kindTable(faults: readonly FaultRecord[], measures: readonly FaultMeasure[]): KindRow[] {
  const kinds = [...new Set(faults.map((f) => f.kind))];
  return kinds.map((kind) => {
    const ms = measures.filter((m) => m.kind === kind);
    return {
      kind,
      injected: ms.length,
      skipped: faults.filter((f) => f.kind === kind && f.skipped).length,
      unsettled: ms.filter((m) => !m.settled).length,
      violations: ms.reduce((s, m) => s + m.violations, 0),
      noHolderMedianMs: median(ms.map((m) => m.noHolderMs)),
      noHolderP95Ms: percentile(
        ms.map((m) => m.noHolderMs),
        95,
      ),
      outageMedianMs: median(ms.map((m) => m.outageMs)),
      outageP95Ms: percentile(
        ms.map((m) => m.outageMs),
        95,
      ),
    };
  });
}

// ------------------------------------------------------------------- report

export interface ChaosReport {
  controller: Recording["controller"];
  mode: Recording["mode"];
  durationMs: number;
  samples: { arp: number; daemons: number; etcdEvents: number };
  violations: Violation[];
  counts: Record<ViolationKind, number>;
  /** Per violation kind, which fault kinds they fell in. */
  byFault: Record<string, Partial<Record<ViolationKind, number>>>;
  faults: FaultMeasure[];
  table: KindRow[];
  uploads: { attempted: number; acknowledged: number; failed: number; lost: number };
  edits: Record<EditOutcome, number> & { total: number; acked: number };
  promotions: { total: number; stale: number; staleRecorded: number; unknown: number };
  operator: { issued: number; succeeded: number };
  /** With data roots: what each failover lost before rejoin, per fault kind. */
  dataRpo?: DataRpoRow[];
}

export function check(rec: Recording): ChaosReport {
  const violations: Violation[] = [...checkVipHolders(rec.arp, rec.arpIntervalMs, rec.faults), ...checkColdDaemons(rec.daemons, rec.mode, rec.faults)];
  const proms = promotions(rec.etcd);
  violations.push(...checkStalePromotions(proms, rec.history, rec.faults));
  const verdicts = editVerdicts(rec);
  violations.push(...checkEdits(verdicts, rec.faults));
  const replicated = rec.uploadStorage === "replicated";
  violations.push(...checkUploads(rec.uploads, rec.storedUploads, rec.faults, replicated ? "on the final primary's data root" : "in the shared storage"));
  if (replicated) violations.push(...checkReplicatedUploads(rec.uploads, rec.finalData ?? {}, (t) => faultAt(rec.faults, t)));
  violations.sort((a, b) => (a.at ?? 0) - (b.at ?? 0));

  const counts = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  const byFault: Record<string, Partial<Record<ViolationKind, number>>> = {};
  for (const v of violations) {
    counts[v.kind]++;
    const f = (byFault[v.fault ?? "none"] ??= {});
    f[v.kind] = (f[v.kind] ?? 0) + 1;
  }
  const faults = measureFaults(rec, violations);
  const edits = { total: verdicts.length, acked: verdicts.filter((v) => v.acked).length, replicated: 0, rescued: 0, lost_reported: 0, missing: 0, not_written: 0 };
  for (const v of verdicts) edits[v.outcome]++;
  const recordedStale = new Set(rec.history.filter((h) => h.kind === "stale_promotion").map((h) => h.term));
  return {
    controller: rec.controller,
    mode: rec.mode,
    durationMs: Math.round(rec.endedAt - rec.startedAt),
    samples: { arp: rec.arp.length, daemons: rec.daemons.length, etcdEvents: rec.etcd.length },
    violations,
    counts,
    byFault,
    faults,
    table: kindTable(rec.faults, faults),
    uploads: {
      attempted: rec.uploads.length,
      acknowledged: rec.uploads.filter((u) => u.ok).length,
      failed: rec.uploads.filter((u) => !u.ok).length,
      lost: counts.upload_lost,
    },
    edits,
    promotions: {
      total: proms.length,
      stale: proms.filter((p) => p.stale === true).length,
      staleRecorded: proms.filter((p) => p.stale === true && recordedStale.has(p.term)).length,
      unknown: proms.filter((p) => p.stale === undefined).length,
    },
    operator: { issued: rec.operator.length, succeeded: rec.operator.filter((o) => o.code === 0).length },
    ...(replicated ? { dataRpo: dataRpoTable(rec.dataPromotions ?? [], (t) => faultAt(rec.faults, t)) } : {}),
  };
}

// --------------------------------------------------------------- formatting

const fmtMs = (ms: number) => (Number.isNaN(ms) ? "-" : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** The report as Markdown-ish text tables. */
export function formatReport(r: ChaosReport): string {
  const out: string[] = [];
  out.push(
    `controller: ${r.controller} (${r.mode} daemon), ${(r.durationMs / 1000).toFixed(0)} s, ${r.samples.arp} ARP samples, ${r.samples.daemons} daemon samples, ${r.samples.etcdEvents} etcd events`,
  );
  out.push("");
  out.push("Faults injected by kind, with unavailability (no VIP holder on the wire; SFTP uploads failing) per fault window:");
  out.push(
    table(
      ["fault", "injected", "skipped", "unsettled", "violations", "no holder median", "no holder p95", "upload outage median", "upload outage p95"],
      r.table.map((k) => [
        k.kind,
        String(k.injected),
        String(k.skipped),
        String(k.unsettled),
        String(k.violations),
        fmtMs(k.noHolderMedianMs),
        fmtMs(k.noHolderP95Ms),
        fmtMs(k.outageMedianMs),
        fmtMs(k.outageP95Ms),
      ]),
    ),
  );
  out.push("");
  out.push("Violations by kind (target: 0):");
  out.push(
    table(
      ["violation", "count", "in fault windows"],
      Object.entries(r.counts).map(([k, n]) => [
        k,
        String(n),
        Object.entries(r.byFault)
          .filter(([, c]) => (c as Record<string, number>)[k])
          .map(([f, c]) => `${f}: ${(c as Record<string, number>)[k]}`)
          .join(", ") || "-",
      ]),
    ),
  );
  out.push("");
  out.push(`uploads: ${r.uploads.attempted} attempted, ${r.uploads.acknowledged} acknowledged, ${r.uploads.failed} failed, ${r.uploads.lost} acknowledged but lost`);
  out.push(
    `config edits: ${r.edits.total} made (${r.edits.acked} acknowledged): ${r.edits.replicated} on every node, ${r.edits.rescued} rescued, ${r.edits.lost_reported} lost with a recorded stale promotion, ${r.edits.missing} missing, ${r.edits.not_written} not written`,
  );
  out.push(
    `promotions: ${r.promotions.total}, stale ${r.promotions.stale} (recorded ${r.promotions.staleRecorded}), generation unknown ${r.promotions.unknown}; operator switchovers: ${r.operator.issued} issued, ${r.operator.succeeded} done`,
  );
  if (r.dataRpo) out.push("", ...formatDataRpo(r.dataRpo));
  if (r.violations.length > 0) {
    out.push("");
    out.push("First violations:");
    for (const v of r.violations.slice(0, 20))
      out.push(`  ${v.kind} at ${v.at !== undefined ? new Date(v.at).toISOString() : "?"}${v.ms !== undefined ? ` for ${v.ms} ms` : ""} [${v.fault}]: ${v.detail}`);
  }
  return out.join("\n");
}
