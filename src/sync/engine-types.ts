// The sync engine's contracts: what it is built from (roots, settings, a
// puller), what the HA loop tells it (SyncView), and what it reports (events,
// status). The engine itself is in engine.ts.
import type { GenerationPublisher, SyncGeneration } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { RunningPass } from "./pass-watch.js";
import type { DurableFs } from "../platform/durable-fs.js";
import type { Logger } from "../platform/logger.js";
import type { ApplySummary, Owner } from "./apply.js";
import type { FileHashService } from "./hasher.js";
import type { RootOutcome } from "./root-status.js";
import type { SyncRoot } from "./paths.js";
import type { RescueResult } from "./rescue.js";
import type { SyncStateStore } from "./state.js";
import type { PullRequest, PullResult } from "./transport.js";
import type { WatchSourceFactory } from "./watch.js";

export interface EngineRoot extends SyncRoot {
  /** Refuse a staged tree with any file mode wider than this. */
  readonly maxMode?: number;
  /** Force this owner on everything applied. */
  readonly owner?: Owner;
  /** Validator argv run against the staged copy ({staged} and {staged:NAME} substituted: placeholders.ts). */
  readonly validate?: readonly string[];
  /** Run on a standby after this root's changes went live (e.g. reload the daemon). */
  readonly postSync?: readonly string[];
  /** Run on the primary after its own changes to this root were published (change-hooks.ts). */
  readonly postPublish?: readonly string[];
}

export interface SyncSettings {
  readonly roots: readonly EngineRoot[];
  readonly debounceMs: number;
  readonly maxDelayMs: number;
  readonly reconcileMs: number;
  readonly validateTimeoutMs: number;
  readonly postSyncTimeoutMs: number;
  readonly retryMaxMs: number;
  readonly maximumLagMs: number;
}

export interface Puller {
  pull(req: PullRequest): Promise<PullResult>;
  close(primary?: string): Promise<void>;
}

/** What the HA loop tells the engine after each cycle. */
export interface SyncView {
  readonly acting: "primary" | "standby";
  /** Our term while acting primary. */
  readonly term: number | null;
  readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
  /** sync/generation as read this cycle; undefined when etcd could not be read (keep the last). */
  readonly published: SyncGeneration | null | undefined;
}

export type SyncEvent =
  /** roots: those whose digest differs from the previous publication; local: this node's own edits (post_publish runs for these). */
  | {
      readonly type: "published";
      readonly generation: number;
      readonly files: number;
      readonly roots: readonly string[];
      readonly local: readonly { readonly root: string; readonly paths: readonly string[] }[];
    }
  | {
      readonly type: "applied";
      readonly root: string;
      readonly generation: number;
      readonly pullMs: number;
      /** The staged copy's checks (digest, modes, validator) before the apply. */
      readonly checkMs: number;
      readonly applyMs: number;
      readonly summary: ApplySummary;
    }
  | { readonly type: "synced"; readonly generation: number }
  /** root: the one root that failed (other roots went on); absent for a failure of the whole pass. */
  | { readonly type: "failed"; readonly code: string; readonly message: string; readonly root?: string }
  | { readonly type: "hook"; readonly hook: "post_sync" | "post_publish"; readonly root: string; readonly ok: boolean; readonly ms: number; readonly code?: string; readonly message?: string }
  | { readonly type: "rescued"; readonly root: string; readonly result: RescueResult };

export interface SyncStatus {
  readonly node: string;
  readonly role: "primary" | "standby";
  readonly generation: number;
  readonly published: Pick<SyncGeneration, "generation" | "digest" | "source" | "term" | "publishedAt" | "displaced"> | null;
  readonly inSync: boolean;
  readonly behindSince: string | null;
  readonly lagMs: number | null;
  readonly lastSuccessAt: string | null;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: string } | null;
  readonly failures: number;
  readonly waiting: string | null;
  /** The reason sentence of the latest sync step (plan.ts); absent before the first pass. */
  readonly step?: string;
  /** The pass running now, if any: since when (wall clock) and its current step. A long one is also logged every 10 min. */
  readonly running: RunningPass | null;
  /** Per root: inSync (its live files are the published ones; a generation is in sync only when every root is), and its own outcome. */
  readonly roots: readonly ({
    readonly name: string;
    readonly path: string;
    readonly digest: string | null;
    readonly files: number | null;
    readonly bytes: number | null;
    readonly inSync: boolean;
  } & RootOutcome)[];
  readonly rescues: readonly { readonly root: string; readonly dir: string; readonly files: number; readonly at: string }[];
}

export interface SyncEngineDeps {
  readonly node: string;
  readonly settings: SyncSettings;
  readonly store: SyncStateStore;
  readonly coordinator: GenerationPublisher;
  readonly puller: Puller;
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  /** Durable writes for applies and rescues (createSyncEngine: NODE_DURABLE_FS). */
  readonly fs: DurableFs;
  /** Hashes files for manifests off the event loop (createSyncEngine: a HashWorker); absent: in the calling thread. Closed by close(). */
  readonly hasher?: FileHashService;
  /** Watch source for the primary's roots (dirTreeSource, watch-source.ts, unless a test injects one). */
  readonly watch?: WatchSourceFactory;
  /** The held generation or the status changed: the HA loop republishes the member key. */
  readonly onProgress?: () => void;
  /** Run at the end of close() (e.g. remove a temporary ControlMaster directory). */
  readonly onClose?: () => Promise<void>;
}
