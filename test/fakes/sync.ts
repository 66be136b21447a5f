// Fakes for the sync engine tests: a puller that "transfers" a local directory
// into the staging dir (standing in for rsync), a coordinator that records
// publishGeneration calls, and a watch source the test fires by hand.
import { rm } from "node:fs/promises";
import type { SyncGeneration } from "../../src/coordinator/port.js";
import type { Puller } from "../../src/sync/engine.js";
import type { PullRequest, PullResult } from "../../src/sync/transport.js";
import type { WatchSink, WatchSourceFactory } from "../../src/sync/watch.js";
import { copyTree } from "./tree.js";

export class FakePuller implements Puller {
  readonly requests: PullRequest[] = [];
  closed = 0;
  /** Throw this from the next pulls instead of copying. */
  fail: Error | undefined;
  /** While set, pulls wait for it (to hold a standby "mid-pull"). */
  gate: Promise<void> | undefined;

  /** `sourceOf(req)` names the directory on the "primary" copied into req.staging. */
  constructor(private readonly sourceOf: (req: PullRequest) => string) {}

  async pull(req: PullRequest): Promise<PullResult> {
    this.requests.push(req);
    if (this.gate) await this.gate;
    if (this.fail) throw this.fail;
    // rsync fills the staging dir to mirror the source: start from nothing, keep modes, owners and times.
    await rm(req.staging, { recursive: true, force: true });
    copyTree(this.sourceOf(req), req.staging);
    return { primary: req.primary, root: req.root, staging: req.staging, durationMs: 1 };
  }

  async close(): Promise<void> {
    this.closed++;
  }
}

export class FakePublisher {
  readonly calls: { term: number; generation: SyncGeneration }[] = [];
  /** false: the term is no longer the leader's. */
  accept = true;

  async publishGeneration(term: number, generation: SyncGeneration): Promise<boolean> {
    this.calls.push({ term, generation });
    return this.accept;
  }

  last(): SyncGeneration | undefined {
    return this.calls.at(-1)?.generation;
  }
}

export class FakeWatchSource {
  sink: WatchSink | undefined;
  roots: readonly string[] = [];
  starts = 0;
  closed = 0;
  /** Like chokidar (the watch source until 2026-12) closed during its first scan: `ready` never settles, not even on close. */
  neverReady = false;
  readonly factory: WatchSourceFactory = (roots, sink) => {
    this.starts++;
    this.roots = roots;
    this.sink = sink;
    return { ready: this.neverReady ? new Promise<void>(() => {}) : Promise.resolve(), close: async () => void this.closed++ };
  };

  emit(path: string): void {
    if (!this.sink) throw new Error("watch source not started");
    this.sink.event(path);
  }
}
