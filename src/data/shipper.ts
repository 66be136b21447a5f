// The primary's data shipper for one term (docs/data-replication-design.md §4):
// the executor of ship-plan.ts. One SerialRunner per standby, so a slow or
// full standby never delays another; each run asks planShip for every root
// and runs the rsync its step names (batch or full pass) with the sync
// transport's ssh argv, then advances that standby's cursor (success) or
// records the failure (classifyShipFailure, afterFailure). stop() aborts every
// child (SIGTERM, SIGKILL 1 s later: command.ts) and waits for them.
import { describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { SerialRunner } from "../platform/serial.js";
import type { SshTransport } from "../sync/transport-ssh.js";
import type { ChangeJournal } from "./journal.js";
import { batchArgv, batchCommand, type DataRsyncOptions } from "./rsync-argv.js";
import { runFullPass, type FullPassResult } from "./full-pass.js";
import { targetStatus, type TargetStatus } from "./ship-status.js";
import { runShipRsync, WarmRsyncs } from "./warm-rsync.js";
import type { RejoinAgent } from "./rejoin-agent.js";
import { afterFailure, classifyShipFailure, planShip, type StandbyShipState, type StandbyStep } from "./ship-plan.js";

export type { TargetStatus };

export interface ShipRoot {
  readonly name: string;
  readonly path: string;
  readonly journal: ChangeJournal;
  /** The watcher is in place: nothing ships before (a full pass must see every later event). */
  ready(): boolean;
  /**
   * Why the root cannot be watched (the kernel's inotify limit), or null. It ships anyway, by a
   * full pass after each watcher retry, and its standbys' lag is unknown (`full`) meanwhile.
   */
  degraded?(): string | null;
}

export interface ShipSettings {
  readonly fsync: boolean;
  readonly shipTimeoutMs: number;
  readonly maxBatchFiles: number;
  readonly maxBatchBytes: number;
  readonly reserveBytes: number;
  readonly maxDelete: number;
  readonly retryMaxMs: number;
  /** data.disk_full_retry. */
  readonly diskFullRetryMs?: number;
  readonly rsyncPath: string;
  readonly sshUser: string;
  /** data.warm_batch: the next batch's rsync starts ahead and waits this long for its list (warm-rsync.ts); absent or 0: off. */
  readonly warmMs?: number;
}

export interface ShipperDeps {
  readonly node: string;
  readonly term: number;
  readonly roots: readonly ShipRoot[];
  readonly settings: ShipSettings;
  readonly ssh: SshTransport;
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  /** A standby's cursor or state changed (progress, status). */
  readonly onChange?: () => void;
  /** Loss-free rejoin: pulls and merges a former primary's files (rejoin-agent.ts). Absent: a pending member just waits. */
  readonly rejoin?: Pick<RejoinAgent, "run">;
  /** One rsync run finished (understudy_data_ship_runs_total); not called for runs aborted by stop. */
  readonly onRun?: (run: { readonly standby: string; readonly kind: "batch" | "full"; readonly result: "ok" | "error" }) => void;
}

/** What the HA loop's snapshot says of one other member. */
export interface ShipMember {
  readonly node: string;
  readonly address: string | null;
  readonly receiving: number | null;
  readonly rejoinPending: boolean;
  readonly freeBytes: number | null;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type RootState = Mutable<Omit<StandbyShipState, "node" | "address" | "followingTerm" | "rejoinPending" | "freeBytes">> & {
  step: string;
  lastSuccessAtMs: number | null;
  /**
   * A full pass to it stopped at data.max_delete (rsync exit 25) in this term. rsync deletes the
   * first max_delete files before it stops, so retrying the same pass would delete that many more
   * every time: later full passes to it run with --max-delete=0 (copy, delete nothing) until this
   * primary side ends (agent restart, another primary). Deletions listed in batches still apply.
   */
  deleteLimited: boolean;
  /** A sync of this standby's data volume failed, or a barrier's outcome is unknown (full-pass.ts): the next full pass sends every file again, fsynced. */
  rewrite: boolean;
};

interface Target {
  member: ShipMember;
  readonly runner: SerialRunner;
  readonly abort: AbortController;
  readonly roots: Map<string, RootState>;
  retry: TimerHandle | undefined;
  /** Its files were merged here in this term (data/rejoin/<node> done): wait until it opens this term's module. */
  rejoinDone: boolean;
  /** Batch rsyncs started ahead, one per root (null: data.warm_batch is off). */
  readonly warm: WarmRsyncs | null;
}

export class Shipper {
  private readonly targets = new Map<string, Target>();
  private stopped = false;

  constructor(private readonly deps: ShipperDeps) {}

  /** The other members as the last snapshot showed them: new ones get a runner (and a full pass), gone ones are stopped. */
  update(members: readonly ShipMember[]): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const m of members) {
      if (m.node === this.deps.node) continue;
      seen.add(m.node);
      const t = this.targets.get(m.node);
      if (t) {
        const changed = JSON.stringify(t.member) !== JSON.stringify(m);
        t.member = m;
        if (changed) t.runner.trigger("member changed");
      } else {
        this.add(m);
      }
    }
    for (const [node, t] of this.targets) if (!seen.has(node)) void this.drop(node, t);
  }

  /** New ready entries (or a retry came due): every standby looks again. */
  kick(why: string): void {
    if (this.stopped) return;
    for (const t of this.targets.values()) t.runner.trigger(why);
  }

  /**
   * A file under `root` is being written (its close ships it): every standby whose next step would
   * be a batch of this term gets a warm rsync now (warm-rsync.ts), unless one waits already, so an
   * upload after a quiet spell does not wait for the connection either. No-op with warm_batch 0s.
   */
  prewarm(rootName: string): void {
    if (this.stopped) return;
    const root = this.deps.roots.find((r) => r.name === rootName);
    if (!root) return;
    for (const t of this.targets.values()) {
      const m = t.member;
      const s = t.roots.get(rootName);
      if (!t.warm || m.address === null || m.receiving !== this.deps.term || m.rejoinPending || !s || s.cursor === null || s.failures > 0) continue;
      if (t.warm.start(rootName, batchArgv(false, this.options(root, m.address, this.deps.term)), t.abort.signal)) {
        this.deps.log.debug({ standby: m.node, root: rootName }, "data: an upload began; the batch rsync connects meanwhile");
      }
    }
  }

  /** A full pass to every standby at its next run (periodic reconcile, POST /resync). */
  askFullPass(why: string): void {
    for (const t of this.targets.values()) for (const s of t.roots.values()) s.fullPassAsked = why;
    this.kick("full pass asked");
  }

  /** Kills every running rsync (SIGTERM, SIGKILL after 1 s) and resolves when none is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.targets.entries()].map(([node, t]) => this.drop(node, t)));
  }

  status(): TargetStatus[] {
    const now = this.deps.clock.monotonicMs();
    return [...this.targets.values()].map((t) => targetStatus(t.member.node, this.deps.roots, (root) => this.stateOf(t, root), now));
  }

  /**
   * Entries every standby acknowledged leave the journal. Nothing is trimmed while a standby has no
   * cursor (its full pass is planned or running, or it is paused or rejoining): its pass ends at the
   * head it was planned at, and the changes after that head must still be there for its batches.
   * Memory stays bounded by data.max_ready (overflow raises the floor: a full pass for the laggards).
   */
  private trim(root: ShipRoot): void {
    let min: number | null = null;
    for (const t of this.targets.values()) {
      const c = t.roots.get(root.name)?.cursor ?? null;
      if (c === null) return;
      min = min === null ? c : Math.min(min, c);
    }
    if (min !== null) root.journal.trim(min);
  }

  private add(m: ShipMember): void {
    const abort = new AbortController();
    const target: Target = {
      member: m,
      abort,
      roots: new Map(),
      retry: undefined,
      rejoinDone: false,
      warm:
        (this.deps.settings.warmMs ?? 0) > 0
          ? new WarmRsyncs({ runner: this.deps.runner, clock: this.deps.clock, idleMs: this.deps.settings.warmMs!, shipTimeoutMs: this.deps.settings.shipTimeoutMs })
          : null,
      runner: new SerialRunner(
        () => this.run(target),
        (e) => this.deps.log.error({ standby: m.node, err: describeError(e) }, "data shipping run failed"),
      ),
    };
    this.targets.set(m.node, target);
    target.runner.trigger("standby appeared");
  }

  private async drop(node: string, t: Target): Promise<void> {
    if (this.targets.get(node) === t) this.targets.delete(node);
    t.retry?.cancel();
    t.abort.abort();
    await t.runner.stop();
    // The runs waiting for a list were killed by the abort too: none outlives the stop.
    await t.warm?.settled();
  }

  private stateOf(t: Target, root: string): RootState {
    let s = t.roots.get(root);
    if (!s) {
      s = { cursor: null, fullPassAsked: null, failures: 0, retryAtMs: null, lastError: null, diskFull: false, step: "not planned yet", lastSuccessAtMs: null, deleteLimited: false, rewrite: false };
      t.roots.set(root, s);
    }
    return s;
  }

  /** One run for one standby: each root's step, then once more while work remains. */
  private async run(t: Target): Promise<void> {
    const { deps } = this;
    let again = false;
    let retryAt: number | null = null;
    let rejoinTried = false;
    for (const root of deps.roots) {
      if (t.abort.signal.aborted) return;
      if (!root.ready()) continue;
      const s = this.stateOf(t, root.name);
      const m = t.member;
      const plan = planShip({
        nowMs: deps.clock.monotonicMs(),
        node: deps.node,
        primary: true,
        term: deps.term,
        journal: root.journal,
        standbys: [
          { ...s, node: m.node, address: m.address, followingTerm: m.receiving, rejoinPending: m.rejoinPending && deps.rejoin !== undefined, rejoinDone: t.rejoinDone, freeBytes: m.freeBytes },
        ],
        maxBatchFiles: deps.settings.maxBatchFiles,
        maxBatchBytes: deps.settings.maxBatchBytes,
        reserveBytes: deps.settings.reserveBytes,
      });
      const step = plan.kind === "ship" ? plan.steps[0] : undefined;
      if (!step) continue;
      if (step.reason !== s.step && step.kind !== "batch") deps.log.info({ standby: m.node, root: root.name }, step.reason);
      s.step = step.reason;
      if (step.kind === "full" || step.kind === "batch") {
        if (await this.ship(t, root, s, step)) again = true;
      }
      if (step.kind === "rejoin" && !rejoinTried) {
        rejoinTried = true;
        if (await this.rejoin(t, step)) again = true;
      }
      if (s.failures > 0 && s.retryAtMs !== null) retryAt = retryAt === null ? s.retryAtMs : Math.min(retryAt, s.retryAtMs);
    }
    deps.onChange?.();
    if (t.abort.signal.aborted) return;
    if (again) t.runner.trigger("more");
    else if (retryAt !== null) {
      t.retry?.cancel();
      t.retry = deps.clock.setTimer(Math.max(0, retryAt - deps.clock.monotonicMs()), () => t.runner.trigger("retry due"));
    }
  }

  /** Pulls and merges a former primary's files (every root at once); true when data/rejoin/<node> done was written. */
  private async rejoin(t: Target, step: Extract<StandbyStep, { kind: "rejoin" }>): Promise<boolean> {
    const { deps } = this;
    const node = t.member.node;
    const journal = (rootName: string, path: string, kind: "file" | "dir"): void => {
      const root = deps.roots.find((r) => r.name === rootName);
      if (!root) return;
      const now = deps.clock.monotonicMs();
      root.journal.record(kind === "dir" ? { kind: "dir", path } : { kind: "closed", path }, now);
      root.journal.stabilise(now);
    };
    try {
      const r = await deps.rejoin!.run(node, step.address, step.term, journal, t.abort.signal);
      if (!r.done || t.abort.signal.aborted) return false;
      t.rejoinDone = true;
      // Its tree differs from this one until a full pass: no cursor in this journal.
      for (const root of deps.roots) Object.assign(this.stateOf(t, root.name), { cursor: null, failures: 0, retryAtMs: null, lastError: null, step: r.reason });
      this.kick("rejoin merged");
      return true;
    } catch (e) {
      if (t.abort.signal.aborted) return false;
      const now = deps.clock.monotonicMs();
      const first = this.stateOf(t, deps.roots[0]!.name);
      const after = afterFailure({ node, failures: first.failures }, "transient", now, deps.settings.retryMaxMs, deps.settings.diskFullRetryMs);
      const lastError = describeError(e);
      for (const root of deps.roots)
        Object.assign(this.stateOf(t, root.name), {
          failures: after.failures,
          retryAtMs: after.retryAtMs,
          lastError,
          step: `rejoin of ${node} failed: ${lastError}; retrying in ${after.retryAtMs - now}ms`,
        });
      deps.log.warn({ standby: node, err: lastError }, `data rejoin of ${node} failed; ${after.reason}`);
      return false;
    }
  }

  /** The rsync options of every run from `root` to the standby at `address` in `term`. */
  private options(root: ShipRoot, address: string, term: number): DataRsyncOptions {
    const { settings } = this.deps;
    return {
      source: root.path,
      destination: { kind: "module", user: settings.sshUser, host: address, term, root: root.name, ssh: this.deps.ssh },
      fsync: settings.fsync,
      rsyncPath: settings.rsyncPath,
    };
  }

  /** Runs one step's rsync; true when it succeeded (the cursor moved). */
  private async ship(t: Target, root: ShipRoot, s: RootState, step: Extract<StandbyStep, { kind: "full" | "batch" }>): Promise<boolean> {
    const { deps } = this;
    const { settings } = deps;
    const o = this.options(root, step.address, step.term);
    const started = deps.clock.monotonicMs();
    let pass: FullPassResult | null = null;
    let code: number;
    let stderr: string;
    if (step.kind === "full") {
      const maxDelete = s.deleteLimited ? 0 : settings.maxDelete;
      pass = await runFullPass({ runner: deps.runner, clock: deps.clock, rsync: o, maxDelete, rewrite: s.rewrite, bulk: s.cursor === null, timeoutMs: settings.shipTimeoutMs, signal: t.abort.signal });
      ({ code, stderr } = pass);
      // One sync covers the whole volume: what it lost may be any root's.
      if (pass.syncFailed) for (const r of deps.roots) this.stateOf(t, r.name).rewrite = true;
    } else {
      const c = batchCommand(step.entries, o);
      ({ code, stderr } = await runShipRsync({
        runner: deps.runner,
        warm: t.warm,
        key: root.name,
        argv: c.argv,
        input: c.stdin,
        next: batchArgv(false, o),
        timeoutMs: settings.shipTimeoutMs,
        signal: t.abort.signal,
        onRetry: (f) =>
          deps.log.info({ standby: t.member.node, root: root.name, code: f.code, err: f.stderr.trim().slice(-300) }, "data: a warm rsync failed; the batch is tried once more on a new connection"),
      }));
    }
    if (t.abort.signal.aborted) return false;
    const now = deps.clock.monotonicMs();
    // 24: files vanished during the transfer: their own remove events follow.
    deps.onRun?.({ standby: t.member.node, kind: step.kind, result: code === 0 || code === 24 ? "ok" : "error" });
    if (code === 0 || code === 24) {
      s.cursor = step.kind === "full" ? step.head : step.toSeq;
      if (step.kind === "full") {
        s.fullPassAsked = null;
        s.rewrite = false;
      }
      s.failures = 0;
      s.retryAtMs = null;
      s.lastError = null;
      s.diskFull = false;
      s.lastSuccessAtMs = now;
      const what = step.kind === "full" ? "full pass" : `${step.entries.length} change(s)`;
      deps.log.debug({ standby: t.member.node, root: root.name, ms: Math.round(now - started), seq: s.cursor }, `shipped ${what}`);
      if (pass)
        deps.log.info(
          { standby: t.member.node, root: root.name, ms: Math.round(now - started), seq: s.cursor, durability: pass.durability, barrier_ms: pass.barrierMs },
          `full pass to ${t.member.node} done`,
        );
      this.trim(root);
      // A stream usually follows a full pass: its first batch need not start cold.
      if (step.kind === "full") t.warm?.start(root.name, batchArgv(false, o), t.abort.signal);
      return true;
    }
    const kind = classifyShipFailure(code, stderr);
    const after = afterFailure({ node: t.member.node, failures: s.failures }, kind, now, settings.retryMaxMs, settings.diskFullRetryMs);
    if (kind === "delete-limit") s.deleteLimited = true;
    s.failures = after.failures;
    s.retryAtMs = after.retryAtMs;
    s.diskFull = after.diskFull;
    s.lastError = `rsync exit ${code}: ${stderr.trim().split("\n").slice(-2).join(" | ").slice(0, 300)}`;
    s.step = after.reason;
    const level = kind === "delete-limit" ? "error" : "warn";
    deps.log[level]({ standby: t.member.node, root: root.name, kind, code, err: s.lastError }, after.reason);
    return false;
  }
}
