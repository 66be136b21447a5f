// The sync engine (DESIGN.md §7): on the primary it watches the roots and
// publishes {generation, digest} guarded by its term; on a standby it pulls
// each new generation from the current primary, verifies and applies it, and
// reports the generation it holds (the HA loop puts it in the member key,
// where candidate ranking and the promotion gate read it).
//
// One worker runs passes one at a time; triggers that arrive meanwhile
// coalesce into one more pass. Failures retry with exponential backoff, and a
// newly published generation retries at once.
import { createHash } from "node:crypto";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { MemberSyncSummary, SyncGeneration } from "../coordinator/port.js";
import type { TimerHandle } from "../platform/clock.js";
import { applyStaged, checkStaged, prepareStagingDir, type ApplySummary } from "./apply.js";
import { HookQueue, localChanges, runRootHook, type HookResult, type RootHookJob } from "./change-hooks.js";
import type { EngineRoot, SyncEngineDeps, SyncEvent, SyncStatus, SyncView } from "./engine-types.js";
import { HashWorker } from "./hasher.js";
import { HashCache, buildManifest, compare, manifestOf, type Manifest } from "./manifest.js";
import { applyOrder } from "./placeholders.js";
import { RootFailures, runRootPass, summarizeFailure } from "./root-pass.js";
import { RootTracker } from "./root-status.js";
import { rescueDivergent } from "./rescue.js";
import { EMPTY_STATE, type HeldState } from "./state.js";
import { TreeWatcher, type ChangeCause } from "./watch.js";

export type { EngineRoot, Puller, SyncEngineDeps, SyncEvent, SyncSettings, SyncStatus, SyncView } from "./engine-types.js";

const FIRST_RETRY_MS = 200;
/** A digest mismatch usually means the primary changed files during the pull: a new generation is on its way. */
const MISMATCH_RETRY_MS = 100;
const RESCUES_KEPT = 10;

/** Digest over every root's manifest digest, as published in sync/generation. */
export function combinedDigest(roots: Readonly<Record<string, string>>): string {
  const h = createHash("sha256").update("understudy-generation/1");
  for (const name of Object.keys(roots).sort()) h.update(`\n${name}=${roots[name]}`);
  return h.digest("hex");
}

export class SyncEngine {
  private mode: "primary" | "standby" = "standby";
  private primaryTerm: number | null = null;
  private held: HeldState = EMPTY_STATE;
  private readonly known = new Map<string, Manifest | undefined>();
  /** Primary: the manifests of the live roots as last built. */
  private readonly current = new Map<string, Manifest>();
  private readonly cache = new HashCache();
  /** Hashing runs in a worker thread: the lease renewals on this event loop must not wait for a 1 GiB manifest. */
  private readonly hasher = new HashWorker();
  private published: SyncGeneration | null = null;
  /** Primary side: the generation this node did not hold when promoted (published with every generation of its term). */
  private displaced: SyncGeneration["displaced"] | null = null;
  /** Standby side: roots already rescued against a generation that displaced this node's own ("term/root"). */
  private readonly displacementHandled = new Set<string>();
  private view: SyncView | null = null;
  private watcher: TreeWatcher | undefined;
  private readonly dirty = new Set<string>();
  private fullPublish = false;
  private readonly verifyPending = new Set<string>();
  private readonly checksumNext = new Set<string>();
  private verifyTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  private failures = 0;
  private lastError: SyncStatus["lastError"] = null;
  private lastSuccessAtMs: number | null = null;
  private behindSinceMs: number | null = null;
  private behindSinceWallMs: number | null = null;
  private waiting: string | null = null;
  private readonly rescues: { root: string; dir: string; files: number; at: string }[] = [];
  private rescueCount = 0;
  /** A post_sync failure of this pass: reported as the last error even though the pass succeeded. */
  private passNote: SyncStatus["lastError"] = null;
  private readonly listeners: ((e: SyncEvent) => void)[] = [];
  private running = false;
  private pending = false;
  private passDone: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly roots: readonly EngineRoot[];
  private readonly byPath: Map<string, EngineRoot>;
  /** Roots in check/apply order: a root another's validator names ({staged:NAME}) first. */
  private readonly ordered: readonly EngineRoot[];
  private readonly outcomes: RootTracker;
  private readonly hookQueue: HookQueue;

