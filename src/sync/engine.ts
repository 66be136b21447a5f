// The sync engine (docs/architecture.md, "File sync"), a thin shell like the HA loop: observe,
// plan (plan.ts, pure, with a reason sentence), execute (primary-side.ts:
// watch, rebuild, publish under the term; standby-side.ts: verify, rescue,
// pull, apply). The reason of the latest step is logged when it changes and
// published in the member key, beside the generation this node holds (the HA
// loop's candidate ranking and promotion gate read that).
//
// Passes run one at a time on a SerialRunner; triggers that arrive meanwhile
// fold into one more pass. Failures retry with exponential backoff (planRetry),
// and a newly published generation retries at once.
import { describeError } from "../errors/catalogue.js";
import type { MemberSyncSummary } from "../coordinator/port.js";
import type { TimerHandle } from "../platform/clock.js";
import { SerialRunner } from "../platform/serial.js";
import type { SyncEngineDeps, SyncEvent, SyncStatus, SyncView } from "./engine-types.js";
import { isBehind } from "../coordinator/port.js";
import type { FileHashService } from "./hasher.js";
import { SyncLedger } from "./ledger.js";
import type { Manifest } from "./manifest.js";
import { planFollow, planRetry, planStep, type SyncObservation, type SyncSide, type SyncStep } from "./plan.js";
import { PrimarySide, type StepOutcome } from "./primary-side.js";
import { RootFailures, summarizeFailure } from "./root-pass.js";
import { StandbySide } from "./standby-side.js";
import { EMPTY_STATE } from "./state.js";
import { PassWatch } from "./pass-watch.js";
import { RootSweep } from "./sweep.js";

export type { EngineRoot, Puller, SyncEngineDeps, SyncEvent, SyncSettings, SyncStatus, SyncView } from "./engine-types.js";
export { combinedDigest } from "./generation.js";

