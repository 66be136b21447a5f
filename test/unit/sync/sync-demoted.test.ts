// A pass that does not end: how it happened once, and how it shows.
//
// A primary demoted while its watcher's first scan still runs (promoted and
// fenced again within moments: failsafe chaos, etcd member kill). The pass
// that started the watcher waited for a `ready` that chokidar (the watch source
// then) never sent once closed, so that pass and every later one hung: the
// standby never pulled again. FakeWatchSource.neverReady stands in for it.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { pino } from "pino";
import type { CommandRunner } from "../../../src/platform/command.js";
import { makeTree, type TreeSpec } from "../../fakes/tree.js";
import { SSH, makeNode, newCase, primary, recordFor, standby, synced, waitFor, leader } from "./engine-harness.js";

test("demoted during the watcher's first scan: the pass ends and the standby pulls the next generation", async () => {
  const caseDir = await newCase();
  await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
  const h = await makeNode(caseDir);
  h.watch.neverReady = true;
  await h.engine.start();
  h.engine.follow(primary("n2", 8));
  await waitFor("the watcher started", () => h.watch.starts === 1);
  h.engine.follow(standby(null, leader("n1", 9)));
  await waitFor("the watcher closed", () => h.watch.closed === 1);
  const rec = await recordFor(h, { generation: 5, source: "n1", term: 9 });
  h.engine.follow(standby(rec, leader("n1", 9)));
  await synced(h, 5);
  assert.equal(h.engine.generation(), 5);
  assert.equal(h.engine.status().role, "standby");
});

test("a pass that runs for 10 min says so (status `running`, a warning each 10 min) and clears when it ends", async () => {
  const { h, lines } = await loggedNode(SSH);
  let release: () => void = () => {};
  h.puller.gate = new Promise<void>((r) => (release = r));
  h.engine.follow(standby(await recordFor(h)));
  await waitFor("the pull started", () => h.puller.requests.length === 1);
  assert.equal(h.engine.status().running?.forMs, 0);
  assert.match(h.engine.status().running!.step, /^pulling generation 1 from n1/);
  await h.clock.advance(20 * 60_000);
  const warned = lines.filter((l) => l.level === 40 && l.msg.startsWith("sync: a pass has run for"));
  assert.deepEqual(
    warned.map((l) => l.msg.replace(/ \(step.*$/, "")),
    ["sync: a pass has run for 10 min; no other pass runs until it ends", "sync: a pass has run for 20 min; no other pass runs until it ends"],
  );
  assert.equal(h.engine.status().running?.forMs, 20 * 60_000);
  release();
  await synced(h, 1);
  assert.equal(h.engine.status().running, null);
  await h.clock.advance(20 * 60_000);
  assert.equal(lines.filter((l) => l.msg.startsWith("sync: a pass has run for")).length, 2, "no warning once the pass ended");
});

test("close() waits 10 s for a pass that does not end, then leaves it with a warning", async () => {
  const { h, lines } = await loggedNode(SSH);
  h.puller.gate = new Promise<void>(() => {}); // never
  h.engine.follow(standby(await recordFor(h)));
  await waitFor("the pull started", () => h.puller.requests.length === 1);
  let closed = false;
  const closing = h.engine.close().then(() => (closed = true));
  // close() arms its 10 s wait once the primary side has closed (a few ticks after the call).
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  await h.clock.advance(9_000);
  assert.equal(closed, false, "still waiting for the pass");
  for (let i = 0; i < 30 && !closed; i++) await h.clock.advance(100);
  await closing;
  assert.ok(
    lines.some((l) => l.level === 40 && /^sync: the running pass did not end within 10 s of the stop; left as it is \(step: pulling generation 1/.test(l.msg)),
    "lines.some((l) => l.level === 40 && /^sync: the running pass did not end within 10 s of the stop;...",
  );
  assert.equal(h.puller.closed, 1, "the rest of close() ran");
});

test("close() waits past 10 s for an apply between its first live change and its saved state", async () => {
  // The apply's flush of the staged copy (`sync -f`) is held: the apply is inside its live half.
  let flushing = false;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const runner: CommandRunner = {
    run: async (argv) => {
      assert.equal(argv[0], "sync", `unexpected command ${argv.join(" ")}`);
      flushing = true;
      await gate;
      return { code: 0, signal: null, stdout: "", stderr: "" };
    },
  };
  // Enough files for the apply to flush them with one `sync -f` (apply-run.ts) rather than an fsync each.
  const { h, lines } = await loggedNode(Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`f${i}.conf`, `${i}\n`])), runner);
  h.engine.follow(standby(await recordFor(h)));
  await waitFor("the apply flushing", () => flushing);
  let closed = false;
  const closing = h.engine.close().then(() => (closed = true));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  await h.clock.advance(60_000);
  assert.equal(closed, false, "the apply is waited for");
  assert.ok(
    lines.some((l) => l.level === 40 && l.msg.startsWith("sync: waiting for the apply in progress before stopping")),
    'lines.some((l) => l.level === 40 && l.msg.startsWith("sync: waiting for the apply in progress bef...',
  );
  release();
  await closing;
  assert.equal((await h.store.loadHeld()).roots.ssh, (await recordFor(h)).roots.ssh, "the applied root's state was saved");
  assert.ok(!lines.some((l) => l.msg.startsWith("sync: the running pass did not end")), '!lines.some((l) => l.msg.startsWith("sync: the running pass did not end"))');
});

/** A started standby node (n2) whose log lines land in `lines`, with `tree` as the primary's ssh root. */
async function loggedNode(tree: TreeSpec, runner?: CommandRunner) {
  const caseDir = await newCase();
  await makeTree(path.join(caseDir, "primary", "ssh"), tree);
  const lines: { msg: string; level: number }[] = [];
  const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; level: number }) });
  const h = await makeNode(caseDir, { log, ...(runner ? { runner } : {}) });
  await h.engine.start();
  return { h, lines };
}
