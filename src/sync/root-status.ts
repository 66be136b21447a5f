// Per-root sync outcomes (roots are independent: one failing root does not
// stop the others). The engine records each root's last success, its
// consecutive failures and last error, and the last change hook it ran;
// status(), the member key and the metrics read them from here.

export interface RootError {
  readonly code: string;
  readonly message: string;
  readonly at: string;
}

export interface RootHookRun {
  readonly hook: "post_sync" | "post_publish";
  readonly ok: boolean;
  readonly ms: number;
  readonly at: string;
  readonly problem: string | null;
}

export interface RootOutcome {
  /** Consecutive failed attempts to sync this root (0 after a success). */
  readonly failures: number;
  readonly lastError: RootError | null;
  readonly lastSuccessAt: string | null;
  readonly lastHook: RootHookRun | null;
}

const FRESH: RootOutcome = { failures: 0, lastError: null, lastSuccessAt: null, lastHook: null };

export class RootTracker {
  private readonly byName = new Map<string, RootOutcome>();

  constructor(names: readonly string[]) {
    for (const n of names) this.byName.set(n, FRESH);
  }

  get(name: string): RootOutcome {
    return this.byName.get(name) ?? FRESH;
  }

  ok(name: string, at: string): void {
    this.byName.set(name, { ...this.get(name), failures: 0, lastError: null, lastSuccessAt: at });
  }

  /** A root that is in sync without an attempt (nothing to pull): clears its error, keeps its last success. */
  clear(name: string): void {
    const o = this.get(name);
    if (o.failures !== 0 || o.lastError) this.byName.set(name, { ...o, failures: 0, lastError: null });
  }

  fail(name: string, error: RootError): void {
    const o = this.get(name);
    this.byName.set(name, { ...o, failures: o.failures + 1, lastError: error });
  }

  hook(name: string, run: RootHookRun): void {
    this.byName.set(name, { ...this.get(name), lastHook: run });
  }

  /** Names of the roots whose last attempt failed, in the order given at construction. */
  failing(): string[] {
    return [...this.byName].filter(([, o]) => o.failures > 0).map(([n]) => n);
  }
}
