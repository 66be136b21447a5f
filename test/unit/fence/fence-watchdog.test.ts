/**
 * The watchdog: the timeout the agent computes, the native guard driving a
 * fake device (sysfs attributes in files, the device a FIFO this test reads,
 * a fake `wdctl` first on PATH), and the HA loop's promotion gate. The reset
 * itself, and when it lands against lease_end - safety_margin, is asserted
 * against a real kernel in test/lab/watchdog-device.lab.test.ts (softdog
 * under qemu); here the order of operations and what the guard says.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { watchdogTimeoutS } from "../../../src/config/watchdog.js";
import type { WatchdogSettings, WatchdogStatus } from "../../../src/fence/port.js";
import type { FenceOrders } from "../../../src/fence/protocol.js";
import { HaLoop } from "../../../src/ha/loop.js";
import { parseConfigText } from "../../../src/config/load.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../../fakes/node-parts.js";
import { gone, GuardProcess, mono, sleep, until, type GuardOptions } from "../../fakes/guard-process.js";
import { join } from "node:path";
import { tmpdir } from "node:os";

test("the timeout leaves room for a renewal: 3s at the defaults, 1s at ttl 3s, none at ttl 2s", () => {
  assert.equal(watchdogTimeoutS({ ttlMs: 5000, renewIntervalMs: 1250 }, 500), 3);
  assert.equal(watchdogTimeoutS({ ttlMs: 3000, renewIntervalMs: 750 }, 500), 1);
  assert.equal(watchdogTimeoutS({ ttlMs: 2000, renewIntervalMs: 500 }, 500), 0);
  assert.equal(watchdogTimeoutS({ ttlMs: 30_000, renewIntervalMs: 7500 }, 500), 21);
  const config = parseConfigText(
    "cluster: t\nnode: { name: n1, address: 198.18.0.1 }\netcd: { endpoints: ['http://198.18.0.2:2379'] }\ndaemon: { backend: process, command: [/bin/true] }\nwatchdog: { mode: automatic }\n",
    "t.yaml",
  );
  assert.deepEqual(config.watchdog, { mode: "automatic", device: "/dev/watchdog", safety_margin: 500 });
});

const SETTINGS: WatchdogSettings = { mode: "required", device: "/dev/watchdog", timeoutS: 3, safetyMarginMs: 500 };
const INACTIVE = { nowayout: "0", state: "inactive", timeout: "60" };
const is = (state: WatchdogStatus["state"], timeoutS?: number) => (r: { watchdog: WatchdogStatus }) => r.watchdog.state === state && (timeoutS === undefined || r.watchdog.timeoutS === timeoutS);
const NOTHING: FenceOrders = { dropVip: null, daemonPidfile: null, stopArgv: null };

/** A guard with a fake watchdog; `settings` names its FIFO device. */
async function wdGuard(t: { after(fn: () => void): void }, opts: GuardOptions = { sysfs: INACTIVE }) {
  const g = await GuardProcess.start(t, opts);
  g.makeFifoDevice();
  const c = await g.connect();
  return { g, c, settings: { ...SETTINGS, device: g.device } };
}

function wdctlCalls(g: GuardProcess): string[] {
  try {
    return readFileSync(g.wdctlLog, "utf8").trim().split("\n");
  } catch {
    return [];
  }
}

test("wdctl sets the timeout and the device stays closed; a primary's heartbeat opens and feeds it, never past lease_end - safety - timeout; disarm is the magic close", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  assert.deepEqual((await c.reply(is("ready"))).watchdog, { state: "ready", device: g.device, timeoutS: 3 });
  assert.deepEqual(wdctlCalls(g), [`--settimeout 3 ${g.device}`]);
  assert.equal(g.holdsDevice(), false, "prepared, not opened");
  const t0 = mono();
  const E = t0 + 5000; // a renewal just landed (ttl 5s): feeding allowed until E - 500 - 3000
  c.send({ arm: { deadlineMs: t0 + 60_000, leaseEndMs: E, orders: NOTHING } });
  await c.reply(is("active", 3));
  assert.equal(g.holdsDevice(), true);
  // No more heartbeats: only the guard's own feed timer runs, and it stops at the bound.
  await until(() => (mono() > E - 3500 + 1000 ? true : undefined), "the feeding bound to pass");
  const fed = g.deviceBytes.length;
  await sleep(1500);
  assert.equal(g.deviceBytes.length, fed, "not fed after the bound");
  assert.ok(fed >= 1 && fed <= 4, `fed ${fed} times: at the open, then every 500ms up to the bound at +1500ms`);
  assert.ok(g.deviceBytes[0]!.atMs >= t0, "g.deviceBytes[0]!.atMs >= t0");
  const n = c.replies.length;
  c.send({ disarm: true });
  await c.reply(is("ready", 3), n);
  await until(() => (!g.holdsDevice() ? true : undefined), "the device to be closed");
  assert.match(g.deviceText(), /^1{1,4}V$/, "fed, then the magic V before the close");
  assert.match(g.stderr, /watchdog stopped: disarmed/);
});

