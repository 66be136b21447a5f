import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuardCore, type FenceOrders, type GuardReply } from "../../src/fence/core.js";
import { LinuxWatchdog, WatchdogKeeper, watchdogTimeoutS, type WatchdogDevice, type WatchdogSettings, type WatchdogStatus } from "../../src/fence/watchdog.js";
import { HaLoop } from "../../src/ha/loop.js";
import { parseConfigText } from "../../src/config/load.js";
import { silentLogger } from "../../src/platform/logger.js";
import { FakeClock } from "../fakes/clock.js";
import { FakeCoordinator } from "../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../fakes/node-parts.js";
import { StrictCommandRunner } from "../fakes/command.js";

/** A watchdog device that records what was done to it, when, and refuses misuse (feeding a closed device, opening twice). */
class FakeWatchdogDevice implements WatchdogDevice {
  readonly ops: { op: string; at: number }[] = [];
  open_ = false;
  lastFeed = -Infinity;
  constructor(
    private readonly clock: FakeClock,
    private readonly grant: number | Error = 3,
  ) {}
  async prepare(timeoutS: number): Promise<number> {
    this.ops.push({ op: `prepare ${timeoutS}`, at: this.clock.monotonicMs() });
    if (this.grant instanceof Error) throw this.grant;
    return Math.min(timeoutS, this.grant);
  }
  open(): void {
    assert.equal(this.open_, false, "opened twice");
    this.open_ = true;
    this.lastFeed = this.clock.monotonicMs();
    this.ops.push({ op: "open", at: this.lastFeed });
  }
  keepalive(): void {
    assert.equal(this.open_, true, "fed while closed");
    this.lastFeed = this.clock.monotonicMs();
    this.ops.push({ op: "keepalive", at: this.lastFeed });
  }
  stop(): void {
    assert.equal(this.open_, true, "stopped while closed");
    this.open_ = false;
    this.ops.push({ op: "stop", at: this.clock.monotonicMs() });
  }
  /**
   * The process holding it exited: the kernel closes the file, and a watchdog closed without the
   * magic character keeps running but is fed once more ("watchdog did not stop!", watchdog_release).
   */
  exitWithoutStop(): void {
    if (!this.open_) return;
    this.lastFeed = this.clock.monotonicMs();
    this.ops.push({ op: "closed without V (kernel feeds it)", at: this.lastFeed });
  }
  /** When the kernel would reset the node: the last feed (or the open) plus the timeout, while open. */
  resetAt(timeoutS: number): number {
    return this.open_ ? this.lastFeed + timeoutS * 1000 : Infinity;
  }
}

const SETTINGS: WatchdogSettings = { mode: "required", device: "/dev/watchdog", timeoutS: 3, safetyMarginMs: 500 };

function keeper(grant: number | Error = 3) {
  const clock = new FakeClock();
  const device = new FakeWatchdogDevice(clock, grant);
  const reports: WatchdogStatus[] = [];
  const k = new WatchdogKeeper({ clock, device: () => device, log: () => undefined, report: (s) => void reports.push(s) });
  return { clock, device, reports, k };
}

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

test("a frozen primary is reset safety_margin before its lease can expire, and not earlier than the fence deadline allows", async () => {
  const s = keeper();
  await s.k.configure(SETTINGS);
  assert.deepEqual(s.reports.at(-1), { state: "ready", device: "/dev/watchdog", timeoutS: 3 });
  const leaseEnd = s.clock.systemMonotonicMs() + 5000; // a renewal just landed (ttl 5s)
  s.k.hold(leaseEnd);
  assert.equal(s.device.open_, true);
  assert.equal(s.reports.at(-1)!.state, "active");
  // No more heartbeats: the agent and the guard's fence are frozen; only the keeper's own timer runs.
  await s.clock.advance(10_000);
  const feeds = s.device.ops.filter((o) => o.op === "keepalive").map((o) => o.at - (leaseEnd - 5000));
  assert.deepEqual(feeds, [0, 500, 1000, 1500], "fed every 500ms up to lease_end - safety - timeout, then never");
  assert.equal(s.device.resetAt(3), leaseEnd - 500, "the reset lands exactly safety_margin before etcd can expire the lease");
  assert.ok(s.device.resetAt(3) > leaseEnd - 1000, "and after the fence deadline (lease_end - fence_margin): the guard fences first");
});

