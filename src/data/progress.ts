// data/progress: the primary's per-standby replication lag, written to etcd under its term
// (docs/data-replication-design.md §5). The planner is pure: it says whether the record the
// engine offers is worth a write now, later, or not at all, with a reason. The writer acts on
// it: one put at a time, a trailing write at the end of the interval, never more often than
// data.progress_interval unless a standby changes kind (in sync, behind, full, paused).
import type { DataLagRecord, DataProgress, DataProgressPublisher } from "../coordinator/port.js";
import { describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";

/** What kind of state a standby is in, as far as the write throttle cares. */
export type StandbyLagKind = "in sync" | "behind" | "full" | "paused";

export function lagKind(l: DataLagRecord): StandbyLagKind {
  if (l.paused !== null) return "paused";
  if (l.full) return "full";
  return l.files > 0 || l.bytes > 0 ? "behind" : "in sync";
}

/** The last record written, as the planner needs it. */
export interface WrittenProgress {
  readonly record: DataProgress;
  /** Monotonic ms of the write. */
  readonly atMs: number;
}

export type ProgressStep =
  { readonly kind: "write"; readonly reason: string } | { readonly kind: "wait"; readonly untilMs: number; readonly reason: string } | { readonly kind: "skip"; readonly reason: string };

/** Whether `offered` should be written now (pure). */
export function planProgressWrite(offered: DataProgress | null, last: WrittenProgress | null, nowMs: number, intervalMs: number): ProgressStep {
  if (offered === null) return { kind: "skip", reason: "not writing data/progress: this node is not the primary" };
  if (last === null) return { kind: "write", reason: `writing data/progress: the first record of term ${offered.term}` };
  if (last.record.term !== offered.term) return { kind: "write", reason: `writing data/progress: the first record of term ${offered.term} (the last was term ${last.record.term})` };
  const changed = kindChanges(last.record, offered);
  if (changed.length > 0) return { kind: "write", reason: `writing data/progress at once: ${changed.join(", ")}` };
  if (sameFigures(last.record, offered)) return { kind: "skip", reason: "not writing data/progress: nothing changed since the last write" };
  const due = last.atMs + intervalMs;
  if (nowMs >= due) return { kind: "write", reason: `writing data/progress: ${Math.round(nowMs - last.atMs)}ms since the last write (progress_interval ${intervalMs}ms)` };
  return { kind: "wait", untilMs: due, reason: `waiting ${Math.round(due - nowMs)}ms before writing data/progress (progress_interval ${intervalMs}ms)` };
}

/** "n2 went from in sync to behind", one per standby whose kind changed (or that came or went). */
function kindChanges(a: DataProgress, b: DataProgress): string[] {
  const out: string[] = [];
  for (const node of [...new Set([...Object.keys(a.standbys), ...Object.keys(b.standbys)])].sort()) {
    const was = a.standbys[node];
    const now = b.standbys[node];
    if (!was) out.push(`${node} appeared (${lagKind(now!)})`);
    else if (!now) out.push(`${node} is no longer shipped to`);
    else if (lagKind(was) !== lagKind(now)) out.push(`${node} went from ${lagKind(was)} to ${lagKind(now)}`);
  }
  return out;
}

function sameFigures(a: DataProgress, b: DataProgress): boolean {
  if (a.node !== b.node || a.head !== b.head) return false;
  return Object.entries(b.standbys).every(([node, l]) => {
    const was = a.standbys[node];
    return was !== undefined && was.acked === l.acked && was.files === l.files && was.bytes === l.bytes && was.seconds === l.seconds && was.full === l.full && was.paused === l.paused;
  });
}

/**
 * A standby's own lag for its member key (MemberDataSummary.lag): its entry in data/progress
 * when the record was written by the leader it follows now (`leaderTerm`); null otherwise (no
 * leader, an older term's record, or the node is the record's writer).
 */
export function ownLag(progress: DataProgress | null | undefined, node: string, leaderTerm: number | null): DataLagRecord | null {
  if (!progress || leaderTerm === null || progress.term !== leaderTerm || progress.node === node) return null;
  return progress.standbys[node] ?? null;
}

export interface DataProgressWriterDeps {
  readonly coordinator: DataProgressPublisher;
  readonly clock: Clock;
  readonly log: Logger;
  /** data.progress_interval in ms. */
  readonly intervalMs: number;
}

/**
 * The executor. Guarantees: `offer` never throws and never blocks; at most one put is in
 * flight; the newest offer wins (older ones are dropped); a throttled offer is written when the
 * interval ends (so the last state of a burst reaches etcd); a put refused because the term no
 * longer leads is counted in `refused` and not retried for that term; a failed put is retried
 * at the next offer or interval. After `close`, nothing more is written.
 */
export class DataProgressWriter {
  private last: WrittenProgress | null = null;
  private latest: DataProgress | null = null;
  private timer: TimerHandle | null = null;
  private inFlight: Promise<void> | null = null;
  private refusedTerm: number | null = null;
  /** Failed writes in a row (the first is warned, the rest debug). */
  private failing = 0;
  private closed = false;
  /** Puts made, puts refused (term gone), puts failed (etcd). */
  readonly counts = { written: 0, refused: 0, failed: 0 };
  /** The reason sentence of the latest plan. */
  lastStep = "nothing offered yet";

  constructor(private readonly deps: DataProgressWriterDeps) {}

  offer(progress: DataProgress | null): void {
    if (this.closed) return;
    this.latest = progress;
    this.pump();
  }

  /** The last record written (what etcd holds, as far as this writer knows). */
  written(): DataProgress | null {
    return this.last?.record ?? null;
  }

  /** Resolves when no put is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
    await this.idle();
  }

  private pump(): void {
    if (this.closed || this.inFlight) return;
    const offered = this.latest;
    if (offered !== null && offered.term === this.refusedTerm) {
      this.lastStep = `not writing data/progress: term ${offered.term} no longer leads`;
      return;
    }
    const step = planProgressWrite(offered, this.last, this.deps.clock.monotonicMs(), this.deps.intervalMs);
    this.lastStep = step.reason;
    this.timer?.cancel();
    this.timer = null;
    if (step.kind === "wait") {
      this.timer = this.deps.clock.setTimer(step.untilMs - this.deps.clock.monotonicMs(), () => {
        this.timer = null;
        this.pump();
      });
      return;
    }
    if (step.kind === "write" && offered !== null) this.inFlight = this.write(offered).finally(() => ((this.inFlight = null), this.afterWrite(offered)));
  }

  private afterWrite(written: DataProgress): void {
    // A newer offer arrived during the put: plan it now (it may wait for the interval).
    if (this.latest !== written) this.pump();
  }

  private async write(record: DataProgress): Promise<void> {
    try {
      if (await this.deps.coordinator.publishDataProgress(record.term, record)) {
        this.last = { record, atMs: this.deps.clock.monotonicMs() };
        this.counts.written++;
        if (this.failing > 0) this.deps.log.info({ failures: this.failing }, `data/progress written again after ${this.failing} failed write(s)`);
        this.failing = 0;
      } else {
        this.refusedTerm = record.term;
        this.counts.refused++;
        this.deps.log.warn({ term: record.term }, "data/progress not written: my term no longer leads");
      }
    } catch (e) {
      this.counts.failed++;
      // Once per streak: through an etcd outage (a failsafe hold) this would say so twice a second.
      this.deps.log[this.failing === 0 ? "warn" : "debug"]({ err: describeError(e), term: record.term }, "cannot write data/progress; retrying at the next change or interval");
      this.failing++;
      // Retry once the interval has passed, even if nothing new is offered.
      if (!this.closed && !this.timer) {
        this.timer = this.deps.clock.setTimer(this.deps.intervalMs, () => {
          this.timer = null;
          this.pump();
        });
      }
    }
  }
}
