import { test } from "node:test";
import assert from "node:assert/strict";
import { SerialRunner } from "../../../src/platform/serial.js";

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

test("triggers during a run fold into exactly one more run", async () => {
  const calls: string[] = [];
  let g = gate();
  const r = new SerialRunner(
    async (why) => {
      calls.push(why);
      await g.p;
    },
    () => assert.fail("no error expected"),
  );
  r.trigger("first");
  assert.equal(r.busy(), true);
  r.trigger("a");
  r.trigger("b");
  r.trigger("c");
  const first = g;
  g = gate();
  first.open();
  await new Promise((res) => setImmediate(res));
  g.open();
  await r.idle();
  assert.deepEqual(calls, ["first", "coalesced"]);
  assert.equal(r.busy(), false);
});

test("a run that throws is reported and the runner goes on", async () => {
  const errors: unknown[] = [];
  let n = 0;
  const r = new SerialRunner(
    async () => {
      n++;
      if (n === 1) throw new Error("boom");
    },
    (e) => errors.push(e),
  );
  r.trigger("x");
  await r.idle();
  r.trigger("y");
  await r.idle();
  assert.equal(n, 2);
  assert.equal(errors.length, 1);
});

test("after stop, no run starts and stop waits for the one in progress", async () => {
  const g = gate();
  let n = 0;
  let finished = false;
  const r = new SerialRunner(
    async () => {
      n++;
      await g.p;
      finished = true;
    },
    () => undefined,
  );
  r.trigger("x");
  r.trigger("pending");
  const stopped = r.stop();
  r.trigger("ignored");
  g.open();
  await stopped;
  assert.equal(finished, true);
  assert.equal(n, 1, "the pending run is dropped after stop");
  r.trigger("after");
  await r.idle();
  assert.equal(n, 1);
});
