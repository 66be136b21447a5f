import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ProcessDaemon, type ProcessDaemonOptions } from "../../../src/daemon/process.js";
import type { DaemonExit } from "../../../src/daemon/port.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { FakeClock } from "../../fakes/clock.js";

const SLEEP = ["sleep", "30"];

let stateDir: string;
let clock: FakeClock;
const daemons: ProcessDaemon[] = [];
const strays: ChildProcess[] = [];

function daemon(options: Partial<ProcessDaemonOptions> = {}): ProcessDaemon {
  const d = new ProcessDaemon({ command: SLEEP, stopTimeoutMs: 300, stateDir, stderr: "ignore", ...options }, { clock });
  daemons.push(d);
  return d;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await delay(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function pidfile(): string | undefined {
  const file = join(stateDir, "daemon.pid");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split(" ")[0] : undefined;
}

/** A `sleep 30` started outside the daemon, as a previous agent would have left it. */
function orphan(): { child: ChildProcess; exited: Promise<NodeJS.Signals | null> } {
  const child = spawn(SLEEP[0]!, SLEEP.slice(1), { stdio: "ignore" });
  strays.push(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
  writeFileSync(join(stateDir, "daemon.pid"), `${child.pid}\n`);
  return { child, exited };
}

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "understudy-daemon-"));
  clock = new FakeClock();
});

afterEach(async () => {
  for (const d of daemons.splice(0)) {
    const pid = d.pid();
    if (pid !== undefined) process.kill(pid, "SIGKILL");
    await d.close();
  }
  for (const c of strays.splice(0)) c.kill("SIGKILL");
  rmSync(stateDir, { recursive: true, force: true });
});

