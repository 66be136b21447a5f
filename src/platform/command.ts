import { spawn, type ChildProcess } from "node:child_process";
import { UnderstudyError } from "../errors/catalogue.js";

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when stdout or stderr went past maxOutputBytes and the rest was dropped. */
  readonly truncated?: boolean;
}

export interface CommandOptions {
  readonly timeoutMs?: number;
  readonly env?: Record<string, string>;
  /**
   * Written to stdin, which is then closed. A promise: stdin stays open until it settles (a
   * rejection kills the program), so a program can be started before its input is known
   * (src/data/warm-rsync.ts). timeoutMs still counts from the start.
   */
  readonly input?: string | Buffer | PromiseLike<string | Buffer>;
  /**
   * Aborting stops the program: SIGTERM to its process group, SIGKILL 1 s
   * later if it is still there; the promise then settles with the exit as
   * usual (code null, the signal).
   */
  readonly signal?: AbortSignal;
  /** Bytes kept of stdout and of stderr each (default 1 MiB); the rest is read and dropped. */
  readonly maxOutputBytes?: number;
}

/**
 * Runs a program with an argument array: never through a shell, so no value
 * from config or etcd is ever interpreted as shell syntax.
 *
 * Contract for every implementation: the promise settles (never hangs past
 * timeoutMs plus a short grace, whatever the program's children do), a
 * program that cannot be started rejects with US_E_COMMAND_SPAWN (never an
 * uncaught 'error' event), and captured output is bounded.
 */
export interface CommandRunner {
  run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult>;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** After an abort's SIGTERM, how long before SIGKILL. */
const ABORT_KILL_MS = 1000;
/** After a timeout kill, how long to wait for the pipes before settling anyway. */
const KILL_GRACE_MS = 250;

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

/** A bounded text sink: keeps the first `max` bytes, counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly max: number) {}
  add(chunk: Buffer): void {
    const room = this.max - this.kept;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(part);
    this.kept += part.length;
    this.dropped += chunk.length - part.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/**
 * The real runner. Each program runs in its own process group (detached), so
 * a timeout kills the program and everything it started: a grandchild that
 * keeps the pipes open can no longer hold the caller past its timeout.
 */
export class SpawnCommandRunner implements CommandRunner {
  run(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (file === undefined) return Promise.reject(new UnderstudyError("US_E_COMMAND_SPAWN", { argv0: "(empty argv)", cause: "no program named" }));
    const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      const finish = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        if (grace) clearTimeout(grace);
        outcome();
      };
      const spawnFailed = (e: unknown): void => finish(() => reject(new UnderstudyError("US_E_COMMAND_SPAWN", { argv0: file, cause: errnoOf(e) }, { cause: e })));

      let child: ChildProcess;
      try {
        child = spawn(file, args, {
          stdio: ["pipe", "pipe", "pipe"],
          detached: true,
          env: options.env ? { ...process.env, ...options.env } : process.env,
        });
      } catch (e) {
        spawnFailed(e);
        return;
      }
      // First, before anything can emit: EMFILE/ENOENT/EACCES arrive as 'error' on the next tick.
      child.on("error", spawnFailed);
      const { stdin, stdout, stderr } = child;
      if (!stdin || !stdout || !stderr || child.pid === undefined) {
        // Node leaves the stdio null when it could not set the pipes up (EMFILE/ENFILE);
        // the 'error' event that follows settles the promise.
        return;
      }
      const out = new Capture(max);
      const err = new Capture(max);
      stdout.on("data", (d: Buffer) => out.add(d));
      stderr.on("data", (d: Buffer) => err.add(d));
      for (const s of [stdin, stdout, stderr]) s.on("error", () => undefined);
      let timedOut = false;
      const pgid = child.pid;
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          killGroup(pgid);
          // The group is gone, but a process that left it (setsid) may still hold a pipe: do not wait on it.
          grace = setTimeout(() => {
            stdout.destroy();
            stderr.destroy();
            finish(() => reject(timeoutError(file, options.timeoutMs)));
          }, KILL_GRACE_MS);
        }, options.timeoutMs);
      }
      let term: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        termGroup(pgid);
        term = setTimeout(() => {
          killGroup(pgid);
          // As after a timeout: a process that left the group may hold a pipe; settle anyway.
          grace = setTimeout(() => {
            stdout.destroy();
            stderr.destroy();
            finish(() => resolve({ code: null, signal: "SIGKILL", stdout: out.text(), stderr: err.text() }));
          }, KILL_GRACE_MS);
        }, ABORT_KILL_MS);
      };
      if (options.signal) {
        if (options.signal.aborted) onAbort();
        else options.signal.addEventListener("abort", onAbort, { once: true });
      }
      child.on("close", (code, signal) => {
        if (term) clearTimeout(term);
        options.signal?.removeEventListener("abort", onAbort);
        finish(() =>
          timedOut
            ? reject(timeoutError(file, options.timeoutMs))
            : resolve({
                code,
                signal,
                stdout: out.text(),
                stderr: err.text(),
                ...(out.dropped + err.dropped > 0 ? { truncated: true } : {}),
              }),
        );
      });
      const input = options.input;
      if (isPromiseLike(input)) {
        // No input after all: the program is stopped, never run on an empty stdin it would take as real.
        Promise.resolve(input).then(
          (data) => stdin.end(data),
          () => {
            // Only while it runs: once reaped, its group id may belong to another process.
            if (child.exitCode === null && child.signalCode === null) killGroup(pgid);
          },
        );
      } else stdin.end(input ?? "");
    });
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<string | Buffer> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

function timeoutError(file: string, timeoutMs: number | undefined): UnderstudyError {
  return new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: file, timeout_ms: timeoutMs });
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // Already gone (ESRCH): nothing left to kill.
  }
}

function termGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    // Already gone.
  }
}

function errnoOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
