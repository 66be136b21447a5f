import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SystemdDaemon } from "../../../src/daemon/systemd.js";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const UNIT = "proftpd.service";

function setup() {
  const runner = new StrictCommandRunner();
  return { runner, daemon: new SystemdDaemon({ unit: UNIT, stopTimeoutMs: 5000 }, { runner }) };
}

describe("SystemdDaemon", () => {
  it("starts and stops the unit with systemctl, each call bounded by stop_timeout", async () => {
    const { runner, daemon } = setup();
    runner.expect(["systemctl", "start", UNIT]).expect(["systemctl", "stop", UNIT]);
    await daemon.start();
    await daemon.stop();
    runner.done();
    assert.deepEqual(
      runner.calls.map((c) => c.options?.timeoutMs),
      [5000, 5000],
    );
  });

  it("isRunning is `systemctl is-active --quiet` exiting 0", async () => {
    const { runner, daemon } = setup();
    const argv = ["systemctl", "is-active", "--quiet", UNIT];
    runner.expect(argv, { code: 0 }).expect(argv, { code: 3 }).expect(argv, { code: 4 });
    assert.equal(await daemon.isRunning(), true);
    assert.equal(await daemon.isRunning(), false); // inactive
    assert.equal(await daemon.isRunning(), false); // no such unit
    runner.done();
  });

  it("wraps a failing systemctl start in US_E_DAEMON_START", async () => {
    const { runner, daemon } = setup();
    runner.expect(["systemctl", "start", UNIT], { code: 1, stderr: "Job for proftpd.service failed.\n" });
    await assert.rejects(daemon.start(), (e) => isUnderstudyError(e, "US_E_DAEMON_START") && /Job for proftpd.service failed/.test(e.message));
    runner.done();
  });

  it("wraps a failing or timed-out systemctl stop in US_E_DAEMON_STOP", async () => {
    const { runner, daemon } = setup();
    runner.expect(["systemctl", "stop", UNIT], { code: 5 }).expectError(["systemctl", "stop", UNIT], new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: "systemctl", timeout_ms: 5000 }));
    await assert.rejects(daemon.stop(), (e) => isUnderstudyError(e, "US_E_DAEMON_STOP"));
    await assert.rejects(daemon.stop(), (e) => isUnderstudyError(e, "US_E_DAEMON_STOP") && /did not finish/.test(e.message));
    runner.done();
  });

  it("rejects a unit name that is not a .service or could be read as an option", () => {
    const runner = new StrictCommandRunner();
    for (const unit of ["proftpd", "--all.service", "a b.service"]) {
      assert.throws(
        () => new SystemdDaemon({ unit, stopTimeoutMs: 1000 }, { runner }),
        (e) => isUnderstudyError(e, "US_E_DAEMON_CONFIG"),
        unit,
      );
    }
  });
});