  constructor(private readonly deps: SyncEngineDeps) {
    this.roots = deps.settings.roots;
    this.byPath = new Map(this.roots.map((r) => [r.path.replace(/\/+$/, ""), r]));
    this.ordered = applyOrder(this.roots);
    this.outcomes = new RootTracker(this.roots.map((r) => r.name));
    this.hookQueue = new HookQueue({
      runner: deps.runner, clock: deps.clock, log: deps.log, timeoutMs: deps.settings.postSyncTimeoutMs,
      onDone: (job, result) => this.hookDone(job, result),
    });
  }

  /** Load the held state; an untrusted state file counts as holding nothing (every root is verified and pulled). */
  async start(): Promise<void> {
    const { store, log } = this.deps;
    await store.init();
    try {
      this.held = await store.loadHeld();
    } catch (e) {
      log.error({ err: describeError(e) }, "sync state unusable; treating every root as not synced");
      this.held = EMPTY_STATE;
    }
    for (const r of this.roots) {
      try {
        this.known.set(r.name, await store.loadKnown(r.name));
      } catch (e) {
        log.error({ err: describeError(e), root: r.name }, "last known manifest unusable; local files that differ from the primary's will be rescued");
        this.known.set(r.name, undefined);
      }
      this.verifyPending.add(r.name);
    }
    this.armVerify();
  }

  onEvent(listener: (e: SyncEvent) => void): void {
    this.listeners.push(listener);
  }

  /** The generation this node holds in full, for the member key. */
  generation(): number {
    return this.held.generation;
  }

  /** Since when (monotonic ms) this standby has been behind the published generation; null when it is not. */
  behindSince(): number | null {
    return this.behindSinceMs;
  }

  /** After each HA cycle: switch sides on a role change and chase the published generation. */
  follow(view: SyncView): void {
    if (this.closed) return;
    const prevGeneration = this.published?.generation;
    // A primary keeps its own newer record over a snapshot read before its publish landed.
    const stale = this.mode === "primary" && this.published !== null && (view.published === null || (view.published !== undefined && view.published.generation < this.published.generation));
    if (view.published !== undefined && !stale) {
      this.published = view.published;
    }
    this.view = view;
    if (view.acting === "primary" && view.term !== null && (this.mode !== "primary" || this.primaryTerm !== view.term)) {
      // Promoted without the newest published files (the gate allowed it, recorded as a stale
      // promotion): say so in every generation of this term, so their source rescues them on rejoining.
      const pub = this.published;
      this.displaced = this.mode === "standby" && pub && pub.source !== this.deps.node && pub.generation > this.held.generation ? { source: pub.source, generation: pub.generation } : null;
      this.mode = "primary";
      this.primaryTerm = view.term;
      // A standby's per-root failures end here: the primary's own files are the source now.
      for (const r of this.roots) this.outcomes.clear(r.name);
      this.fullPublish = true;
      this.deps.log.info({ term: view.term }, "sync: primary side: watching the roots and publishing generations");
      this.kick();
    } else if (view.acting === "standby" && this.mode === "primary") {
      this.mode = "standby";
      this.primaryTerm = null;
      this.displaced = null;
      void this.stopWatcher();
      // What this node edited but did not publish must be rescued before it pulls.
      for (const r of this.roots) this.verifyPending.add(r.name);
      this.deps.log.info("sync: standby side: following the primary's generations");
      this.kick();
    }
    this.trackLag();
    const newGeneration = this.published?.generation !== prevGeneration;
    if (this.mode === "standby" && (newGeneration || (this.behindSinceMs !== null && this.retryTimer === undefined))) {
      if (newGeneration) {
        this.retryTimer?.cancel();
        this.retryTimer = undefined;
      }
      this.kick();
    }
  }

  /** Force a full resync: a standby re-pulls every root with checksums; a primary rebuilds and republishes. */
  resync(): void {
    if (this.mode === "primary") {
      this.fullPublish = true;
    } else {
      this.held = { generation: 0, roots: {} };
      for (const r of this.roots) {
        this.verifyPending.add(r.name);
        this.checksumNext.add(r.name);
      }
      this.trackLag();
    }
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.kick();
  }

