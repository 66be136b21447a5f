// InFlight (src/platform/in-flight.ts): bounded concurrency for file-system
// jobs, the first failure kept and thrown, nothing started after it, nothing
// left running when each()/map() return or throw.
import assert from "node:assert/strict";
import { test } from "node:test";
import { InFlight } from "../../../src/platform/in-flight.js";

/** Jobs that finish only when the test says so. */
function manualJobs() {
  const started: number[] = [];
  const finish = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
  const job = (i: number) =>
    new Promise<void>((ok, fail) => {
      started.push(i);
      finish.set(i, { ok, fail });
    });
  return { started, finish, job };
}

const tick = () => new Promise((r) => setImmediate(r));

test("each() runs the items in chunks of `max`, the next chunk once the whole chunk has finished", async () => {
  const m = manualJobs();
  let done = false;
  const all = InFlight.each([0, 1, 2, 3, 4], 2, m.job).then(() => (done = true));
  await tick();
  assert.deepEqual(m.started, [0, 1], "two at once");
  m.finish.get(1)!.ok();
  await tick();
  assert.deepEqual(m.started, [0, 1], "the chunk is not done yet");
  m.finish.get(0)!.ok();
  await tick();
  assert.deepEqual(m.started, [0, 1, 2, 3]);
  for (const i of [2, 3]) m.finish.get(i)!.ok();
  await tick();
  assert.deepEqual(m.started, [0, 1, 2, 3, 4]);
  assert.equal(done, false);
  m.finish.get(4)!.ok();
  await all;
  assert.equal(done, true);
});

test("each(): the first failure is thrown once its chunk has settled, and no later chunk starts", async () => {
  const m = manualJobs();
  let settled = false;
  const all = InFlight.each([0, 1, 2, 3], 2, m.job).finally(() => (settled = true));
  await tick();
  m.finish.get(0)!.fail(new Error("first"));
  await tick();
  assert.equal(settled, false, "job 1 still runs: each() waits for it");
  m.finish.get(1)!.fail(new Error("second"));
  await assert.rejects(all, /^Error: first$/);
  assert.deepEqual(m.started, [0, 1], "nothing after the failed chunk");
});

test("map() keeps the items' order whatever the completion order", async () => {
  const out = await InFlight.map([30, 10, 20, 0], 3, (ms) => new Promise<number>((r) => setTimeout(() => r(ms * 2), ms)));
  assert.deepEqual(out, [60, 20, 40, 0]);
});

test("add()/drain()/throwFirst(): a failure is reported by the next add, drain never rejects", async () => {
  const f = new InFlight(4);
  const seen: number[] = [];
  await f.add(
    () => Promise.resolve(1),
    (v) => void seen.push(v),
  );
  await f.add(() => Promise.reject(new Error("boom")));
  await tick();
  await assert.rejects(
    f.add(() => Promise.resolve(2)),
    /boom/,
  );
  await f.drain();
  assert.deepEqual(seen, [1], "the job after the failure never ran");
  assert.throws(() => f.throwFirst(), /boom/);
});

test("add(): returns once fewer than `max` jobs run, also with several adders waiting at once", async () => {
  const m = manualJobs();
  const f = new InFlight(2);
  const returned: number[] = [];
  const adds = [0, 1, 2, 3].map((i) => f.add(() => m.job(i)).then(() => void returned.push(i)));
  await tick();
  assert.deepEqual(m.started, [0, 1, 2, 3], "each add() starts its job, then waits for a slot");
  assert.deepEqual(returned, [0], "the first add() found a free slot; three jobs more, none free");
  for (const i of [0, 2]) {
    m.finish.get(i)!.ok();
    await tick();
    await tick();
    assert.deepEqual(returned, [0], `job ${i} finished: still ${i === 0 ? 3 : 2} running, every adder waits again`);
  }
  m.finish.get(1)!.ok();
  await Promise.all(adds.slice(1));
  assert.deepEqual(returned.sort(), [0, 1, 2, 3], "one running: the waiting adders go on");
  m.finish.get(3)!.ok();
  await f.drain();
});
