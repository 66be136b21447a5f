// Per-root change hooks: post_sync on a standby after a root's changes went
// live, post_publish on the primary after its own edits to a root were
// published (so a certificate renewal on the primary reloads its daemon
// there). argv, never a shell; bounded by a timeout; a failure is logged with
// a code and counted, and never undoes or blocks the sync itself.
//
// post_publish runs from a queue beside the sync worker, one hook at a time:
// publishing the next generation never waits for a reload. A root whose hook
// is still queued (not yet started) has its changes merged into that run.
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { settlesWithin, type Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { compare, diffManifests, type Manifest } from "./manifest.js";

export type RootHookName = "post_sync" | "post_publish";

export interface RootHookJob {
  readonly hook: RootHookName;
  readonly root: string;
  /** The root's live path on this node. */
  readonly path: string;
  readonly argv: readonly string[];
  readonly generation: number;
  /** Relative paths added, changed or removed (sorted). */
  readonly changed: readonly string[];
}

/** At most this many paths (and characters) go into UNDERSTUDY_CHANGED_PATHS; UNDERSTUDY_CHANGED_COUNT has the full count. */
export const CHANGED_PATHS_MAX = 100;
const CHANGED_CHARS_MAX = 16_000;
const STDERR_TAIL = 300;
/** Queued post_publish runs kept at most; the oldest is dropped beyond (each root has at most one queued). */
const QUEUE_LIMIT = 64;
const CLOSE_GRACE_MS = 1000;

/** The environment a root hook runs with (every variable always set, so `set -u` scripts work). */
export function rootHookEnv(job: RootHookJob): Record<string, string> {
  let list = job.changed.slice(0, CHANGED_PATHS_MAX).join("\n");
  if (list.length > CHANGED_CHARS_MAX) list = list.slice(0, list.lastIndexOf("\n", CHANGED_CHARS_MAX) + 1 || CHANGED_CHARS_MAX).replace(/\n$/, "");
  return {
    UNDERSTUDY_EVENT: job.hook,
    UNDERSTUDY_SYNC_ROOT: job.root,
    UNDERSTUDY_SYNC_PATH: job.path,
    UNDERSTUDY_GENERATION: String(job.generation),
    UNDERSTUDY_CHANGED_COUNT: String(job.changed.length),
    UNDERSTUDY_CHANGED_PATHS: list,
  };
}

export interface HookResult {
  readonly ok: boolean;
  readonly ms: number;
  /** The coded error's message when !ok. */
  readonly problem: string | null;
  readonly code: string | null;
}

/** Run one root hook now. Never rejects. */
export async function runRootHook(job: RootHookJob, runner: CommandRunner, clock: Clock, timeoutMs: number): Promise<HookResult> {
  const t0 = clock.monotonicMs();
  const problem = await runner.run(job.argv, { timeoutMs, env: rootHookEnv(job) }).then(
    (res) => (res.code === 0 ? null : `exit ${res.code ?? res.signal}: ${res.stderr.trim().slice(-STDERR_TAIL)}`),
    (e: unknown) => describeError(e),
  );
  const ms = Math.round(clock.monotonicMs() - t0);
  if (problem === null) return { ok: true, ms, problem: null, code: null };
  const err =
    job.hook === "post_sync"
      ? new UnderstudyError("US_E_SYNC_POST_SYNC_FAILED", { root: job.root, program: job.argv[0], problem })
      : new UnderstudyError("US_E_SYNC_POST_PUBLISH_FAILED", { root: job.root, program: job.argv[0], problem });
  return { ok: false, ms, problem: err.message, code: err.code };
}

export interface HookQueueDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly timeoutMs: number;
  /** Told about every run (ok or not); must not throw. */
  readonly onDone: (job: RootHookJob, result: HookResult) => void;
}

/** Runs queued root hooks one at a time, in order; close() waits at most one timeout. */
export class HookQueue {
  private readonly queue: RootHookJob[] = [];
  private draining: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly deps: HookQueueDeps) {}

  push(job: RootHookJob): void {
    if (this.closed) return;
    const i = this.queue.findIndex((q) => q.root === job.root && q.hook === job.hook);
    if (i >= 0) {
      const prev = this.queue[i]!;
      this.queue[i] = { ...job, changed: [...new Set([...prev.changed, ...job.changed])].sort() };
    } else {
      if (this.queue.length >= QUEUE_LIMIT) {
        const dropped = this.queue.shift()!;
        this.deps.log.warn({ hook: dropped.hook, root: dropped.root }, "sync hook queue full: dropped the oldest queued hook");
      }
      this.queue.push(job);
    }
    this.draining ??= this.drain();
  }

  /** Wait for the hooks queued or running, at most one timeout plus a grace; later ones are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.draining) return;
    if (!(await settlesWithin(this.deps.clock, this.deps.timeoutMs + CLOSE_GRACE_MS, this.draining)))
      this.deps.log.warn({ queued: this.queue.length }, "sync hooks still running at shutdown; not waiting for them");
    this.queue.length = 0;
  }

  private async drain(): Promise<void> {
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) {
        const result = await runRootHook(job, this.deps.runner, this.deps.clock, this.deps.timeoutMs);
        try {
          this.deps.onDone(job, result);
        } catch {
          // A listener's failure is not the hook's.
        }
      }
    } finally {
      this.draining = null;
    }
  }
}

/**
 * Primary: the roots whose live files differ from what this node last
 * published or applied (its own edits), with the paths changed. A root never
 * synced or published here has nothing to compare with: the daemon started
 * with these files, so it is not listed.
 */
export function localChanges(
  roots: readonly { readonly name: string }[],
  known: ReadonlyMap<string, Manifest | undefined>,
  current: ReadonlyMap<string, Manifest>,
): { root: string; paths: string[] }[] {
  const out: { root: string; paths: string[] }[] = [];
  for (const r of roots) {
    const before = known.get(r.name);
    const now = current.get(r.name);
    if (!before || !now || before.digest === now.digest) continue;
    const d = diffManifests(before, now);
    out.push({ root: r.name, paths: [...d.added, ...d.changed, ...d.removed].sort(compare) });
  }
  return out;
}
