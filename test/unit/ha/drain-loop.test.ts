import { test } from "node:test";
import assert from "node:assert/strict";
import { HaLoop } from "../../../src/ha/loop.js";
import { DrainRun } from "../../../src/ha/drain-run.js";
import { parseConfigText } from "../../../src/config/load.js";
import { silentLogger } from "../../../src/platform/logger.js";
import type { SessionCounter, SessionGate } from "../../../src/drain/port.js";
import type { SwitchoverRequest } from "../../../src/coordinator/port.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../../fakes/node-parts.js";
import { ProcessLife } from "../../fakes/crashable.js";

// The executor side of a drained switchover: new sessions are accepted again
// on every exit path (moved, timed out, cancelled, target unfit, etcd lost,
// fenced, agent stopped), and a refusal left by a previous run goes at start.

/** A strict gate: records what it was asked; `failStop` / `failResume` make the next call fail. */
class StrictGate implements SessionGate {
  readonly method = "a test gate";
  readonly calls: string[] = [];
  failStop = false;
  failResume = 0;
  /** Whether new sessions are refused right now. */
  refusing = false;
  async stopAccepting(): Promise<void> {
    this.calls.push("stop");
    if (this.failStop) throw new Error("gate broken");
    if (this.stopGate) await this.stopGate;
    this.refusing = true;
  }
  async resumeAccepting(): Promise<void> {
    this.calls.push("resume");
    if (this.failResume > 0) {
      this.failResume--;
      throw new Error("resume failed");
    }
    this.refusing = false;
  }
  failClear = false;
  /** stopAccepting waits for this when set (an end() arriving meanwhile). */
  stopGate: Promise<void> | null = null;
  async clearLeftover(): Promise<void> {
    this.calls.push("clear");
    if (this.failClear) throw new Error("nft timed out");
    this.refusing = false;
  }
}

class SetCounter implements SessionCounter {
  readonly ports = [22];
  n = 0;
  fail = false;
  async established(): Promise<number> {
    if (this.fail) throw new Error("EACCES /proc/net/tcp");
    return this.n;
  }
}

function cluster() {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  const readiness: Record<string, string | null> = {};
  const gate = new StrictGate();
  const counter = new SetCounter();
  const nodes = (
    [
      ["n1", 200],
      ["n2", 100],
    ] as const
  ).map(([name, prio]) => {
    const life = new ProcessLife();
    const loop = new HaLoop({
      config: parseConfigText(
        `cluster: t
node: { name: ${name}, address: 198.18.0.1, priority: ${prio} }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
election: { ttl: 5s, fence_margin: 1s, ranking_delay: 500ms }
daemon: { backend: process, mode: cold, command: [/bin/true] }
`,
        "test.yaml",
      ),
      coordinator: life.coordinator(etcd),
      daemon: new FakeDaemon(),
      vip: new FakeVip(name, timeline),
      health: new FakeHealth(),
      clock: life.clock(clock),
      log: silentLogger(),
      version: "test",
      probeGraceMs: 0,
      readiness: { problem: () => readiness[name] ?? null, start: () => undefined, stop: () => undefined },
      // Only n1 (the first primary) drains in these tests; n2's gate would be its own.
      ...(name === "n1" ? { drain: { gate, counter } } : { drain: { unavailable: "not under test" } }),
    });
    return { name, loop, life };
  });
  return { clock, etcd, nodes, gate, counter, readiness };
}

async function drainingCluster(drainMs = 30_000, sessions = 1) {
  const c = cluster();
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(3000);
  assert.equal(c.etcd.leader?.node, "n1");
  c.counter.n = sessions;
  const request: SwitchoverRequest = {
    kind: "switchover",
    from: "n1",
    to: "n2",
    at: null,
    force: false,
    requestedBy: "ops",
    reason: "",
    requestedAt: new Date(c.clock.wallMs()).toISOString(),
    drainMs,
  };
  await c.etcd.requestSwitchover(request);
  c.nodes[0]!.loop.trigger("test");
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n1", "still n1 while draining");
  assert.equal(c.gate.refusing, true, "new sessions refused");
  assert.match(c.nodes[0]!.loop.status().decision, /draining, 1 session left/);
  return c;
}

