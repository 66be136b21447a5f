import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SpawnCommandRunner } from "../../../src/platform/command.js";
import { runValidator, substituteStaged } from "../../../src/sync/validate.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { tempDir } from "../../fakes/tree.js";

const STAGED = "/etc/.understudy-stage-ssh/tree";

describe("runValidator", () => {
  it("replaces every {staged} inside each argv element, and nothing else", () => {
    assert.deepEqual(substituteStaged(["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config", "--x={staged}:{staged}", "$(rm -rf /)", "{stage}"], STAGED), [
      "/usr/sbin/sshd",
      "-t",
      "-f",
      `${STAGED}/sshd_config`,
      `--x=${STAGED}:${STAGED}`,
      "$(rm -rf /)",
      "{stage}",
    ]);
  });

  it("runs the substituted argv with the timeout and returns on exit 0", async () => {
    const runner = new StrictCommandRunner().expect(["/usr/sbin/sshd", "-t", "-f", `${STAGED}/sshd_config`]);
    await runValidator(["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"], STAGED, runner, 5000);
    runner.done();
    assert.equal(runner.calls[0]!.options?.timeoutMs, 5000);
  });

  it("throws US_E_SYNC_VALIDATOR_FAILED with the exit code and the first stderr lines", async () => {
    const stderr = ["line 1: Bad configuration option: Foo", "line 2: bad", "3", "4", "5", "6 not shown", ""].join("\n");
    const runner = new StrictCommandRunner().expect(["sshd", "-t"], { code: 255, stderr });
    await assert.rejects(runValidator(["sshd", "-t"], STAGED, runner, 1000), (e) => {
      assert.ok(isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED"), 'isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED")');
      assert.equal(e.details.code, 255);
      assert.equal(e.details.staged, STAGED);
      assert.equal(e.details.stderr, "line 1: Bad configuration option: Foo | line 2: bad | 3 | 4 | 5");
      assert.equal(e.transient, false);
      return true;
    });
  });

  it("reports a timeout, a program that cannot start, a signal and an empty command the same way", async () => {
    const timeout = new StrictCommandRunner().expectError(["v"], new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: "v", timeout_ms: 10 }));
    await assert.rejects(runValidator(["v"], STAGED, timeout, 10), (e) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED") && e.details.code === "timeout");
    const missing = new StrictCommandRunner().expectError(["v"], Object.assign(new Error("spawn v ENOENT"), { code: "ENOENT" }));
    await assert.rejects(runValidator(["v"], STAGED, missing, 10), (e) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED") && e.details.code === "not run" && /ENOENT/.test(e.message));
    const killed = new StrictCommandRunner().expect(["v"], { code: null, signal: "SIGKILL" });
    await assert.rejects(runValidator(["v"], STAGED, killed, 10), (e) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED") && e.details.code === "signal SIGKILL");
    await assert.rejects(runValidator([], STAGED, new StrictCommandRunner(), 10), (e) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED") && e.details.code === "not run");
  });

  it("runs a real program without a shell", async () => {
    const { dir, cleanup } = await tempDir("validate");
    try {
      const runner = new SpawnCommandRunner();
      await runValidator(["test", "-d", "{staged}"], dir, runner, 5000);
      // A shell would expand this; with an argv it is just a file name that does not exist.
      await assert.rejects(runValidator(["test", "-e", "{staged}/$(echo x)"], dir, runner, 5000), (e) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED") && e.details.code === 1);
    } finally {
      await cleanup();
    }
  });
});