  /** The part of status() every node publishes in its member key. */
  memberSummary(): MemberSyncSummary {
    const e = this.lastError;
    return {
      behindSince: this.behindSinceWallMs === null ? null : new Date(this.behindSinceWallMs).toISOString(),
      lastSuccessAt: this.lastSuccessAtMs === null ? null : new Date(this.lastSuccessAtMs).toISOString(),
      lastError: e ? e.message : null,
      failures: this.failures,
      rescues: this.rescueCount,
      waiting: this.waiting,
      failedRoots: this.outcomes.failing(),
    };
  }

  /** The manifest of a root as this node knows it (primary: live; standby: last applied). */
  manifest(root: string): Manifest | undefined {
    return this.mode === "primary" ? (this.current.get(root) ?? this.known.get(root)) : this.known.get(root);
  }

  status(): SyncStatus {
    const { clock, node } = this.deps;
    const p = this.published;
    const now = clock.monotonicMs();
    return {
      node,
      role: this.mode,
      generation: this.held.generation,
      published: p ? { generation: p.generation, digest: p.digest, source: p.source, term: p.term, publishedAt: p.publishedAt, ...(p.displaced ? { displaced: p.displaced } : {}) } : null,
      inSync: p === null ? this.held.generation === 0 : this.held.generation === p.generation,
      behindSince: this.behindSinceWallMs === null ? null : new Date(this.behindSinceWallMs).toISOString(),
      lagMs: this.behindSinceMs === null ? (p === null || this.held.generation === p.generation ? 0 : null) : Math.round(now - this.behindSinceMs),
      lastSuccessAt: this.lastSuccessAtMs === null ? null : new Date(this.lastSuccessAtMs).toISOString(),
      lastError: this.lastError,
      failures: this.failures,
      waiting: this.waiting,
      roots: this.roots.map((r) => {
        const m = this.manifest(r.name);
        const files = m ? m.entries.filter((e) => e.type === "file") : null;
        const o = this.outcomes.get(r.name);
        // A standby's root is in sync when its live files are the published ones; a primary's always are.
        const inSync = this.mode === "primary" || (p === null ? true : this.held.roots[r.name] === p.roots[r.name]);
        return {
          name: r.name, path: r.path, digest: m?.digest ?? null, files: files?.length ?? null, bytes: files ? files.reduce((n, e) => n + e.size, 0) : null,
          inSync, failures: o.failures, lastError: o.lastError, lastSuccessAt: o.lastSuccessAt, lastHook: o.lastHook,
        };
      }),
      rescues: [...this.rescues],
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.verifyTimer?.cancel();
    this.retryTimer?.cancel();
    await this.stopWatcher();
    await this.passDone.catch(() => undefined);
    await this.hookQueue.close();
    await this.deps.puller.close();
    await this.hasher.close();
    await this.deps.onClose?.().catch(() => undefined);
  }

  // ------------------------------------------------------------------ worker

  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = true;
    this.passDone = this.runPasses();
  }

  private async runPasses(): Promise<void> {
    try {
      do {
        this.pending = false;
        await this.pass();
      } while (this.pending && !this.closed);
    } finally {
      this.running = false;
    }
  }

  private async pass(): Promise<void> {
    this.passNote = null;
    try {
      const done = this.mode === "primary" ? await this.primaryPass() : await this.standbyPass();
      if (done) this.succeeded();
    } catch (e) {
      this.failed(e);
    }
  }

  private succeeded(): void {
    this.lastSuccessAtMs = this.deps.clock.wallMs();
    if (this.failures > 0 || this.lastError) this.deps.log.info({ after_failures: this.failures }, "sync recovered");
    this.failures = 0;
    this.lastError = this.passNote;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
  }

