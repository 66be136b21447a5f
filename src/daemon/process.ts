import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { DaemonController, DaemonExit } from "./port.js";

export type ChildOutput = "inherit" | "ignore";

export interface ProcessDaemonOptions {
  /** Program and arguments, run without a shell. */
  readonly command: readonly string[];
  /** Grace between SIGTERM and SIGKILL, and again after SIGKILL before stop() gives up. */
  readonly stopTimeoutMs: number;
  /** Holds daemon.pid, so a restarted agent adopts the running daemon instead of starting a second one. */
  readonly stateDir: string;
  /** Default "ignore": the agent's stdout carries its JSON log. */
  readonly stdout?: ChildOutput | undefined;
  /** Default "inherit": the daemon's complaints end up beside the agent's (journald). */
  readonly stderr?: ChildOutput | undefined;
  /**
   * understudy-pidexec (PIDEXEC_BINARY): the daemon is started through it, so daemon.pid names it
   * before the daemon runs (an agent killed right after the spawn leaves no unrecorded daemon).
   * Undefined: spawned directly, daemon.pid written just after (a source checkout without a build).
   */
  readonly pidExec?: string | undefined;
}

/** Built by `npm run build` next to this file (dist/daemon/understudy-pidexec). */
export const PIDEXEC_BINARY = fileURLToPath(new URL("./understudy-pidexec", import.meta.url));

export interface ProcessDaemonDeps {
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
}

// An adopted daemon is not our child, so no exit event: poll it.
const ADOPTED_POLL_MS = 100;

interface Running {
  readonly pid: number;
  /** Undefined when adopted from the pidfile. */
  readonly child: ChildProcess | undefined;
  readonly exited: Promise<DaemonExit>;
  readonly markExited: (exit: DaemonExit) => void;
  exit: DaemonExit | undefined;
  stopping: boolean;
  poll: TimerHandle | undefined;
}

/**
 * Supervises the transfer daemon as a child process. It never restarts on its
 * own: an exit it was not asked for is reported once to onUnexpectedExit, and
 * the HA loop decides what happens next.
 */
