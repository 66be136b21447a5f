/**
 * Drives the real native fence guard (dist/fence/understudy-fence-guard, built
 * by `npm run build`) in a temporary directory: its socket, pidfile, a fake
 * watchdog (sysfs attributes in files, the device a FIFO the test reads, and a
 * fake `wdctl` first on PATH that records its argv), and harness processes for
 * the daemon. Times are CLOCK_MONOTONIC ms (`mono()`), the guard's own clock:
 * the guard logs the monotonic time at which it starts a fence, so tests
 * assert order and lower bounds against it instead of wall-clock windows.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { connect, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { GuardMessage, GuardReply } from "../../src/fence/protocol.js";

export const GUARD = resolve(dirname(fileURLToPath(import.meta.url)), "../../dist/fence/understudy-fence-guard");

/** CLOCK_MONOTONIC in ms, as the agent's Clock.systemMonotonicMs(). */
export const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll fn until it returns a value, at most timeoutMs (generous: the assertion is what it returns, not how fast). */
/** Whether a pid is gone (or a zombie: exited, not yet reaped by its parent). */
export function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return true;
  }
}

export async function until<T>(fn: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const FAKE_WDCTL = `#!/bin/sh
# fake wdctl: records its argv; sets the fake sysfs timeout to what was asked, or
# (WDCTL_GRANT) to a fixed value; WDCTL_FAIL: exits 1 with a message, changing nothing.
echo "$*" >> "$WDCTL_LOG"
# WDCTL_HANG=FILE: hang (a child of its own in its group, pid in FILE) until killed.
if [ -n "$WDCTL_HANG" ]; then sleep 60 & echo $! > "$WDCTL_HANG"; wait; fi
if [ -n "$WDCTL_FAIL" ]; then echo "wdctl: cannot set timeout for watchdog: Operation not supported" >&2; exit 1; fi
echo "\${WDCTL_GRANT:-$2}" > "$WDCTL_SYSFS/timeout"
`;

export interface GuardOptions {
  /** Fake sysfs attributes of watchdog0 (none: no directory, as without a driver). */
  readonly sysfs?: Record<string, string>;
  readonly wdctlFail?: boolean;
  readonly wdctlGrant?: number;
  /** wdctl hangs; the pid of a child it started is written to this file. */
  readonly wdctlHang?: string;
}

export class GuardProcess {
  readonly socket: string;
  readonly pidfile: string;
  readonly device: string;
  readonly sysfsRoot: string;
  readonly wdctlLog: string;
  readonly proc: ChildProcess;
  stderr = "";
  exit: { code: number | null; signal: string | null; atMs: number } | undefined;
  private deviceReader: Socket | undefined;
  private deviceWriterFd: number | undefined;
  /** Bytes written to the fake device, with the test's time of arrival (an upper bound of the write). */
  readonly deviceBytes: { byte: string; atMs: number }[] = [];
  private readonly others: ChildProcess[] = [];

  private constructor(
    readonly dir: string,
    opts: GuardOptions,
  ) {
    this.socket = join(dir, "guard.sock");
    this.pidfile = join(dir, "guard.pid");
    this.sysfsRoot = join(dir, "sysfs");
    this.device = join(dir, "dev", "watchdog");
    this.wdctlLog = join(dir, "wdctl.log");
    const bin = join(dir, "bin");
    mkdirSync(bin);
    mkdirSync(join(dir, "dev"));
    writeFileSync(join(bin, "wdctl"), FAKE_WDCTL);
    chmodSync(join(bin, "wdctl"), 0o755);
    mkdirSync(this.sysfsRoot);
    if (opts.sysfs) {
      mkdirSync(join(this.sysfsRoot, "watchdog0"));
      for (const [k, v] of Object.entries(opts.sysfs)) writeFileSync(join(this.sysfsRoot, "watchdog0", k), `${v}\n`);
    }
    const env: Record<string, string> = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      WDCTL_LOG: this.wdctlLog,
      WDCTL_SYSFS: join(this.sysfsRoot, "watchdog0"),
    };
    if (opts.wdctlFail) env.WDCTL_FAIL = "1";
    if (opts.wdctlGrant !== undefined) env.WDCTL_GRANT = String(opts.wdctlGrant);
    if (opts.wdctlHang) env.WDCTL_HANG = opts.wdctlHang;
    this.proc = spawn(GUARD, ["--socket", this.socket, "--pidfile", this.pidfile, "--sysfs-watchdog", this.sysfsRoot], { stdio: ["ignore", "ignore", "pipe"], env });
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    this.proc.on("exit", (code, signal) => (this.exit = { code, signal, atMs: mono() }));
  }

  static async start(t: { after(fn: () => void | Promise<void>): void }, opts: GuardOptions = {}): Promise<GuardProcess> {
    const dir = mkdtempSync(join(tmpdir(), "understudy-guard-test-"));
    const g = new GuardProcess(dir, opts);
    t.after(() => g.cleanup());
    await until(() => (existsSync(g.pidfile) && readFileSync(g.pidfile, "utf8").endsWith("\n") ? true : undefined), "the guard's pidfile");
    return g;
  }

  /** The fake device as a FIFO read by this test (call before the guard may open it). */
  makeFifoDevice(): void {
    const r = spawnSyncMkfifo(this.device);
    if (r !== 0) throw new Error("mkfifo failed");
    const fd = openSync(this.device, constants.O_RDONLY | constants.O_NONBLOCK);
    // A writer of our own, so the reader never sees EOF between the guard's opens.
    this.deviceWriterFd = openSync(this.device, constants.O_WRONLY | constants.O_NONBLOCK);
    this.deviceReader = new Socket({ fd, readable: true, writable: false });
    this.deviceReader.setEncoding("latin1").on("data", (d: string) => {
      const at = mono();
      for (const byte of d) this.deviceBytes.push({ byte, atMs: at });
    });
  }

  deviceText(): string {
    return this.deviceBytes.map((b) => b.byte).join("");
  }

  /** Whether the guard holds the fake device open (from /proc/PID/fd). */
  holdsDevice(): boolean {
    const pid = this.proc.pid!;
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === this.device;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  }

  async connect(): Promise<GuardConnection> {
    const s = await new Promise<Socket>((res, rej) => {
      const c = connect(this.socket);
      c.once("connect", () => res(c));
      c.once("error", rej);
    });
    return new GuardConnection(s);
  }

  /** The CLOCK_MONOTONIC ms at which the guard started fencing, from its log. */
  fencedAt(): number | undefined {
    const m = /fencing .*CLOCK_MONOTONIC ([\d.]+) ms/.exec(this.stderr);
    return m ? Number(m[1]) : undefined;
  }

  async waitExit(timeoutMs = 20_000) {
    return until(() => this.exit, "the guard to exit", timeoutMs);
  }

  async waitLog(re: RegExp, timeoutMs = 15_000): Promise<string> {
    return until(() => re.exec(this.stderr)?.[0], `guard log ${re}`, timeoutMs).catch((e: Error) => {
      throw new Error(`${e.message}\n--- guard log:\n${this.stderr}`);
    });
  }

  /** A harness process (the "daemon"), killed at cleanup; its exit is recorded with mono(). */
  spawnOther(argv: string[]): { proc: ChildProcess; exited: Promise<{ code: number | null; signal: string | null; atMs: number }> } {
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
    this.others.push(proc);
    const exited = new Promise<{ code: number | null; signal: string | null; atMs: number }>((res) => proc.on("exit", (code, signal) => res({ code, signal, atMs: mono() })));
    return { proc, exited };
  }

  cleanup(): void {
    if (!this.exit) this.proc.kill("SIGKILL");
    for (const p of this.others) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    this.deviceReader?.destroy();
    if (this.deviceWriterFd !== undefined) closeSync(this.deviceWriterFd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function spawnSyncMkfifo(path: string): number | null {
  // node has no mkfifo: coreutils' (an argv, no shell).
  return spawnSync("mkfifo", ["-m", "600", path]).status;
}

export class GuardConnection {
  readonly replies: GuardReply[] = [];
  private buf = "";
  closed = false;

  constructor(readonly sock: Socket) {
    sock.setEncoding("utf8").on("data", (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        this.replies.push(JSON.parse(this.buf.slice(0, nl)) as GuardReply);
        this.buf = this.buf.slice(nl + 1);
      }
    });
    sock.on("close", () => (this.closed = true));
    sock.on("error", () => undefined);
  }

  send(msg: GuardMessage | string): void {
    this.sock.write(typeof msg === "string" ? msg : `${JSON.stringify(msg)}\n`);
  }

  /**
   * Every message sent before it has been handled once the reply to {watchdog: null} comes back
   * (one connection is read in order). It turns the watchdog off: not for watchdog tests.
   */
  async barrier(): Promise<void> {
    const n = this.replies.length;
    this.send({ watchdog: null });
    await until(() => (this.replies.length > n ? true : undefined), "the guard's reply");
  }

  /** The next reply (after `after` replies) satisfying ok. */
  async reply(ok: (r: GuardReply) => boolean, after = 0): Promise<GuardReply> {
    return until(() => this.replies.slice(after).find(ok), "a matching reply from the guard");
  }

  close(): void {
    this.sock.end();
  }
}
