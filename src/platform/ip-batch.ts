// `ip` without a process spawn per call: one resident `ip -j -force -batch -`
// reads the commands on its stdin. A spawn costs the event loop a fork and the
// host an exec; on a busy 2-core host that was 35-100 ms per `ip addr add` or
// `del` on the promotion and demotion paths (bench/switchover), against 1-2 ms
// for a line written to a running `ip`.
import { spawn, type ChildProcess } from "node:child_process";
import { UnderstudyError } from "../errors/catalogue.js";
import type { CommandOptions, CommandResult, CommandRunner } from "./command.js";

/**
 * One argument of a batch line: iproute2 splits batch lines on blanks and reads
 * quotes, backslashes and `#` itself, so only plain words go through the batch
 * (addresses, prefixes, interface names as configs hold them). Anything else,
 * and above all a newline, which would start another command, is run with a
 * spawn and an argv array instead.
 */
const PLAIN_WORD = /^[A-Za-z0-9._:/@%+-]{1,200}$/;
/** An object `ip` does not know: it fails at parse time, without a syscall; its "Command failed -:N" closes a request. */
const SENTINEL = "understudy-batch-mark";
const FAILED_LINE = /^Command failed -:(\d+)$/;
const DEFAULT_TIMEOUT_MS = 5_000;

/** The session failed (not a command: a command's failure is its exit code): the caller spawns instead. */
function sessionError(why: string): UnderstudyError {
  return new UnderstudyError("US_E_COMMAND_FAILED", { argv0: "ip -j -force -batch -", code: "no answer", stderr: `the resident ip ${why}` });
}

/** The batch line for argv, or null when argv must be spawned. JSON output only where asked for (`ip -j`). */
export function batchLine(argv: readonly string[]): { line: string; json: boolean } | null {
  if (argv[0] !== "ip" || argv.length < 3) return null;
  const json = argv[1] === "-j";
  const rest = argv.slice(json ? 2 : 1);
  if (!rest.every((a) => PLAIN_WORD.test(a) && !a.startsWith("-"))) return null;
  // JSON only from a show (a request waits for its line), and adds and deletes (no output) only without -j.
  if (json ? !/^(show|list)$/.test(rest[1] ?? "") : !(/^(addr|address)$/.test(rest[0]!) && /^(add|del|delete)$/.test(rest[1] ?? ""))) return null;
  return { line: rest.join(" "), json };
}

interface Pending {
  readonly cmdLine: number;
  readonly markLine: number;
  readonly json: boolean;
  failed: boolean;
  marked: boolean;
  errText: string;
  settle(r: CommandResult | Error): void;
}

/** The running `ip -batch` and what it has said. */
interface Session {
  readonly child: ChildProcess;
  lines: number;
  out: string;
  err: string;
  pending: Pending | undefined;
  dead: boolean;
}

export type SpawnFn = (file: string, args: readonly string[]) => ChildProcess;

/**
 * A CommandRunner that sends `ip` argv (batchLine) to one resident `ip -j -force -batch -`
 * and everything else to `fallback`. Calls are serial, each with its own timeout: a
 * request that overstays it kills the session (SIGKILL) and rejects with
 * US_E_COMMAND_TIMEOUT, like a spawned command; the next call starts a new session.
 * A session that cannot start or dies mid-request is retried once as a spawn, so a
 * broken resident `ip` never costs a promotion its address. `close()` ends stdin;
 * `ip` exits on EOF, and also when the agent dies, its stdin closing with it.
 */
