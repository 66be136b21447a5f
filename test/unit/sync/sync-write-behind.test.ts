// WriteBehind (src/sync/write-behind.ts): while a long pull runs, `sync -f`
// of the staging directory once a second, one at a time; nothing for a pull
// shorter than that; stop() waits for the flush in progress.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CommandResult } from "../../../src/platform/command.js";
import { WriteBehind } from "../../../src/sync/write-behind.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const FLUSH = ["sync", "-f", "/srv/.understudy-stage-x"];

test("no flush for a pull shorter than a second", async () => {
  const clock = new FakeClock();
  const runner = new StrictCommandRunner();
  const wb = new WriteBehind(runner, clock, FLUSH[2]!);
  await clock.advance(999);
  await wb.stop();
  await clock.advance(5000);
  assert.equal(runner.calls.length, 0);
  assert.equal(clock.pendingTimers(), 0);
});

test("a flush each second after the previous one ended; stop() waits for the running one, a failure is harmless", async () => {
  const clock = new FakeClock();
  let release: (r: CommandResult) => void = () => {};
  const calls: { argv: readonly string[]; timeoutMs: number | undefined }[] = [];
  const runner = {
    run: (argv: readonly string[], options?: { timeoutMs?: number }) => {
      calls.push({ argv, timeoutMs: options?.timeoutMs });
      return calls.length === 2 ? Promise.reject(new Error("sync: not found")) : new Promise<CommandResult>((r) => (release = r));
    },
  };
  const wb = new WriteBehind(runner, clock, FLUSH[2]!);
  await clock.advance(1000);
  assert.deepEqual(calls, [{ argv: FLUSH, timeoutMs: 60_000 }]);
  await clock.advance(3000);
  assert.equal(calls.length, 1, "one at a time: the next waits for this one to end");
  release({ code: 0, signal: null, stdout: "", stderr: "" });
  await new Promise((r) => setImmediate(r));
  await clock.advance(1000);
  assert.equal(calls.length, 2, "a second after the first ended");
  await new Promise((r) => setImmediate(r));
  await clock.advance(1000);
  assert.equal(calls.length, 3, "the failed one is just followed by the next");
  let stopped = false;
  const stop = wb.stop().then(() => (stopped = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, false, "stop() waits for the flush in progress");
  release({ code: 0, signal: null, stdout: "", stderr: "" });
  await stop;
  await clock.advance(5000);
  assert.equal(calls.length, 3, "nothing after stop()");
});
