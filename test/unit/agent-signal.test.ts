// A SIGTERM that arrives while the agent is still starting ends in a graceful
// stop, not in Node's default exit (found by the stop lab once it reacted within
// milliseconds). The real agent (`understudy agent`, a child process) starts
// against an etcd endpoint that accepts TCP and never answers, so its HA loop's
// start is held in the first etcd read after the REST API is already up; the
// signal goes in then. The agent must finish starting, stop, log "stopped" and
// exit 0.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as { port: number }).port;
}

test("SIGTERM during start-up: the agent finishes starting, stops gracefully and exits 0", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-sigstart-"));
  const held: Socket[] = [];
  const blackHole = createServer((s) => void held.push(s)); // accepts, never speaks HTTP/2
  let agent: ChildProcess | undefined;
  let log = "";
  try {
    const etcdPort = await listen(blackHole);
    const probe = createServer();
    const api = await listen(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "sigstart-token-0123456789abcdef");
    chmodSync(tokenFile, 0o600);
    const config = join(dir, "agent.yaml");
    writeFileSync(
      config,
      [
        "cluster: sigstart",
        "node: { name: n1, address: 127.0.0.1 }",
        `etcd: { endpoints: [http://127.0.0.1:${etcdPort}], prefix: /us-sigstart, request_timeout: 3s, dial_timeout: 3s }`,
        `state_dir: ${join(dir, "state")}`,
        "daemon: { backend: command, start: [/bin/true], stop: [/bin/true], status: [/bin/true] }",
        `api: { listen: 127.0.0.1:${api}, token_file: ${tokenFile} }`,
        "",
      ].join("\n"),
    );
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "agent", "--config", config], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    agent = child;
    child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
    // Bounded: the API comes up within 60 s even on a loaded machine, or the test fails.
    for (let i = 0; i < 1200 && !log.includes("REST API listening"); i++) {
      assert.equal(child.exitCode, null, `the agent exited before its API was up:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(log, /REST API listening/, `the agent's API never came up:\n${log}`);
    assert.doesNotMatch(log, /"msg":"stopped"/, "still starting when the signal goes in");
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const end = await Promise.race([exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 60_000)))]);
    clearTimeout(timer);
    assert.notEqual(end, null, `the agent did not exit within 60 s of SIGTERM:\n${log}`);
    assert.deepEqual(end, { code: 0, signal: null }, `a graceful stop exits 0, not by the signal:\n${log}`);
    assert.match(log, /"msg":"stopped"/, `the HA loop's graceful stop ran:\n${log}`);
  } finally {
    if (agent && agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
    for (const s of held) s.destroy();
    await new Promise<void>((r) => blackHole.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
