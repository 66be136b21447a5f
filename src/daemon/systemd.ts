import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { checkResult, type CommandRunner } from "../platform/command.js";
import type { DaemonController, DaemonExit } from "./port.js";

export interface SystemdDaemonOptions {
  /** "sshd.service", "proftpd.service"... */
  readonly unit: string;
  /** Timeout for each systemctl call. Keep the unit's TimeoutStopSec below it so systemd's SIGKILL lands first. */
  readonly stopTimeoutMs: number;
}

export interface SystemdDaemonDeps {
  readonly runner: CommandRunner;
}

// Guards against a unit name being read as an option by systemctl.
const UNIT_NAME = /^[A-Za-z0-9@_.:][A-Za-z0-9@_.:-]*\.service$/;

/** A daemon run by systemd; systemd does the SIGTERM/SIGKILL escalation (TimeoutStopSec). */
export class SystemdDaemon implements DaemonController {
  readonly backend = "systemd" as const;

  constructor(
    private readonly options: SystemdDaemonOptions,
    private readonly deps: SystemdDaemonDeps,
  ) {
    if (!UNIT_NAME.test(options.unit)) fail("unit must be a systemd service name ending in .service");
    if (!(options.stopTimeoutMs > 0)) fail("stop_timeout must be greater than 0");
  }

  /** `systemctl start` is itself a no-op for an active unit, so no status check first. */
  async start(): Promise<void> {
    try {
      await this.systemctl("start", this.options.unit);
    } catch (e) {
      throw new UnderstudyError("US_E_DAEMON_START", { backend: "systemd", cause: describeError(e) }, { cause: e });
    }
  }

  /** `systemctl stop` waits for the stop job, so resolving means the unit is down. */
  async stop(): Promise<void> {
    try {
      await this.systemctl("stop", this.options.unit);
    } catch (e) {
      throw new UnderstudyError("US_E_DAEMON_STOP", { backend: "systemd", cause: describeError(e) }, { cause: e });
    }
  }

  /** Rejects only when systemctl cannot be run or times out; any non-zero exit means not active. */
  async isRunning(): Promise<boolean> {
    const argv = ["systemctl", "is-active", "--quiet", this.options.unit];
    const r = await this.deps.runner.run(argv, { timeoutMs: this.options.stopTimeoutMs });
    return r.code === 0;
  }

  onUnexpectedExit(_listener: (exit: DaemonExit) => void): void {
    // systemd owns the process; the HA loop finds exits with isRunning().
  }

  async close(): Promise<void> {}

  private async systemctl(verb: "start" | "stop", unit: string): Promise<void> {
    const argv = ["systemctl", verb, unit];
    checkResult(argv, await this.deps.runner.run(argv, { timeoutMs: this.options.stopTimeoutMs }));
  }
}

function fail(problem: string): never {
  throw new UnderstudyError("US_E_DAEMON_CONFIG", { backend: "systemd", problem });
}
