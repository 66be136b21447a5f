import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import { checkResult, type CommandRunner } from "../platform/command.js";
import type { DaemonController, DaemonExit } from "./port.js";

export interface CommandDaemonOptions {
  readonly start: readonly string[];
  readonly stop: readonly string[];
  /** Exit 0 means running; any other exit means not running. */
  readonly status: readonly string[];
  /** Timeout for each command, and how long stop() waits for status to report the daemon down. */
  readonly stopTimeoutMs: number;
}

export interface CommandDaemonDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
}

// Stop commands often return before the daemon has exited (kill $(cat pidfile)); re-ask status at this pace.
const STOP_POLL_MS = 100;

/** The user's own start/stop/status commands, each run as an argv without a shell. */
export class CommandDaemon implements DaemonController {
  readonly backend = "command" as const;

  constructor(
    private readonly options: CommandDaemonOptions,
    private readonly deps: CommandDaemonDeps,
  ) {
    for (const key of ["start", "stop", "status"] as const) {
      if (options[key].length === 0) fail(`${key} must name a program`);
    }
    if (!(options.stopTimeoutMs > 0)) fail("stop_timeout must be greater than 0");
  }

  async start(): Promise<void> {
    try {
      if (await this.isRunning()) return;
      await this.runChecked(this.options.start);
    } catch (e) {
      throw new UnderstudyError("US_E_DAEMON_START", { backend: "command", cause: describeError(e) }, { cause: e });
    }
  }

  /** Always runs the stop command (a broken status must never keep a daemon up), then waits for status to say down. */
  async stop(): Promise<void> {
    const { clock } = this.deps;
    try {
      await this.runChecked(this.options.stop);
      const deadline = clock.monotonicMs() + this.options.stopTimeoutMs;
      while (await this.isRunning()) {
        if (clock.monotonicMs() >= deadline) throw new UnderstudyError("US_E_DAEMON_STILL_RUNNING", { timeout_ms: this.options.stopTimeoutMs });
        await clock.sleep(STOP_POLL_MS);
      }
    } catch (e) {
      throw new UnderstudyError("US_E_DAEMON_STOP", { backend: "command", cause: describeError(e) }, { cause: e });
    }
  }

  /** Rejects (US_E_COMMAND_TIMEOUT, spawn errors) when the status command itself cannot give an answer. */
  async isRunning(): Promise<boolean> {
    const r = await this.deps.runner.run(this.options.status, { timeoutMs: this.options.stopTimeoutMs });
    return r.code === 0;
  }

  onUnexpectedExit(_listener: (exit: DaemonExit) => void): void {
    // Not observable through commands; the HA loop finds exits with isRunning().
  }

  async close(): Promise<void> {}

  private async runChecked(argv: readonly string[]): Promise<void> {
    checkResult(argv, await this.deps.runner.run(argv, { timeoutMs: this.options.stopTimeoutMs }));
  }
}

function fail(problem: string): never {
  throw new UnderstudyError("US_E_DAEMON_CONFIG", { backend: "command", problem });
}
