// Clean stop (issue 12, failure 5): after close()/stop() nothing is left that keeps
// the process alive or arms timers again. The etcd case runs the real etcd3 client
// in a child process against a loopback port nobody listens on: a watch that did not
// connect in time used to stay attached to the library's watch manager, which
// re-established it every 200 ms for ever after close(), so the agent never exited.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const COORDINATOR = fileURLToPath(new URL("../../src/coordinator/etcd.ts", import.meta.url));
const CLOCK = fileURLToPath(new URL("../../src/platform/clock.ts", import.meta.url));
const LOGGER = fileURLToPath(new URL("../../src/platform/logger.ts", import.meta.url));

/** Runs `body` in a fresh node with an EtcdCoordinator `c` on an unreachable endpoint; resolves with how it ended. */
async function runChild(body: string, hangMs: number): Promise<{ exited: boolean; ms: number; out: string }> {
  const port = await closedPort();
  const script = `
    const { EtcdCoordinator } = await import(${JSON.stringify(COORDINATOR)});
    const { SystemClock } = await import(${JSON.stringify(CLOCK)});
    const { silentLogger } = await import(${JSON.stringify(LOGGER)});
    const c = new EtcdCoordinator({ endpoints: ["127.0.0.1:${port}"], prefix: "/understudy", cluster: "t", requestTimeoutMs: 300, dialTimeoutMs: 300, clock: new SystemClock(), log: silentLogger() });
    ${body}
    console.log("closed");
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  let closedAt = 0;
  child.stdout.on("data", () => (closedAt ||= performance.now()));
  return new Promise((resolve) => {
    const hung = setTimeout(() => child.kill("SIGKILL"), hangMs);
    child.on("exit", (_code, signal) => {
      clearTimeout(hung);
      resolve({ exited: signal === null, ms: Math.round(performance.now() - closedAt), out });
    });
  });
}

test("etcd: a watch that never connected does not keep the process alive after close()", { timeout: 60_000 }, async () => {
  const r = await runChild(`
    await c.watchLeader(() => undefined).then(() => { throw new Error("watch connected to a closed port?"); }, () => undefined);
    await c.close();
  `, 20_000);
  assert.match(r.out, /closed/, r.out);
  assert.ok(r.exited, `the process still ran 20 s after close(): a re-armed timer holds it (${r.out})`);
});

test("etcd: close() cancels every watch still open, and a watch after close() is refused", { timeout: 60_000 }, async () => {
  const r = await runChild(`
    await Promise.allSettled([c.watchLeader(() => undefined), c.watchLeader(() => undefined)]);
    if (c.openWatchers() !== 0) throw new Error("a failed watch stayed open");
    await c.close();
    await c.watchLeader(() => undefined).then(() => { throw new Error("watch after close"); }, (e) => { if (!/closed/.test(String(e))) throw e; });
  `, 20_000);
  assert.match(r.out, /closed/, r.out);
  assert.ok(r.exited, `the process still ran 20 s after close() (${r.out})`);
});