test("renewals keep a healthy primary fed: every heartbeat feeds it at once", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  for (let i = 0; i < 8; i++) {
    const now = mono();
    c.send({ arm: { deadlineMs: now + 4000, leaseEndMs: now + 5000, orders: NOTHING } });
    await sleep(300);
  }
  await until(() => (g.deviceBytes.length >= 8 ? true : undefined), "a feed per heartbeat");
  assert.equal(g.holdsDevice(), true);
  assert.match(g.deviceText(), /^1+$/);
  c.send({ disarm: true });
  await until(() => (g.deviceText().endsWith("V") ? true : undefined), "the magic close");
});

test("opening needs the whole timeout ahead of the bound", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  const n = c.replies.length;
  c.send({ arm: { deadlineMs: mono() + 2000, leaseEndMs: mono() + 3000, orders: NOTHING } }); // the bound is already past
  await c.reply(is("ready"), n);
  assert.match(g.stderr, /watchdog not started: too little lease left to open it safely/);
  assert.equal(g.holdsDevice(), false, "not opened with too little lease left");
  assert.equal(g.deviceBytes.length, 0);
  c.send({ arm: { deadlineMs: mono() + 4000, leaseEndMs: mono() + 5000, orders: NOTHING } });
  await c.reply(is("active"));
  assert.equal(g.holdsDevice(), true);
  c.send({ disarm: true });
});

test("settings that arrive while the device runs (a restarted agent's) take effect once it is stopped", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  c.send({ arm: { deadlineMs: mono() + 4000, leaseEndMs: mono() + 5000, orders: NOTHING } });
  await c.reply(is("active"));
  const n = c.replies.length;
  c.send({ watchdog: { ...settings, timeoutS: 2 } });
  assert.deepEqual((await c.reply(() => true, n)).watchdog, { state: "active", device: g.device, timeoutS: 3 }, "unchanged while active");
  assert.equal(wdctlCalls(g).length, 1);
  c.send({ disarm: true });
  await c.reply(is("ready", 2), n);
  assert.deepEqual(wdctlCalls(g), [`--settimeout 3 ${g.device}`, `--settimeout 2 ${g.device}`]);
  assert.equal(g.deviceText().at(-1), "V");
});

