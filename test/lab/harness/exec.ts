/**
 * Bounded process helpers for the lab harness.
 *
 * Every command is spawned with an argument array (never a shell), in its own
 * process group, with a hard timeout after which the whole group is SIGKILLed.
 * Captured output is capped so a chatty command cannot exhaust memory.
 */
import { spawn, spawnSync } from "node:child_process";

export interface ExecResult {
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the timeout fired and the process group was killed. */
  timedOut: boolean;
  /** Wall-clock duration in milliseconds. */
  ms: number;
}

export interface ExecOptions {
  /** Hard limit; the process group is SIGKILLed when it expires. Default 10 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string;
  /** Extra environment variables, merged over process.env. */
  env?: Record<string, string>;
  cwd?: string;
}

const MAX_CAPTURE = 4 * 1024 * 1024;
export const DEFAULT_EXEC_TIMEOUT_MS = 10_000;

function mergedEnv(env: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return env ? { ...process.env, ...env } : process.env;
}

/** Kill a process group (and the leader itself) without throwing. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (pid === undefined || pid <= 1) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* group gone or not a group leader */
  }
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** Run argv to completion (bounded), never throwing on a non-zero exit. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new Error("run: empty argv"));
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const started = performance.now();
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let settled = false;
    const child = spawn(file, args, {
      detached: true,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: mergedEnv(opts.env),
      cwd: opts.cwd,
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null, extraErr = ""): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr: stderr + extraErr, timedOut, ms: performance.now() - started });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    child.on("error", (err) => finish(null, null, `spawn error: ${err.message}`));
    child.on("close", (code, signal) => finish(code, signal));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Like run() but throws (with stderr) unless the exit code is 0. */
export async function runOk(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return r;
}

/** Synchronous, bounded variant used by teardown (must work inside process 'exit' hooks). */
export function runSync(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): ExecResult {
  const [file, ...args] = argv;
  if (!file) throw new Error("runSync: empty argv");
  const started = performance.now();
  const r = spawnSync(file, args, {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
    killSignal: "SIGKILL",
    input: opts.input,
    stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    maxBuffer: MAX_CAPTURE,
  });
  const timedOut = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT";
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? "",
    stderr: (r.stderr ?? "") + (r.error && !timedOut ? `spawn error: ${r.error.message}` : ""),
    timedOut,
    ms: performance.now() - started,
  };
}

export function runSyncOk(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): ExecResult {
  const r = runSync(argv, opts);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return r;
}

export function describeFailure(argv: readonly string[], r: ExecResult): string {
  const why = r.timedOut ? `timed out after ${Math.round(r.ms)} ms` : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const err = r.stderr.trim().slice(-2000);
  return `command failed (${why}): ${argv.join(" ")}${err ? `\n${err}` : ""}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll `probe` until it returns a non-undefined value, at most `attempts` times
 * (one more when the last one crossed the deadline) and for `timeoutMs`.
 * Returns undefined when it never succeeded.
 *
 * The deadline bounds when a probe may START: a probe that began before it and
 * ended after it (a slow one: a synchronous tree walk that stalled) saw the
 * world as it was when it began, so one more probe runs, and its answer is the
 * poll's. Without it, a condition that came true during a multi-second stall of
 * such a walk failed the test (data.lab.test.ts, CI of 2026-12-06).
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined> | T | undefined, opts: { timeoutMs: number; intervalMs?: number; attempts?: number }): Promise<T | undefined> {
  const deadline = performance.now() + opts.timeoutMs;
  const intervalMs = opts.intervalMs ?? 50;
  const attempts = opts.attempts ?? Math.max(1, Math.ceil(opts.timeoutMs / Math.max(1, intervalMs)) + 1);
  for (let i = 0; i < attempts + 1; i++) {
    const startedAt = performance.now();
    const v = await probe();
    if (v !== undefined) return v;
    if (startedAt >= deadline) break;
    const left = deadline - performance.now();
    // Out of attempts: only a probe that crossed the deadline earns one more.
    if (i + 1 >= attempts && left > 0) break;
    if (left > 0) await sleep(Math.min(intervalMs, left));
  }
  return undefined;
}

/** A TCP port free on 127.0.0.1 right now (for a loopback etcd or API a test starts itself). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}
