import { existsSync } from "node:fs";
import type { Config } from "../config/load.js";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { CommandDaemon } from "./command.js";
import type { DaemonController } from "./port.js";
import { PIDEXEC_BINARY, ProcessDaemon, type ChildOutput } from "./process.js";
import { SystemdDaemon } from "./systemd.js";

export type DaemonConfig = Config["daemon"];

export interface DaemonDeps {
  readonly clock: Clock;
  readonly runner: CommandRunner;
  /** config.state_dir; the process backend keeps daemon.pid there. */
  readonly stateDir: string;
  readonly logger?: Logger;
  /** Process backend only: where the child's stdout/stderr go (default: ignore / inherit). */
  readonly childStdout?: ChildOutput;
  readonly childStderr?: ChildOutput;
}

/** Build the configured backend. Throws US_E_DAEMON_CONFIG when the backend's own settings are missing. */
export function createDaemon(config: DaemonConfig, deps: DaemonDeps): DaemonController {
  const stopTimeoutMs = config.stop_timeout;
  switch (config.backend) {
    case "process":
      return new ProcessDaemon(
        {
          command: required(config.backend, "command", config.command),
          stopTimeoutMs,
          stateDir: deps.stateDir,
          stdout: deps.childStdout,
          stderr: deps.childStderr,
          ...(existsSync(PIDEXEC_BINARY) ? { pidExec: PIDEXEC_BINARY } : {}),
        },
        { clock: deps.clock, logger: deps.logger },
      );
    case "command":
      return new CommandDaemon(
        {
          start: required(config.backend, "start", config.start),
          stop: required(config.backend, "stop", config.stop),
          status: required(config.backend, "status", config.status),
          stopTimeoutMs,
        },
        { runner: deps.runner, clock: deps.clock },
      );
    case "systemd":
      return new SystemdDaemon({ unit: required(config.backend, "unit", config.unit), stopTimeoutMs }, { runner: deps.runner });
  }
}

// The schema already demands these per backend; this keeps a hand-built config honest too.
function required<T>(backend: string, key: string, value: T | undefined): T {
  if (value === undefined) throw new UnderstudyError("US_E_DAEMON_CONFIG", { backend, problem: `daemon.${key} is required` });
  return value;
}
