// The standby side's executor: verifies roots against the files last synced
// (rescuing local edits), and pulls, checks and applies the roots the planner
// names (root-pass.ts), keeping first what a displaced publication of this
// node's would otherwise lose (rescue.ts).
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { SyncGeneration } from "../coordinator/port.js";
import { applyStaged, checkStaged, prepareStagingDir, type ApplySummary } from "./apply.js";
import { runRootHook } from "./change-hooks.js";
import type { EngineRoot, SyncEngineDeps } from "./engine-types.js";
import type { SyncLedger } from "./ledger.js";
import { buildManifest, compare, manifestOf, type Manifest, type WalkOptions } from "./manifest.js";
import { inSyncReason, type SyncStep } from "./plan.js";
import type { StepOutcome } from "./primary-side.js";
import { RootFailures, runRootPass, type Staged } from "./root-pass.js";
import { rescueDivergent } from "./rescue.js";
import type { SweepTarget } from "./sweep.js";
import { WriteBehind } from "./write-behind.js";

const RESCUES_KEPT = 10;

export class StandbySide {
  /** Roots to compare with the files last synced before the next pull, each with why. */
  readonly verifyPending = new Map<string, string>();
  /** Roots pulled with --checksum next time (after a digest mismatch or a resync). */
  readonly checksumNext = new Set<string>();
  /** Roots already rescued against a generation that displaced this node's own ("term/root"). */
  readonly displacementHandled = new Set<string>();
  readonly rescues: { root: string; dir: string; files: number; at: string }[] = [];
  rescueCount = 0;
  /** Applies between their first live change and their saved state (a stop waits for these). */
  applying = 0;
  /** The periodic verify's view of this side (sweep.ts): a root that differs from the last synced state is verified by the next pass. */
  readonly sweepTarget: SweepTarget = {
    side: "standby",
    reference: (root) => this.ledger.known.get(root) ?? null,
    due: (root) => this.verifyPending.has(root),
    read: (r, opts) => this.readLive(r, opts),
    drifted: (root) => {
      if (this.aborted()) return;
      if (!this.verifyPending.has(root)) this.verifyPending.set(root, "periodic verify found a difference");
      this.kick("periodic verify found a difference");
    },
  };

  constructor(
    private readonly deps: SyncEngineDeps,
    private readonly ledger: SyncLedger,
    /** Closed, or promoted meanwhile: nothing more goes live. */
    private readonly aborted: () => boolean,
    /** The held generation changed: the engine re-computes since when it is behind. */
    private readonly trackLag: () => void,
    /** Start a pass (folded into the running one, if any). */
    private readonly kick: (why: string) => void,
  ) {}

  verifyAll(why: string): void {
    for (const r of this.ledger.roots) if (!this.verifyPending.has(r.name)) this.verifyPending.set(r.name, why);
  }

  /** Verify the roots the step names; a root that fails goes into `failed` (retried with the pass; the others go on). */
  async verify(step: Extract<SyncStep, { kind: "verify" }>, failed: Map<string, unknown>): Promise<void> {
    for (const r of this.ledger.roots) {
      if (!step.roots.includes(r.name)) continue;
      try {
        await this.verifyRoot(r);
        this.verifyPending.delete(r.name);
      } catch (e) {
        failed.set(r.name, e);
      }
    }
  }

  /** Run a pull, rescue, refuse, wait or idle step of a standby pass. Throws RootFailures when any root failed this pass. */
  async run(step: Exclude<SyncStep, { kind: "verify" | "publish" }>, failed: Map<string, unknown>): Promise<StepOutcome> {
    switch (step.kind) {
      case "refuse":
        throw new UnderstudyError("US_E_SYNC_ROOTS_MISMATCH", { primary: step.primary, published: step.published.join(", "), local: step.local.join(", ") });
      case "wait":
        return this.end(false, failed);
      case "idle":
        if (step.inSyncWith === null) return this.end(true, failed);
        return this.holding(step.inSyncWith, failed);
      case "pull":
      case "rescue":
        return this.pull(step.record, step.address, step.againstIncoming, failed);
    }
  }

