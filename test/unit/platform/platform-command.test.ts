import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { DEFAULT_MAX_OUTPUT_BYTES, SpawnCommandRunner } from "../../../src/platform/command.js";

const runner = new SpawnCommandRunner();

function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

test("runs an argv, feeds stdin, returns code and output", async () => {
  const r = await runner.run(["sh", "-c", 'read x; echo "out:$x"; echo err >&2; exit 3'], { input: "hello\n" });
  assert.deepEqual({ code: r.code, stdout: r.stdout, stderr: r.stderr, truncated: r.truncated }, { code: 3, stdout: "out:hello\n", stderr: "err\n", truncated: undefined });
});

test("input as a promise: stdin stays open until it settles; a rejection kills the program instead of an empty stdin", async () => {
  let give!: (b: Buffer) => void;
  const later = runner.run(["sh", "-c", 'read x; echo "got:$x"'], { input: new Promise<Buffer>((r) => (give = r)), timeoutMs: 10_000 });
  setTimeout(() => give(Buffer.from("late\n")), 100);
  const r = await later;
  assert.deepEqual([r.code, r.stdout], [0, "got:late\n"]);

  let fail!: (e: Error) => void;
  const refused = runner.run(["sh", "-c", 'read x; echo "ran with: $x"'], { input: new Promise<Buffer>((_r, reject) => (fail = reject)), timeoutMs: 10_000 });
  setTimeout(() => fail(new Error("no list")), 100);
  const k = await refused;
  assert.deepEqual([k.code, k.signal, k.stdout], [null, "SIGKILL", ""], "killed, never run on an empty stdin");
});

test("a program that does not exist rejects with US_E_COMMAND_SPAWN naming it", async () => {
  await assert.rejects(runner.run(["/nonexistent/understudy-test-program"]), (e) => {
    assert.ok(isUnderstudyError(e, "US_E_COMMAND_SPAWN"), String(e));
    assert.match(e.message, /\/nonexistent\/understudy-test-program.*ENOENT/);
    return true;
  });
});

test("an empty argv rejects with a coded error", async () => {
  await assert.rejects(runner.run([]), (e) => isUnderstudyError(e, "US_E_COMMAND_SPAWN"));
});

test("a timeout kills the whole process group: a grandchild holding the pipes cannot delay it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-cmd-"));
  try {
    const pidFile = join(dir, "grandchild.pid");
    const t0 = performance.now();
    // The grandchild inherits stdout/stderr: before the group kill, 'close' waited for it (30 s).
    await assert.rejects(runner.run(["sh", "-c", `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 300 }), (e) => isUnderstudyError(e, "US_E_COMMAND_TIMEOUT"));
    const took = performance.now() - t0;
    assert.ok(took < 10_000, `settled after ${Math.round(took)} ms, not after the grandchild's 30 s`);
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    assert.ok(pid > 1, "pid > 1");
    for (let i = 0; i < 100 && !gone(pid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(gone(pid), `grandchild ${pid} was killed with the group`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("captured output is bounded: the rest is read and dropped, and the result says so", async () => {
  const r = await runner.run(["head", "-c", String(3 * DEFAULT_MAX_OUTPUT_BYTES), "/dev/zero"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.length, DEFAULT_MAX_OUTPUT_BYTES);
  assert.equal(r.truncated, true);
  const small = await runner.run(["head", "-c", "5000", "/dev/zero"], { maxOutputBytes: 100 });
  assert.equal(small.stdout.length, 100);
  assert.equal(small.truncated, true);
});

test("out of file descriptors (EMFILE): run() rejects with a coded error and the process survives", () => {
  // A child process with a low fd limit exhausts it, then spawns: before the fix the
  // 'error' event had no listener yet and killed the process.
  const moduleUrl = new URL("../../../src/platform/command.ts", import.meta.url).href;
  const script = `
    import { openSync } from "node:fs";
    const { SpawnCommandRunner } = await import(${JSON.stringify(moduleUrl)});
    const held = [];
    try { for (let i = 0; i < 10000; i++) held.push(openSync("/dev/null", "r")); } catch (e) { if (e.code !== "EMFILE") throw e; }
    for (let i = 0; i < 3; i++) held.pop();
    let outcome = "resolved";
    try { await new SpawnCommandRunner().run(["true"], { timeoutMs: 5000 }); } catch (e) { outcome = e.code ?? String(e); }
    process.stdout.write(JSON.stringify({ outcome, held: held.length }));
  `;
  const r = spawnSync("prlimit", ["--nofile=64:64", process.execPath, "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL("../../..", import.meta.url)),
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `child exited ${r.status} ${r.signal}: ${r.stderr}`);
  const { outcome, held } = JSON.parse(r.stdout) as { outcome: string; held: number };
  assert.ok(held > 10, `the child held ${held} descriptors`);
  assert.equal(outcome, "US_E_COMMAND_SPAWN");
});

test("abort: SIGTERM to the group, SIGKILL 1 s later for a program that ignores it; the promise settles with the signal", async () => {
  const ac = new AbortController();
  const t0 = performance.now();
  const polite = runner.run(["/bin/sleep", "30"], { signal: ac.signal, timeoutMs: 20_000 });
  const stubborn = new AbortController();
  const deaf = runner.run(["/bin/sh", "-c", "trap '' TERM; /bin/sleep 30 & wait; wait"], { signal: stubborn.signal, timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 200));
  ac.abort();
  stubborn.abort();
  const a = await polite;
  assert.equal(a.signal, "SIGTERM");
  const b = await deaf;
  assert.equal(b.code, null);
  const ms = performance.now() - t0;
  assert.ok(ms >= 1000 && ms < 5000, `the stubborn one was killed after about 1 s (${Math.round(ms)} ms)`);
  const already = new AbortController();
  already.abort();
  assert.equal((await runner.run(["/bin/sleep", "30"], { signal: already.signal, timeoutMs: 20_000 })).signal, "SIGTERM", "an aborted signal stops it at once");
});
