import { spawn } from "node:child_process";
import { UnderstudyError } from "../errors/catalogue.js";

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandOptions {
  readonly timeoutMs?: number;
  readonly env?: Record<string, string>;
  readonly input?: string;
}

/**
 * Runs a program with an argument array: never through a shell, so no value
 * from config or etcd is ever interpreted as shell syntax.
 */
export interface CommandRunner {
  run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult>;
}

/** Throw US_E_COMMAND_FAILED unless the command exited 0. */
export function checkResult(argv: readonly string[], r: CommandResult): CommandResult {
  if (r.code !== 0) {
    throw new UnderstudyError("US_E_COMMAND_FAILED", {
      argv0: argv.join(" "),
      code: r.code ?? `signal ${r.signal}`,
      stderr: r.stderr.trim().slice(0, 500),
    });
  }
  return r;
}

export class SpawnCommandRunner implements CommandRunner {
  run(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (file === undefined) return Promise.reject(new Error("empty argv"));
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        stdio: ["pipe", "pipe", "pipe"],
        env: options.env ? { ...process.env, ...options.env } : process.env,
      });
      let stdout = "";
      let stderr = "";
      let timedOut = false;
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer =
        options.timeoutMs !== undefined
          ? setTimeout(() => {
              timedOut = true;
              child.kill("SIGKILL");
            }, options.timeoutMs)
          : undefined;
      child.on("error", (e) => {
        if (timer) clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code, signal) => {
        if (timer) clearTimeout(timer);
        if (timedOut) {
          reject(new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: file, timeout_ms: options.timeoutMs }));
          return;
        }
        resolve({ code, signal, stdout, stderr });
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.input ?? "");
    });
  }
}