  /** The planner found every root holding `pub` (idle): nothing to pull; record the pass (what pull() does after an empty root pass). */
  private holding(pub: SyncGeneration, failed: Map<string, unknown>): StepOutcome {
    for (const r of this.ledger.roots) if (!failed.has(r.name)) this.ledger.outcomes.clear(r.name);
    if (failed.size > 0) return this.end(false, failed);
    this.trackLag();
    this.deps.onProgress?.();
    return { ...this.end(true, failed), reason: inSyncReason(pub) };
  }

  private end(done: boolean, failed: ReadonlyMap<string, unknown>): StepOutcome {
    if (failed.size === 0) {
      this.trackLag();
      return { done };
    }
    this.rootsFailed(failed);
    throw new RootFailures(failed);
  }

  /** Local files that differ from what this node last published or applied are rescued, and the root is pulled again. */
  private async verifyRoot(r: EngineRoot): Promise<void> {
    const { ledger } = this;
    const known = ledger.known.get(r.name);
    if (known === undefined) {
      // Never synced: rescue is decided against the staged copy, after the pull.
      ledger.forget(r.name);
      return;
    }
    const live = await this.readLive(r);
    if (live.digest === known.digest) return;
    this.deps.log.info({ root: r.name, known: known.digest, live: live.digest }, "sync: verify found live files that differ from the last synced state; rescuing them and pulling the root again");
    await this.rescue(r, known, live);
    ledger.forget(r.name);
  }

  /** The live root's manifest; a root that does not exist holds nothing. */
  private readLive(r: EngineRoot, opts: WalkOptions = {}): Promise<Manifest> {
    return buildManifest(r, r.path, this.ledger.cache, this.ledger.reader, opts).catch((e: unknown) => {
      // The root itself is missing (never synced, or removed): it holds nothing. Below it, a path
      // deleted during the walk is simply not in the tree (buildManifest).
      if (isUnderstudyError(e, "US_E_SYNC_UNREADABLE") && e.details.path === "." && /ENOENT/.test(describeError(e))) return manifestOf(r.name, []);
      throw e;
    });
  }

  /** Returns true when files were moved out of the live root. `live`: its manifest, when just built. */
  private async rescue(r: EngineRoot, reference: Manifest | undefined, live?: Manifest, quietRemovals = false): Promise<boolean> {
    const { store, clock, log, fs } = this.deps;
    const result = await rescueDivergent({
      root: r,
      lastKnown: reference,
      rescueBase: store.rescueBase,
      clock,
      fs,
      cache: this.ledger.cache,
      ...(this.ledger.reader ? { hasher: this.ledger.reader } : {}),
      ...(live ? { live } : {}),
    });
    if (!result) return false;
    if (result.files.length === 0) {
      if (!quietRemovals) log.info({ root: r.name, removed_since_known: result.removedSinceKnown }, "sync: files removed locally since the last sync; nothing to rescue");
      return false;
    }
    log.warn({ root: r.name, dir: result.dir, files: result.files, removed_since_known: result.removedSinceKnown }, "sync: rescued local files that differ from the last synced state");
    this.rescueCount++;
    this.rescues.push({ root: r.name, dir: result.dir, files: result.files.length, at: this.ledger.nowIso() });
    if (this.rescues.length > RESCUES_KEPT) this.rescues.shift();
    this.ledger.emit({ type: "rescued", root: r.name, result });
    return true;
  }