export class IpBatchRunner implements CommandRunner {
  private session: Session | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly fallback: CommandRunner,
    private readonly spawnIp: SpawnFn = (file, args) => spawn(file, [...args], { stdio: ["pipe", "pipe", "pipe"] }),
  ) {}

  run(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    const batch = batchLine(argv);
    if (batch === null || this.closed || options.input !== undefined || options.env !== undefined || options.signal !== undefined) {
      return this.fallback.run(argv, options);
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const result = this.tail.then(() => this.request(batch.line, batch.json, timeoutMs));
    this.tail = result.catch(() => undefined);
    return result.then(
      // Anything but a clean success is asked again of a spawned `ip` (its answer is authoritative):
      // the session caches interface indexes, and an interface deleted and re-created since (a bond
      // or VLAN brought down and up) fails there only ("Device not found"). The session is gone already.
      (r) => (r.code === 0 && r.stderr === "" ? r : this.fallback.run(argv, options)),
      (e: unknown) => {
        if (e instanceof UnderstudyError && e.code === "US_E_COMMAND_TIMEOUT") throw e;
        return this.fallback.run(argv, options);
      },
    );
  }

  /** Start the session now (at agent start), so the first promotion does not pay for the spawn. */
  prepare(): void {
    if (!this.closed && (!this.session || this.session.dead)) this.start();
  }

  /** End the session (stdin EOF); later calls spawn. */
  close(): void {
    this.closed = true;
    const s = this.session;
    this.session = undefined;
    if (s && !s.dead) s.child.stdin?.end();
  }

  private request(line: string, json: boolean, timeoutMs: number): Promise<CommandResult> {
    // Queued before close(): spawned instead, so no session outlives close().
    if (this.closed) return Promise.reject(sessionError("is closed"));
    const s = this.session && !this.session.dead ? this.session : this.start();
    return new Promise<CommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill(s);
        settle(new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: `ip -batch: ${line}`, timeout_ms: timeoutMs }));
      }, timeoutMs);
      const settle = (r: CommandResult | Error): void => {
        clearTimeout(timer);
        if (s.pending === pending) s.pending = undefined;
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      s.out = "";
      s.err = "";
      const pending: Pending = { cmdLine: s.lines + 1, markLine: s.lines + 2, json, failed: false, marked: false, errText: "", settle };
      s.pending = pending;
      s.lines += 2;
      if (s.dead) return settle(sessionError("is not running"));
      s.child.stdin!.write(`${line}\n${SENTINEL}\n`);
    });
  }

  private start(): Session {
    const child = this.spawnIp("ip", ["-j", "-force", "-batch", "-"]);
    const s: Session = { child, lines: 0, out: "", err: "", pending: undefined, dead: false };
    this.session = s;
    const die = (why: string): void => {
      if (s.dead) return;
      s.dead = true;
      if (this.session === s) this.session = undefined;
      s.pending?.settle(sessionError(why));
    };
    child.on("error", (e) => die(`could not run: ${e.message}`));
    child.on("close", (code, signal) => die(`exited (${code ?? signal})`));
    for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.on("error", () => undefined);
    child.stdout?.on("data", (d: Buffer) => {
      s.out += d.toString("utf8");
      this.check(s);
    });
    child.stderr?.on("data", (d: Buffer) => {
      s.err += d.toString("utf8");
      this.readErr(s);
    });
    return s;
  }

  /** Consume complete stderr lines: a command's error text, then the "Command failed -:N" lines. */
  private readErr(s: Session): void {
    let nl: number;
    while ((nl = s.err.indexOf("\n")) >= 0) {
      const text = s.err.slice(0, nl);
      s.err = s.err.slice(nl + 1);
      const p = s.pending;
      if (!p) continue;
      const n = FAILED_LINE.exec(text)?.[1];
      // The sentinel's own complaint ("Object ... is unknown") is not the command's.
      if (n === undefined) {
        if (!text.includes(SENTINEL)) p.errText += `${text}\n`;
      } else if (Number(n) === p.cmdLine) p.failed = true;
      else if (Number(n) === p.markLine) p.marked = true;
    }
    this.check(s);
  }

  /** Settle once the sentinel has failed and, for a successful JSON command, its output line is in. */
  private check(s: Session): void {
    const p = s.pending;
    if (!p?.marked) return;
    const errText = p.errText.trim();
    if (!p.failed && p.json && !s.out.includes("\n")) return; // printed and flushed before the sentinel was read: on its way
    p.settle({ code: p.failed ? 1 : 0, signal: null, stdout: p.failed ? "" : s.out, stderr: errText });
    // Not clean: this session may hold a stale interface index; the next request starts a fresh one.
    if (p.failed || errText !== "") this.kill(s);
  }

  private kill(s: Session): void {
    s.dead = true;
    if (this.session === s) this.session = undefined;
    try {
      s.child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }
}