test("the device refused before it is touched: nowayout, someone else running it, a timeout wdctl cannot shorten, no driver, not a watchdog name", async (t) => {
  const cases: { opts: GuardOptions; device?: string; problem: RegExp; wdctl: boolean }[] = [
    { opts: { sysfs: { ...INACTIVE, nowayout: "1" } }, problem: /^nowayout is set/, wdctl: false },
    { opts: { sysfs: { ...INACTIVE, state: "active" } }, problem: /^it is already active: something else holds it/, wdctl: false },
    { opts: { sysfs: INACTIVE, wdctlFail: true }, problem: /^its timeout is 60s, longer than the 3s the lease allows: wdctl --settimeout exited 1: wdctl: cannot set timeout/, wdctl: true },
    { opts: {}, problem: /^cannot read .*\/watchdog0\/nowayout \(is the driver loaded, e\.g\. modprobe softdog/, wdctl: false },
    { opts: { sysfs: INACTIVE }, device: "/dev/null", problem: /^\/dev\/null is not a watchdog device name/, wdctl: false },
  ];
  for (const k of cases) {
    const { g, c, settings } = await wdGuard(t, k.opts);
    c.send({ watchdog: { ...settings, device: k.device ?? settings.device } });
    const r = (await c.reply(is("unavailable"))).watchdog;
    assert.match(r.problem ?? "", k.problem);
    assert.equal(wdctlCalls(g).length > 0, k.wdctl);
    c.send({ arm: { deadlineMs: mono() + 4000, leaseEndMs: mono() + 5000, orders: NOTHING } });
    await c.barrier();
    assert.equal(g.holdsDevice(), false, "never opened");
    assert.match(g.stderr, /watchdog .* unavailable: /);
  }
  // A device whose timeout is shorter than asked is used with its own (it resets sooner, still in time).
  const { c, settings } = await wdGuard(t, { sysfs: INACTIVE, wdctlGrant: 2 });
  c.send({ watchdog: settings });
  assert.equal((await c.reply(is("ready"))).watchdog.timeoutS, 2);
});

test("a wdctl that hangs never holds up a fence, and is killed with its group at its 5 s timeout", async (t) => {
  // While wdctl hangs, a deadline passes: the guard fences on time (and stops the preparation).
  const hang = join(tmpdir(), `understudy-wdctl-hang-${process.pid}-a`);
  const { g, c, settings } = await wdGuard(t, { sysfs: INACTIVE, wdctlHang: hang });
  t.after(() => rmSync(hang, { force: true }));
  c.send({ watchdog: settings });
  const child = await until(() => (existsSync(hang) && readFileSync(hang, "utf8").endsWith("\n") ? Number(readFileSync(hang, "utf8")) : undefined), "wdctl to start");
  const D = mono() + 200;
  c.send({ arm: { deadlineMs: D, orders: { dropVip: ["true"], daemonPidfile: null, stopArgv: null } } });
  await g.waitExit();
  assert.ok(g.fencedAt()! >= D, "g.fencedAt()! >= D");
  assert.ok(g.fencedAt()! - D < 5000, `fenced ${g.fencedAt()! - D}ms after the deadline: not after wdctl's timeout`);
  assert.ok(await until(() => (gone(child) ? true : undefined), "wdctl's child to be killed"), 'await until(() => (gone(child) ? true : undefined), "wdctl\'s child to be killed")');

  // Left alone, the preparation times out: unavailable, the whole group killed.
  const hang2 = `${hang.slice(0, -1)}b`;
  t.after(() => rmSync(hang2, { force: true }));
  const h = await wdGuard(t, { sysfs: INACTIVE, wdctlHang: hang2 });
  const sent = mono();
  h.c.send({ watchdog: h.settings });
  const r = (await h.c.reply(is("unavailable"))).watchdog;
  assert.ok(mono() - sent >= 5000, "mono() - sent >= 5000");
  assert.equal(r.problem, "wdctl --settimeout timed out after 5000ms");
  const child2 = Number(readFileSync(hang2, "utf8"));
  assert.ok(await until(() => (gone(child2) ? true : undefined), "wdctl's child to be killed"), 'await until(() => (gone(child2) ? true : undefined), "wdctl\'s child to be killed")');
  assert.equal(h.g.exit, undefined, "the guard carries on");
});

// ------------------------------------------------------------------ in the fence

test("guard: a clean fence stops the watchdog after the VIP and the daemon are gone, then exits", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  const now = mono();
  c.send({ arm: { deadlineMs: now + 300, leaseEndMs: now + 5000, orders: { dropVip: ["true"], daemonPidfile: null, stopArgv: ["true"] } } });
  await c.reply(is("active"));
  assert.equal((await g.waitExit()).code, 0);
  assert.equal(g.deviceText().at(-1), "V");
  assert.equal(g.holdsDevice(), false);
  assert.match(g.stderr, /fencing[^]*VIP removed[^]*daemon stopped[^]*watchdog stopped: fenced cleanly[^]*exiting/);
});

test("guard: a fence that fails leaves the watchdog running and the guard holding it, so the reset is the fence", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  const now = mono();
  const fail = ["sh", "-c", "echo 'RTNETLINK answers: Operation not permitted' >&2; exit 1"];
  c.send({ arm: { deadlineMs: now + 300, leaseEndMs: now + 5000, orders: { dropVip: fail, daemonPidfile: null, stopArgv: null } } });
  await g.waitLog(/fence incomplete: the watchdog is left running and resets this node within 3s/);
  assert.match(g.stderr, /VIP removal: exit 1 RTNETLINK answers: Operation not permitted/);
  g.proc.kill("SIGTERM"); // even a stop request does not make it let go
  await sleep(500);
  assert.equal(g.exit, undefined, "the guard stays: exiting would make the kernel feed it once more");
  assert.equal(g.holdsDevice(), true);
  assert.match(g.deviceText(), /^1+$/, "never stopped");
});