test("the last feed is aimed a little before the bound, so a late timer cannot skip it and bring the reset into the guard's time", async () => {
  const s = keeper();
  await s.k.configure(SETTINGS);
  const leaseEnd = s.clock.systemMonotonicMs() + 5230; // the bound (+1730) is off the 500ms grid
  s.k.hold(leaseEnd);
  await s.clock.advance(10_000);
  const feeds = s.device.ops.filter((o) => o.op === "keepalive").map((o) => o.at - (leaseEnd - 5230));
  assert.deepEqual(feeds, [0, 500, 1000, 1500, 1680]);
  const reset = s.device.resetAt(3);
  assert.ok(reset <= leaseEnd - 500 && reset >= leaseEnd - 550, `reset at lease_end - ${leaseEnd - reset}ms`);
});

test("renewals every renew_interval keep a healthy primary fed without a gap long enough to reset it", async () => {
  const s = keeper();
  await s.k.configure(SETTINGS);
  let worstGap = 0;
  let last = s.clock.monotonicMs();
  for (let i = 0; i < 40; i++) {
    s.k.hold(s.clock.systemMonotonicMs() + 5000);
    for (let j = 0; j < 5; j++) {
      await s.clock.advance(250); // 1250ms between renewals
      worstGap = Math.max(worstGap, s.clock.monotonicMs() - s.device.lastFeed);
    }
    last = s.device.lastFeed;
  }
  assert.ok(worstGap <= 500, `longest time unfed ${worstGap}ms of a 3000ms timeout`);
  assert.ok(last > 0);
  // One lost renewal (the next lands 2500ms later): still fed in time, no reset.
  s.k.hold(s.clock.systemMonotonicMs() + 5000);
  await s.clock.advance(2500);
  assert.ok(s.device.resetAt(3) > s.clock.monotonicMs(), "still alive when the late renewal lands");
  s.k.hold(s.clock.systemMonotonicMs() + 5000);
  assert.equal(s.device.lastFeed, s.clock.monotonicMs(), "fed again at once");
});

test("opening needs the whole timeout ahead of the bound; disarm stops the device (magic close)", async () => {
  const s = keeper();
  await s.k.configure(SETTINGS);
  s.k.hold(s.clock.systemMonotonicMs() + 3000); // lease_end - safety - timeout is already past
  assert.equal(s.device.open_, false, "not opened with too little lease left");
  assert.equal(s.reports.at(-1)!.state, "ready", "and says so (the agent is waiting for an answer)");
  s.k.hold(s.clock.systemMonotonicMs() + 5000);
  assert.equal(s.device.open_, true);
  s.k.release("disarmed");
  assert.equal(s.device.open_, false);
  assert.equal(s.reports.at(-1)!.state, "ready");
  const before = s.device.ops.length;
  await s.clock.advance(5000);
  assert.equal(s.device.ops.length, before, "nothing fed after the stop");
});

test("settings that arrive while the device runs (a restarted agent's) take effect once it is stopped", async () => {
  const s = keeper();
  await s.k.configure(SETTINGS);
  s.k.hold(s.clock.systemMonotonicMs() + 5000);
  await s.k.configure({ ...SETTINGS, timeoutS: 2 });
  assert.equal(s.k.current().timeoutS, 3, "unchanged while active");
  assert.equal(s.device.ops.filter((o) => o.op.startsWith("prepare")).length, 1);
  s.k.release("disarmed");
  await s.clock.advance(0);
  assert.deepEqual(s.device.ops.filter((o) => o.op.startsWith("prepare")).map((o) => o.op), ["prepare 3", "prepare 2"]);
  assert.equal(s.k.current().timeoutS, 2);
});