  private failed(e: unknown): void {
    if (this.closed) return;
    // Roots that failed in a standby pass were each reported (log, event) already; the pass
    // reports the first one, naming the others, and retries them all with one backoff.
    const { code, message, allMismatch } = summarizeFailure(e);
    this.failures++;
    this.lastError = { code, message, at: new Date(this.deps.clock.wallMs()).toISOString() };
    const delay = allMismatch ? MISMATCH_RETRY_MS : Math.min(this.deps.settings.retryMaxMs, FIRST_RETRY_MS * 2 ** Math.min(this.failures - 1, 20));
    if (e instanceof RootFailures) {
      this.deps.log.warn({ roots: [...e.failures.keys()], failures: this.failures, retry_in_ms: delay }, "sync pass incomplete: the roots named failed and are retried; the other roots are in sync");
    } else {
      this.deps.log.warn({ err: message, code, failures: this.failures, retry_in_ms: delay }, "sync failed; live files unchanged where the check failed");
      this.emit({ type: "failed", code, message });
    }
    this.retryTimer?.cancel();
    this.retryTimer = this.deps.clock.setTimer(delay, () => {
      this.retryTimer = undefined;
      this.kick();
    });
    this.deps.onProgress?.();
  }

  // ----------------------------------------------------------------- primary

