// Bounded concurrency for independent file-system jobs (hashing a tree,
// renaming thousands of staged files into place): up to `max` at once, the
// first failure kept, no new job started after it, and drain() waits for the
// ones still running so none outlives its caller.

export class InFlight {
  private readonly running = new Set<Promise<void>>();
  private failed = false;
  private failure: unknown;

  constructor(private readonly max: number) {}

  /**
   * Start `job` (then `done` with its result); waits while `max` jobs run.
   * Throws the first failure of any job (before starting this one, if it
   * came first): the caller stops adding, then calls drain().
   */
  async add<T>(job: () => Promise<T>, done: (v: T) => void = () => {}): Promise<void> {
    this.throwFirst();
    const p: Promise<void> = job().then(done, (e: unknown) => {
      if (!this.failed) [this.failed, this.failure] = [true, e];
    });
    this.running.add(p);
    void p.then(() => this.running.delete(p));
    while (this.running.size >= this.max) await Promise.race(this.running);
    this.throwFirst();
  }

  /** Wait for every running job (never rejects). */
  async drain(): Promise<void> {
    await Promise.all(this.running);
  }

  /** Throws the first failure, if any. */
  throwFirst(): void {
    if (this.failed) throw this.failure;
  }

  /** Run `jobs` (as add() would), wait for all, and throw the first failure. */
  static async each<E>(items: Iterable<E>, max: number, job: (item: E) => Promise<void>): Promise<void> {
    const f = new InFlight(max);
    try {
      for (const item of items) await f.add(() => job(item));
    } finally {
      await f.drain();
    }
    f.throwFirst();
  }

  /** `fn` over `items`, up to `max` at once; the results in the items' order. Throws the first failure. */
  static async map<E, R>(items: readonly E[], max: number, fn: (item: E) => Promise<R>): Promise<R[]> {
    const out = new Array<R>(items.length);
    await InFlight.each(items.keys(), max, async (i) => {
      out[i] = await fn(items[i]!);
    });
    return out;
  }
}
