import { spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { FenceOrders, GuardMessage, GuardReply } from "./protocol.js";
import type { FenceGuard, WatchdogSettings, WatchdogStatus } from "./port.js";
import { readJsonLines } from "./json-lines.js";

/** The native guard (src/fence/native, built by `npm run build` next to this file). */
export const GUARD_BINARY = fileURLToPath(new URL("./understudy-fence-guard", import.meta.url));

/**
 * The agent's side of the fence guard: connects to the guard's unix socket in
 * the state directory, starting the guard (detached, in its own session, so
 * it outlives the agent) when none answers. A restarted agent reconnects to
 * the guard its predecessor started and keeps it fed. The guard is started
 * when the agent starts, off the promotion path (a spawn costs this event loop
 * a few milliseconds); it leaves when no agent is connected and it is
 * disarmed. Messages sent while it starts are queued (the deadline is
 * absolute, so late delivery cannot stretch it).
 */
export class FenceGuardLink implements FenceGuard {
  private sock: Socket | undefined;
  private connecting: Promise<Socket | undefined> | undefined;
  private status: WatchdogStatus;
  private waiters: ((s: WatchdogStatus) => void)[] = [];
  /** Whether the guard has reported the watchdog since this agent started. */
  private answered = false;
  /** After close(): nothing is sent, no link is (re)made, no guard is started, no timer is armed. */
  private closed = false;

  constructor(
    private readonly stateDir: string,
    private readonly orders: FenceOrders,
    private readonly deps: {
      clock: Clock;
      log: Logger;
      /** The watchdog the guard should hold while primary (null: none). */
      watchdog?: WatchdogSettings | null;
      /** The guard reported a different watchdog state. */
      onWatchdog?: (s: WatchdogStatus) => void;
    },
  ) {
    const w = deps.watchdog;
    this.status = w ? { state: "unavailable", device: w.device, problem: "the fence guard has not answered yet" } : { state: "off" };
  }

  watchdogStatus(): WatchdogStatus {
    return this.status;
  }

  async armWatchdog(deadlineSystemMs: number, leaseEndSystemMs: number, timeoutMs: number): Promise<WatchdogStatus> {
    if (this.answered && this.status.state !== "ready") {
      // Running already, or nothing the guard could start: no answer to wait for.
      this.arm(deadlineSystemMs, leaseEndSystemMs);
      return this.status;
    }
    const answer = new Promise<WatchdogStatus>((resolve) => this.waiters.push(resolve));
    this.arm(deadlineSystemMs, leaseEndSystemMs);
    // The timer goes with the answer: a pending one would hold a stopping agent for timeoutMs.
    const answered = new AbortController();
    const timeout = this.deps.clock.sleep(timeoutMs, answered.signal).then(
      (): WatchdogStatus => ({ ...this.status, state: "unavailable", problem: `the fence guard did not report the watchdog running within ${timeoutMs}ms` }),
      () => new Promise<never>(() => undefined),
    );
    return Promise.race([answer, timeout]).finally(() => answered.abort());
  }

  private onReply(msg: GuardReply): void {
    const status = msg.watchdog;
    if (!status) return;
    const changed = !this.answered || JSON.stringify(status) !== JSON.stringify(this.status);
    this.answered = true;
    this.status = status;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(status);
    if (changed) this.deps.onWatchdog?.(status);
  }

  private get socketPath(): string {
    return `${this.stateDir}/fence-guard.sock`;
  }

  /** Start or find the guard in the background (agent start). */
  start(): void {
    void this.link();
  }

  arm(deadlineSystemMs: number, leaseEndSystemMs?: number): void {
    this.send({ arm: { deadlineMs: deadlineSystemMs, ...(leaseEndSystemMs !== undefined ? { leaseEndMs: leaseEndSystemMs } : {}), orders: this.orders } });
  }

  disarm(): void {
    this.send({ disarm: true });
  }

  /** Final: a message after this is dropped, not a reason to re-link or start a guard. */
  async close(): Promise<void> {
    this.closed = true;
    // A link being made stops at its next step (at most one 50 ms wait).
    await this.connecting?.catch(() => undefined);
    this.sock?.end();
    this.sock = undefined;
  }

  private send(msg: GuardMessage): void {
    if (this.closed) {
      this.deps.log.debug({ message: Object.keys(msg)[0] }, "fence guard link closed: message not sent");
      return;
    }
    const line = `${JSON.stringify(msg)}\n`;
    if (this.sock && !this.sock.destroyed) {
      this.sock.write(line);
      return;
    }
    // Re-link in the background; the deadline is absolute, so sending it late is harmless.
    void this.link().then((s) => s?.write(line));
  }

  private link(): Promise<Socket | undefined> {
    this.connecting ??= (async () => {
      try {
        let s = await this.tryConnect();
        if (!s && !this.closed) {
          this.spawnGuard();
          for (let i = 0; i < 40 && !s && !this.closed; i++) {
            await this.deps.clock.sleep(50);
            s = await this.tryConnect();
          }
        }
        if (this.closed) {
          // Stopped meanwhile: no link to keep (an open socket would hold the process).
          s?.end();
          return undefined;
        }
        if (!s) this.deps.log.error({ socket: this.socketPath }, "fence guard did not come up: a frozen agent would not be fenced");
        this.sock = s;
        if (s) this.listen(s);
        s?.on("close", () => {
          if (this.sock === s) this.sock = undefined;
        });
        return s;
      } catch (e) {
        // Callers fire and forget (start, send): a failure ends here, logged, never as an unhandled rejection.
        this.deps.log.error({ err: describeError(e), socket: this.socketPath }, "cannot start or reach the fence guard: a frozen agent would not be fenced");
        return undefined;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  /** Replies from the guard; the watchdog settings go first on every connection (the guard may be a predecessor's). */
  private listen(s: Socket): void {
    readJsonLines<GuardReply>(
      s,
      (msg) => this.onReply(msg),
      () => this.deps.log.warn("ignoring a malformed message from the fence guard"),
    );
    s.write(`${JSON.stringify({ watchdog: this.deps.watchdog ?? null } satisfies GuardMessage)}\n`);
  }

  private tryConnect(): Promise<Socket | undefined> {
    return new Promise((resolve) => {
      const s = connect(this.socketPath);
      s.once("connect", () => {
        s.removeAllListeners("error");
        s.on("error", (e) => this.deps.log.warn({ err: describeError(e) }, "fence guard link error"));
        resolve(s);
      });
      s.once("error", () => resolve(undefined));
    });
  }

  private spawnGuard(): void {
    const logFile = `${this.stateDir}/fence-guard.log`;
    const fd = openSync(logFile, "a", 0o600);
    try {
      const child = spawn(GUARD_BINARY, ["--socket", this.socketPath, "--pidfile", `${this.stateDir}/fence-guard.pid`], {
        detached: true,
        stdio: ["ignore", fd, fd],
      });
      child.on("error", (e) => this.deps.log.error({ err: describeError(e) }, "cannot start the fence guard"));
      child.unref();
      this.deps.log.info({ pid: child.pid, log: logFile }, "fence guard started");
    } finally {
      closeSync(fd);
    }
  }
}