export class ProcessDaemon implements DaemonController {
  readonly backend = "process" as const;
  private readonly command: readonly string[];
  private readonly pidfile: string;
  private readonly listeners: ((exit: DaemonExit) => void)[] = [];
  private current: Running | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly options: ProcessDaemonOptions,
    private readonly deps: ProcessDaemonDeps,
  ) {
    if (options.command.length === 0) fail("command must name a program");
    if (!(options.stopTimeoutMs > 0)) fail("stop_timeout must be greater than 0");
    this.command = [...options.command];
    this.pidfile = join(options.stateDir, "daemon.pid");
  }

  /** The daemon's pid while one runs (spawned or adopted). */
  pid(): number | undefined {
    return this.live()?.pid;
  }

  start(): Promise<void> {
    return this.serially(() => this.startNow());
  }

  stop(): Promise<void> {
    return this.serially(() => this.stopNow());
  }

  async isRunning(): Promise<boolean> {
    return this.live() !== undefined;
  }

  onUnexpectedExit(listener: (exit: DaemonExit) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    const run = this.current;
    run?.poll?.cancel();
    run?.child?.unref();
  }

  // start and stop never interleave: a start issued during a stop waits for the stop.
  private serially<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op, op);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /**
   * The running daemon, adopting it from the pidfile if we hold none: after an
   * agent restart even isRunning() and stop() must see the daemon the last agent started.
   * Synchronous on purpose, so two callers can never adopt or spawn twice.
   */
  private live(): Running | undefined {
    if (this.closed) return undefined;
    const run = this.current;
    if (run && run.child === undefined && run.exit === undefined && !isAlive(run.pid)) this.exited(run, { code: null, signal: null });
    if (this.current) return this.current;
    this.current = this.adopt();
    return this.current;
  }

  private async startNow(): Promise<void> {
    if (this.closed) throw startError("the controller is closed");
    if (this.live()) return;
    const [file, ...args] = this.command;
    try {
      mkdirSync(this.options.stateDir, { recursive: true });
    } catch (e) {
      throw startError(`cannot create state dir: ${describeError(e)}`);
    }
    const helper = this.options.pidExec;
    const [program, ...argv] = helper !== undefined ? [helper, this.pidfile, file!, ...args] : [file!, ...args];
    // Own process group: a Ctrl-C meant for the agent must not reach the daemon; the agent decides.
    // fd 3: understudy-pidexec's status pipe (close-on-exec: EOF once the daemon runs, a message if not).
    const child = spawn(program!, argv, {
      stdio: ["ignore", this.options.stdout ?? "ignore", this.options.stderr ?? "inherit", ...(helper !== undefined ? (["pipe"] as const) : [])],
      detached: true,
    });
    if (child.pid === undefined) {
      const error = await new Promise<unknown>((resolve) => child.once("error", resolve));
      throw startError(describeError(error));
    }
    const run = this.track(child.pid, child);
    child.once("exit", (code, signal) => this.exited(run, { code, signal }));
    child.on("error", (e) => this.deps.logger?.warn({ err: describeError(e), pid: run.pid }, "daemon child error"));
    if (helper !== undefined) {
      // The helper recorded the pid before exec; a failure (no record, no such program) is a failed start.
      const failure = await execStatus(child, this.deps.clock, this.options.stopTimeoutMs + EXEC_STATUS_MS);
      if (failure !== null) {
        run.stopping = true;
        await run.exited;
        throw startError(failure);
      }
      if (readPidfile(this.pidfile) !== run.pid) this.deps.logger?.warn({ pid: run.pid, pidfile: this.pidfile }, "understudy-pidexec did not leave the expected record; writing it");
      else {
        this.deps.logger?.info({ pid: run.pid, command: this.command }, "daemon started");
        return;
      }
    }
    try {
      writePidfile(this.pidfile, run.pid);
    } catch (e) {
      // Without a pidfile a restarted agent would start a duplicate: refuse to run unrecorded.
      run.stopping = true;
      child.kill("SIGKILL");
      await run.exited;
      throw startError(`cannot write ${this.pidfile}: ${describeError(e)}`);
    }
    this.deps.logger?.info({ pid: run.pid, command: this.command }, "daemon started");
  }

  private async stopNow(): Promise<void> {
    const run = this.live();
    if (!run) return;
    run.stopping = true;
    const { stopTimeoutMs } = this.options;
    this.signal(run, "SIGTERM");
    if (!(await this.exitWithin(run, stopTimeoutMs))) {
      this.deps.logger?.warn({ pid: run.pid, stopTimeoutMs }, "daemon ignored SIGTERM; sending SIGKILL");
      this.signal(run, "SIGKILL");
      if (!(await this.exitWithin(run, stopTimeoutMs))) {
        throw new UnderstudyError("US_E_DAEMON_STOP", { backend: "process", cause: `pid ${run.pid} survived SIGKILL for ${stopTimeoutMs}ms` });
      }
    }
    this.deps.logger?.info({ pid: run.pid, exit: run.exit }, "daemon stopped");
  }

  private adopt(): Running | undefined {
    const record = readPidRecord(this.pidfile);
    if (record === undefined) return undefined;
    const pid = record.pid;
    // Daemons such as sshd rewrite their argv (process title), so identity is the
    // kernel's start time recorded with the pid: it also rules out a reused pid.
    const same = record.start !== undefined ? startTime(pid) === record.start : sameArgv(readCmdline(pid), this.command);
    if (!isAlive(pid) || !same) {
      removePidfile(this.pidfile, pid);
      return undefined;
    }
    const run = this.track(pid, undefined);
    const poll = () => {
      if (run.exit !== undefined || this.closed) return;
      if (!isAlive(pid)) return this.exited(run, { code: null, signal: null });
      run.poll = this.deps.clock.setTimer(ADOPTED_POLL_MS, poll);
    };
    run.poll = this.deps.clock.setTimer(ADOPTED_POLL_MS, poll);
    this.deps.logger?.info({ pid, command: this.command }, "adopted running daemon from pidfile");
    return run;
  }

  private track(pid: number, child: ChildProcess | undefined): Running {
    let markExited!: (exit: DaemonExit) => void;
    const exited = new Promise<DaemonExit>((resolve) => (markExited = resolve));
    const run: Running = { pid, child, exited, markExited, exit: undefined, stopping: false, poll: undefined };
    this.current = run;
    return run;
  }

  private exited(run: Running, exit: DaemonExit): void {
    if (run.exit !== undefined) return;
    run.exit = exit;
    run.poll?.cancel();
    run.markExited(exit);
    if (this.current === run) this.current = undefined;
    removePidfile(this.pidfile, run.pid);
    if (run.stopping || this.closed) return;
    this.deps.logger?.warn({ pid: run.pid, exit }, "daemon exited unexpectedly");
    for (const listener of this.listeners) {
      try {
        listener(exit);
      } catch (e) {
        this.deps.logger?.error({ err: describeError(e) }, "onUnexpectedExit listener threw");
      }
    }
  }

  private exitWithin(run: Running, ms: number): Promise<boolean> {
    if (run.exit !== undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = this.deps.clock.setTimer(ms, () => resolve(false));
      void run.exited.then(() => {
        timer.cancel();
        resolve(true);
      });
    });
  }

  private signal(run: Running, signal: NodeJS.Signals): void {
    if (run.exit !== undefined) return;
    try {
      process.kill(run.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") return;
      throw new UnderstudyError("US_E_DAEMON_STOP", { backend: "process", cause: `${signal} to pid ${run.pid}: ${describeError(e)}` });
    }
  }
}