  /** Pull and apply whatever differs from `pub`; record the generation once every root holds it. */
  private async pull(pub: SyncGeneration, address: string, againstIncoming: readonly string[], failed: Map<string, unknown>): Promise<StepOutcome> {
    const { store, log } = this.deps;
    const ledger = this.ledger;
    // Roots are independent (root-pass.ts): stage every changed root, check each, apply the checked ones.
    // Of what understudy runs between a root's check and its apply, only a validator (its own,
    // another root's) is handed a staged path; per-root hooks (post_sync, a post_publish still
    // running from a term as primary) get live paths but count too, out of caution. With none
    // configured, the apply takes the checks' manifest instead of walking staging again.
    const checked = new Map<string, Manifest>();
    const checkMs = new Map<string, number>();
    const trustChecks = !ledger.roots.some((r) => r.validate !== undefined || r.postSync !== undefined || r.postPublish !== undefined);
    const { staged, aborted } = await runRootPass<EngineRoot>(
      {
        roots: ledger.roots,
        ordered: ledger.ordered,
        want: pub.roots,
        held: () => ledger.held.roots,
        stage: (r) => this.stageRoot(r, address),
        check: async (r, stage, named) => {
          const t0 = this.deps.clock.monotonicMs();
          const c = await checkStaged({ ...this.applyOptions(r, stage.dir, pub.roots[r.name]!), ...(r.validate ? { validate: r.validate } : {}), named });
          checkMs.set(r.name, this.deps.clock.monotonicMs() - t0);
          if (trustChecks) checked.set(r.name, c.staged);
        },
        apply: (r, stage) => this.applyRoot(r, stage, pub, againstIncoming.includes(r.name), checked.get(r.name), checkMs.get(r.name) ?? 0),
        aborted: this.aborted,
      },
      failed,
    );
    if (aborted) return { done: false, reason: "aborted: closed or promoted during the pull" };
    for (const r of ledger.roots) if (!failed.has(r.name) && !staged.has(r.name)) ledger.outcomes.clear(r.name);
    if (failed.size > 0) return this.end(false, failed);
    if (ledger.held.generation !== pub.generation) {
      ledger.held = { generation: pub.generation, roots: { ...pub.roots } };
      await store.saveHeld(ledger.held);
      log.info({ generation: pub.generation, source: pub.source }, "sync: in sync with the primary's generation");
      ledger.emit({ type: "synced", generation: pub.generation });
    }
    this.trackLag();
    this.deps.onProgress?.();
    return { ...this.end(true, failed), reason: inSyncReason(pub) };
  }

  private rootsFailed(failed: ReadonlyMap<string, unknown>): void {
    const at = this.ledger.nowIso();
    for (const r of this.ledger.roots) if (failed.has(r.name)) this.rootFailed(r, failed.get(r.name), at);
  }

  private rootFailed(r: EngineRoot, e: unknown, at: string): void {
    const { ledger } = this;
    const code = isUnderstudyError(e) ? e.code : "US_E_UNEXPECTED";
    const message = describeError(e);
    if (code === "US_E_SYNC_DIGEST_MISMATCH") {
      this.checksumNext.add(r.name);
      this.deps.log.info({ root: r.name }, "sync: the staged files did not match the published digest; the next pull of this root compares checksums, not size and time");
    }
    if (code === "US_E_SYNC_APPLY_FAILED") {
      // Some files went live: what is live is no longer what we knew.
      this.deps.log.info({ root: r.name }, "sync: an apply failed half-way; forgetting what this root held and verifying it before the next pull");
      ledger.forget(r.name);
      if (!this.verifyPending.has(r.name)) this.verifyPending.set(r.name, "an apply failed half-way");
      ledger.known.set(r.name, undefined);
    }
    ledger.outcomes.fail(r.name, { code, message, at });
    this.deps.log.warn(
      { root: r.name, code, err: message, failures: ledger.outcomes.get(r.name).failures },
      "sync: root failed; its live files are unchanged where the check failed, the other roots go on",
    );
    ledger.emit({ type: "failed", code, message, root: r.name });
  }

  private applyOptions(r: EngineRoot, stagedDir: string, want: string) {
    const { runner, settings, fs } = this.deps;
    return {
      root: r,
      stagedDir,
      expected: { digest: want },
      runner,
      fs,
      cache: this.ledger.cache,
      validateTimeoutMs: settings.validateTimeoutMs,
      ...(this.ledger.reader ? { hasher: this.ledger.reader } : {}),
      ...(r.maxMode !== undefined ? { requiredMode: r.maxMode } : {}),
      ...(r.owner ? { owner: r.owner } : {}),
    };
  }