test("a device that cannot be prepared is unavailable, with the reason; it is never opened", async () => {
  const s = keeper(new Error("nowayout is set"));
  await s.k.configure(SETTINGS);
  assert.deepEqual(s.reports.at(-1), { state: "unavailable", device: "/dev/watchdog", problem: "nowayout is set" });
  s.k.hold(s.clock.systemMonotonicMs() + 5000);
  assert.equal(s.device.open_, false);
  // A device whose timeout is shorter than asked is used with its own timeout (it resets sooner, still in time).
  const t = keeper(2);
  await t.k.configure(SETTINGS);
  assert.equal(t.reports.at(-1)!.timeoutS, 2);
  const leaseEnd = t.clock.systemMonotonicMs() + 5000;
  t.k.hold(leaseEnd);
  await t.clock.advance(10_000);
  assert.equal(t.device.resetAt(2), leaseEnd - 500);
});

// ------------------------------------------------------------------ in the guard

const DROP = ["ip", "addr", "del", "198.18.0.100/24", "dev", "eth0"];
const ORDERS: FenceOrders = { dropVip: DROP, daemonPidfile: "/run/x/daemon.pid", stopArgv: null };

function guard(runner: StrictCommandRunner, alive = () => false) {
  const clock = new FakeClock();
  const device = new FakeWatchdogDevice(clock);
  const replies: GuardReply[] = [];
  const exits: number[] = [];
  const core = new GuardCore({
    clock, runner, log: () => undefined, kill: () => undefined, readPid: () => 4242, alive,
    exit: (c) => {
      exits.push(c);
      device.exitWithoutStop();
    },
    watchdog: () => device, reply: (m) => void replies.push(m),
  });
  core.connected();
  return { clock, device, replies, exits, core };
}

test("guard: a clean fence stops the watchdog after the VIP and the daemon are gone", async () => {
  const runner = new StrictCommandRunner().expect(DROP);
  const g = guard(runner);
  g.core.handle({ watchdog: SETTINGS });
  await g.clock.advance(0);
  const now = g.clock.systemMonotonicMs();
  g.core.handle({ arm: { deadlineMs: now + 4000, leaseEndMs: now + 5000, orders: ORDERS } });
  assert.equal(g.replies.at(-1)!.watchdog.state, "active");
  await g.clock.advance(4100);
  runner.done();
  assert.equal(g.device.open_, false, "magic close after a clean fence: no reset needed");
  const stop = g.device.ops.find((o) => o.op === "stop")!;
  assert.ok(stop.at < now + 4500, `stopped at +${stop.at - now}ms, before the reset at +4500ms`);
  assert.deepEqual(g.exits, [0]);
});

test("guard: a fence that fails leaves the watchdog running, so the reset is the fence", async () => {
  const runner = new StrictCommandRunner().expect(DROP, { code: 1, stderr: "RTNETLINK answers: Operation not permitted" });
  const g = guard(runner);
  g.core.handle({ watchdog: SETTINGS });
  await g.clock.advance(0);
  const now = g.clock.systemMonotonicMs();
  g.core.handle({ arm: { deadlineMs: now + 4000, leaseEndMs: now + 5000, orders: ORDERS } });
  await g.clock.advance(6000);
  runner.done();
  assert.equal(g.device.open_, true, "left running");
  assert.deepEqual(g.exits, [], "the guard stays, holding the device: exiting would make the kernel feed it once more");
  assert.equal(g.device.resetAt(3), now + 4500, "the kernel resets the node safety_margin before the lease ends");
});

test("guard: an address already gone counts as removed; the daemon gets SIGKILL only if it outlives SIGTERM by 1s", async () => {
  const runner = new StrictCommandRunner().expect(DROP, { code: 2, stderr: "RTNETLINK answers: Cannot assign requested address" });
  let alive = true;
  const g = guard(runner, () => alive);
  g.core.handle({ watchdog: SETTINGS });
  await g.clock.advance(0);
  const now = g.clock.systemMonotonicMs();
  g.core.handle({ arm: { deadlineMs: now + 4000, leaseEndMs: now + 5000, orders: ORDERS } });
  await g.clock.advance(4100);
  alive = false; // the daemon exits on SIGTERM after ~100ms
  await g.clock.advance(100);
  assert.equal(g.device.open_, false);
  assert.ok(g.device.ops.at(-1)!.at <= now + 4250);
});

