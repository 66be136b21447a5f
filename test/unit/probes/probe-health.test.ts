import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { ProbeHealth, type WatchedProbe } from "../../../src/probes/health.js";
import type { Probe, ProbeResult, ProbeState } from "../../../src/probes/port.js";
import { FakeClock } from "../../fakes/clock.js";

const INTERVAL = 1000;
const TIMEOUT = 500;

/**
 * A probe that answers from a script. `true`/`false` resolve at once;
 * "hang" stays pending until release() or abort. Fails the test on overlap.
 */
class ScriptedProbe implements Probe {
  readonly type = "tcp" as const;
  calls = 0;
  inFlight = 0;
  maxInFlight = 0;
  signals: AbortSignal[] = [];
  private pending: ((r: ProbeResult) => void)[] = [];

  constructor(
    readonly name: string,
    private readonly script: (boolean | "hang" | "throw")[],
  ) {}

  check(signal: AbortSignal): Promise<ProbeResult> {
    const step = this.script[this.calls++];
    if (step === undefined) throw new Error(`${this.name}: unscripted check #${this.calls}`);
    if (step === "throw") throw new Error("probe bug");
    this.signals.push(signal);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = (r: ProbeResult) => {
      this.inFlight--;
      return r;
    };
    if (step !== "hang") return Promise.resolve(done({ ok: step, detail: `${step ? "ok" : "fail"} #${this.calls}`, latencyMs: 1 }));
    return new Promise((resolve) => this.pending.push((r) => resolve(done(r))));
  }

  release(ok: boolean): void {
    const next = this.pending.shift();
    if (!next) throw new Error("nothing to release");
    next({ ok, detail: `released ${ok}`, latencyMs: 1 });
  }
}

function watched(probe: Probe, extra: Partial<WatchedProbe> = {}): WatchedProbe {
  return { probe, intervalMs: INTERVAL, timeoutMs: TIMEOUT, rise: 1, fall: 1, critical: true, ...extra };
}

describe("ProbeHealth rise/fall", () => {
  const table: { rise: number; fall: number; results: boolean[]; up: boolean[] }[] = [
    { rise: 1, fall: 1, results: [true, false, true], up: [true, false, true] },
    { rise: 1, fall: 1, results: [false, false], up: [false, false] },
    { rise: 2, fall: 3, results: [true, true, false, false, true, false, false, false, true, true], up: [false, true, true, true, true, true, true, false, false, true] },
    { rise: 3, fall: 1, results: [true, true, false, true, true, true], up: [false, false, false, false, false, true] },
    { rise: 1, fall: 2, results: [true, false, true, false, false], up: [true, true, true, true, false] },
  ];
  for (const { rise, fall, results, up } of table) {
    it(`rise ${rise} fall ${fall}: ${results.map(Number).join("")} -> ${up.map(Number).join("")}`, async () => {
      const clock = new FakeClock();
      const probe = new ScriptedProbe("sftp", results);
      const health = new ProbeHealth([watched(probe, { rise, fall })], { clock });
      const seen: boolean[] = [];
      health.start();
      for (let i = 0; i < results.length; i++) {
        if (i > 0) await clock.advance(INTERVAL);
        else await clock.advance(0);
        assert.equal(probe.calls, i + 1, "one check per interval");
        seen.push(health.states()[0]!.up);
      }
      assert.deepEqual(seen, up);
      await health.stop();
    });
  }

  it("reports consecutive agreeing results and the last detail", async () => {
    const clock = new FakeClock();
    const health = new ProbeHealth([watched(new ScriptedProbe("ftp", [false, false, true]), { rise: 2 })], { clock });
    assert.deepEqual(health.states(), [{ name: "ftp", critical: true, up: false, lastDetail: "not checked yet", consecutive: 0 }]);
    await health.checkNow();
    await health.checkNow();
    assert.deepEqual(health.states()[0], { name: "ftp", critical: true, up: false, lastDetail: "fail #2", consecutive: 2 });
    await health.checkNow();
    assert.deepEqual(health.states()[0], { name: "ftp", critical: true, up: false, lastDetail: "ok #3", consecutive: 1 });
  });
});

