// The primary side's executor: watches the roots (watch.ts), rebuilds the
// manifests the planner names, publishes the record planRecord() chooses,
// guarded by this node's term, and queues post_publish hooks for its own edits.
import { describeError } from "../errors/catalogue.js";
import type { SyncGeneration } from "../coordinator/port.js";
import { HookQueue, localChanges } from "./change-hooks.js";
import type { EngineRoot, SyncEngineDeps } from "./engine-types.js";
import { combinedDigest } from "./generation.js";
import type { SyncLedger } from "./ledger.js";
import { buildManifest, type Manifest } from "./manifest.js";
import { planRecord, type SyncStep } from "./plan.js";
import type { SweepTarget } from "./sweep.js";
import { TreeWatcher, type ChangeCause } from "./watch.js";

export interface StepOutcome {
  /** The pass succeeded (false: it ends without success and without a retry). */
  readonly done: boolean;
  /** What the step ended with, when it says more than the planned reason. */
  readonly reason?: string;
}

export class PrimarySide {
  /** Our term while on the primary side; null on the standby side. */
  term: number | null = null;
  /** The generation this node did not hold when promoted (published with every generation of its term). */
  displaced: SyncGeneration["displaced"] | null = null;
  /** The manifests of the live roots as last built. */
  private readonly current = new Map<string, Manifest>();
  private watcher: TreeWatcher | undefined;
  private readonly dirty = new Set<string>();
  /** Why every root is rebuilt at the next pass, or null. */
  private fullCause: string | null = null;
  private readonly byPath: Map<string, EngineRoot>;
  private readonly hookQueue: HookQueue;
  /** The periodic reconcile's view of this side (sweep.ts): a root changed without a watch event is rebuilt and published. */
  readonly sweepTarget: SweepTarget = {
    side: "primary",
    reference: (root) => this.current.get(root) ?? null,
    due: (root) => this.term === null || this.fullCause !== null || this.dirty.has(root),
    read: (r, opts) => buildManifest(r, r.path, this.ledger.cache, this.ledger.reader, opts),
    drifted: (root, why) => {
      if (this.term === null) return;
      this.dirty.add(root);
      this.kick(why);
    },
  };

  constructor(
    private readonly deps: SyncEngineDeps,
    private readonly ledger: SyncLedger,
    /** Something changed under a root: the engine starts a pass. */
    private readonly kick: (why: string) => void,
    private readonly closed: () => boolean,
  ) {
    this.byPath = new Map(ledger.roots.map((r) => [r.path.replace(/\/+$/, ""), r]));
    this.hookQueue = new HookQueue({
      runner: deps.runner,
      clock: deps.clock,
      log: deps.log,
      timeoutMs: deps.settings.postSyncTimeoutMs,
      onDone: (job, result) => ledger.hookDone(job, result),
    });
  }

  /** Promoted (or a new term): every root is rebuilt and published under `term`. */
  enter(term: number, displaced: SyncGeneration["displaced"] | null): void {
    this.term = term;
    this.displaced = displaced;
    // A standby's per-root failures end here: the primary's own files are the source now.
    for (const r of this.ledger.roots) this.ledger.outcomes.clear(r.name);
    this.fullCause = `primary side in term ${term}`;
  }

  /** Stepped down: stop watching. */
  async leave(): Promise<void> {
    this.term = null;
    this.displaced = null;
    await this.stopWatcher();
  }

  requestFull(why: string): void {
    this.fullCause = why;
  }

  /** Roots whose manifest must be rebuilt at the next pass (changed, or never built). */
  rebuildDue(): string[] {
    return this.ledger.roots.filter((r) => this.dirty.has(r.name) || !this.current.has(r.name)).map((r) => r.name);
  }

  fullDue(): string | null {
    return this.fullCause;
  }

  manifest(root: string): Manifest | undefined {
    return this.current.get(root);
  }

