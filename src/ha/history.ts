import { describeError } from "../errors/catalogue.js";
import type { Coordinator, HistoryEvent } from "../coordinator/port.js";
import type { Logger } from "../platform/logger.js";

const MAX_PENDING = 100;

/**
 * Writes cluster history events. Events that cannot be written now (a fenced
 * node is usually cut off from etcd) wait in a bounded queue and are flushed
 * once etcd answers again; a guarded event whose term has passed is dropped.
 */
export class HistoryRecorder {
  private pending: { event: HistoryEvent; term: number | null }[] = [];

  constructor(
    private readonly coordinator: Coordinator,
    private readonly log: Logger,
  ) {}

  record(event: HistoryEvent, term: number | null): void {
    this.log.info({ history: event }, `history: ${event.kind}${event.to ? ` to ${event.to}` : ""}: ${event.reason}`);
    this.pending.push({ event, term });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
  }

  /** Write what is queued; call when etcd is known to answer. */
  async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      try {
        await this.coordinator.appendHistory(next.event, next.term);
      } catch (e) {
        this.log.debug({ err: describeError(e) }, "history event not written yet");
        return;
      }
      this.pending.shift();
    }
  }
}
