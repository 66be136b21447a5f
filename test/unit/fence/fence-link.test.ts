// FenceGuardLink's fire-and-forget paths (start, a message while unlinked):
// a failure to start or reach the guard is logged, never an unhandled
// rejection (which would end the agent).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { FenceGuardLink } from "../../../src/fence/client.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

test("fence guard link: a state directory it cannot use is logged, not an unhandled rejection", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "understudy-link-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));

  // No socket answers there, and the guard's log file cannot be opened: starting the guard throws.
  const link = new FenceGuardLink(join(dir, "missing"), { dropVip: null, daemonPidfile: null, stopArgv: null }, { clock: new FakeClock(), log });
  const failures = () => lines.map((l) => JSON.parse(l) as { msg: string; err?: string }).filter((l) => l.msg.startsWith("cannot start or reach the fence guard"));
  const settle = async (n: number) => {
    for (let i = 0; i < 50 && failures().length < n; i++) {
      await flushMicrotasks();
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
  };
  link.start();
  await settle(1);
  link.arm(1000, 2000); // unlinked: re-links in the background, and fails the same way
  await settle(2);
  assert.deepEqual(rejections, []);
  assert.equal(failures().length, 2, "start() and the message each report once");
  assert.match(failures()[0]!.err ?? "", /ENOENT/);
  await link.close();
});
