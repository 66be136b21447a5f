import { describeError } from "../errors/catalogue.js";
import type { Coordinator, HistoryEvent } from "../coordinator/port.js";
import type { Logger } from "../platform/logger.js";

const MAX_PENDING = 100;

/**
 * Facts about the data a promotion may have lost: written even when the term they happened in ends
 * before etcd answers again (the event names its term). The chaos runs lost a stale_promotion so.
 */
const KEPT_AFTER_THE_TERM: ReadonlySet<HistoryEvent["kind"]> = new Set(["stale_promotion", "data_lag_promotion"]);

/**
 * Writes cluster history events. Events that cannot be written now (a fenced
 * node is usually cut off from etcd) wait in a bounded queue and are flushed
 * once etcd answers again; a guarded event whose term has passed is dropped,
 * except the data-loss facts above, which are then written unguarded.
 */
export class HistoryRecorder {
  private pending: { event: HistoryEvent; term: number | null }[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly coordinator: Coordinator,
    private readonly log: Logger,
  ) {}

  record(event: HistoryEvent, term: number | null): void {
    this.log.info({ history: event }, `history: ${event.kind}${event.to ? ` to ${event.to}` : ""}: ${event.reason}`);
    this.pending.push({ event, term });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
  }

  /** Write what is queued; call when etcd is known to answer. Flushes run one after another (never the same event twice). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.drain());
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      try {
        const written = await this.coordinator.appendHistory(next.event, next.term);
        if (!written && KEPT_AFTER_THE_TERM.has(next.event.kind)) {
          this.log.info({ kind: next.event.kind, term: next.term }, "history: term ended before the event was written; writing it unguarded (it names its term)");
          await this.coordinator.appendHistory(next.event, null);
        } else if (!written) {
          this.log.debug({ kind: next.event.kind, term: next.term }, "history event dropped: its term ended before etcd answered");
        }
      } catch (e) {
        this.log.debug({ err: describeError(e) }, "history event not written yet");
        return;
      }
      this.pending.shift();
    }
  }
}
