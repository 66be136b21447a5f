import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommandDaemon } from "../../../src/daemon/command.js";
import { createDaemon } from "../../../src/daemon/index.js";
import { ProcessDaemon } from "../../../src/daemon/process.js";
import { SystemdDaemon } from "../../../src/daemon/systemd.js";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const START = ["/usr/sbin/proftpd"];
const STOP = ["/usr/bin/pkill", "-x", "proftpd"];
const STATUS = ["/usr/bin/pgrep", "-x", "proftpd"];

function setup() {
  const runner = new StrictCommandRunner();
  const clock = new FakeClock();
  const daemon = new CommandDaemon({ start: START, stop: STOP, status: STATUS, stopTimeoutMs: 2000 }, { runner, clock });
  return { runner, clock, daemon };
}

describe("CommandDaemon", () => {
  it("start runs the start command only when status says not running", async () => {
    const { runner, daemon } = setup();
    runner.expect(STATUS, { code: 1 }).expect(START);
    await daemon.start();
    runner.expect(STATUS, { code: 0 });
    await daemon.start();
    runner.done();
    assert.ok(
      runner.calls.every((c) => c.options?.timeoutMs === 2000),
      "every command runs with stop_timeout",
    );
  });

  it("start fails with US_E_DAEMON_START when the start command fails", async () => {
    const { runner, daemon } = setup();
    runner.expect(STATUS, { code: 3 }).expect(START, { code: 1, stderr: "bind: Address in use\n" });
    await assert.rejects(daemon.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START") && /Address in use/.test(e.message));
    runner.done();
  });

  it("start fails with US_E_DAEMON_START when status times out", async () => {
    const { runner, daemon } = setup();
    runner.expectError(STATUS, new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: STATUS[0], timeout_ms: 2000 }));
    await assert.rejects(daemon.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START"));
    runner.done();
  });

  it("isRunning is status exit 0, and rejects when status cannot answer", async () => {
    const { runner, daemon } = setup();
    runner.expect(STATUS, { code: 0 }).expect(STATUS, { code: 3 }).expectError(STATUS, new Error("spawn EACCES"));
    assert.equal(await daemon.isRunning(), true);
    assert.equal(await daemon.isRunning(), false);
    await assert.rejects(daemon.isRunning(), /EACCES/);
    runner.done();
  });

  it("stop always runs the stop command, then confirms with status", async () => {
    const { runner, daemon } = setup();
    runner.expect(STOP).expect(STATUS, { code: 1 });
    await daemon.stop();
    runner.done();
  });

  it("stop waits, polling status, while the daemon winds down", async () => {
    const { runner, clock, daemon } = setup();
    runner.expect(STOP).expect(STATUS, { code: 0 }).expect(STATUS, { code: 0 }).expect(STATUS, { code: 1 });
    let stopped = false;
    const stopping = daemon.stop().then(() => (stopped = true));
    await clock.advance(100);
    assert.equal(stopped, false);
    await clock.advance(100);
    await stopping;
    runner.done();
  });

  it("stop fails with US_E_DAEMON_STOP when status still says running after stop_timeout", async () => {
    const { runner, clock, daemon } = setup();
    runner.expect(STOP);
    for (let i = 0; i <= 20; i++) runner.expect(STATUS, { code: 0 });
    const stopping = assert.rejects(daemon.stop(), (e) => isUnderstudyError(e, "US_E_DAEMON_STOP") && /still reports running/.test(e.message));
    await clock.advance(2000);
    await stopping;
    runner.done();
  });

  it("stop fails with US_E_DAEMON_STOP when the stop command fails", async () => {
    const { runner, daemon } = setup();
    runner.expect(STOP, { code: 2, stderr: "permission denied" });
    await assert.rejects(daemon.stop(), (e) => isUnderstudyError(e, "US_E_DAEMON_STOP"));
    runner.done();
  });

  it("rejects empty argv and a zero stop timeout", () => {
    const deps = { runner: new StrictCommandRunner(), clock: new FakeClock() };
    assert.throws(
      () => new CommandDaemon({ start: [], stop: STOP, status: STATUS, stopTimeoutMs: 1 }, deps),
      (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
    );
    assert.throws(
      () => new CommandDaemon({ start: START, stop: STOP, status: STATUS, stopTimeoutMs: 0 }, deps),
      (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
    );
  });
});

describe("createDaemon", () => {
  const deps = { clock: new FakeClock(), runner: new StrictCommandRunner(), stateDir: "/nonexistent/understudy-test" };
  const base = { mode: "cold" as const, stop_timeout: 5000, restart_backoff: 100, restart_backoff_max: 5000, restarts_before_handover: 1, check_interval: 10_000 };

  it("builds the configured backend", () => {
    assert.ok(
      createDaemon({ ...base, backend: "process", command: ["sleep", "30"] }, deps) instanceof ProcessDaemon,
      'createDaemon({ ...base, backend: "process", command: ["sleep", "30"] }, deps) instanceof ProcessD...',
    );
    assert.ok(
      createDaemon({ ...base, backend: "command", start: START, stop: STOP, status: STATUS }, deps) instanceof CommandDaemon,
      'createDaemon({ ...base, backend: "command", start: START, stop: STOP, status: STATUS }, deps) ins...',
    );
    assert.ok(
      createDaemon({ ...base, backend: "systemd", unit: "ssh.service" }, deps) instanceof SystemdDaemon,
      'createDaemon({ ...base, backend: "systemd", unit: "ssh.service" }, deps) instanceof SystemdDaemon',
    );
  });

  it("throws US_E_DAEMON_CONFIG when the backend's settings are missing", () => {
    for (const backend of ["process", "command", "systemd"] as const) {
      assert.throws(
        () => createDaemon({ ...base, backend }, deps),
        (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
      );
    }
  });
});