test("guard: disarm stops the watchdog; settings off while active stop it too", async () => {
  const g = guard(new StrictCommandRunner());
  g.core.handle({ watchdog: SETTINGS });
  await g.clock.advance(0);
  const now = () => g.clock.systemMonotonicMs();
  g.core.handle({ arm: { deadlineMs: now() + 4000, leaseEndMs: now() + 5000, orders: ORDERS } });
  g.core.handle({ disarm: true });
  assert.equal(g.device.open_, false);
  g.core.handle({ arm: { deadlineMs: now() + 4000, leaseEndMs: now() + 5000, orders: ORDERS } });
  assert.equal(g.device.open_, true);
  g.core.handle({ watchdog: null });
  assert.equal(g.device.open_, false);
  assert.deepEqual(g.replies.at(-1), { watchdog: { state: "off" } });
  g.core.handle({ disarm: true });
});

// ------------------------------------------------------------------ the device through the kernel's API

function fakeSysfs(t: { after(fn: () => void): void }, attrs: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "understudy-wd-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "class", "watchdog0"), { recursive: true });
  for (const [k, v] of Object.entries(attrs)) writeFileSync(join(dir, "class", "watchdog0", k), `${v}\n`);
  const device = join(dir, "watchdog");
  writeFileSync(device, "");
  return { dir, sysfs: join(dir, "class"), device };
}

test("LinuxWatchdog: sets the timeout with wdctl, feeds by writing, stops with the magic V", async (t) => {
  const f = fakeSysfs(t, { nowayout: "0", state: "inactive", timeout: "3" });
  const runner = new StrictCommandRunner().expect(["wdctl", "--settimeout", "3", f.device]);
  const wd = new LinuxWatchdog(f.device, runner, f.sysfs);
  assert.equal(await wd.prepare(3), 3);
  runner.done();
  wd.open();
  wd.keepalive();
  wd.keepalive();
  wd.stop();
  assert.equal(readFileSync(f.device, "utf8"), "11V");
});

test("LinuxWatchdog refuses nowayout, a device someone else runs, and a timeout it cannot shorten, before touching it", async (t) => {
  const nowayout = fakeSysfs(t, { nowayout: "1", state: "inactive", timeout: "60" });
  await assert.rejects(new LinuxWatchdog(nowayout.device, new StrictCommandRunner(), nowayout.sysfs).prepare(3), /nowayout is set/);
  const busy = fakeSysfs(t, { nowayout: "0", state: "active", timeout: "60" });
  await assert.rejects(new LinuxWatchdog(busy.device, new StrictCommandRunner(), busy.sysfs).prepare(3), /already active: something else holds it/);
  const long = fakeSysfs(t, { nowayout: "0", state: "inactive", timeout: "60" });
  const runner = new StrictCommandRunner().expect(["wdctl", "--settimeout", "3", long.device], { code: 1, stderr: "wdctl: cannot set timeout for watchdog: Operation not supported\n" });
  await assert.rejects(new LinuxWatchdog(long.device, runner, long.sysfs).prepare(3), /timeout is 60s, longer than the 3s the lease allows: wdctl --settimeout exited 1: wdctl: cannot set timeout/);
  const missing = fakeSysfs(t, {});
  await assert.rejects(new LinuxWatchdog(missing.device, new StrictCommandRunner(), missing.sysfs).prepare(3), /cannot read .*nowayout \(is the driver loaded, e\.g\. modprobe softdog/);
  await assert.rejects(new LinuxWatchdog("/dev/null", new StrictCommandRunner(), missing.sysfs).prepare(3), /not a watchdog device name/);
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
  assert.ok(c.etcd.historyEvents.some((e) => e.kind === "veto" && /watchdog \/dev\/watchdog is not running \(unavailable: cannot open: EBUSY\)/.test(JSON.stringify(e))), JSON.stringify(c.etcd.historyEvents));
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
