/**
 * The watchdog code against a real kernel's /dev/watchdog: a Debian 12 kernel
 * booted under qemu with the softdog driver (test/vm/), running the native
 * fence guard (dist/fence/understudy-fence-guard) inside the VM, driven over
 * its socket by a Node script. Covers what the fake device in
 * test/unit/fence/fence-watchdog.test.ts cannot: sysfs as the kernel writes it,
 * `wdctl --settimeout`, magic close, nowayout, and when the kernel really
 * resets the machine.
 *
 * Times are compared on CLOCK_MONOTONIC inside the VM where possible: the
 * scripts print `t=<ms>` in their markers and a tick every 100 ms, so the
 * last tick before a reset bounds it. Host times of console lines are the
 * cross-check. Skipped only when qemu, busybox-static or the kernel package
 * cannot be had; on a host where KVM does not work qemu runs under TCG with
 * longer timeouts and wider tolerances.
 *
 * Uses dist/ (npm run build), or UNDERSTUDY_VM_DIST.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { obtainKernel, QEMU, REPO_ROOT, VmImage, vmPrelude, type Kernel, type Marker, type VmRun } from "../vm/vm.js";

const DIST = process.env.UNDERSTUDY_VM_DIST ?? join(REPO_ROOT, "dist");

async function whyNot(): Promise<{ skip: string } | { kernel: Kernel }> {
  if (!existsSync(QEMU)) return { skip: `${QEMU} not installed (apt-get install qemu-system-x86; scripts/install-deps.sh)` };
  if (!existsSync("/bin/busybox")) return { skip: "/bin/busybox not installed (busybox-static)" };
  if (!existsSync("/usr/bin/wdctl")) return { skip: "/usr/bin/wdctl not installed (util-linux)" };
  try {
    return { kernel: await obtainKernel() };
  } catch (e) {
    return { skip: `no Debian kernel for the VM: ${(e as Error).message}` };
  }
}

const setup = await whyNot();
const skip = "skip" in setup ? setup.skip : false;

const GUARD_SETUP = `
import { spawn } from "node:child_process";
import { connect } from "node:net";
const guard = spawn("/app/dist/fence/understudy-fence-guard", ["--socket", "/run/guard.sock", "--pidfile", "/run/guard.pid"], { stdio: ["ignore", "inherit", "inherit"] });
guard.on("exit", (code, signal) => mark("guard-exit", { code, signal }));
const tryConnect = () => new Promise((res) => { const s = connect("/run/guard.sock"); s.once("connect", () => res(s)); s.once("error", () => res(undefined)); });
let sock;
for (let i = 0; i < 200 && !sock; i++) { sock = await tryConnect(); if (!sock) await sleep(50); }
if (!sock) { mark("error", { message: "guard socket never came up" }); process.exit(70); }
sock.on("error", () => undefined);
const waiters = [];
let buf = "";
sock.setEncoding("utf8").on("data", (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf("\\n")) >= 0) {
    const msg = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    mark("reply", msg);
    for (const w of waiters.splice(0)) w(msg.watchdog);
  }
});
const send = (m) => sock.write(JSON.stringify(m) + "\\n");
const reply = (ok, ms = 10000) => new Promise((res, rej) => {
  const t = setTimeout(() => rej(new Error("no matching reply from the guard")), ms);
  const w = (s) => { if (ok(s)) { clearTimeout(t); res(s); } else waiters.push(w); };
  waiters.push(w);
});
`;

/** Configure (timeout 1 s, margin 500 ms), arm four times 500 ms apart with D = now+2000, E = now+3000, then stop re-arming. */
function guardScript(orders: string): string {
  return `${vmPrelude}${GUARD_SETUP}
const orders = ${orders};
const ready = reply((s) => s.state !== "off");
send({ watchdog: { mode: "required", device: "/dev/watchdog", timeoutS: 1, safetyMarginMs: 500 } });
const st = await ready;
mark("configured", { reply: st, timeout: sysfs("timeout"), state: sysfs("state") });
if (st.state !== "ready") process.exit(1);
startTicks(100);
let D = 0, E = 0;
for (let i = 0; i < 4; i++) {
  const now = mono();
  D = now + 2000;
  E = now + 3000;
  const active = i === 0 ? reply((s) => s.state === "active" || s.state === "unavailable") : undefined;
  send({ arm: { deadlineMs: D, leaseEndMs: E, orders } });
  mark("arm", { i, D, E });
  if (active) mark("armed", { reply: await active, state: sysfs("state") });
  await sleep(500);
}
mark("last-arm", { D, E, lastFeedAt: E - 500 - 1000 });
await sleep(Math.max(0, D - mono()) + 500);
mark("after-deadline", { state: sysfs("state") });
await sleep(5000);
mark("no-reset", { state: sysfs("state") });
process.exit(0);
`;
}

