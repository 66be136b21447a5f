// The standby side of data replication (docs/data-replication-design.md §6): the
// write modules `d<T>-<root>` in the one rsync daemon config (sync.serve_config).
// While this node follows leader L in term T, only L (and the VIP) may write into
// its data roots through them; anything else renders none (the term fence). The
// file is rewritten serially, retried after a failure, and `receiving` says T only
// once the file does.
import { describeError, UnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { SerialRunner } from "../platform/serial.js";
import { renderRsyncdConf, type ServedRoot } from "../sync/rsyncd.js";
import { moduleLayout, receiveModules, type ReceiveFrom } from "./receive.js";
import type { WriterSessions } from "./writer-sessions.js";

/** The receiver's file work (index.ts binds it to the node's filesystem; tests to a fake). */
export interface ReceiverFiles {
  /** Creates the root (if missing) and its temp dir (0700, root-owned). */
  prepareRoot(root: string, tempDir: string): Promise<void>;
  /** Writes `text` to `file` atomically unless it already holds it; true when it wrote. */
  writeIfChanged(file: string, text: string): Promise<boolean>;
  /** Removes what killed receivers left in a temp dir (rsync's partial files), sparing rejoin inboxes; how many entries went. */
  clearTemp?(tempDir: string): Promise<number>;
  /**
   * Why one `sync --file-system` of `root` would not make what rsync writes there durable (another
   * filesystem mounted below it, no sync binary), or null; absent: no check. receive.ts barrierProblem.
   */
  barrierProblem?(root: string): Promise<string | null>;
}

export interface WriteModulesDeps {
  readonly roots: readonly { readonly name: string; readonly path: string }[];
  /** The one daemon config file (sync.serve_config) and the read-only sync modules it holds. */
  readonly serve: { readonly configPath: string; readonly syncRoots: readonly ServedRoot[]; readonly daemonUser: string };
  readonly files: ReceiverFiles;
  readonly clock: Clock;
  readonly log: Logger;
  /** The rejoin modules (read-only, while this former primary is pending): part of what is written. */
  readonly rejoinModules?: () => string;
  /** `receiving` changed: the loop publishes the member key again. */
  readonly onReceivingChanged?: () => void;
  /** Kills the sessions still writing once a term's modules are closed (writer-sessions.ts); absent: none killed. */
  readonly sessions?: WriterSessions;
}

const RECEIVER_RETRY_MS = 5000;

export class WriteModules {
  private desired: ReceiveFrom = null;
  private desiredKey = "null";
  private receivingTerm: number | null = null;
  private writtenKey: string | null = null;
  /**
   * The write modules the file last held: a session of theirs may still be writing. Unknown at
   * start (a crashed agent may have left modules and sessions behind): checked on the first write.
   */
  private written: ReceiveFrom | "unknown" = "unknown";
  private retry: TimerHandle | undefined;
  private retryArmed = false;
  /** Why the last apply failed (undefined after a success): closeAll names it. */
  private lastFailure: unknown;
  private readonly runner: SerialRunner;
  /** Why each root last had no barrier (warned once per change). */
  private readonly barrierSaid = new Map<string, string>();

  constructor(private readonly deps: WriteModulesDeps) {
    this.runner = new SerialRunner(
      () => this.apply(),
      (e) => deps.log.error({ err: describeError(e) }, "data receiver update failed"),
    );
  }

  /** Writes the daemon config once at start (no write module until a leader is followed). */
  start(): void {
    this.runner.trigger("start");
  }

  /** The term whose write modules the file holds now (null: none). */
  get receiving(): number | null {
    return this.receivingTerm;
  }

  /** Whom this node wants to receive from (null: nobody). */
  get wanted(): ReceiveFrom {
    return this.desired;
  }

  set(from: ReceiveFrom): void {
    const key = JSON.stringify([from, this.deps.rejoinModules?.() ?? ""]);
    if (key === this.desiredKey && key === this.writtenKey) return;
    // The same wish after a failure: the armed retry applies it (every HA cycle would, each scan logged).
    if (key === this.desiredKey && this.retryArmed) return;
    this.desired = from;
    this.desiredKey = key;
    // Not receiving the old term any more, whatever the file says until rewritten.
    if (from === null || from.term !== this.receivingTerm) this.receivingTerm = null;
    this.runner.trigger("leader changed");
  }

  /** Closes every write module and resolves once the file says so; throws when it could not be written. */
  async closeAll(): Promise<void> {
    // Now, not at an armed retry: a promotion waits for this.
    this.cancelRetry();
    this.set(null);
    await this.runner.idle();
    if (this.writtenKey === this.desiredKey) return;
    const cause = this.lastFailure;
    // A blind cut is not a config problem: the operator must fix what hides the sessions (docs/errors.md).
    if (cause instanceof UnderstudyError && cause.code === "US_E_DATA_FENCE") throw cause;
    throw new UnderstudyError("US_E_DATA_CONFIG", {
      setting: "sync.serve_config",
      problem: `could not close the data write modules before serving${cause === undefined ? "" : ` (${describeError(cause)})`}`,
      value: this.deps.serve.configPath,
    });
  }

  cancelRetry(): void {
    this.retry?.cancel();
    this.retryArmed = false;
  }

  /** Agent stop: no more rewrites, and the write modules closed (no one may write here while no agent follows the terms). */
  async stop(): Promise<void> {
    this.cancelRetry();
    await this.runner.stop();
    this.cancelRetry();
    if (this.writtenKey !== "null") {
      this.desired = null;
      this.desiredKey = "null";
      await this.apply();
      this.cancelRetry();
    }
  }

  /** Kills the sessions of the modules `before` held when `from` no longer holds them. */
  private async cutSessions(before: ReceiveFrom | "unknown", from: ReceiveFrom): Promise<void> {
    if (before === null || (before !== "unknown" && from !== null && from.term === before.term && from.leaderAddress === before.leaderAddress)) return;
    // A failure to look (US_E_DATA_FENCE) throws: apply() retries, and `receiving` does not move on.
    const killed = (await this.deps.sessions?.kill(this.deps.roots.map((r) => r.path))) ?? [];
    const term = before === "unknown" ? "an earlier run's" : `term ${before.term}'s`;
    if (killed.length > 0) {
      this.deps.log.warn({ pids: killed }, `data: killed ${killed.length} rsync session(s) still writing ${term} files after its write modules closed`);
    }
    // Their half-received files stay in the temp dir forever otherwise (a disk leak): no session of a
    // closed module is left, and the next leader's start only after `receiving` names its term.
    for (const r of this.deps.roots) {
      const tempDir = moduleLayout(r).tempDir;
      const removed = await this.deps.files.clearTemp?.(tempDir).catch((e: unknown) => {
        this.deps.log.warn({ err: describeError(e), dir: tempDir }, "data: cannot clear the temp dir of partial files");
        return 0;
      });
      if (removed) this.deps.log.info({ dir: tempDir, removed }, `data: removed ${removed} partial file(s) left by ${term} sessions`);
    }
  }

  /** Roots one sync of the root's filesystem would not cover: no barrier (each file is fsynced), said once per change. */
  private async rootsWithoutBarrier(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const r of this.deps.roots) {
      // Unknown counts as a problem: no barrier, each file fsynced (slower, never less durable).
      const problem = this.deps.files.barrierProblem ? await this.deps.files.barrierProblem(moduleLayout(r).path).catch((e: unknown) => `cannot tell (${describeError(e)})`) : null;
      if (problem === null) continue;
      out.add(r.name);
      if (this.barrierSaid.get(r.name) !== problem) {
        this.barrierSaid.set(r.name, problem);
        this.deps.log.warn({ root: r.name }, `data: no barrier module for root ${r.name}: ${problem}; full passes to this node fsync each file (slower, as durable)`);
      }
    }
    return out;
  }

  private async apply(): Promise<void> {
    const { deps } = this;
    const from = this.desired;
    const key = this.desiredKey;
    try {
      if (from !== null) for (const r of deps.roots) await deps.files.prepareRoot(r.path, moduleLayout(r).tempDir);
      const noBarrier = from !== null ? await this.rootsWithoutBarrier() : new Set<string>();
      const conf = renderRsyncdConf(deps.serve.syncRoots, { daemonUser: deps.serve.daemonUser, writeModules: receiveModules(deps.roots, from, noBarrier) }) + (deps.rejoinModules?.() ?? "");
      const wrote = await deps.files.writeIfChanged(deps.serve.configPath, conf);
      this.writtenKey = key;
      // Sessions of the modules just closed are cut before `receiving` names a new term: the new
      // leader ships only after that, so none of its sessions exists yet to be cut by mistake.
      // `written` moves only once they are: a cut that failed is tried again at the retry.
      await this.cutSessions(this.written, from);
      this.written = from;
      if (wrote) {
        deps.log.info(
          { file: deps.serve.configPath, term: from?.term ?? null, leader: from?.leaderAddress ?? null },
          from ? `data: receiving term ${from.term} from ${from.leaderAddress} (write modules open)` : "data: write modules closed",
        );
      }
      this.lastFailure = undefined;
      if (key === this.desiredKey) {
        const before = this.receivingTerm;
        this.receivingTerm = from?.term ?? null;
        if (before !== this.receivingTerm) deps.onReceivingChanged?.();
      }
    } catch (e) {
      this.writtenKey = null;
      this.lastFailure = e;
      deps.log.error(
        { err: describeError(e), file: deps.serve.configPath },
        `data: cannot update the receiving side (its config, or the cut of a closed term's sessions); retrying in ${RECEIVER_RETRY_MS}ms`,
      );
      // The old modules may still be in the file, but no session of theirs goes on writing (unless
      // the cut itself failed: the retry tries it again).
      if (!(e instanceof UnderstudyError && e.code === "US_E_DATA_FENCE")) {
        await this.cutSessions(this.written, from).catch((err: unknown) => deps.log.error({ err: describeError(err) }, "data: cannot cut the closed term's sessions"));
      }
      this.retry?.cancel();
      this.retryArmed = true;
      this.retry = deps.clock.setTimer(RECEIVER_RETRY_MS, () => {
        this.retryArmed = false;
        this.runner.trigger("retry");
      });
    }
  }
}
