// A full pass's durability (src/data/full-pass.ts): the planner's table, the
// runner's order against a strict fake, and one real pass (rsync and
// `sync --file-system` on this host) to a local directory.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { planFullPass, runFullPass } from "../../../src/data/full-pass.js";
import { barrierCommand, fullPassCommand, newFilesCommand, type DataRsyncOptions } from "../../../src/data/rsync-argv.js";
import { SpawnCommandRunner, type CommandResult, type CommandRunner } from "../../../src/platform/command.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const BASE = mkdtempSync(join(tmpdir(), "us-full-pass-"));
after(() => rmSync(BASE, { recursive: true, force: true }));

const UNKNOWN = { code: 5, stderr: "@ERROR: Unknown module 's3-uploads'\nrsync error: error starting client-server protocol (code 5)" };

test("planFullPass: fsync off copies only; a failed sync rewrites; a reconcile is per-file; a bulk pass probes, then barrier, per-file for an old standby, or fail", () => {
  const on = { fsync: true, rewrite: false, bulk: true };
  assert.deepEqual(
    [
      planFullPass({ fsync: false, rewrite: true, bulk: true }),
      planFullPass({ fsync: true, rewrite: true, bulk: true }),
      planFullPass({ fsync: true, rewrite: false, bulk: false }),
      planFullPass(on),
      planFullPass(on, { code: 0, stderr: "" }),
      planFullPass(on, UNKNOWN),
      planFullPass(on, { code: 12, stderr: "sync: error syncing '/srv/sftp': Input/output error\n@ERROR: pre-xfer exec returned failure (256)" }),
    ].map((s) => (s.kind === "copy" ? `copy ${s.durability}` : s.kind)),
    ["copy none", "copy rewrite", "copy per-file", "probe", "copy barrier", "copy per-file", "fail"],
  );
  assert.match(planFullPass(on, { code: 255, stderr: "ssh: connect to host 198.18.0.12 port 22: Connection refused" }).reason, /could not sync its data volume before the pass: ssh: connect/);
});

function options(dst: string, fsync = true): DataRsyncOptions {
  return { source: join(BASE, "src"), destination: { kind: "local", path: dst }, tempDir: join(BASE, "tmp"), fsync };
}

