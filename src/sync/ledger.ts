// What one node's sync engine holds and reports, shared by the shell
// (engine.ts) and the two side executors (primary-side.ts, standby-side.ts):
// the generation held, the manifests known, the record published, per-root
// outcomes, the last error, and the event listeners.
import { describeError } from "../errors/catalogue.js";
import type { SyncGeneration } from "../coordinator/port.js";
import type { HookResult, RootHookJob } from "./change-hooks.js";
import type { EngineRoot, SyncEngineDeps, SyncEvent, SyncStatus } from "./engine-types.js";
import type { TreeReader } from "./hasher.js";
import { HashCache, type Manifest } from "./manifest.js";
import { applyOrder } from "./placeholders.js";
import { RootTracker } from "./root-status.js";
import { EMPTY_STATE, type HeldState } from "./state.js";

export class SyncLedger {
  held: HeldState = EMPTY_STATE;
  /** Per root: the manifest this node last published or applied (rescue compares against it); undefined: none trusted. */
  readonly known = new Map<string, Manifest | undefined>();
  published: SyncGeneration | null = null;
  readonly cache = new HashCache();
  readonly roots: readonly EngineRoot[];
  /** Roots in check/apply order: a root another's validator names ({staged:NAME}) first. */
  readonly ordered: readonly EngineRoot[];
  readonly outcomes: RootTracker;
  lastError: SyncStatus["lastError"] = null;
  /** A post_sync failure of this pass: reported as the last error even though the pass succeeded. */
  passNote: SyncStatus["lastError"] = null;
  private readonly listeners: ((e: SyncEvent) => void)[] = [];

  constructor(
    private readonly deps: SyncEngineDeps,
    /** Hashes files and lists directories for manifests (a worker thread in the agent; in the calling thread when undefined). */
    readonly reader: TreeReader | undefined,
  ) {
    this.roots = deps.settings.roots;
    this.ordered = applyOrder(this.roots);
    this.outcomes = new RootTracker(this.roots.map((r) => r.name));
  }

  onEvent(listener: (e: SyncEvent) => void): void {
    this.listeners.push(listener);
  }

  emit(e: SyncEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.log.warn({ err: describeError(err) }, "sync event listener threw");
      }
    }
  }

  /** The root's live files are no longer known to be the published ones: it is pulled again, and the generation is no longer held in full. */
  forget(root: string): void {
    if (this.held.roots[root] === undefined) return;
    const roots = { ...this.held.roots };
    delete roots[root];
    this.held = { generation: 0, roots };
  }

  nowIso(): string {
    return new Date(this.deps.clock.wallMs()).toISOString();
  }

  /** A post_sync (standby) or post_publish (primary) hook finished. */
  hookDone(job: RootHookJob, result: HookResult): void {
    const { log } = this.deps;
    const at = this.nowIso();
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
}