  async ensureWatcher(): Promise<void> {
    if (this.watcher || this.closed()) return;
    const { settings, clock, log } = this.deps;
    const watcher = new TreeWatcher({
      roots: this.ledger.roots.map((r) => r.path),
      clock,
      debounceMs: settings.debounceMs,
      maxDelayMs: settings.maxDelayMs,
      // The periodic reconcile runs off the pass (sweep.ts), not as a watcher delivery.
      reconcileMs: null,
      ...(this.deps.watch ? { source: this.deps.watch } : {}),
      onChange: (changed: ReadonlySet<string>, cause: ChangeCause) => {
        if (this.term === null) return;
        for (const p of changed) {
          const r = this.byPath.get(p.replace(/\/+$/, ""));
          if (r) this.dirty.add(r.name);
        }
        this.kick(`watch: ${cause}`);
      },
      onError: (e) => log.warn({ err: describeError(e) }, "sync watcher error; the periodic reconcile catches what it missed"),
    });
    this.watcher = watcher;
    await watcher.start();
  }

  private async stopWatcher(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    this.dirty.clear();
    await w?.close().catch(() => undefined);
  }

  /** Rebuild the manifests the step names and publish a new generation if the tree changed. */
  async publish(step: Extract<SyncStep, { kind: "publish" }>): Promise<StepOutcome> {
    const { coordinator, store, clock, log, node } = this.deps;
    const ledger = this.ledger;
    const roots = ledger.roots;
    const term = step.term;
    const rebuild = roots.filter((r) => step.rebuild.includes(r.name));
    const full = this.fullCause;
    this.fullCause = null;
    for (const r of rebuild) this.dirty.delete(r.name);
    try {
      for (const r of rebuild) this.current.set(r.name, await buildManifest(r, r.path, ledger.cache, ledger.reader));
    } catch (e) {
      for (const r of rebuild) this.dirty.add(r.name);
      this.fullCause ??= full;
      throw e;
    }
    const digests = Object.fromEntries(roots.map((r) => [r.name, this.current.get(r.name)!.digest]));
    const digest = combinedDigest(digests);
    const pub = ledger.published;
    const changed = pub ? roots.filter((r) => pub.roots[r.name] !== digests[r.name]).map((r) => r.name) : roots.map((r) => r.name);
    const plan = planRecord({ node, term, held: ledger.held.generation, published: pub, digest, changed });
    if (plan.kind === "unchanged") return { done: true, reason: plan.reason };
    const generation = plan.generation;
    const files = roots.reduce((n, r) => n + this.current.get(r.name)!.entries.filter((e) => e.type === "file").length, 0);
    const record: SyncGeneration = {
      generation,
      digest,
      roots: digests,
      files,
      source: node,
      term,
      publishedAt: new Date(clock.wallMs()).toISOString(),
      ...(this.displaced ? { displaced: this.displaced } : {}),
    };
    if (!(await coordinator.publishGeneration(term, record))) {
      log.warn({ term, generation }, "sync: generation not published: my term is no longer the leader's");
      return { done: false, reason: `not published: generation ${generation} refused, my term ${term} is no longer the leader's` };
    }
    ledger.published = record;
    const local = localChanges(roots, ledger.known, this.current);
    // Only what was published counts as known: an edit made but not published is rescued if this node steps down.
    for (const r of roots) {
      const m = this.current.get(r.name)!;
      if (ledger.known.get(r.name)?.digest !== m.digest) {
        await store.saveKnown(r.name, m);
        ledger.known.set(r.name, m);
      }
    }
    // Saved before it is held: if the save fails, the next pass finds held behind the record and
    // puts and saves it again (planRecord), instead of taking the record for done.
    const held = { generation, roots: digests };
    await store.saveHeld(held);
    ledger.held = held;
    log.info({ generation, term, files, roots: changed }, plan.kind === "confirm" ? "sync: generation confirmed under my term" : "sync: published a new generation");
    ledger.emit({ type: "published", generation, files, roots: changed, local });
    for (const c of local) {
      const r = roots.find((x) => x.name === c.root)!;
      if (r.postPublish) this.hookQueue.push({ hook: "post_publish", root: r.name, path: r.path, argv: r.postPublish, generation, changed: c.paths });
    }
    this.deps.onProgress?.();
    return { done: true, reason: plan.reason };
  }

  async close(): Promise<void> {
    await this.stopWatcher();
  }

  async closeHooks(): Promise<void> {
    await this.hookQueue.close();
  }
}
