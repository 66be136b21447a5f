// The resident `ip -batch` runner, against the real iproute2 `ip` for what any
// user may run without changing the host (`ip -j link show dev lo`, a missing
// device), and against stand-in programs for a session that hangs or dies.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SpawnCommandRunner, type CommandOptions, type CommandResult, type CommandRunner } from "../../../src/platform/command.js";
import { IpBatchRunner, batchLine } from "../../../src/platform/ip-batch.js";

/** Records what reaches the spawn path; answers with a fixed result. */
class FallbackRecorder implements CommandRunner {
  readonly calls: string[][] = [];
  run(argv: readonly string[], _options?: CommandOptions): Promise<CommandResult> {
    this.calls.push([...argv]);
    return Promise.resolve({ code: 0, signal: null, stdout: "spawned\n", stderr: "" });
  }
}

test("batchLine takes plain ip argv and leaves the rest to a spawn", () => {
  assert.deepEqual(batchLine(["ip", "addr", "add", "198.18.1.100/24", "dev", "eth0"]), { line: "addr add 198.18.1.100/24 dev eth0", json: false });
  assert.deepEqual(batchLine(["ip", "-j", "addr", "show", "dev", "eth0"]), { line: "addr show dev eth0", json: true });
  // A newline, a blank, a quote or a `#` would be read by the batch parser: never batched.
  for (const bad of ["eth0\naddr flush dev eth0", "eth 0", 'eth"0', "eth0#x", "eth\\0", ""]) {
    assert.equal(batchLine(["ip", "addr", "del", "198.18.1.100/24", "dev", bad]), null, JSON.stringify(bad));
  }
  assert.equal(batchLine(["ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "eth0"]), null, "options other than -j");
  assert.equal(batchLine(["ip", "addr", "show", "dev", "eth0"]), null, "text output");
  assert.equal(batchLine(["ip", "-j", "addr", "add", "198.18.1.100/24", "dev", "eth0"]), null, "-j on a command that prints nothing");
  assert.equal(batchLine(["ip", "-j", "addr", "show", "dev", "-x"]), null, "an option after the object");
  assert.equal(batchLine(["/sbin/ip", "addr", "add", "198.18.1.100/24", "dev", "eth0"]), null, "another program name");
  assert.equal(batchLine(["arping", "-U", "198.18.1.100"]), null);
});

test("one resident ip answers clean successes; a failure is asked again of a spawned ip, and the session is replaced", async () => {
  const fallback = new FallbackRecorder();
  const spawned: number[] = [];
  const runner = new IpBatchRunner(fallback, (file, args) => {
    const c = spawn(file, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    spawned.push(c.pid ?? -1);
    return c;
  });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await runner.run(["ip", "-j", "link", "show", "dev", "lo"], { timeoutMs: 5000 });
      assert.equal(r.code, 0, r.stderr);
      const links = JSON.parse(r.stdout) as { ifname: string }[];
      assert.equal(links[0]?.ifname, "lo");
    }
    assert.equal(spawned.length, 1, "one ip process for all of them");
    assert.deepEqual(fallback.calls, []);
    // A failure (here a missing device; after an interface is re-created, a stale cached index):
    // the spawned ip's answer is the one returned, and the next call gets a fresh session.
    const bad = await runner.run(["ip", "-j", "link", "show", "dev", "understudy-no0"], { timeoutMs: 5000 });
    assert.equal(bad.stdout, "spawned\n");
    assert.deepEqual(fallback.calls, [["ip", "-j", "link", "show", "dev", "understudy-no0"]]);
    const after = await runner.run(["ip", "-j", "link", "show", "dev", "lo"], { timeoutMs: 5000 });
    assert.equal(after.code, 0);
    assert.equal(spawned.length, 2, "a new session after the failure");
    // Not batchable: spawned.
    await runner.run(["ip", "-6", "addr", "show"], { timeoutMs: 5000 });
    assert.equal(fallback.calls.length, 2);
  } finally {
    runner.close();
  }
  // After close, calls are spawned.
  await runner.run(["ip", "-j", "link", "show", "dev", "lo"]);
  assert.equal(fallback.calls.length, 3);
});

test("concurrent calls are answered in order, each with its own output (failures through the real spawned ip)", async () => {
  const runner = new IpBatchRunner(new SpawnCommandRunner());
  try {
    const asks = ["lo", "understudy-no1", "lo", "understudy-no2"].map((dev) => runner.run(["ip", "-j", "link", "show", "dev", dev], { timeoutMs: 5000 }));
    const rs = await Promise.all(asks);
    assert.deepEqual(
      rs.map((r) => r.code),
      [0, 1, 0, 1],
    );
    assert.match(rs[1]!.stderr, /understudy-no1/);
    assert.match(rs[3]!.stderr, /understudy-no2/);
    assert.equal((JSON.parse(rs[2]!.stdout) as { ifname: string }[])[0]?.ifname, "lo");
  } finally {
    runner.close();
  }
});

test("a session that does not answer is killed at the timeout, and the next call starts a new one", async () => {
  const children: ReturnType<typeof spawn>[] = [];
  let first = true;
  const runner = new IpBatchRunner(new FallbackRecorder(), (file, args) => {
    // The first session reads its stdin and never answers; later ones are the real ip.
    const c = first ? spawn("sleep", ["30"], { stdio: ["pipe", "pipe", "pipe"] }) : spawn(file, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    first = false;
    children.push(c);
    return c;
  });
  try {
    const t0 = performance.now();
    await assert.rejects(runner.run(["ip", "-j", "link", "show", "dev", "lo"], { timeoutMs: 300 }), (e) => isUnderstudyError(e, "US_E_COMMAND_TIMEOUT"));
    assert.ok(performance.now() - t0 < 3000, "performance.now() - t0 < 3000");
    const stuck = children[0]!;
    if (stuck.exitCode === null && stuck.signalCode === null) await new Promise((r) => stuck.once("close", r));
    assert.equal(stuck.signalCode, "SIGKILL", "the hung session does not outlive its timeout");
    const r = await runner.run(["ip", "-j", "link", "show", "dev", "lo"], { timeoutMs: 5000 });
    assert.equal(r.code, 0);
    assert.equal(children.length, 2);
  } finally {
    runner.close();
  }
});

test("a session that dies mid-request is retried once as a spawn", async () => {
  const fallback = new FallbackRecorder();
  const runner = new IpBatchRunner(fallback, () => spawn("true", [], { stdio: ["pipe", "pipe", "pipe"] }));
  try {
    const r = await runner.run(["ip", "addr", "add", "198.18.1.100/24", "dev", "eth0"], { timeoutMs: 5000 });
    assert.equal(r.stdout, "spawned\n");
    assert.deepEqual(fallback.calls, [["ip", "addr", "add", "198.18.1.100/24", "dev", "eth0"]]);
  } finally {
    runner.close();
  }
});

test("a session that cannot start at all falls back to a spawn", async () => {
  const fallback = new FallbackRecorder();
  const runner = new IpBatchRunner(fallback, () => spawn("/nonexistent/understudy-ip", [], { stdio: ["pipe", "pipe", "pipe"] }));
  try {
    const r = await runner.run(["ip", "-j", "addr", "show", "dev", "eth0"], { timeoutMs: 5000 });
    assert.equal(r.stdout, "spawned\n");
    assert.equal(fallback.calls.length, 1);
  } finally {
    runner.close();
  }
});
