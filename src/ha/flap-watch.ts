import { describeError } from "../errors/catalogue.js";
import type { Coordinator } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { flapView, type FlapSettings, type FlapView } from "./flap.js";

/** History events read per refresh: far more than max_moves handovers within any sensible window. */
const HISTORY_READ = 200;
/** How stale the view may get on a node that is not about to hand over (metrics, status). */
const REFRESH_MS = 10_000;

/**
 * The loop's copy of the flap view (flap.ts), read from history in etcd: on
 * every cycle in which this node is a primary failing its health (it may hand
 * over: the count must be fresh), and every REFRESH_MS otherwise, for the
 * metrics. A failed read keeps the previous view.
 */
export class FlapWatch {
  private view: FlapView | undefined;
  private readAtMs = -Infinity;

  constructor(
    private readonly coordinator: Pick<Coordinator, "history">,
    private readonly clock: Clock,
    private readonly settings: FlapSettings,
    private readonly log: Logger,
  ) {}

  async refresh(force: boolean): Promise<void> {
    if (this.settings.maxMoves === 0) return;
    const now = this.clock.monotonicMs();
    if (!force && now - this.readAtMs < REFRESH_MS) return;
    try {
      const events = await this.coordinator.history(HISTORY_READ);
      this.view = flapView(events, this.clock.wallMs(), this.settings);
      this.readAtMs = now;
    } catch (e) {
      this.log.debug({ err: describeError(e) }, "cannot read history for flap damping; keeping the last view");
    }
  }

  current(): FlapView | undefined {
    return this.view;
  }

  /** Recorded (the event is queued for etcd): damped from now on, without waiting for the next read. */
  damped(at: string, reason: string): void {
    if (this.view) this.view = { ...this.view, damped: { at, reason } };
  }
}