const lastSwitchover = (c: ReturnType<typeof cluster>) => c.etcd.historyEvents.filter((e) => e.kind === "switchover").pop();

test("drain loop: agent start clears a refusal left by a previous run", async () => {
  const c = cluster();
  await c.nodes[0]!.loop.start();
  assert.deepEqual(c.gate.calls, ["clear"]);
  await c.nodes[0]!.loop.stop();
});

test("drain loop: the last session ends -> move, then accept again; history drained 1 cut 0", async () => {
  const c = await drainingCluster();
  c.counter.n = 0;
  await c.clock.advance(3000);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.equal(c.gate.refusing, false);
  assert.deepEqual(c.gate.calls, ["clear", "stop", "resume"]);
  const e = lastSwitchover(c);
  assert.deepEqual(e?.counts, { drained: 1, cut: 0 }, JSON.stringify(e));
  assert.ok((e?.durations?.drain_ms ?? 0) >= 2000, JSON.stringify(e));
});

test("drain loop: the duration ends with a session left -> move and cut it; history cut 1", async () => {
  const c = await drainingCluster(5000);
  await c.clock.advance(6000);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.equal(c.gate.refusing, false);
  assert.deepEqual(lastSwitchover(c)?.counts, { drained: 0, cut: 1 });
  assert.equal(lastSwitchover(c)?.durations?.drain_ms, 5000);
});

test("drain loop: the request is cancelled mid-drain -> accept again, stay primary", async () => {
  const c = await drainingCluster();
  await c.etcd.cancelSwitchover();
  c.nodes[0]!.loop.trigger("watch");
  await c.clock.advance(1000);
  assert.equal(c.gate.refusing, false);
  assert.equal(c.etcd.leader?.node, "n1");
});

test("drain loop: the target becomes unfit mid-drain -> cancel the switchover, accept again, record it", async () => {
  const c = await drainingCluster();
  c.readiness.n2 = "disk full";
  await c.clock.advance(5000);
  assert.equal(c.gate.refusing, false);
  assert.equal(c.etcd.leader?.node, "n1");
  assert.equal(c.etcd.switchover, null);
  assert.match(lastSwitchover(c)?.reason ?? "", /^not done: n2 is not a healthy, ready standby/);
});

test("drain loop: etcd lost for a moment mid-drain -> the drain goes on; back in etcd it completes", async () => {
  const c = await drainingCluster();
  c.nodes[0]!.life.partitioned = true;
  await c.clock.advance(1000);
  assert.equal(c.gate.refusing, true, "still draining while the lease holds");
  c.nodes[0]!.life.partitioned = false;
  await c.clock.advance(500);
  assert.equal(c.gate.refusing, true, "the same drain, not restarted");
  assert.notEqual(c.etcd.switchover, null, "the request was not cancelled");
  assert.equal(c.gate.calls.filter((x) => x === "stop").length, 1, "not drained a second time");
});

test("drain loop: fenced mid-drain (lease deadline) -> accept again", async () => {
  const c = await drainingCluster();
  c.nodes[0]!.life.partitioned = true;
  c.etcd.unreachable = true;
  await c.clock.advance(6000);
  assert.equal(c.gate.refusing, false);
  c.etcd.unreachable = false;
  c.nodes[0]!.life.partitioned = false;
});

test("drain loop: the agent stops mid-drain -> accept again", async () => {
  const c = await drainingCluster();
  await c.nodes[0]!.loop.stop();
  assert.equal(c.gate.refusing, false);
  assert.equal(c.gate.calls.at(-1), "resume");
});