  /** Pull one root into its staging directory. */
  private async stageRoot(r: EngineRoot, address: string): Promise<Staged> {
    const { puller, clock } = this.deps;
    const staging = await prepareStagingDir(r);
    const checksum = this.checksumNext.has(r.name);
    const t0 = clock.monotonicMs();
    const writeBehind = new WriteBehind(this.deps.runner, clock, staging);
    try {
      // The root by name: each node's rsync daemon maps it to that node's own path.
      await puller.pull({ primary: address, root: r.name, staging, exclude: r.exclude, checksum, copyDest: r.path });
    } finally {
      await writeBehind.stop();
    }
    return { dir: staging, pullMs: clock.monotonicMs() - t0 };
  }

  /** Move a checked staged root into place (its checks run again, cheaply, on the cached hashes, unless `checked` is given), then its post_sync. `checkMs`: how long its check took (logged). */
  private async applyRoot(r: EngineRoot, stage: Staged, pub: SyncGeneration, againstIncoming: boolean, checked: Manifest | undefined, checkMs: number): Promise<void> {
    const { store, runner, clock, settings, log, node } = this.deps;
    const ledger = this.ledger;
    const want = pub.roots[r.name]!;
    const generation = pub.generation;
    const t1 = clock.monotonicMs();
    // Before any live change, once the staged tree passed every check: keep what differs from
    // what this node last applied (a local edit made since the last verify would otherwise be
    // overwritten or deleted by this apply), or, on a first sync, from the incoming files; or,
    // when this node's own last publication was displaced (planner: rescue), from the incoming files.
    const known = ledger.known.get(r.name);
    let round = 0;
    let summary: ApplySummary;
    // From the first live change until the new known manifest is saved, a stop waits (PassWatch):
    // cut here, the next start would take the primary's files already in place for local edits.
    this.applying++;
    try {
      summary = await applyStaged({
        ...this.applyOptions(r, stage.dir, want),
        ...(checked ? { checked } : {}),
        // Called again while it rescues (an edit made during a rescue); the files it moved out then read
        // as removed locally, which is no news after the first round.
        beforeApply: (target: Manifest, live: Manifest) => this.rescue(r, againstIncoming ? target : (known ?? target), live, ++round > 1),
      });
      this.checksumNext.delete(r.name);
      if (pub.displaced?.source === node) this.displacementHandled.add(`${pub.term}/${r.name}`);
      await store.saveKnown(r.name, summary.manifest);
      ledger.known.set(r.name, summary.manifest);
      ledger.held = { generation: ledger.held.generation, roots: { ...ledger.held.roots, [r.name]: want } };
      await store.saveHeld(ledger.held);
    } finally {
      this.applying--;
    }
    ledger.outcomes.ok(r.name, ledger.nowIso());
    const applyMs = clock.monotonicMs() - t1;
    const changed = [...summary.added, ...summary.changed, ...summary.removed].sort(compare);
    log.info(
      {
        root: r.name,
        generation,
        added: summary.added.length,
        changed: summary.changed.length,
        removed: summary.removed.length,
        bytes: summary.bytes,
        pull_ms: Math.round(stage.pullMs),
        check_ms: Math.round(checkMs),
        apply_ms: Math.round(applyMs),
        notes: summary.notes,
      },
      "sync: applied",
    );
    ledger.emit({ type: "applied", root: r.name, generation, pullMs: stage.pullMs, checkMs, applyMs, summary });
    if (changed.length > 0 && r.postSync) {
      const job = { hook: "post_sync", root: r.name, path: r.path, argv: r.postSync, generation, changed } as const;
      ledger.hookDone(job, await runRootHook(job, runner, clock, settings.postSyncTimeoutMs));
    }
  }
}