describe("ProcessDaemon", () => {
  it("rejects an empty command and a zero stop timeout", () => {
    assert.throws(
      () => daemon({ command: [] }),
      (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
    );
    assert.throws(
      () => daemon({ stopTimeoutMs: 0 }),
      (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
    );
  });

  it("starts one child however often start() is called, and records its pid", async () => {
    const d = daemon();
    assert.equal(await d.isRunning(), false);
    await Promise.all([d.start(), d.start()]);
    const pid = d.pid()!;
    await d.start();
    assert.equal(d.pid(), pid);
    assert.equal(await d.isRunning(), true);
    assert.equal(pidfile(), String(pid));
    assert.equal(cmdline(pid), "sleep\x0030\x00");

    await d.stop();
    assert.equal(await d.isRunning(), false);
    assert.equal(alive(pid), false);
    assert.equal(pidfile(), undefined);
    await d.stop(); // idempotent
  });

  it("escalates to SIGKILL after stop_timeout when the child ignores SIGTERM", async () => {
    const d = daemon({ command: ["sh", "-c", "trap '' TERM; exec sleep 30"] });
    await d.start();
    const pid = d.pid()!;
    // The exec happens after the trap is set, so from here on TERM is ignored.
    await until(() => cmdline(pid) === "sleep\x0030\x00", "the trap to be installed");

    let stopped = false;
    const stopping = d.stop().then(() => (stopped = true));
    await delay(150);
    assert.equal(stopped, false, "stop() resolved before the child exited");
    assert.equal(alive(pid), true, "child died of SIGTERM; the trap did not hold");

    await clock.advance(299);
    await delay(50);
    assert.equal(alive(pid), true, "SIGKILL sent before stop_timeout");
    await clock.advance(1);
    await stopping;
    assert.equal(alive(pid), false);
    assert.equal(pidfile(), undefined);
  });

  it("reports an unexpected exit once, with its code, and does not restart", async () => {
    const d = daemon({ command: ["sh", "-c", "exit 3"] });
    const exits: DaemonExit[] = [];
    const reported = new Promise<void>((resolve) => d.onUnexpectedExit((e) => (exits.push(e), resolve())));
    await d.start();
    await reported;
    await delay(50);
    await clock.advance(1000);
    assert.deepEqual(exits, [{ code: 3, signal: null }]);
    assert.equal(await d.isRunning(), false);
    assert.equal(d.pid(), undefined);
    assert.equal(pidfile(), undefined);
  });

  it("reports a child killed by a signal", async () => {
    const d = daemon();
    const reported = new Promise<DaemonExit>((resolve) => d.onUnexpectedExit(resolve));
    await d.start();
    process.kill(d.pid()!, "SIGKILL");
    assert.deepEqual(await reported, { code: null, signal: "SIGKILL" });
  });

  it("does not report an exit that stop() asked for", async () => {
    const d = daemon();
    const exits: DaemonExit[] = [];
    d.onUnexpectedExit((e) => exits.push(e));
    await d.start();
    await d.stop();
    await delay(50);
    assert.deepEqual(exits, []);
  });

  it("a start() issued during stop() waits for it, then starts a fresh child", async () => {
    const d = daemon();
    await d.start();
    const first = d.pid()!;
    const stopping = d.stop();
    const starting = d.start();
    await stopping;
    await starting;
    const second = d.pid()!;
    assert.notEqual(second, first);
    assert.equal(alive(first), false);
    assert.equal(pidfile(), String(second));
  });

  it("fails start() with US_E_DAEMON_START when the program does not exist", async () => {
    const d = daemon({ command: [join(stateDir, "no-such-program")] });
    await assert.rejects(d.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START"));
    assert.equal(await d.isRunning(), false);
    assert.equal(pidfile(), undefined);
  });

  describe("through understudy-pidexec (dist/daemon, built by npm run build)", () => {
    const PIDEXEC = fileURLToPath(new URL("../../../dist/daemon/understudy-pidexec", import.meta.url));

    it("daemon.pid names the daemon before its first instruction, with the kernel's start time", async () => {
      assert.ok(existsSync(PIDEXEC), "npm run build makes dist/daemon/understudy-pidexec");
      const seen = join(stateDir, "seen-at-start");
      // The daemon's first action: copy daemon.pid as it finds it, then its own pid ($$ is sh's pid, which exec keeps).
      const d = daemon({ pidExec: PIDEXEC, command: ["sh", "-c", `cat "$0/daemon.pid" > "$0/seen-at-start"; echo "$$" >> "$0/seen-at-start"; exec sleep 30`, stateDir] });
      await d.start();
      await until(() => existsSync(seen) && readFileSync(seen, "utf8").split("\n").length >= 3, "the daemon's own record");
      const [record = "", own = ""] = readFileSync(seen, "utf8").split("\n");
      const [recordedPid, recordedStart] = record.split(" ");
      assert.equal(recordedPid, own.trim(), "the record it found names itself");
      assert.equal(recordedPid, String(d.pid()));
      const stat = readFileSync(`/proc/${d.pid()}/stat`, "utf8");
      assert.equal(recordedStart, stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19], "with its start time, as the agent writes it");
      await d.stop();
      assert.equal(pidfile(), undefined);
    });

    it("a program that cannot be run fails start() as a failed spawn did (its status pipe), and nothing is recorded", async () => {
      const d = daemon({ pidExec: PIDEXEC, command: [join(stateDir, "no-such-program")] });
      await assert.rejects(d.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START") && /no-such-program ENOENT/.test(e.message));
      assert.equal(pidfile(), undefined);
      assert.equal(await d.isRunning(), false);
      // Same with a name PATH does not have (execvp searches PATH only).
      const byName = daemon({ pidExec: PIDEXEC, command: ["understudy-no-such-daemon"] });
      await assert.rejects(byName.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START"));
    });

    it("the helper alone: the record is there before the program's first instruction", () => {
      const file = join(stateDir, "alone.pid");
      const r = spawnSync(PIDEXEC, [file, "sh", "-c", 'cat "$0"; echo "$$"', file], { encoding: "utf8", timeout: 10_000 });
      assert.equal(r.status, 0, r.stderr);
      const [record = "", own = ""] = r.stdout.split("\n");
      assert.match(record, /^\d+ \d+$/, "pid and start time");
      assert.equal(record.split(" ")[0], own, "the record names the program itself");
      const refused = spawnSync(PIDEXEC, [join(stateDir, "no-such-dir", "x.pid"), "true"], { encoding: "utf8", timeout: 10_000 });
      assert.equal(refused.status, 126, "no record, no daemon");
    });
  });

  describe("pidfile adoption", () => {
    it("adopts a live process with the same argv instead of starting a second one", async () => {
      const { child, exited } = orphan();
      await until(() => cmdline(child.pid!) === "sleep\x0030\x00", "the orphan to exec");
      const d = daemon();
      await d.start();
      assert.equal(d.pid(), child.pid);
      assert.equal(await d.isRunning(), true);

      const stopping = d.stop();
      assert.equal(await exited, "SIGTERM");
      await clock.advance(100); // the poll that notices an adopted process is gone
      await stopping;
      assert.equal(await d.isRunning(), false);
      assert.equal(pidfile(), undefined);
    });

    it("sees the adopted daemon from isRunning() alone, so a standby can stop it", async () => {
      const { child } = orphan();
      await until(() => cmdline(child.pid!) === "sleep\x0030\x00", "the orphan to exec");
      const d = daemon();
      assert.equal(await d.isRunning(), true);
      assert.equal(d.pid(), child.pid);
    });

    it("reports the adopted process's exit, found by polling every 100 ms", async () => {
      const { child, exited } = orphan();
      await until(() => cmdline(child.pid!) === "sleep\x0030\x00", "the orphan to exec");
      const d = daemon();
      const exits: DaemonExit[] = [];
      d.onUnexpectedExit((e) => exits.push(e));
      await d.start();
      child.kill("SIGKILL");
      await exited;
      assert.deepEqual(exits, []);
      await clock.advance(100);
      assert.deepEqual(exits, [{ code: null, signal: null }]);
      await clock.advance(1000);
      assert.equal(exits.length, 1);
      assert.equal(pidfile(), undefined);
    });

    it("adopts a daemon that rewrote its argv (sshd's process title) when the recorded start time matches", async () => {
      const sh = spawn("bash", ["-c", "exec -a 'sshd: /usr/sbin/sshd -D [listener]' sleep 30"], { stdio: "ignore" });
      strays.push(sh);
      await until(() => cmdline(sh.pid!).startsWith("sshd: "), "argv rewritten");
      const stat = readFileSync(`/proc/${sh.pid}/stat`, "utf8");
      const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
      writeFileSync(join(stateDir, "daemon.pid"), `${sh.pid} ${start}\n`);
      const d = daemon();
      await d.start();
      assert.equal(d.pid(), sh.pid, "adopted, no second child");
    });

    it("ignores a pidfile whose start time does not match (the pid was reused)", async () => {
      writeFileSync(join(stateDir, "daemon.pid"), `${process.pid} 1\n`);
      const d = daemon();
      await d.start();
      assert.notEqual(d.pid(), process.pid);
    });

    for (const [label, content] of [
      ["a process with another argv", String(process.pid)],
      ["garbage", "not-a-pid"],
      ["pid 0", "0"],
    ] as const) {
      it(`ignores a pidfile naming ${label} and starts its own child`, async () => {
        writeFileSync(join(stateDir, "daemon.pid"), `${content}\n`);
        const d = daemon();
        await d.start();
        const pid = d.pid()!;
        assert.notEqual(pid, process.pid);
        assert.equal(cmdline(pid), "sleep\x0030\x00");
        assert.equal(pidfile(), String(pid));
      });
    }
  });
});