test("drain loop: the gate fails -> the switchover is cancelled and what may be half-applied is undone", async () => {
  const c = cluster();
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(3000);
  c.gate.failStop = true;
  await c.etcd.requestSwitchover({
    kind: "switchover",
    from: "n1",
    to: "n2",
    at: null,
    force: false,
    requestedBy: "ops",
    reason: "",
    requestedAt: new Date(c.clock.wallMs()).toISOString(),
    drainMs: 30_000,
  });
  c.nodes[0]!.loop.trigger("test");
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n1");
  assert.equal(c.etcd.switchover, null);
  assert.deepEqual(c.gate.calls, ["clear", "stop", "resume"]);
  assert.match(lastSwitchover(c)?.reason ?? "", /not done: cannot refuse new sessions with a test gate: gate broken/);
});

test("drain run: a failed resume is retried at each refresh until it works; nothing runs when nothing is owed", async () => {
  const gate = new StrictGate();
  const counter = new SetCounter();
  const run = new DrainRun({ gate, counter }, null, new FakeClock(), silentLogger());
  await run.end("aborted", "nothing running");
  await run.refresh();
  assert.deepEqual(gate.calls, [], "no drain, nothing owed: no call");
  counter.n = 3;
  await run.begin("r1");
  assert.equal(run.view().active?.initial, 3);
  gate.failResume = 2;
  // The resume runs in the background (a slow command must not hold the HA cycle): let it settle.
  const settle = async () => {
    for (let i = 0; i < 5; i++) await flushMicrotasks();
  };
  await run.end("moved", "handed over");
  await settle();
  assert.equal(run.view().active, null);
  assert.equal(run.view().aborted, null, "a move is not an abort");
  await run.refresh();
  await settle();
  assert.equal(gate.refusing, true, "still refusing after two failures");
  await run.refresh();
  await settle();
  assert.equal(gate.refusing, false);
  await run.refresh();
  await settle();
  assert.deepEqual(gate.calls, ["stop", "resume", "resume", "resume"]);
});

test("drain run: a newer request replaces a running drain (accept, then refuse again); a count failure is reported, not fatal", async () => {
  const gate = new StrictGate();
  const counter = new SetCounter();
  const run = new DrainRun({ gate, counter }, null, new FakeClock(), silentLogger());
  await run.begin("r1");
  await run.begin("r2");
  assert.deepEqual(gate.calls, ["stop", "resume", "stop"]);
  assert.deepEqual(run.view().aborted, { requestedAt: "r1", why: "a newer switchover request replaced it" });
  counter.fail = true;
  await run.refresh();
  assert.equal(run.view().active?.sessions, null);
  assert.match(run.view().active?.countError ?? "", /EACCES/);
  const unavailable = new DrainRun(null, "no service port", new FakeClock(), silentLogger());
  assert.equal(unavailable.view().unavailable, "no service port");
  await unavailable.begin("r1");
  await unavailable.clearLeftover();
  assert.equal(unavailable.view().active, null);
});

test("drain run: a leftover that cannot be removed at start is retried each cycle (never served refused)", async () => {
  const gate = new StrictGate();
  gate.refusing = true;
  gate.failClear = true;
  const run = new DrainRun({ gate, counter: new SetCounter() }, null, new FakeClock(), silentLogger());
  await run.clearLeftover();
  assert.equal(gate.refusing, true);
  await run.refresh();
  for (let i = 0; i < 5; i++) await flushMicrotasks();
  assert.equal(gate.refusing, false, "the next cycle removed it");
  assert.deepEqual(gate.calls, ["clear", "resume"]);
});

test("drain run: fenced while the refusal is being applied -> accepted again once it is applied", async () => {
  const gate = new StrictGate();
  let release: () => void = () => undefined;
  gate.stopGate = new Promise<void>((r) => (release = r));
  const run = new DrainRun({ gate, counter: new SetCounter() }, null, new FakeClock(), silentLogger());
  const begun = run.begin("r1");
  await flushMicrotasks();
  await run.end("aborted", "fenced: the lease deadline passed");
  release();
  await begun;
  for (let i = 0; i < 5; i++) await flushMicrotasks();
  assert.equal(gate.refusing, false, "the refusal did not outlive the fence");
  assert.equal(run.view().active, null);
  assert.deepEqual(run.view().aborted, { requestedAt: "r1", why: "fenced: the lease deadline passed" });
});