/** A time relative to E, signed: "E-1500", "E+40". */
const relE = (ms: number, E: number) => `E${ms - E >= 0 ? "+" : ""}${(ms - E).toFixed(0)}`;

function lastBefore(run: VmRun, name: string, atOrBefore = Infinity): Marker | undefined {
  return run.markers.filter((m) => m.name === name && m.atMs <= atOrBefore).at(-1);
}

function need(run: VmRun, name: string): Marker {
  const m = run.marker(name);
  assert.ok(m, `marker @@${name} missing:\n${run.transcript()}\n${run.stderr}`);
  return m;
}

describe("watchdog against a real kernel (softdog under qemu)", { skip, timeout: 600_000 }, () => {
  let image: VmImage | undefined;
  let tcg = false;

  before(async () => {
    if ("skip" in setup) return;
    const guard = join(DIST, "fence", "understudy-fence-guard");
    assert.ok(existsSync(guard), `${DIST} is not built: npm run build`);
    image = await VmImage.build({ kernel: setup.kernel, distDir: DIST, distEntries: [], binaries: [{ src: guard, dest: "/app/dist/fence/understudy-fence-guard" }] });
  });
  after(() => image?.cleanup());

  async function boot(t: TestContext, script: string, softdogParams: string, timeoutMs: number): Promise<VmRun> {
    assert.ok(image, "image");
    const r = await image.boot({ script, softdogParams, timeoutMs });
    tcg = r.accel === "tcg";
    t.diagnostic(
      `qemu ${r.accel}: exited ${Math.round(r.exitedAtMs)} ms after start (code ${r.code}); ${r.poweredOff ? "powered off by script" : r.reset ? "RESET" : r.timedOut ? "TIMED OUT" : "exited"}`,
    );
    assert.ok(!r.timedOut, `qemu timed out:\n${r.transcript()}`);
    assert.ok(r.marker("vm"), `the VM never ran /init:\n${r.transcript()}\n${r.stderr}`);
    assert.ok(!r.markers.some((m) => m.name === "vm" && m.rest.startsWith("insmod-failed")), `insmod failed:\n${r.transcript()}`);
    const err = r.marker("error");
    assert.ok(!err, `the script failed: ${JSON.stringify(err?.data)}\n${r.transcript()}`);
    return r;
  }

  it("the guard's device code: prepare sets the timeout and leaves it stopped; feeding holds it; magic close stops it; an unfed device resets the VM on time", async (t) => {
    const script = `${vmPrelude}${GUARD_SETUP}
const NONE = { dropVip: null, daemonPidfile: null, stopArgv: null };
mark("before", { timeout: sysfs("timeout"), state: sysfs("state"), nowayout: sysfs("nowayout") });
const ready = reply((s) => s.state !== "off");
send({ watchdog: { mode: "required", device: "/dev/watchdog", timeoutS: 3, safetyMarginMs: 500 } });
const st = await ready;
mark("prepared", { got: st.timeoutS, timeout: sysfs("timeout"), state: sysfs("state") });
// A primary's heartbeat with the lease far ahead opens it; the guard feeds it every 500 ms.
const opened = reply((s) => s.state !== "ready");
let now = mono();
send({ arm: { deadlineMs: now + 60000, leaseEndMs: now + 60000, orders: NONE } });
await opened;
mark("opened", { state: sysfs("state") });
const until = mono() + 6000;
while (mono() < until) { now = mono(); send({ arm: { deadlineMs: now + 60000, leaseEndMs: now + 60000, orders: NONE } }); await sleep(500); }
mark("fed-6s", { state: sysfs("state") });
const stopped = reply((s) => s.state === "ready");
send({ disarm: true });
await stopped;
mark("stopped", { state: sysfs("state") });
await sleep(5000);
mark("still-up", { state: sysfs("state") });
// A heartbeat whose lease allows one feed only (the bound lease_end - 500 - 3000 is 50 ms away):
// the guard opens the device and feeds it as it replies "active", and never again.
const reopened = reply(() => true);
now = mono();
send({ arm: { deadlineMs: now + 60000, leaseEndMs: now + 3550, orders: NONE } });
const again = await reopened;
if (again.state !== "active") { mark("error", { message: "not reopened: " + JSON.stringify(again) }); process.exit(1); }
mark("last-feed");
startTicks(100);
await sleep(10000);
mark("no-reset");
process.exit(0);
`;
    const r = await boot(t, script, "soft_margin=60 nowayout=0", 90_000);
    assert.deepEqual(need(r, "before").data, { timeout: "60", state: "inactive", nowayout: "0" });
    assert.deepEqual(need(r, "prepared").data, { got: 3, timeout: "3", state: "inactive" }, "wdctl set 3 s and did not leave it running");
    assert.deepEqual(need(r, "opened").data, { state: "active" });
    assert.deepEqual(need(r, "fed-6s").data, { state: "active" }, "fed every 500 ms for twice the timeout: no reset");
    assert.deepEqual(need(r, "stopped").data, { state: "inactive" }, "magic close stopped it");
    assert.deepEqual(need(r, "still-up").data, { state: "inactive" }, "no reset within 5 s of the magic close");
    const fed = need(r, "last-feed");
    assert.ok(!r.marker("no-reset"), `no reset within 10 s of the last feed:\n${r.transcript()}`);
    assert.ok(r.reset && !r.poweredOff, "the VM was reset, not powered off");
    assert.ok(r.softdogFired, "the kernel said softdog fired");
    const tick = lastBefore(r, "tick");
    assert.ok(tick?.vmMs !== undefined && fed.vmMs !== undefined, "tick?.vmMs !== undefined && fed.vmMs !== undefined");
    const vmAlive = tick.vmMs - fed.vmMs;
    const host = r.exitedAtMs - fed.atMs;
    t.diagnostic(`last feed -> last tick (in VM): ${vmAlive.toFixed(0)} ms; last feed line -> qemu exit (host): ${host.toFixed(0)} ms`);
    // The reset is at lastFeed + 3000 (an hrtimer); the last tick is at most 100 ms (plus scheduling) before it.
    assert.ok(vmAlive >= 2700 && vmAlive <= 3000, `in-VM: the reset came ${vmAlive} ms after the last feed (expected 3000, ticks every 100 ms)`);
    const [lo, hi] = tcg ? [2000, 6000] : [2500, 4500];
    assert.ok(host >= lo && host <= hi, `host: qemu exited ${host} ms after the last-feed line (expected ${lo}..${hi})`);
  });

  it("the guard's device code: nowayout=1 is refused before the device is opened", async (t) => {
    const script = `${vmPrelude}${GUARD_SETUP}
mark("before", { nowayout: sysfs("nowayout"), state: sysfs("state") });
const answer = reply((s) => s.state !== "off");
send({ watchdog: { mode: "required", device: "/dev/watchdog", timeoutS: 3, safetyMarginMs: 500 } });
const st = await answer;
mark("prepare", st.state === "ready" ? { ok: true } : { ok: false, message: st.problem });
mark("after", { state: sysfs("state") });
await sleep(5000);
mark("still-up", { state: sysfs("state") });
process.exit(0);
`;
    // A 3 s margin: had anything opened the device, the VM would reset within the 5 s wait.
    const r = await boot(t, script, "soft_margin=3 nowayout=1", 60_000);
    assert.deepEqual(need(r, "before").data, { nowayout: "1", state: "inactive" });
    const p = need(r, "prepare").data;
    assert.equal(p?.ok, false, "prepare() rejected");
    assert.match(String(p?.message), /nowayout is set/);
    assert.deepEqual(need(r, "after").data, { state: "inactive" });
    assert.deepEqual(need(r, "still-up").data, { state: "inactive" });
    assert.ok(r.poweredOff && !r.reset, `powered off by the script, not reset:\n${r.transcript()}`);
  });

  it("fence guard: a clean fence at the deadline stops the watchdog (no reset)", async (t) => {
    const r = await boot(t, guardScript("{ dropVip: null, daemonPidfile: null, stopArgv: null }"), "soft_margin=60 nowayout=0", 60_000);
    assert.equal((need(r, "configured").data?.reply as { state?: string }).state, "ready", r.transcript());
    assert.equal(need(r, "configured").data?.timeout, "1");
    const armed = need(r, "armed").data;
    assert.equal((armed?.reply as { state?: string }).state, "active", r.transcript());
    assert.equal(armed?.state, "active");
    const last = need(r, "last-arm");
    const D = Number(last.data?.D);
    const exit = need(r, "guard-exit");
    assert.ok(exit.vmMs! >= D, `the guard fenced at the deadline (exit ${exit.vmMs}, D ${D})`);
    t.diagnostic(`guard exited ${(exit.vmMs! - D).toFixed(0)} ms after D`);
    assert.deepEqual(need(r, "after-deadline").data, { state: "inactive" }, "the guard stopped the watchdog after the clean fence");
    assert.deepEqual(need(r, "no-reset").data, { state: "inactive" });
    assert.ok(r.poweredOff && !r.reset, `no reset:\n${r.transcript()}`);
  });

  it("fence guard: a failed fence leaves the watchdog running and the VM is reset after D and by E - safety margin", async (t) => {
    const r = await boot(t, guardScript('{ dropVip: null, daemonPidfile: null, stopArgv: ["/bin/false"] }'), "soft_margin=60 nowayout=0", 60_000);
    assert.equal((need(r, "armed").data?.reply as { state?: string }).state, "active", r.transcript());
    const last = need(r, "last-arm");
    const D = Number(last.data?.D);
    const E = Number(last.data?.E);
    const safety = 500;
    assert.ok(!r.marker("no-reset"), `the VM was not reset:\n${r.transcript()}`);
    assert.ok(r.reset && r.softdogFired, `reset by softdog:\n${r.transcript()}`);
    const tick = lastBefore(r, "tick");
    assert.ok(tick?.vmMs !== undefined, "tick?.vmMs !== undefined");
    const exit = r.marker("guard-exit");
    t.diagnostic(
      `in VM: D=${relE(D, E)}, last feed allowed at ${relE(E - safety - 1000, E)}, reset bound ${relE(E - safety, E)}, ` +
        `guard exit ${exit?.vmMs !== undefined ? relE(exit.vmMs, E) : "none"}, last tick ${relE(tick.vmMs, E)} (the reset within ~100 ms after it)`,
    );
    assert.ok(tick.vmMs >= D, `the VM was alive until the deadline (last tick ${tick.vmMs}, D ${D})`);
    // The reset comes before the next tick would have: at most lastTick + 100 ms (+ scheduling slack).
    const slack = tcg ? 250 : 100;
    assert.ok(
      tick.vmMs + 100 <= E - safety + slack,
      `the reset must land by E - safety margin: last tick at ${relE(tick.vmMs, E)} ms, bound ${relE(E - safety, E)} ms` +
        (exit?.vmMs !== undefined ? ` (the guard exited at ${relE(exit.vmMs, E)} ms: closing the device without the magic character makes the kernel ping it)` : "") +
        `\n${r
          .transcript()
          .split("\n")
          .filter((l) => !/@@tick/.test(l))
          .join("\n")}`,
    );
  });
});
