import { spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { FenceOrders, GuardMessage } from "./core.js";

/** What the HA loop needs from the fence guard. Never throws: a guard problem is logged, not fatal. */
export interface FenceGuard {
  /** Fence at this deadline (Clock.systemMonotonicMs) unless told otherwise before it. */
  arm(deadlineSystemMs: number): void;
  disarm(): void;
  close(): Promise<void>;
}

const GUARD_MAIN = fileURLToPath(new URL("./guard-main.js", import.meta.url));

/**
 * The agent's side of the fence guard: connects to the guard's unix socket in
 * the state directory, starting the guard (detached, in its own session, so
 * it outlives the agent) when none answers. A restarted agent reconnects to
 * the guard its predecessor started and keeps it fed. The guard is started
 * when the agent starts, off the promotion path (spawning a Node process costs
 * 20-30 ms of this event loop); it leaves when no agent is connected and it is
 * disarmed. Messages sent while it starts are queued (the deadline is
 * absolute, so late delivery cannot stretch it).
 */
export class FenceGuardLink implements FenceGuard {
  private sock: Socket | undefined;
  private connecting: Promise<Socket | undefined> | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly orders: FenceOrders,
    private readonly deps: { clock: Clock; log: Logger; nodeArgs?: readonly string[] },
  ) {}

  private get socketPath(): string {
    return `${this.stateDir}/fence-guard.sock`;
  }

  /** Start or find the guard in the background (agent start). */
  start(): void {
    void this.link();
  }

  arm(deadlineSystemMs: number): void {
    this.send({ arm: { deadlineMs: deadlineSystemMs, orders: this.orders } });
  }

  disarm(): void {
    this.send({ disarm: true });
  }

  async close(): Promise<void> {
    this.sock?.end();
    this.sock = undefined;
  }

  private send(msg: GuardMessage): void {
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
        if (!s) {
          this.spawnGuard();
          for (let i = 0; i < 40 && !s; i++) {
            await this.deps.clock.sleep(50);
            s = await this.tryConnect();
          }
        }
        if (!s) this.deps.log.error({ socket: this.socketPath }, "fence guard did not come up: a frozen agent would not be fenced");
        this.sock = s;
        s?.on("close", () => {
          if (this.sock === s) this.sock = undefined;
        });
        return s;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
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
      const child = spawn(process.execPath, [...(this.deps.nodeArgs ?? []), GUARD_MAIN, "--socket", this.socketPath, "--pidfile", `${this.stateDir}/fence-guard.pid`], {
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
