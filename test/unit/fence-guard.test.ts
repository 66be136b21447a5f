import { test } from "node:test";
import assert from "node:assert/strict";
import { GuardCore, type FenceOrders } from "../../src/fence/core.js";
import { FakeClock } from "../fakes/clock.js";
import { StrictCommandRunner } from "../fakes/command.js";

const DROP = ["ip", "addr", "del", "198.18.0.100/24", "dev", "eth0"];
const orders: FenceOrders = { dropVip: DROP, daemonPidfile: "/run/x/daemon.pid", stopArgv: null };

function setup(runner = new StrictCommandRunner()) {
  const clock = new FakeClock();
  const kills: [number, string][] = [];
  const exits: number[] = [];
  const logs: string[] = [];
  const core = new GuardCore({
    clock, runner, log: (l) => logs.push(l), kill: (pid, sig) => void kills.push([pid, sig]), readPid: () => 4242, exit: (c) => void exits.push(c),
  });
  return { clock, runner, core, kills, exits, logs };
}

test("fences at the deadline when no heartbeat moves it: VIP first, then the daemon, then exits", async () => {
  const s = setup(new StrictCommandRunner().expect(DROP));
  s.core.connected();
  s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() + 3000, orders } });
  await s.clock.advance(2999);
  assert.deepEqual(s.kills, []);
  await s.clock.advance(1);
  assert.equal(s.runner.calls.length, 1, "VIP removed at the deadline");
  await s.clock.advance(1000);
  assert.deepEqual(s.kills, [[4242, "SIGTERM"], [4242, "SIGKILL"]]);
  assert.deepEqual(s.exits, [0]);
  s.runner.done();
});

test("heartbeats move the deadline; disarm stops it", async () => {
  const s = setup();
  s.core.connected();
  for (let i = 0; i < 10; i++) {
    s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() + 3000, orders } });
    await s.clock.advance(1000);
  }
  s.core.handle({ disarm: true });
  await s.clock.advance(60_000);
  assert.deepEqual(s.kills, []);
  assert.deepEqual(s.exits, []);
  s.runner.done();
});

test("the agent dying while armed does not cancel the fence; dying while disarmed lets the guard go", async () => {
  const s = setup(new StrictCommandRunner().expect(DROP));
  s.core.connected();
  s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() + 2000, orders } });
  s.core.disconnected();
  assert.deepEqual(s.exits, [], "armed: keeps waiting (a restarted agent may reconnect)");
  await s.clock.advance(3000);
  assert.deepEqual(s.exits, [0], "fenced at the deadline");
  const t = setup();
  t.core.connected();
  t.core.disconnected();
  assert.deepEqual(t.exits, [0]);
});

test("a deadline already past fences at once (a late heartbeat cannot stretch it)", async () => {
  const s = setup(new StrictCommandRunner().expect(DROP));
  s.core.connected();
  s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() - 5, orders } });
  await s.clock.advance(0);
  assert.equal(s.runner.calls.length, 1);
});

test("command/systemd backends: the stop command runs; warm mode leaves the daemon", async () => {
  const stop = ["systemctl", "stop", "sftpgo.service"];
  const s = setup(new StrictCommandRunner().expect(DROP).expect(stop));
  s.core.connected();
  s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() + 10, orders: { dropVip: DROP, daemonPidfile: null, stopArgv: stop } } });
  await s.clock.advance(20);
  s.runner.done();
  const w = setup(new StrictCommandRunner().expect(DROP));
  w.core.connected();
  w.core.handle({ arm: { deadlineMs: w.clock.systemMonotonicMs() + 10, orders: { dropVip: DROP, daemonPidfile: null, stopArgv: null } } });
  await w.clock.advance(20);
  w.runner.done();
  assert.deepEqual(w.kills, []);
});

test("shutdown: armed fences now; disarmed just exits", async () => {
  const s = setup(new StrictCommandRunner().expect(DROP));
  s.core.connected();
  s.core.handle({ arm: { deadlineMs: s.clock.systemMonotonicMs() + 60_000, orders } });
  s.core.shutdown();
  await s.clock.advance(1500);
  assert.deepEqual(s.exits, [0]);
  s.runner.done();
  const t = setup();
  t.core.connected();
  t.core.shutdown();
  assert.deepEqual(t.exits, [0]);
});

test("vip.backend keepalived: the guard writes 1 to the track file (FAULT) before removing the address", async () => {
  const clock = new FakeClock();
  const order: string[] = [];
  const runner = new StrictCommandRunner().expect(DROP);
  const core = new GuardCore({
    clock, runner: { run: (argv, o) => (order.push(`run ${argv.join(" ")}`), runner.run(argv, o)) }, log: () => undefined,
    kill: () => undefined, readPid: () => undefined, exit: () => undefined,
    writeFile: (file, content) => void order.push(`write ${file} ${JSON.stringify(content)}`),
  });
  core.connected();
  core.handle({ arm: { deadlineMs: clock.systemMonotonicMs() + 1000, orders: { ...orders, keepalivedTrackFile: "/run/understudy/keepalived-track" } } });
  await clock.advance(1000);
  assert.deepEqual(order, ['write /run/understudy/keepalived-track "1\\n"', `run ${DROP.join(" ")}`]);
  runner.done();
});