test("guard: an address already gone counts as removed (clean fence, magic close)", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  const gone = ["sh", "-c", "echo 'RTNETLINK answers: Cannot assign requested address' >&2; exit 2"];
  c.send({ arm: { deadlineMs: mono() + 300, leaseEndMs: mono() + 5000, orders: { dropVip: gone, daemonPidfile: null, stopArgv: null } } });
  assert.equal((await g.waitExit()).code, 0);
  assert.match(g.stderr, /VIP was not present/);
  assert.equal(g.deviceText().at(-1), "V");
});

test("guard: settings off while active stop the device and say off", async (t) => {
  const { g, c, settings } = await wdGuard(t);
  c.send({ watchdog: settings });
  await c.reply(is("ready"));
  c.send({ arm: { deadlineMs: mono() + 4000, leaseEndMs: mono() + 5000, orders: NOTHING } });
  await c.reply(is("active"));
  const n = c.replies.length;
  c.send({ watchdog: null });
  assert.deepEqual((await c.reply(is("off"), n)).watchdog, { state: "off" });
  await until(() => (!g.holdsDevice() ? true : undefined), "the device to be closed");
  assert.equal(g.deviceText().at(-1), "V");
  c.send({ disarm: true });
});

// ------------------------------------------------------------------ the promotion gate

function loopWith(mode: "automatic" | "required", status: WatchdogStatus) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  const order: string[] = [];
  const daemon = new FakeDaemon();
  const fenceGuard = {
    arm: () => void order.push("arm"),
    disarm: () => void order.push("disarm"),
    close: async () => undefined,
    watchdogStatus: () => status,
    armWatchdog: async () => {
      order.push("armWatchdog");
      return status;
    },
  };
  const config = parseConfigText(
    `cluster: t\nnode: { name: n1, address: 198.18.0.1 }\netcd: { endpoints: ["http://198.18.0.2:2379"] }\ndaemon: { backend: process, command: [/bin/true] }\nwatchdog: { mode: ${mode} }\n`,
    "t.yaml",
  );
  const vip = new FakeVip("n1", timeline);
  const loop = new HaLoop({ config, coordinator: etcd, daemon, vip, health: new FakeHealth(), clock, log: silentLogger(), version: "test", probeGraceMs: 0, fenceGuard });
  return { clock, etcd, loop, daemon, vip, order };
}

test("required: a watchdog that does not start gives the won key back and starts nothing", async () => {
  const c = loopWith("required", { state: "unavailable", device: "/dev/watchdog", problem: "cannot open: EBUSY" });
  await c.loop.start();
  await c.clock.advance(500);
  assert.equal(c.daemon.starts, 0);
  assert.equal(c.vip.held, false);
  assert.equal(c.etcd.released?.why, "veto");
  assert.ok(
    c.etcd.historyEvents.some((e) => e.kind === "veto" && /watchdog \/dev\/watchdog is not running \(unavailable: cannot open: EBUSY\)/.test(JSON.stringify(e))),
    JSON.stringify(c.etcd.historyEvents),
  );
  assert.deepEqual(c.order.slice(0, 2), ["armWatchdog", "disarm"]);
  await c.loop.stop();
});

test("required and running: the watchdog starts before the daemon and the VIP; automatic promotes without one", async () => {
  const c = loopWith("required", { state: "active", device: "/dev/watchdog", timeoutS: 3 });
  await c.loop.start();
  await c.clock.advance(500);
  assert.equal(c.loop.status().acting, "primary");
  assert.equal(c.order[0], "armWatchdog", "before promote() arms the guard and starts anything");
  assert.equal(c.daemon.starts, 1);
  await c.loop.stop();
  const a = loopWith("automatic", { state: "unavailable", device: "/dev/watchdog", problem: "no such device" });
  await a.loop.start();
  await a.clock.advance(500);
  assert.equal(a.loop.status().acting, "primary");
  assert.equal(a.etcd.released, null);
  await a.loop.stop();
});