  private async startWatcher(): Promise<void> {
    if (this.watcher || this.closed) return;
    const { settings, clock, log } = this.deps;
    const watcher = new TreeWatcher({
      roots: this.roots.map((r) => r.path),
      clock,
      debounceMs: settings.debounceMs,
      maxDelayMs: settings.maxDelayMs,
      reconcileMs: settings.reconcileMs,
      ...(this.deps.watch ? { source: this.deps.watch } : {}),
      onChange: (changed: ReadonlySet<string>, cause: ChangeCause) => {
        if (this.mode !== "primary") return;
        for (const p of changed) {
          const r = this.byPath.get(p.replace(/\/+$/, ""));
          if (r) this.dirty.add(r.name);
        }
        if (cause === "reconcile") this.fullPublish = true;
        this.kick();
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

  /** Rebuild the changed manifests and publish a new generation if the tree changed. Returns true when done. */
  private async primaryPass(): Promise<boolean> {
    const term = this.primaryTerm;
    if (term === null) return false;
    if (!this.watcher) await this.startWatcher();
    const { coordinator, store, clock, log, node } = this.deps;
    const rebuild = this.roots.filter((r) => this.fullPublish || this.dirty.has(r.name) || !this.current.has(r.name));
    const full = this.fullPublish;
    this.fullPublish = false;
    for (const r of rebuild) this.dirty.delete(r.name);
    try {
      for (const r of rebuild) this.current.set(r.name, await buildManifest(r, r.path, this.cache, this.hasher.hash));
    } catch (e) {
      for (const r of rebuild) this.dirty.add(r.name);
      this.fullPublish ||= full;
      throw e;
    }
    const digests = Object.fromEntries(this.roots.map((r) => [r.name, this.current.get(r.name)!.digest]));
    const digest = combinedDigest(digests);
    const pub = this.published;
    if (pub && pub.digest === digest && pub.term === term && pub.source === node) return true;
    const generation = pub && pub.digest === digest ? pub.generation : Math.max(pub?.generation ?? 0, this.held.generation) + 1;
    const files = this.roots.reduce((n, r) => n + this.current.get(r.name)!.entries.filter((e) => e.type === "file").length, 0);
    const record: SyncGeneration = {
      generation, digest, roots: digests, files, source: node, term, publishedAt: new Date(clock.wallMs()).toISOString(), ...(this.displaced ? { displaced: this.displaced } : {}),
    };
    if (!(await coordinator.publishGeneration(term, record))) {
      log.warn({ term, generation }, "sync: generation not published: my term is no longer the leader's");
      return false;
    }
    this.published = record;
    const local = localChanges(this.roots, this.known, this.current);
    // Only what was published counts as known: an edit made but not published is rescued if this node steps down.
    for (const r of this.roots) {
      const m = this.current.get(r.name)!;
      if (this.known.get(r.name)?.digest !== m.digest) {
        await store.saveKnown(r.name, m);
        this.known.set(r.name, m);
      }
    }
    this.held = { generation, roots: digests };
    await store.saveHeld(this.held);
    const changed = pub ? this.roots.filter((r) => pub.roots[r.name] !== digests[r.name]).map((r) => r.name) : this.roots.map((r) => r.name);
    log.info({ generation, term, files, roots: changed }, pub?.digest === digest ? "sync: generation confirmed under my term" : "sync: published a new generation");
    this.emit({ type: "published", generation, files, roots: changed, local });
    for (const c of local) {
      const r = this.roots.find((x) => x.name === c.root)!;
      if (r.postPublish) this.hookQueue.push({ hook: "post_publish", root: r.name, path: r.path, argv: r.postPublish, generation, changed: c.paths });
    }
    this.deps.onProgress?.();
    return true;
  }

  private hookDone(job: RootHookJob, result: HookResult): void {
    const { clock, log } = this.deps;
    const at = new Date(clock.wallMs()).toISOString();
    this.outcomes.hook(job.root, { hook: job.hook, ok: result.ok, ms: result.ms, at, problem: result.problem });
    if (result.ok) {
      log.info({ hook: job.hook, root: job.root, generation: job.generation, changed: job.changed.length, ms: result.ms }, "sync: hook ran");
    } else {
      log.warn({ hook: job.hook, root: job.root, code: result.code, ms: result.ms, err: result.problem }, `sync: ${job.hook} failed; the files stay as they are`);
      // Reported as the last error even though the sync itself succeeded (post_sync: of this pass).
      const note = { code: result.code!, message: result.problem!, at };
      if (job.hook === "post_publish") this.lastError = note;
      else {
        this.passNote = note;
        this.emit({ type: "failed", code: note.code, message: note.message, root: job.root });
      }
    }
    this.emit({ type: "hook", hook: job.hook, root: job.root, ok: result.ok, ms: result.ms, ...(result.code ? { code: result.code, message: result.problem! } : {}) });
  }

  // ----------------------------------------------------------------- standby

  private trackLag(): void {
    const p = this.published;
    const behind = this.mode === "standby" && p !== null && this.held.generation !== p.generation;
    if (behind && this.behindSinceMs === null) {
      this.behindSinceMs = this.deps.clock.monotonicMs();
      this.behindSinceWallMs = this.deps.clock.wallMs();
    } else if (!behind) {
      this.behindSinceMs = null;
      this.behindSinceWallMs = null;
    }
  }

  private armVerify(): void {
    if (this.closed) return;
    this.verifyTimer = this.deps.clock.setTimer(this.deps.settings.reconcileMs, () => {
      if (this.mode === "standby") {
        for (const r of this.roots) this.verifyPending.add(r.name);
        this.kick();
      }
      this.armVerify();
    });
  }

  /** Local files that differ from what this node last published or applied are rescued, and the root is pulled again. */
  private async verify(r: EngineRoot): Promise<void> {
    const known = this.known.get(r.name);
    if (known === undefined) {
      // Never synced: rescue is decided against the staged copy, after the pull.
      this.forget(r.name);
      return;
    }
    const live = await buildManifest(r, r.path, this.cache, this.hasher.hash).catch((e: unknown) => {
      if (isUnderstudyError(e, "US_E_SYNC_UNREADABLE") && /ENOENT/.test(describeError(e))) return manifestOf(r.name, []);
      throw e;
    });
    if (live.digest === known.digest) return;
    await this.rescue(r, known, live);
    this.forget(r.name);
  }

  private forget(root: string): void {
    if (this.held.roots[root] === undefined) return;
    const roots = { ...this.held.roots };
    delete roots[root];
    this.held = { generation: 0, roots };
  }

  /** Returns true when files were moved out of the live root. `live`: its manifest, when just built. */
  private async rescue(r: EngineRoot, reference: Manifest | undefined, live?: Manifest): Promise<boolean> {
    const { store, clock, log } = this.deps;
    const result = await rescueDivergent({
      root: r, lastKnown: reference, rescueBase: store.rescueBase, clock, cache: this.cache, hasher: this.hasher.hash, ...(live ? { live } : {}),
    });
    if (!result) return false;
    if (result.files.length === 0) {
      log.info({ root: r.name, removed_since_known: result.removedSinceKnown }, "sync: files removed locally since the last sync; nothing to rescue");
      return false;
    }
    log.warn({ root: r.name, dir: result.dir, files: result.files, removed_since_known: result.removedSinceKnown }, "sync: rescued local files that differ from the last synced state");
    this.rescueCount++;
    this.rescues.push({ root: r.name, dir: result.dir, files: result.files.length, at: new Date(clock.wallMs()).toISOString() });
    if (this.rescues.length > RESCUES_KEPT) this.rescues.shift();
    this.emit({ type: "rescued", root: r.name, result });
    return true;
  }

  /** Pull and apply whatever differs from the published generation. Returns true when in sync (or nothing to follow). */
  private async standbyPass(): Promise<boolean> {
    const { store, log, node } = this.deps;
    const failed = new Map<string, unknown>();
    for (const r of this.roots) {
      if (!this.verifyPending.has(r.name)) continue;
      try {
        await this.verify(r);
        this.verifyPending.delete(r.name);
      } catch (e) {
        failed.set(r.name, e); // retried with the pass; the other roots go on
      }
    }
    const pub = this.published;
    const view = this.view;
    const leader = view?.leader ?? null;
    this.waiting = null;
    const end = (done: boolean): boolean => {
      if (failed.size === 0) return this.settle(done);
      this.rootsFailed(failed);
      throw new RootFailures(failed);
    };
    if (!pub) return end(true);
    if (!leader || leader.node === node) return end(this.wait("no primary to pull from"));
    if (pub.source !== leader.node || pub.term !== leader.term) return end(this.wait(`waiting for ${leader.node} to publish its files under term ${leader.term}`));
    if (!leader.address) return end(this.wait(`no address published for ${leader.node}`));
    const names = this.roots.map((r) => r.name).sort();
    const published = Object.keys(pub.roots).sort();
    if (names.join(",") !== published.join(",")) {
      throw new UnderstudyError("US_E_SYNC_ROOTS_MISMATCH", { primary: leader.node, published: published.join(", "), local: names.join(", ") });
    }
    // Roots are independent (root-pass.ts): stage every changed root, check each, apply the checked ones.
    const { staged, aborted } = await runRootPass<EngineRoot>({
      roots: this.roots, ordered: this.ordered, want: pub.roots, held: () => this.held.roots,
      stage: (r) => this.stageRoot(r, leader.address!),
      check: async (r, stage, named) => void (await checkStaged({ ...this.applyOptions(r, stage.dir, pub.roots[r.name]!), ...(r.validate ? { validate: r.validate } : {}), named })),
      apply: (r, stage) => this.applyRoot(r, stage, pub.roots[r.name]!, pub.generation),
      aborted: () => this.closed || this.mode !== "standby",
    }, failed);
    if (aborted) return false;
    for (const r of this.roots) if (!failed.has(r.name) && !staged.has(r.name)) this.outcomes.clear(r.name);
    if (failed.size > 0) return end(false);
    if (this.held.generation !== pub.generation) {
      this.held = { generation: pub.generation, roots: { ...pub.roots } };
      await store.saveHeld(this.held);
      log.info({ generation: pub.generation, source: pub.source }, "sync: in sync with the primary's generation");
      this.emit({ type: "synced", generation: pub.generation });
    }
    this.trackLag();
    this.deps.onProgress?.();
    return this.settle(true);
  }

  private wait(why: string): boolean {
    this.waiting = why;
    return false;
  }

  private settle(done: boolean): boolean {
    this.trackLag();
    return done;
  }

  private rootsFailed(failed: ReadonlyMap<string, unknown>): void {
    const at = new Date(this.deps.clock.wallMs()).toISOString();
    for (const r of this.roots) if (failed.has(r.name)) this.rootFailed(r, failed.get(r.name), at);
  }

  private rootFailed(r: EngineRoot, e: unknown, at: string): void {
    const code = isUnderstudyError(e) ? e.code : "US_E_UNEXPECTED";
    const message = describeError(e);
    if (code === "US_E_SYNC_DIGEST_MISMATCH") this.checksumNext.add(r.name);
    if (code === "US_E_SYNC_APPLY_FAILED") {
      // Some files went live: what is live is no longer what we knew.
      this.forget(r.name);
      this.verifyPending.add(r.name);
      this.known.set(r.name, undefined);
    }
    this.outcomes.fail(r.name, { code, message, at });
    this.deps.log.warn({ root: r.name, code, err: message, failures: this.outcomes.get(r.name).failures }, "sync: root failed; its live files are unchanged where the check failed, the other roots go on");
    this.emit({ type: "failed", code, message, root: r.name });
  }

  private applyOptions(r: EngineRoot, stagedDir: string, want: string) {
    const { runner, settings } = this.deps;
    return {
      root: r, stagedDir, expected: { digest: want }, runner, cache: this.cache, hasher: this.hasher.hash, validateTimeoutMs: settings.validateTimeoutMs,
      ...(r.maxMode !== undefined ? { requiredMode: r.maxMode } : {}),
      ...(r.owner ? { owner: r.owner } : {}),
    };
  }

  /** Pull one root into its staging directory. */
  private async stageRoot(r: EngineRoot, address: string): Promise<{ dir: string; pullMs: number }> {
    const { puller, clock } = this.deps;
    const staging = await prepareStagingDir(r);
    const checksum = this.checksumNext.has(r.name);
    const t0 = clock.monotonicMs();
    // The root by name: each node's rsync daemon maps it to that node's own path.
    await puller.pull({ primary: address, root: r.name, staging, exclude: r.exclude, checksum, copyDest: r.path });
    return { dir: staging, pullMs: clock.monotonicMs() - t0 };
  }

  /** Move a checked staged root into place (its checks run again, cheaply, on the cached hashes), then its post_sync. */
  private async applyRoot(r: EngineRoot, stage: { dir: string; pullMs: number }, want: string, generation: number): Promise<void> {
    const { store, runner, clock, settings, log } = this.deps;
    const t1 = clock.monotonicMs();
    // Before any live change, once the staged tree passed every check: keep what differs from
    // what this node last applied (a local edit made since the last verify would otherwise be
    // overwritten or deleted by this apply), or, on a first sync, from the incoming files.
    const known = this.known.get(r.name);
    // This node's own last publication was displaced by a stale promotion: nobody pulled it, so keep
    // whatever differs from the incoming files (once per root and term), not just what differs from it.
    const pub = this.published;
    const displacement = pub?.displaced?.source === this.deps.node ? `${pub.term}/${r.name}` : null;
    const againstIncoming = displacement !== null && !this.displacementHandled.has(displacement);
    const summary: ApplySummary = await applyStaged({
      ...this.applyOptions(r, stage.dir, want),
      beforeApply: (target: Manifest, live: Manifest) => this.rescue(r, againstIncoming ? target : (known ?? target), live),
    });
    this.checksumNext.delete(r.name);
    if (displacement !== null) this.displacementHandled.add(displacement);
    await store.saveKnown(r.name, summary.manifest);
    this.known.set(r.name, summary.manifest);
    this.held = { generation: this.held.generation, roots: { ...this.held.roots, [r.name]: want } };
    await store.saveHeld(this.held);
    const at = new Date(clock.wallMs()).toISOString();
    this.outcomes.ok(r.name, at);
    const applyMs = clock.monotonicMs() - t1;
    const changed = [...summary.added, ...summary.changed, ...summary.removed].sort(compare);
    log.info({ root: r.name, generation, added: summary.added.length, changed: summary.changed.length, removed: summary.removed.length, bytes: summary.bytes, pull_ms: Math.round(stage.pullMs), apply_ms: Math.round(applyMs), notes: summary.notes }, "sync: applied");
    this.emit({ type: "applied", root: r.name, generation, pullMs: stage.pullMs, applyMs, summary });
    if (changed.length > 0 && r.postSync) {
      const job = { hook: "post_sync", root: r.name, path: r.path, argv: r.postSync, generation, changed } as const;
      this.hookDone(job, await runRootHook(job, runner, clock, settings.postSyncTimeoutMs));
    }
  }

  private emit(e: SyncEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.log.warn({ err: describeError(err) }, "sync event listener threw");
      }
    }
  }
}