describe("ProbeHealth", () => {
  it("fires onChange only when a probe flips", async () => {
    const clock = new FakeClock();
    const health = new ProbeHealth([watched(new ScriptedProbe("ssh", [false, true, true, false, false]), { fall: 2 })], { clock });
    const changes: ProbeState[] = [];
    health.onChange((s) => changes.push(s));
    health.onChange(() => {
      throw new Error("a broken listener must not stop the others or the probe");
    });
    health.start();
    await clock.advance(0);
    assert.equal(changes.length, 0); // starting down and staying down is no change
    await clock.advance(INTERVAL * 4);
    assert.deepEqual(
      changes.map((c) => [c.name, c.up, c.lastDetail]),
      [
        ["ssh", true, "ok #2"],
        ["ssh", false, "fail #5"],
      ],
    );
    await health.stop();
  });

  it("criticalUp: true with no probes, false while a critical probe is down, blind to non-critical ones", async () => {
    const clock = new FakeClock();
    assert.equal(new ProbeHealth([], { clock }).criticalUp(), true);
    const health = new ProbeHealth([watched(new ScriptedProbe("ssh", [true, true])), watched(new ScriptedProbe("http", [false, false]), { critical: false })], { clock });
    assert.equal(health.criticalUp(), false, "probes start down");
    await health.checkNow();
    assert.equal(health.criticalUp(), true);
    assert.deepEqual(
      health.states().map((s) => [s.name, s.up]),
      [
        ["ssh", true],
        ["http", false],
      ],
    );
  });

  it("never runs two checks of one probe at once, however long one takes", async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe("slow", ["hang", "hang", true]);
    const health = new ProbeHealth([watched(probe, { timeoutMs: 60_000 })], { clock });
    health.start();
    await clock.advance(INTERVAL * 10);
    assert.equal(probe.calls, 1);
    const now = health.checkNow(); // queues behind the check in flight
    await clock.advance(INTERVAL);
    assert.equal(probe.calls, 1);
    probe.release(false);
    await clock.advance(0);
    assert.equal(probe.calls, 2, "checkNow ran right after the first check finished");
    probe.release(true);
    const states = await now;
    assert.equal(states[0]!.up, true);
    assert.equal(probe.maxInFlight, 1);
    await clock.advance(INTERVAL);
    assert.equal(probe.calls, 3, "then back to one check per interval");
    await health.stop();
  });

  it("keeps a steady rate: the next check starts one interval after the previous one started", async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe("p", ["hang", true]);
    const health = new ProbeHealth([watched(probe)], { clock });
    health.start();
    await clock.advance(300);
    probe.release(true);
    await clock.advance(699);
    assert.equal(probe.calls, 1);
    await clock.advance(1);
    assert.equal(probe.calls, 2);
    await health.stop();
  });

  it("counts a check that overruns its timeout as failed and aborts it", async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe("stuck", [true, "hang", true]);
    const health = new ProbeHealth([watched(probe)], { clock });
    health.start();
    await clock.advance(INTERVAL);
    assert.equal(health.states()[0]!.up, true);
    await clock.advance(TIMEOUT);
    assert.deepEqual([health.states()[0]!.up, health.states()[0]!.lastDetail], [false, `timeout after ${TIMEOUT}ms`]);
    assert.equal(probe.signals[1]!.aborted, true);
    await clock.advance(INTERVAL - TIMEOUT);
    assert.equal(probe.calls, 3);
    assert.equal(health.states()[0]!.up, true);
    await health.stop();
  });

  it("counts a probe that throws as failed and keeps checking it", async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe("buggy", ["throw", true]);
    const health = new ProbeHealth([watched(probe)], { clock });
    health.start();
    await clock.advance(0);
    assert.match(health.states()[0]!.lastDetail, /probe failed: probe bug/);
    await clock.advance(INTERVAL);
    assert.equal(health.states()[0]!.up, true);
    await health.stop();
  });

  it("stop cancels timers, aborts the check in flight and drops its result", async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe("p", [true, "hang"]);
    const health = new ProbeHealth([watched(probe)], { clock });
    const changes: ProbeState[] = [];
    health.onChange((s) => changes.push(s));
    health.start();
    await clock.advance(INTERVAL);
    assert.equal(probe.inFlight, 1);
    await health.stop();
    assert.equal(probe.signals[1]!.aborted, true);
    assert.equal(clock.pendingTimers(), 0);
    probe.release(false);
    await clock.advance(INTERVAL * 5);
    assert.equal(probe.calls, 2);
    assert.equal(health.states()[0]!.up, true, "the aborted check's result was dropped");
    assert.equal(changes.length, 1);
  });

  it("checkNow runs every probe at once without starting the schedule", async () => {
    const clock = new FakeClock();
    const a = new ScriptedProbe("a", [true]);
    const b = new ScriptedProbe("b", [false]);
    const health = new ProbeHealth([watched(a), watched(b)], { clock });
    const states = await health.checkNow();
    assert.deepEqual(
      states.map((s) => [s.name, s.up]),
      [
        ["a", true],
        ["b", false],
      ],
    );
    assert.equal(clock.pendingTimers(), 0);
  });

  it("rejects duplicate names and impossible counts at construction", () => {
    const clock = new FakeClock();
    const p = () => new ScriptedProbe("same", []);
    const rejects = (probes: WatchedProbe[]) =>
      assert.throws(
        () => new ProbeHealth(probes, { clock }),
        (e) => isUnderstudyError(e, "US_E_PROBE_CONFIG"),
      );
    rejects([watched(p()), watched(p())]);
    rejects([watched(p(), { rise: 0 })]);
    rejects([watched(p(), { fall: 1.5 })]);
    rejects([watched(p(), { intervalMs: 0 })]);
    rejects([watched(p(), { timeoutMs: 0 })]);
  });
});
