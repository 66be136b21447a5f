// Gratuitous ARP from a resident sender (src/vip/native/garp.c) instead of an
// `arping` spawn per packet: after a takeover the first announcement is what
// moves the clients, and a spawn put 30-40 ms between `ip addr add` and that
// packet on a busy 2-core host (bench/switchover).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";

/** Built by `npm run build` next to this file (dist/vip/understudy-garp). */
export const GARP_BINARY = fileURLToPath(new URL("./understudy-garp", import.meta.url));

/** Sends one announcement (sender = target = ip) on iface; rejects with the reason it could not. */
export interface GarpSender {
  announce(iface: string, ip: string, timeoutMs: number): Promise<void>;
}

export type GarpSpawn = (file: string) => ChildProcess;

interface Waiter {
  /** null: sent; else why not (the waiter names its own address and interface). */
  settle(cause: string | null): void;
}

/**
 * One `understudy-garp` for the agent's life: a line out per announcement, a line
 * back ("ok" / "error ..."). Serial; a reply overdue past its timeout kills the
 * sender (SIGKILL) and the next call starts another. It exits on stdin EOF, so it
 * dies with the agent. A sender that cannot run rejects every call: the caller
 * falls back to `arping`.
 */
export class ResidentGarpSender implements GarpSender {
  private child: ChildProcess | undefined;
  private out = "";
  private waiters: Waiter[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Set when the sender could not be started at all: every later call is refused at once. */
  private cannotRun: string | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly binary: string = GARP_BINARY,
    private readonly spawnIt: GarpSpawn = (file) => spawn(file, [], { stdio: ["pipe", "pipe", "ignore"] }),
  ) {}

  /** Whether the sender was built (a source checkout without `npm run build` has none). */
  available(): boolean {
    return existsSync(this.binary);
  }

  /** Start it now (agent start), so the first takeover does not pay for the spawn. */
  prepare(): void {
    if (!this.closed && this.child === undefined && this.available()) this.start();
  }

  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = undefined;
    // An announcement in flight falls back to arping now instead of waiting out its timeout.
    for (const w of [...this.waiters]) w.settle("understudy-garp is closed");
  }

  announce(iface: string, ip: string, timeoutMs: number): Promise<void> {
    // The line protocol has no quoting: a blank or newline in a value would be another request.
    if (!/^[^\s/]{1,15}$/.test(iface) || !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
      return Promise.reject(failure(iface, ip, "understudy-garp takes an IPv4 address and an interface name without blanks"));
    }
    const result = this.tail.then(() => this.request(iface, ip, timeoutMs));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private request(iface: string, ip: string, timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(failure(iface, ip, "understudy-garp is closed"));
    if (this.cannotRun !== null) return Promise.reject(failure(iface, ip, this.cannotRun));
    const child = this.child ?? this.start();
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        settle: (cause) => {
          timer?.cancel();
          this.waiters = this.waiters.filter((w) => w !== waiter);
          if (cause === null) resolve();
          else reject(failure(iface, ip, cause));
        },
      };
      this.waiters.push(waiter);
      timer = this.clock.setTimer(timeoutMs, () => {
        this.kill(child);
        timer = undefined;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: this.binary, timeout_ms: timeoutMs }));
      });
      child.stdin?.write(`${iface} ${ip}\n`);
    });
  }

  private start(): ChildProcess {
    const child = this.spawnIt(this.binary);
    this.child = child;
    this.out = "";
    const fail = (why: string): void => {
      // A sender killed at a timeout is not current any more: its exit must not fail its successor's request.
      if (this.child !== child) return;
      this.child = undefined;
      for (const w of [...this.waiters]) w.settle(`understudy-garp ${why}`);
    };
    child.on("error", (e) => {
      // Not startable (EACCES, ENOENT): arping from now on, without a spawn attempt per packet.
      this.cannotRun = `understudy-garp could not run: ${e.message}`;
      fail(`could not run: ${e.message}`);
    });
    child.on("close", (code, signal) => fail(`exited (${code ?? signal})`));
    child.stdin?.on("error", () => undefined);
    child.stdout?.on("data", (d: Buffer) => {
      if (this.child !== child) return;
      this.out += d.toString("utf8");
      let nl: number;
      while ((nl = this.out.indexOf("\n")) >= 0) {
        const reply = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        this.waiters[0]?.settle(reply === "ok" ? null : `understudy-garp: ${reply.replace(/^error /, "").slice(0, 200)}`);
      }
    });
    return child;
  }

  private kill(child: ChildProcess): void {
    if (this.child === child) this.child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }
}

function failure(iface: string, ip: string, cause: string): UnderstudyError {
  return new UnderstudyError("US_E_VIP_ANNOUNCE", { address: ip, interface: iface, cause });
}
