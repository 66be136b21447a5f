// "Something changed, look again": the notices that parts built before the HA
// loop (sync engine, readiness and tool checks, the fence guard's watchdog
// report) send it. The composition root creates one WakeUps first, hands
// `wake` to each part as its onChange, and gives the loop the source to
// subscribe to, so nothing is built against a loop that does not exist yet.

/**
 * Where wake-up notices come from, as a subscriber sees it.
 *
 * Guarantees an implementation must give:
 * - A listener is called synchronously, once per `wake`, in the order the
 *   listeners subscribed; it is never called for a wake that happened before
 *   it subscribed (no replay: a subscriber reads current state itself).
 * - A listener that throws does not stop the others, nor the caller of
 *   `wake`; the error goes to the source's error sink.
 */
export interface WakeSource {
  onWake(listener: (why: string) => void): void;
}

export class WakeUps implements WakeSource {
  private readonly listeners: ((why: string) => void)[] = [];

  /** onListenerError: where a throwing listener's error goes (the agent logs it). */
  constructor(private readonly onListenerError: (e: unknown) => void = () => undefined) {}

  /** Tell every subscriber that `why` changed. Never throws. */
  wake(why: string): void {
    for (const listener of this.listeners) {
      try {
        listener(why);
      } catch (e) {
        this.onListenerError(e);
      }
    }
  }

  /** A callback for a part that takes `onChange: () => void`, waking with `why`. */
  notifier(why: string): () => void {
    return () => this.wake(why);
  }

  onWake(listener: (why: string) => void): void {
    this.listeners.push(listener);
  }
}
