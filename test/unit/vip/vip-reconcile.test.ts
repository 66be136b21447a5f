import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { VipReconciler } from "../../../src/vip/reconcile.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";
import { StrictFloatingIp, deferred } from "../../fakes/floating-ip.js";

const RECONCILE = 2_000;
const ANNOUNCE = 10_000;

function setup() {
  const clock = new FakeClock();
  const ip = new StrictFloatingIp();
  const reconciler = new VipReconciler(ip, clock, silentLogger(), { reconcileIntervalMs: RECONCILE, announceIntervalMs: ANNOUNCE });
  const errors: unknown[] = [];
  reconciler.onError((e) => errors.push(e));
  return { clock, ip, reconciler, errors };
}

describe("VipReconciler", () => {
  it("adds the address when desired and not held, resolving once added", async () => {
    const { ip, reconciler } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    assert.deepEqual(reconciler.state(), { desired: true, held: true, lastError: undefined });
    ip.done();
    reconciler.stop();
  });

  it("skips the duplicate check only for the add a released handover asked for, never for a later repair", async () => {
    const { clock, ip, reconciler } = setup();
    ip.expect("add");
    await reconciler.setDesired(true, { skipDuplicateCheck: true });
    ip.expect("isHeld", { held: false }).expect("add");
    await clock.advance(RECONCILE);
    ip.done();
    assert.deepEqual(ip.addOptions, [
      { skipDuplicateCheck: true, notHeld: true },
      { skipDuplicateCheck: false, notHeld: true },
    ]);
    reconciler.stop();
  });

  it("repairs drift: re-adds an address removed by hand, removes one added while not desired", async () => {
    const { clock, ip, reconciler, errors } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    ip.expect("isHeld", { held: false }).expect("add"); // someone ran `ip addr del`
    await clock.advance(RECONCILE);
    ip.done();

    ip.expect("remove");
    await reconciler.setDesired(false);
    ip.expect("isHeld", { held: true }).expect("remove"); // someone ran `ip addr add`
    await clock.advance(RECONCILE);
    ip.done();
    assert.deepEqual(reconciler.state(), { desired: false, held: false, lastError: undefined });
    assert.deepEqual(errors, []);
    reconciler.stop();
  });

  it("start() drops an address left behind while not desired", async () => {
    const { clock, ip, reconciler } = setup();
    ip.expect("isHeld", { held: true }).expect("remove");
    reconciler.start();
    await clock.advance(0);
    ip.done();
    reconciler.stop();
  });

  it("re-announces a held address every announce_interval, and only then", async () => {
    const { clock, ip, reconciler } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    for (let t = RECONCILE; t < ANNOUNCE; t += RECONCILE) ip.expect("isHeld", { held: true });
    await clock.advance(ANNOUNCE - 1);
    ip.done();
    // Both timers fire at 10 s (the announce timer was armed first): two serial passes.
    ip.expect("isHeld", { held: true }).expect("announce").expect("isHeld", { held: true });
    await clock.advance(1);
    ip.done();
    assert.equal(ip.calls.filter((c) => c === "announce").length, 1);
    reconciler.stop();
  });

  it("a slow announcement does not hold up a demotion; its failure is reported", async () => {
    const { clock, ip, reconciler, errors } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    for (let t = RECONCILE; t < ANNOUNCE; t += RECONCILE) ip.expect("isHeld", { held: true });
    await clock.advance(ANNOUNCE - 1);
    const series = deferred();
    const garpFailed = new UnderstudyError("US_E_VIP_ANNOUNCE", { address: "198.18.0.100/24", interface: "eth0", cause: "exit 2" });
    ip.expect("isHeld", { held: true }).expect("announce", { gate: series.promise, error: garpFailed }).expect("isHeld", { held: true });
    await clock.advance(1);
    ip.expect("remove");
    await reconciler.setDesired(false); // resolves while the announcement series still runs
    ip.done();
    series.resolve();
    await flushMicrotasks();
    assert.deepEqual(errors, [garpFailed]);
    assert.equal(reconciler.state().lastError, garpFailed.message);
    reconciler.stop();
  });

  it("never overlaps reconciles: triggers during a slow pass join one queued pass", async () => {
    const { clock, ip, reconciler } = setup();
    const slowAdd = deferred();
    ip.expect("add", { gate: slowAdd.promise });
    const first = reconciler.setDesired(true);
    await clock.advance(3 * RECONCILE); // three timer ticks while add() hangs
    const second = reconciler.setDesired(true);
    ip.expect("add"); // exactly one pass after the slow one (a direct one: setDesired joined it)
    slowAdd.resolve();
    await Promise.all([first, second]);
    await flushMicrotasks();
    ip.done();
    assert.deepEqual(ip.calls, ["add", "add"]);
    reconciler.stop();
  });

  it("a demotion during a pass's observation is obeyed: the pass does not re-add what the fence removed", async () => {
    const { clock, ip, reconciler } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    // A timer pass observes (slowly); meanwhile the address was removed (fence guard) and the node demotes.
    const slowLook = deferred();
    ip.expect("isHeld", { held: false, gate: slowLook.promise });
    await clock.advance(RECONCILE);
    const demoting = reconciler.setDesired(false);
    ip.expect("remove"); // the demotion's own pass; no add in between
    slowLook.resolve();
    await demoting;
    await flushMicrotasks();
    ip.done();
    assert.deepEqual(ip.calls, ["add", "isHeld", "remove"]);
    assert.deepEqual(reconciler.state(), { desired: false, held: false, lastError: undefined });
    reconciler.stop();
  });

  it("release() waits for a running pass, removes the address and stops for good", async () => {
    const { clock, ip, reconciler } = setup();
    const slowAdd = deferred();
    ip.expect("add", { gate: slowAdd.promise }).expect("remove");
    const adding = reconciler.setDesired(true);
    await flushMicrotasks();
    const releasing = reconciler.release();
    slowAdd.resolve();
    await adding;
    await releasing;
    ip.done();
    assert.deepEqual(reconciler.state(), { desired: false, held: false, lastError: undefined });
    assert.equal(clock.pendingTimers(), 0);

    await reconciler.setDesired(true); // after shutdown: ignored
    await clock.advance(5 * ANNOUNCE);
    ip.done();
    assert.equal(reconciler.state().desired, false);
  });

  it("stop() cancels the timers", async () => {
    const { clock, ip, reconciler } = setup();
    ip.expect("add");
    await reconciler.setDesired(true);
    reconciler.stop();
    assert.equal(clock.pendingTimers(), 0);
    await clock.advance(5 * ANNOUNCE);
    ip.done();
  });

  it("reports a failed background pass through onError, records it, and recovers", async () => {
    const { clock, ip, reconciler, errors } = setup();
    const throwing = reconciler.onError(() => {
      throw new Error("listener bug");
    });
    ip.expect("add");
    await reconciler.setDesired(true);
    const boom = new UnderstudyError("US_E_COMMAND_FAILED", { argv0: "ip -j addr show dev eth0", code: 1, stderr: "Device does not exist" });
    ip.expect("isHeld", { error: boom });
    await clock.advance(RECONCILE);
    assert.deepEqual(errors, [boom]);
    assert.match(reconciler.state().lastError ?? "", /US_E_COMMAND_FAILED/);
    throwing();

    ip.expect("isHeld", { held: true });
    await clock.advance(RECONCILE);
    ip.done();
    assert.equal(reconciler.state().lastError, undefined);
    assert.equal(errors.length, 1);
    reconciler.stop();
  });

  it("setDesired() rejects with the add's error, and the timer retries", async () => {
    const { clock, ip, reconciler, errors } = setup();
    const dup = new UnderstudyError("US_E_VIP_DUPLICATE", { address: "198.18.0.100/24", mac: "3a:71:66:5c:ed:bc" });
    ip.expect("add", { error: dup });
    await assert.rejects(reconciler.setDesired(true), (e) => isUnderstudyError(e, "US_E_VIP_DUPLICATE"));
    // A role change does not look before it acts, so a failed add leaves "held" unknown until the next reconcile.
    // VIP truth: since when it is missing, and the MAC that answered, until the address is held.
    assert.deepEqual(reconciler.state(), { desired: true, held: undefined, lastError: dup.message, missingSinceMs: clock.monotonicMs(), foreignMac: "3a:71:66:5c:ed:bc" });
    assert.deepEqual(errors, [], "the caller got the error; listeners are for background passes");

    ip.expect("isHeld", { held: false }).expect("add");
    await clock.advance(RECONCILE);
    ip.done();
    assert.deepEqual(reconciler.state(), { desired: true, held: true, lastError: undefined });
    reconciler.stop();
  });

  it("release() rejects when removal fails", async () => {
    const { ip, reconciler } = setup();
    ip.expect("remove", { error: new UnderstudyError("US_E_VIP_DEL", { address: "198.18.0.100/24", interface: "eth0", cause: "x" }) });
    await assert.rejects(reconciler.release(), (e) => isUnderstudyError(e, "US_E_VIP_DEL"));
    ip.done();
  });

  it("rejects an interval that would spin the timer", () => {
    const clock = new FakeClock();
    for (const bad of [
      { reconcileIntervalMs: 0, announceIntervalMs: ANNOUNCE },
      { reconcileIntervalMs: RECONCILE, announceIntervalMs: Number.NaN },
    ]) {
      assert.throws(
        () => new VipReconciler(new StrictFloatingIp(), clock, silentLogger(), bad),
        (e) => isUnderstudyError(e, "US_E_CONFIG_TIMING"),
      );
    }
  });
});