function fail(problem: string): never {
  throw new UnderstudyError("US_E_DAEMON_CONFIG", { backend: "process", problem });
}

function startError(cause: string): UnderstudyError {
  return new UnderstudyError("US_E_DAEMON_START", { backend: "process", cause });
}

/** How long past stop_timeout to wait for understudy-pidexec's verdict (its exec takes milliseconds). */
const EXEC_STATUS_MS = 5_000;

/**
 * understudy-pidexec's verdict on fd 3: null once the pipe closes empty (the daemon runs: exec closed
 * it), else its message. A helper that says nothing within `boundMs` is taken as started.
 */
function execStatus(child: ChildProcess, clock: Clock, boundMs: number): Promise<string | null> {
  const pipe = child.stdio[3] as NodeJS.ReadableStream | null | undefined;
  if (!pipe) return Promise.resolve(null);
  return new Promise((resolve) => {
    let text = "";
    let settled = false;
    const timer = clock.setTimer(boundMs, () => done());
    const done = (): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      resolve(text.trim() === "" ? null : text.trim().slice(0, 500));
    };
    pipe.on("data", (d: Buffer) => (text += d.toString("utf8")));
    pipe.on("error", () => undefined);
    pipe.once("close", done);
    pipe.once("end", done);
  });
}

// Pidfile I/O is synchronous so that reading, adopting and rewriting it cannot interleave.
// Format: "<pid> <start time in clock ticks since boot>\n" (a bare pid is still read).
function readPidRecord(file: string): { pid: number; start: string | undefined } | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const [pidText, start] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  // pid 0 or negative would signal whole process groups.
  return Number.isSafeInteger(pid) && pid > 1 ? { pid, start: start && /^\d+$/.test(start) ? start : undefined } : undefined;
}

function readPidfile(file: string): number | undefined {
  return readPidRecord(file)?.pid;
}

function writePidfile(file: string, pid: number): void {
  const tmp = `${file}.tmp`;
  const start = startTime(pid);
  writeFileSync(tmp, start ? `${pid} ${start}\n` : `${pid}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Remove the pidfile only if it still names `pid`: a newer daemon's record must survive. */
function removePidfile(file: string, pid: number): void {
  if (readPidfile(file) !== pid) return;
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/** Alive and not a zombie. EPERM means alive but not ours to signal. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true;
  }
}

function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const parts = raw.split("\0");
    if (parts[parts.length - 1] === "") parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

function sameArgv(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}