test("runFullPass: probe, new files without --fsync, barrier, the whole pass fsynced; nothing after a failed step; a failed sync says rewrite", async () => {
  const o = options("/srv/standby");
  const base = { clock: new FakeClock(), rsync: o, maxDelete: 10, rewrite: false, bulk: true, timeoutMs: 5000, signal: new AbortController().signal };
  const fresh = newFilesCommand({ ...o, fsync: false });
  const whole = fullPassCommand({ ...o, fsync: true, maxDelete: 10 });
  assert.ok(fresh.includes("--ignore-existing") && !fresh.includes("--fsync") && !fresh.includes("--delete"), fresh.join(" "));
  assert.ok(!barrierCommand(o).some((a) => a.startsWith("--timeout")), "the sync may take minutes: ship_timeout bounds it, not rsync's I/O timeout");
  const ok = new StrictCommandRunner().expect(barrierCommand(o)).expect(fresh).expect(barrierCommand(o)).expect(whole);
  assert.deepEqual(await runFullPass({ ...base, runner: ok }), { code: 0, stderr: "", durability: "barrier", barrierMs: 0, syncFailed: false });
  ok.done();

  const EIO = { code: 5, stderr: "sync: error syncing '/srv/standby': Input/output error\n@ERROR: pre-xfer exec returned failure (256)" };
  const probeFails = new StrictCommandRunner().expect(barrierCommand(o), EIO);
  const r1 = await runFullPass({ ...base, runner: probeFails });
  assert.deepEqual([r1.code, r1.syncFailed], [-1, true], "a failed sync: earlier unsynced writes may be lost");
  assert.match(r1.stderr, /before the pass: sync: error syncing/);
  probeFails.done();
  const unreachable = new StrictCommandRunner().expect(barrierCommand(o), { code: 255, stderr: "ssh: connect to host 198.18.0.12 port 22: Connection refused" });
  assert.equal((await runFullPass({ ...base, runner: unreachable })).syncFailed, false, "no answer: nothing known to be lost");
  unreachable.done();

  const old = new StrictCommandRunner().expect(barrierCommand(o), UNKNOWN).expect(whole);
  assert.equal((await runFullPass({ ...base, runner: old })).durability, "per-file");
  old.done();

  const copyFails = new StrictCommandRunner().expect(barrierCommand(o)).expect(fresh, { code: 23, stderr: "rsync error: some files/attrs were not transferred" });
  assert.deepEqual(await runFullPass({ ...base, runner: copyFails }), {
    code: 23,
    stderr: "rsync error: some files/attrs were not transferred",
    durability: "barrier",
    barrierMs: null,
    syncFailed: false,
  });
  copyFails.done();

  const barrierFails = new StrictCommandRunner().expect(barrierCommand(o)).expect(fresh).expect(barrierCommand(o), EIO);
  const r2 = await runFullPass({ ...base, runner: barrierFails });
  assert.deepEqual([r2.code, r2.syncFailed], [5, true]);
  assert.match(r2.stderr, /^the new files are copied but the standby could not sync its data volume \(the next pass sends every file again\): sync: error syncing/);
  barrierFails.done();

  const rewrite = new StrictCommandRunner().expect(fullPassCommand({ ...o, fsync: true, maxDelete: 10, rewrite: true }));
  assert.equal((await runFullPass({ ...base, rewrite: true, runner: rewrite })).durability, "rewrite");
  rewrite.done();
  assert.ok(fullPassCommand({ ...o, maxDelete: 10, rewrite: true }).includes("--ignore-times"), 'fullPassCommand({ ...o, maxDelete: 10, rewrite: true }).includes("--ignore-times")');
  const off = new StrictCommandRunner().expect(fullPassCommand({ ...o, fsync: false, maxDelete: 10 }));
  assert.equal((await runFullPass({ ...base, rsync: { ...o, fsync: false }, runner: off })).durability, "none");
  off.done();
  const reconcile = new StrictCommandRunner().expect(whole);
  assert.equal((await runFullPass({ ...base, bulk: false, runner: reconcile })).durability, "per-file", "a standby in sync: one fsynced pass, no probe");
  reconcile.done();
});

