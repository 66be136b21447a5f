import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import { settlesWithin, type Clock, type TimerHandle } from "../platform/clock.js";
import type { CommandResult, CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { HOOK_EVENTS, type HookContext, type HookEvent, type HookOutcome, type HookPort } from "./port.js";

export { HOOK_EVENTS, type HookContext, type HookEvent, type HookOutcome, type HookRole } from "./port.js";

export type HookCommands = Partial<Record<HookEvent, readonly string[]>>;

export interface HooksOptions {
  readonly commands: HookCommands;
  /** Per-run limit; the command is killed when it passes. */
  readonly timeoutMs: number;
}

export interface HooksDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  /** Told about every hook that ran (ok or not); must not throw. */
  readonly onOutcome?: (event: HookEvent, outcome: HookOutcome) => void;
}

const STDERR_TAIL = 500;
/** Beyond the timeout, how long to wait for the runner to report the kill before giving up on it. */
const KILL_GRACE_MS = 1000;
/** Fire-and-forget hooks waiting their turn; the oldest is dropped beyond this. */
const FIRE_QUEUE_LIMIT = 32;
type Settled = { kind: "done"; result: CommandResult } | { kind: "error"; error: unknown } | { kind: "late" };
const NOT_RUN: HookOutcome = { ran: false, ok: true, code: null, timedOut: false, ms: 0, stderrTail: "", problem: null };

/**
 * Runs the user's hook commands. Guarantees: run() never rejects; an event
 * without a command resolves { ran: false, ok: true } at once; a command is
 * killed at the timeout. Only pre_promote's result matters to the caller (a
 * non-zero exit, a timeout or a failure to start is a veto and the node must
 * release leadership); every other failure is logged and changes nothing.
 */
export class Hooks implements HookPort {
  private readonly commands: HookCommands;
  private readonly queue: { event: HookEvent; context: HookContext }[] = [];
  private draining: Promise<void> | null = null;

  constructor(
    private readonly options: HooksOptions,
    private readonly deps: HooksDeps,
  ) {
    if (!(options.timeoutMs > 0)) throw new UnderstudyError("US_E_HOOK_CONFIG", { setting: "hooks.timeout", problem: "must be greater than 0" });
    for (const event of HOOK_EVENTS) {
      const argv = options.commands[event];
      if (argv !== undefined && (argv.length === 0 || argv.some((a) => a.length === 0))) {
        throw new UnderstudyError("US_E_HOOK_CONFIG", { setting: `hooks.${event}`, problem: "must name a program and its arguments, none empty" });
      }
    }
    this.commands = { ...options.commands };
  }

  configured(event: HookEvent): boolean {
    return this.commands[event] !== undefined;
  }

  /** Run the event's command now and report how it went. Never rejects. */
  async run(event: HookEvent, context: HookContext): Promise<HookOutcome> {
    const argv = this.commands[event];
    if (!argv) return NOT_RUN;
    let outcome: HookOutcome;
    try {
      outcome = await this.execute(event, argv, context);
    } catch (e) {
      // Only a bug gets here (a throwing logger, say); a hook must still not throw.
      outcome = { ran: true, ok: false, code: null, timedOut: false, ms: 0, stderrTail: "", problem: describeError(e) };
    }
    try {
      this.deps.onOutcome?.(event, outcome);
    } catch {
      // A listener's failure is not the hook's.
    }
    return outcome;
  }

  /**
   * Queue the event's command and return at once. Queued hooks run one at a
   * time in the order fired, so on_demote never overtakes an earlier
   * post_promote. Not for pre_promote: its veto needs run().
   */
  fire(event: HookEvent, context: HookContext): void {
    if (!this.configured(event)) return;
    if (this.queue.length >= FIRE_QUEUE_LIMIT) {
      const dropped = this.queue.shift()!;
      this.deps.log.warn({ hook: dropped.event, limit: FIRE_QUEUE_LIMIT }, "hook queue full: dropped the oldest queued hook");
    }
    this.queue.push({ event, context });
    this.draining ??= this.drain();
  }

