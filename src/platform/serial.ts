// One run at a time; triggers that arrive during a run fold into one more run.
// The HA loop's cycles and the sync engine's passes both need exactly this.

/**
 * Runs `body` serially. `trigger(why)` starts a run when idle; while a run is
 * in progress it only marks that one more run is wanted (however many
 * triggers arrive, they fold into a single extra run, told "coalesced").
 * A body that throws is reported to `onError` and does not stop the runner.
 * After `stop()`, triggers are ignored and `idle()` resolves when the run in
 * progress (if any) has finished; no further run starts.
 */
export class SerialRunner {
  private running = false;
  private pending = false;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly body: (why: string) => Promise<void>,
    private readonly onError: (e: unknown) => void,
  ) {}

  trigger(why: string): void {
    if (this.stopped) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = true;
    this.done = this.runAll(why);
  }

  /** Whether a run is in progress. */
  busy(): boolean {
    return this.running;
  }

  /** Resolves when no run is in progress (never rejects). */
  idle(): Promise<void> {
    return this.done;
  }

  /** No new runs; resolves when the one in progress has finished. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }

  private async runAll(why: string): Promise<void> {
    try {
      do {
        this.pending = false;
        try {
          await this.body(why);
        } catch (e) {
          this.onError(e);
        }
        why = "coalesced";
      } while (this.pending && !this.stopped);
    } finally {
      this.running = false;
    }
  }
}