test("runFullPass: while the new files are copied the barrier runs every 2 s (write-behind), one at a time, not counted; the final one still decides", async () => {
  const o = options("/srv/standby");
  const clock = new FakeClock();
  const fresh = JSON.stringify(newFilesCommand({ ...o, fsync: false }));
  const barrier = JSON.stringify(barrierCommand(o));
  const whole = JSON.stringify(fullPassCommand({ ...o, fsync: true, maxDelete: 10 }));
  const run = (finalBarrier: Partial<CommandResult>, writeBehind: Partial<CommandResult>, copyResult: Partial<CommandResult> = {}, copyMs = 5000) => {
    const log: string[] = [];
    let copying = false;
    let barriers = 0;
    const runner: CommandRunner = {
      run: async (argv, options) => {
        const a = JSON.stringify(argv);
        const at = clock.monotonicMs();
        const done = (r: Partial<CommandResult> = {}) => ({ code: 0, signal: null, stdout: "", stderr: "", ...r });
        if (a === fresh) {
          log.push(`copy from ${at}`);
          copying = true;
          await clock.sleep(copyMs);
          copying = false;
          log.push(`copy done ${clock.monotonicMs()}`);
          return done(copyResult);
        }
        if (a === barrier) {
          barriers++;
          if (barriers === 1) return done(); // the probe
          if (copying) {
            log.push(`write-behind ${at}`);
            // Slower than the interval: the next one waits for it, and so does the final barrier.
            const aborted = await clock.sleep(3500, options?.signal).then(
              () => false,
              () => true,
            );
            if (aborted) log.push(`write-behind killed ${clock.monotonicMs()}`);
            return done(aborted ? { code: null, signal: "SIGTERM" } : writeBehind);
          }
          log.push(`barrier ${at}`);
          return done(finalBarrier);
        }
        if (a === whole) return (log.push(`whole ${at}`), done());
        throw new Error(`unexpected ${a}`);
      },
    };
    const p = runFullPass({ runner, clock, rsync: o, maxDelete: 10, rewrite: false, bulk: true, timeoutMs: 60_000, signal: new AbortController().signal });
    return { p, log };
  };
  const t0 = clock.monotonicMs();
  const a = run({}, { code: 5, stderr: "sync: error syncing: Input/output error" });
  await clock.advance(10_000);
  const r = await a.p;
  assert.deepEqual(
    a.log.map((l) => l.replace(/\d+$/, (n) => String(Number(n) - t0))),
    ["copy from 0", "write-behind 2000", "copy done 5000", "barrier 5500", "whole 5500"],
    "one write-behind at +2 s, none while it runs; the final barrier waits for it (+5.5 s), none after the copy",
  );
  assert.deepEqual([r.code, r.durability, r.syncFailed], [0, "barrier", false], "a failed write-behind does not count; the final barrier decides");

  const b = run({ code: 5, stderr: "sync: error syncing: Input/output error\n@ERROR: pre-xfer exec returned failure (256)" }, {});
  await clock.advance(10_000);
  const r2 = await b.p;
  assert.deepEqual([r2.code, r2.syncFailed], [5, true], "write-behinds that passed do not make the pass durable: the failed final barrier says rewrite");
  assert.ok(!b.log.some((l) => l.startsWith("whole")), "nothing after a failed barrier");
  assert.equal(clock.pendingTimers(), 0, "no write-behind timer left");

  // The copy fails at +3 s while a write-behind runs: it is killed, the failure reported at once.
  const c = run({}, {}, { code: 23, stderr: "rsync error: some files could not be transferred (code 23)" }, 3000);
  const t1 = clock.monotonicMs();
  await clock.advance(10_000);
  const r3 = await c.p;
  assert.deepEqual(
    c.log.map((l) => l.replace(/\d+$/, (n) => String(Number(n) - t1))),
    ["copy from 0", "write-behind 2000", "copy done 3000", "write-behind killed 3000"],
  );
  assert.deepEqual([r3.code, r3.barrierMs], [23, null], "the copy's failure, no barrier after it");
  assert.equal(clock.pendingTimers(), 0);
});

test("a real full pass to a local directory: copied, then one sync of its filesystem", async () => {
  const src = join(BASE, "src");
  const dst = join(BASE, "dst");
  for (const d of [join(src, "alice"), dst, join(BASE, "tmp")]) mkdirSync(d, { recursive: true });
  writeFileSync(join(src, "alice", "a.csv"), "a");
  writeFileSync(join(src, "alice", "b.csv"), "bb");
  // The standby holds an older a.csv and a file the primary no longer has.
  mkdirSync(join(dst, "alice"), { recursive: true });
  writeFileSync(join(dst, "alice", "a.csv"), "old");
  writeFileSync(join(dst, "alice", "gone.csv"), "x");
  const r = await runFullPass({
    runner: new SpawnCommandRunner(),
    clock: new FakeClock(),
    rsync: options(dst),
    maxDelete: 10,
    rewrite: false,
    bulk: true,
    timeoutMs: 30_000,
    signal: new AbortController().signal,
  });
  assert.deepEqual([r.code, r.durability, r.syncFailed], [0, "barrier", false], r.stderr);
  assert.equal(readFileSync(join(dst, "alice", "a.csv"), "utf8"), "a", "updated by the fsynced pass");
  assert.equal(readFileSync(join(dst, "alice", "b.csv"), "utf8"), "bb", "new inside an existing directory: the first copy");
  assert.deepEqual(readdirSync(join(dst, "alice")).sort(), ["a.csv", "b.csv"], "deleted by the fsynced pass");
});
