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
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HaLoop } from "../../src/ha/loop.js";
import { SessionLease } from "../../src/ha/lease.js";
import { FenceGuardLink } from "../../src/fence/client.js";
import { parseConfigText } from "../../src/config/load.js";
import { silentLogger } from "../../src/platform/logger.js";
import { FakeClock, flushMicrotasks } from "../fakes/clock.js";
import { FakeCoordinator } from "../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../fakes/node-parts.js";
import { ProcessLife } from "../fakes/crashable.js";

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
  const r = await runChild(
    `
    await c.watchLeader(() => undefined).then(() => { throw new Error("watch connected to a closed port?"); }, () => undefined);
    await c.close();
  `,
    20_000,
  );
  assert.match(r.out, /closed/, r.out);
  assert.ok(r.exited, `the process still ran 20 s after close(): a re-armed timer holds it (${r.out})`);
});

test("etcd: close() cancels every watch still open, and a watch after close() is refused", { timeout: 60_000 }, async () => {
  const r = await runChild(
    `
    await Promise.allSettled([c.watchLeader(() => undefined), c.watchLeader(() => undefined)]);
    if (c.openWatchers() !== 0) throw new Error("a failed watch stayed open");
    await c.close();
    await c.watchLeader(() => undefined).then(() => { throw new Error("watch after close"); }, (e) => { if (!/closed/.test(String(e))) throw e; });
  `,
    20_000,
  );
  assert.match(r.out, /closed/, r.out);
  assert.ok(r.exited, `the process still ran 20 s after close() (${r.out})`);
});

// ----------------------------------------------------------------- fake clock: no timer outlives stop()

function loopNode(name: string, priority: number, clock: FakeClock, etcd: FakeCoordinator, timeline: VipTimeline) {
  const config = parseConfigText(
    `cluster: t
node: { name: ${name}, address: 198.18.0.1, priority: ${priority} }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
election: { ttl: 5s, fence_margin: 1s, ranking_delay: 500ms }
daemon: { backend: process, mode: cold, command: [/bin/true] }
`,
    "test.yaml",
  );
  const life = new ProcessLife();
  const loop = new HaLoop({
    config,
    coordinator: life.coordinator(etcd),
    daemon: new FakeDaemon(),
    vip: new FakeVip(name, timeline),
    health: new FakeHealth(),
    clock: life.clock(clock),
    log: silentLogger(),
    version: "test",
    probeGraceMs: 0,
    readiness: { problem: () => null, start: () => undefined, stop: () => undefined },
  });
  return { loop, life };
}

for (const partitioned of [false, true]) {
  test(`HA loop: after stop() of the primary and the standby${partitioned ? " (both cut off from etcd)" : ""} no timer is left or armed again`, async () => {
    const clock = new FakeClock();
    const etcd = new FakeCoordinator(clock);
    const timeline = new VipTimeline(clock);
    const nodes = [loopNode("n1", 200, clock, etcd, timeline), loopNode("n2", 100, clock, etcd, timeline)];
    for (const n of nodes) await n.loop.start();
    await clock.advance(3000);
    assert.equal(etcd.leader?.node, "n1");
    for (const n of nodes) n.life.partitioned = partitioned;
    await clock.advance(700); // a renewal and a tick in flight or failing
    for (const n of nodes) await n.loop.stop();
    await flushMicrotasks();
    assert.equal(clock.pendingTimers(), 0, "timers left after stop()");
    await clock.advance(60_000);
    assert.equal(clock.pendingTimers(), 0, "timers armed after stop()");
  });
}

test("session lease: a renewal in flight at stopRenewing()/revoke() arms nothing afterwards", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const keepAlive = etcd.keepAlive.bind(etcd);
  let hold = false;
  etcd.keepAlive = async (id: string) => {
    if (hold) await gate;
    return keepAlive(id);
  };
  const lease = new SessionLease(etcd, { ttlMs: 2000, fenceMarginMs: 500, renewIntervalMs: 500, rankingDelayMs: 300 }, clock, silentLogger(), {
    onDeadline: () => undefined,
    onChange: () => undefined,
  });
  await lease.grant();
  hold = true;
  await clock.advance(600); // the renewal is sent and waits
  lease.stopRenewing();
  release();
  await flushMicrotasks();
  await lease.revoke();
  assert.equal(clock.pendingTimers(), 0);
  await clock.advance(10_000);
  assert.equal(clock.pendingTimers(), 0);
});

test("fence guard link: after close() a message neither re-links nor starts a guard nor arms a timer", async () => {
  const dir = mkdtempSync(join(tmpdir(), "understudy-stop-"));
  try {
    const clock = new FakeClock();
    const link = new FenceGuardLink(dir, { dropVip: null, daemonPidfile: null, stopArgv: null }, { clock, log: silentLogger() });
    await link.close();
    link.arm(clock.systemMonotonicMs() + 3000, clock.systemMonotonicMs() + 4000);
    link.disarm();
    await flushMicrotasks();
    assert.equal(clock.pendingTimers(), 0, "a closed link waited for a guard to come up");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fence guard link: close() while it waits for a guard to come up ends the wait", async () => {
  const dir = mkdtempSync(join(tmpdir(), "understudy-stop-"));
  try {
    const clock = new FakeClock();
    const link = new FenceGuardLink(dir, { dropVip: null, daemonPidfile: null, stopArgv: null }, { clock, log: silentLogger() });
    link.start(); // no guard answers in an empty dir: it starts one (absent under src/: spawn fails) and polls
    await flushMicrotasks();
    assert.equal(clock.pendingTimers(), 1, "polling for the guard");
    const closed = link.close();
    await clock.advance(50);
    await closed;
    assert.equal(clock.pendingTimers(), 0);
    await clock.advance(5000);
    assert.equal(clock.pendingTimers(), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("exit backstop: a process held by a re-armed timer exits anyway and names the timer and where it was armed", { timeout: 60_000 }, async () => {
  const BACKSTOP = fileURLToPath(new URL("../../src/platform/exit-backstop.ts", import.meta.url));
  const script = `
    const { armExitBackstop } = await import(${JSON.stringify(BACKSTOP)});
    armExitBackstop(300, (r) => console.log(JSON.stringify(r)), 0);
    function reArmedForEver() { setTimeout(reArmedForEver, 50); }
    reArmedForEver();
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const hung = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on("exit", (c, s) => r([c, s])));
  clearTimeout(hung);
  assert.equal(signal, null, "the backstop ended the process");
  assert.equal(code, 0);
  const report = JSON.parse(out.trim().split("\n").pop()!) as { resources: string[]; timers: { callback: string; armedAt: string }[] };
  assert.ok(report.resources.includes("Timeout"), out);
  assert.ok(
    report.timers.some((t) => t.callback === "reArmedForEver" && /reArmedForEver/.test(t.armedAt)),
    out,
  );
});

test("exit backstop: a process that drains exits by itself; the backstop never fires", { timeout: 60_000 }, async () => {
  const BACKSTOP = fileURLToPath(new URL("../../src/platform/exit-backstop.ts", import.meta.url));
  const script = `
    const { armExitBackstop } = await import(${JSON.stringify(BACKSTOP)});
    armExitBackstop(5000, () => console.log("BACKSTOP"), 3);
    setTimeout(() => undefined, 50);
  `;
  const t0 = performance.now();
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  assert.equal(code, 0, out);
  assert.doesNotMatch(out, /BACKSTOP/);
  assert.ok(performance.now() - t0 < 5000, "it did not wait for the backstop");
});
