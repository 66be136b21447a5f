import { test } from "node:test";
import assert from "node:assert/strict";
import { ReadinessCheck } from "../../../src/daemon/readiness.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const ARGV = ["/usr/sbin/sshd", "-t", "-f", "/etc/ssh/sshd_config"];

test("a failing check makes the standby not ready, a passing one ready again, re-run every interval", async () => {
  const clock = new FakeClock();
  const runner = new StrictCommandRunner()
    .expect(ARGV, { code: 255, stderr: "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus\n" })
    .expect(ARGV, { code: 255, stderr: "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus\n" })
    .expect(ARGV, { code: 0 });
  let changes = 0;
  const check = new ReadinessCheck(ARGV, 10_000, { runner, clock, log: silentLogger(), onChange: () => changes++ });
  check.start();
  await clock.advance(0);
  assert.match(check.problem() ?? "", /^\/usr\/sbin\/sshd exited 255: \/etc\/ssh\/sshd_config line 3: Bad configuration option: Bogus$/);
  assert.equal(changes, 1);
  await clock.advance(10_000);
  assert.equal(changes, 1, "no change event when the answer stays the same");
  await clock.advance(10_000);
  assert.equal(check.problem(), null);
  assert.equal(changes, 2);
  check.stop();
  await clock.advance(60_000);
  runner.done();
});

test("without a command the node is always ready and nothing runs", async () => {
  const clock = new FakeClock();
  const runner = new StrictCommandRunner();
  const check = new ReadinessCheck(undefined, 10_000, { runner, clock, log: silentLogger(), onChange: () => assert.fail("no change") });
  check.start();
  await clock.advance(30_000);
  assert.equal(check.problem(), null);
  runner.done();
});

test("a check that cannot be spawned counts as not ready", async () => {
  const clock = new FakeClock();
  const runner = new StrictCommandRunner().expectError(ARGV, Object.assign(new Error("spawn /usr/sbin/sshd ENOENT"), { code: "ENOENT" }));
  const check = new ReadinessCheck(ARGV, 10_000, { runner, clock, log: silentLogger(), onChange: () => undefined });
  check.start();
  await clock.advance(0);
  assert.match(check.problem() ?? "", /ENOENT/);
  check.stop();
});