  /** Wait for queued hooks, at most one timeout (plus the kill grace) in all. */
  async close(): Promise<void> {
    if (!this.draining) return;
    if (!(await settlesWithin(this.deps.clock, this.options.timeoutMs + KILL_GRACE_MS, this.draining))) {
      this.deps.log.warn({ queued: this.queue.length }, "hooks still running at shutdown; not waiting for them");
      this.queue.length = 0;
    }
  }

  private async drain(): Promise<void> {
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) await this.run(next.event, next.context);
    } finally {
      this.draining = null;
    }
  }

  private async execute(event: HookEvent, argv: readonly string[], context: HookContext): Promise<HookOutcome> {
    const { runner, clock, log } = this.deps;
    const program = argv[0]!;
    const timeoutMs = this.options.timeoutMs;
    const started = clock.monotonicMs();
    let timer: TimerHandle | undefined;
    // The runner kills at timeoutMs; this guard covers a runner that still does not
    // return (a backgrounded grandchild holding the hook's stdout open).
    const guard = new Promise<Settled>((resolve) => {
      timer = clock.setTimer(timeoutMs + KILL_GRACE_MS, () => resolve({ kind: "late" }));
    });
    const attempt = runner.run(argv, { timeoutMs, env: hookEnv(event, context) }).then(
      (result): Settled => ({ kind: "done", result }),
      (error: unknown): Settled => ({ kind: "error", error }),
    );
    const settled = await Promise.race([attempt, guard]);
    timer?.cancel();
    const ms = Math.round(clock.monotonicMs() - started);

    if (settled.kind !== "done") {
      const timedOut = settled.kind === "late" || isUnderstudyError(settled.error, "US_E_COMMAND_TIMEOUT");
      const problem = timedOut ? `killed after the ${timeoutMs} ms timeout` : `could not be started: ${describeError(settled.kind === "error" ? settled.error : undefined)}`;
      return this.failed(event, program, { code: null, timedOut, ms, stderrTail: "", problem });
    }
    const { result } = settled;
    const stderrTail = tail(result.stderr);
    if (result.code === 0) {
      log.info({ hook: event, program, ms }, "hook ran");
      return { ran: true, ok: true, code: 0, timedOut: false, ms, stderrTail, problem: null };
    }
    const how = result.code !== null ? `exited ${result.code}` : `killed by ${result.signal ?? "a signal"}`;
    return this.failed(event, program, { code: result.code, timedOut: false, ms, stderrTail, problem: stderrTail ? `${how}: ${stderrTail}` : how });
  }

  private failed(event: HookEvent, program: string, o: Omit<HookOutcome, "ran" | "ok" | "problem"> & { problem: string }): HookOutcome {
    const error = event === "pre_promote" ? new UnderstudyError("US_E_HOOK_VETO", { program, problem: o.problem }) : new UnderstudyError("US_E_HOOK_FAILED", { event, program, problem: o.problem });
    const fields = { hook: event, program, code: o.code, timed_out: o.timedOut, ms: o.ms };
    if (event === "pre_promote") this.deps.log.warn(fields, `${error.message}; not becoming primary`);
    else this.deps.log.warn(fields, error.message);
    return { ...o, ran: true, ok: false, problem: error.message };
  }
}

/** The UNDERSTUDY_* variables; always all set (empty when unknown) so `set -u` scripts work. */
export function hookEnv(event: HookEvent, c: HookContext): Record<string, string> {
  const env: Record<string, string> = {
    UNDERSTUDY_EVENT: event,
    UNDERSTUDY_ROLE: c.role,
    UNDERSTUDY_PREVIOUS_ROLE: c.previousRole ?? "",
    UNDERSTUDY_TERM: c.term === null ? "" : String(c.term),
    UNDERSTUDY_NODE: c.node,
    UNDERSTUDY_CLUSTER: c.cluster,
    UNDERSTUDY_REASON: c.reason,
  };
  if (event === "post_sync" || event === "post_publish") env.UNDERSTUDY_GENERATION = c.generation === undefined ? "" : String(c.generation);
  if (event === "post_publish") env.UNDERSTUDY_SYNC_ROOTS = (c.roots ?? []).join(" ");
  return env;
}

function tail(stderr: string): string {
  const t = stderr.trim();
  return t.length <= STDERR_TAIL ? t : t.slice(-STDERR_TAIL);
}