export class SyncEngine {
  private side: SyncSide = "standby";
  private readonly ledger: SyncLedger;
  private readonly primary: PrimarySide;
  private readonly standby: StandbySide;
  private readonly hasher: FileHashService | undefined;
  private readonly runner: SerialRunner;
  /** The periodic reconcile (primary) and verify (standby), off the pass. */
  private readonly sweep: RootSweep;
  private view: SyncView | null = null;
  private verifyTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  private failures = 0;
  private lastSuccessAtMs: number | null = null;
  private behindSinceMs: number | null = null;
  private behindSinceWallMs: number | null = null;
  private waiting: string | null = null;
  /** The reason of the latest step (planner, record or retry), as logged and published. */
  private reason: string | null = null;
  private stepReason = "";
  /** The running pass in status, a warning when it runs long, a bounded wait at close. */
  private readonly passWatch: PassWatch;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly deps: SyncEngineDeps) {
    this.hasher = deps.hasher;
    this.ledger = new SyncLedger(deps, deps.hasher);
    this.primary = new PrimarySide(
      deps,
      this.ledger,
      (why) => this.runner.trigger(why),
      () => this.closed,
    );
    this.standby = new StandbySide(
      deps,
      this.ledger,
      () => this.closed || this.side !== "standby",
      () => this.trackLag(),
      (why) => this.runner.trigger(why),
    );
    this.runner = new SerialRunner(
      () => this.pass(),
      (e) => deps.log.error({ err: describeError(e) }, "sync pass threw past its own error handling"),
    );
    this.sweep = new RootSweep(this.ledger.roots, deps.log, deps.clock, this.runner);
    this.passWatch = new PassWatch(
      deps.clock,
      deps.log,
      () => this.stepReason,
      () => this.side,
    );
  }

  /** Load the held state; an untrusted state file counts as holding nothing (every root is verified and pulled). */
  async start(): Promise<void> {
    const { store, log } = this.deps;
    const ledger = this.ledger;
    await store.init();
    try {
      ledger.held = await store.loadHeld();
    } catch (e) {
      log.error({ err: describeError(e) }, "sync state unusable; treating every root as not synced");
      ledger.held = EMPTY_STATE;
    }
    for (const r of ledger.roots) {
      try {
        ledger.known.set(r.name, await store.loadKnown(r.name));
      } catch (e) {
        log.error({ err: describeError(e), root: r.name }, "last known manifest unusable; local files that differ from the primary's will be rescued");
        ledger.known.set(r.name, undefined);
      }
    }
    this.standby.verifyAll("agent start");
    this.armVerify();
  }

  onEvent(listener: (e: SyncEvent) => void): void {
    this.ledger.onEvent(listener);
  }

  /** The generation this node holds in full, for the member key. */
  generation(): number {
    return this.ledger.held.generation;
  }

  /** Since when (monotonic ms) this standby has been behind the published generation; null when it is not. */
  behindSince(): number | null {
    return this.behindSinceMs;
  }

  /** After each HA cycle: switch sides on a role change and chase the published generation (planFollow). */
  follow(view: SyncView): void {
    if (this.closed) return;
    const { log } = this.deps;
    const plan = planFollow({
      node: this.deps.node,
      side: this.side,
      term: this.primary.term,
      held: this.ledger.held.generation,
      published: this.ledger.published,
      view,
      retryArmed: this.retryTimer !== undefined,
    });
    this.ledger.published = plan.published;
    this.view = view;
    if (plan.turn !== null) this.sweep.abort(); // its reference belongs to the other side
    if (plan.turn?.to === "primary") {
      this.side = "primary";
      this.primary.enter(plan.turn.term, plan.turn.displaced);
      log.info({ term: plan.turn.term, reason: plan.reason }, "sync: primary side: watching the roots and publishing generations");
      this.runner.trigger(plan.reason);
    } else if (plan.turn?.to === "standby") {
      this.side = "standby";
      this.primary.leave().catch((e: unknown) => log.warn({ err: describeError(e) }, "sync: stopping the primary side's watcher failed"));
      // What this node edited but did not publish must be rescued before it pulls.
      this.standby.verifyAll("stepped down from primary");
      log.info({ reason: plan.reason }, "sync: standby side: following the primary's generations");
      this.runner.trigger(plan.reason);
    }
    this.trackLag();
    if (plan.cancelRetry) this.cancelRetry();
    if (plan.kick) this.runner.trigger(plan.reason);
  }

  /** Force a full resync: a standby re-pulls every root with checksums; a primary rebuilds and republishes. */
  resync(): void {
    if (this.side === "primary") {
      this.primary.requestFull("resync requested");
    } else {
      this.ledger.held = { generation: 0, roots: {} };
      this.standby.verifyAll("resync requested");
      for (const r of this.ledger.roots) this.standby.checksumNext.add(r.name);
      this.trackLag();
    }
    this.cancelRetry();
    this.runner.trigger("resync");
  }

  /** The part of status() every node publishes in its member key. */
  memberSummary(): MemberSyncSummary {
    const e = this.ledger.lastError;
    return {
      behindSince: this.behindSinceWallMs === null ? null : new Date(this.behindSinceWallMs).toISOString(),
      lastSuccessAt: this.lastSuccessAtMs === null ? null : new Date(this.lastSuccessAtMs).toISOString(),
      lastError: e ? e.message : null,
      failures: this.failures,
      rescues: this.standby.rescueCount,
      waiting: this.waiting,
      failedRoots: this.ledger.outcomes.failing(),
      ...(this.reason !== null ? { step: this.reason } : {}),
    };
  }

  /** The manifest of a root as this node knows it (primary: live; standby: last applied). */
  manifest(root: string): Manifest | undefined {
    return this.side === "primary" ? (this.primary.manifest(root) ?? this.ledger.known.get(root)) : this.ledger.known.get(root);
  }

  status(): SyncStatus {
    const { clock, node } = this.deps;
    const { held, roots, outcomes } = this.ledger;
    const p = this.ledger.published;
    const now = clock.monotonicMs();
    return {
      node,
      role: this.side,
      generation: held.generation,
      published: p ? { generation: p.generation, digest: p.digest, source: p.source, term: p.term, publishedAt: p.publishedAt, ...(p.displaced ? { displaced: p.displaced } : {}) } : null,
      // In sync unless behind (isBehind): a node holding a newer generation than the record is not lagging.
      inSync: p === null ? held.generation === 0 : !isBehind(held.generation, p),
      behindSince: this.behindSinceWallMs === null ? null : new Date(this.behindSinceWallMs).toISOString(),
      lagMs: this.behindSinceMs === null ? (p === null || !isBehind(held.generation, p) ? 0 : null) : Math.round(now - this.behindSinceMs),
      lastSuccessAt: this.lastSuccessAtMs === null ? null : new Date(this.lastSuccessAtMs).toISOString(),
      lastError: this.ledger.lastError,
      failures: this.failures,
      waiting: this.waiting,
      ...(this.reason !== null ? { step: this.reason } : {}),
      running: this.passWatch.running(),
      roots: roots.map((r) => {
        const m = this.manifest(r.name);
        const files = m ? m.entries.filter((e) => e.type === "file") : null;
        const o = outcomes.get(r.name);
        // A standby's root is in sync when its live files are the published ones; a primary's always are.
        const inSync = this.side === "primary" || (p === null ? true : held.roots[r.name] === p.roots[r.name]);
        return {
          name: r.name,
          path: r.path,
          digest: m?.digest ?? null,
          files: files?.length ?? null,
          bytes: files ? files.reduce((n, e) => n + e.size, 0) : null,
          inSync,
          failures: o.failures,
          lastError: o.lastError,
          lastSuccessAt: o.lastSuccessAt,
          lastHook: o.lastHook,
        };
      }),
      rescues: [...this.standby.rescues],
    };
  }

  /** Stop: no new pass, the running one awaited (at most 10 s: PassWatch), then the hooks, puller and hasher. Once, however often called. */
  close(): Promise<void> {
    return (this.closing ??= this.shut());
  }

  private async shut(): Promise<void> {
    this.closed = true;
    this.verifyTimer?.cancel();
    this.retryTimer?.cancel();
    const idle = this.runner.stop();
    this.sweep.abort();
    await this.primary.close();
    // The sweep was aborted; it ends at its next file, unless that file cannot be read either.
    await this.passWatch.endOrLeave(
      Promise.all([idle, this.sweep.idle()]).then(() => undefined),
      () => this.standby.applying > 0,
    );
    await this.primary.closeHooks();
    await this.deps.puller.close();
    await this.hasher?.close();
    await this.deps.onClose?.().catch(() => undefined);
  }

  // ------------------------------------------------------------------ passes

  /** What the planner sees now. `failed`: roots that already failed in this pass (not verified again). */
  private observe(failed: ReadonlyMap<string, unknown>): SyncObservation {
    const due = new Map<string, string>();
    for (const r of this.ledger.roots) {
      const why = this.standby.verifyPending.get(r.name);
      if (why !== undefined && !failed.has(r.name)) due.set(r.name, why);
    }
    return {
      nowMs: this.deps.clock.monotonicMs(),
      node: this.deps.node,
      side: this.side,
      term: this.primary.term,
      held: this.ledger.held,
      published: this.ledger.published,
      leader: this.view?.leader ?? null,
      roots: this.ledger.roots.map((r) => r.name),
      rebuild: this.primary.rebuildDue(),
      fullRebuild: this.primary.fullDue(),
      verifyDue: due,
      displacementHandled: this.standby.displacementHandled,
      behindSinceMs: this.behindSinceMs,
    };
  }

  private async pass(): Promise<void> {
    this.ledger.passNote = null;
    this.passWatch.began();
    try {
      const outcome = this.side === "primary" ? await this.primaryPass() : await this.standbyPass();
      this.noteReason(outcome.reason ?? this.stepReason);
      if (outcome.done) this.succeeded();
    } catch (e) {
      this.failed(e);
    } finally {
      this.passWatch.ended();
    }
  }

  private async primaryPass(): Promise<StepOutcome> {
    if (this.primary.term !== null) {
      this.stepReason = "primary side: starting the watcher on the roots";
      await this.primary.ensureWatcher();
    }
    const step = this.planned(new Map());
    if (step.kind === "publish") return this.primary.publish(step);
    return { done: step.kind === "idle" };
  }

  /** Verify first (when due), then one more step; a root that fails anywhere fails the pass after the others went on. */
  private async standbyPass(): Promise<StepOutcome> {
    const failed = new Map<string, unknown>();
    let step = this.planned(failed);
    if (step.kind === "verify") {
      await this.standby.verify(step, failed);
      step = this.planned(failed);
    }
    // Asked to verify again while verifying (the periodic verify, a resync) or promoted meanwhile: not a
    // failure (it was reported as US_E_UNEXPECTED and retried with backoff); one more pass at once.
    if (step.kind === "verify" || step.kind === "publish") {
      this.runner.trigger(step.kind === "verify" ? "verify asked again during a verify" : "promoted during a verify");
      // A root whose verify failed is still reported (log, event, backoff) before the next pass.
      if (failed.size > 0) return this.standby.run({ kind: "wait", waiting: "another pass", reason: step.reason }, failed);
      return { done: false, reason: step.reason };
    }
    this.waiting = step.kind === "wait" ? step.waiting : null;
    return this.standby.run(step, failed);
  }

  /** Each step's reason at debug level; the one a pass ends with is noted (noteReason). */
  private planned(failed: ReadonlyMap<string, unknown>): SyncStep {
    const step = planStep(this.observe(failed));
    this.stepReason = step.reason;
    this.deps.log.debug({ side: this.side, step: step.kind }, `sync step: ${step.reason}`);
    return step;
  }

  /** The reason a pass ended with: logged when it changes, like the HA loop's decision. */
  private noteReason(reason: string): void {
    if (reason === this.reason) return;
    this.reason = reason;
    this.deps.log.info({ side: this.side }, `sync: ${reason}`);
  }

  private succeeded(): void {
    const ledger = this.ledger;
    this.lastSuccessAtMs = this.deps.clock.wallMs();
    if (this.failures > 0 || ledger.lastError) this.deps.log.info({ after_failures: this.failures }, "sync recovered");
    this.failures = 0;
    ledger.lastError = ledger.passNote;
    this.cancelRetry();
  }

  private failed(e: unknown): void {
    if (this.closed) return;
    // Roots that failed in a standby pass were each reported (log, event) already; the pass
    // reports the first one, naming the others, and retries them all with one backoff.
    const { code, message, allMismatch } = summarizeFailure(e);
    this.failures++;
    this.ledger.lastError = { code, message, at: this.ledger.nowIso() };
    const retry = planRetry(this.failures, allMismatch, this.deps.settings.retryMaxMs);
    if (e instanceof RootFailures) {
      this.deps.log.warn(
        { roots: [...e.failures.keys()], failures: this.failures, retry_in_ms: retry.delayMs },
        "sync pass incomplete: the roots named failed and are retried; the other roots are in sync",
      );
    } else {
      this.deps.log.warn({ err: message, code, failures: this.failures, retry_in_ms: retry.delayMs }, "sync failed; live files unchanged where the check failed");
      this.ledger.emit({ type: "failed", code, message });
    }
    this.noteReason(`failed (${code}); ${retry.reason}`);
    this.retryTimer?.cancel();
    this.retryTimer = this.deps.clock.setTimer(retry.delayMs, () => {
      this.retryTimer = undefined;
      this.runner.trigger("retry");
    });
    this.deps.onProgress?.();
  }

  private cancelRetry(): void {
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
  }

  /** Behind (generation.ts isBehind) only on the standby side; since when, on both clocks. */
  private trackLag(): void {
    const behind = this.side === "standby" && isBehind(this.ledger.held.generation, this.ledger.published);
    if (behind && this.behindSinceMs === null) {
      this.behindSinceMs = this.deps.clock.monotonicMs();
      this.behindSinceWallMs = this.deps.clock.wallMs();
    } else if (!behind) {
      this.behindSinceMs = null;
      this.behindSinceWallMs = null;
    }
  }

  /** Every reconcile_interval: a sweep of every root on this side, beside the passes (sweep.ts), never in one. */
  private armVerify(): void {
    if (this.closed) return;
    this.verifyTimer = this.deps.clock.setTimer(this.deps.settings.reconcileMs, () => {
      if (this.side === "standby") this.sweep.start(this.standby.sweepTarget);
      else if (this.primary.term !== null) {
        // And a pass, as the reconcile always ended with: a record left unpublished (a refused put)
        // is compared with the live manifests and put again. Nothing to rebuild: one comparison.
        // Not while a retry is armed (its backoff decides), and first, so the sweep yields to it.
        if (this.retryTimer === undefined) this.runner.trigger("periodic reconcile");
        this.sweep.start(this.primary.sweepTarget);
      }
      this.armVerify();
    });
  }

  /** Sweeps finished and roots they handed to a pass (tests, status). */
  sweepCounts(): { readonly sweeps: number; readonly drifts: number } {
    return { ...this.sweep.counts };
  }
}
