// The HA loop's data wiring (src/ha/loop.ts, executor.ts, self-report.ts) with
// a recording DataPort: follow after each cycle with the members' data
// summaries; the member key carries memberSummary(); a switchover's demote and
// a graceful stop both wait for stopShipping() to resolve while the floating
// IP is still held, so no data rsync of the old term outlives the VIP.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import type { MemberDataSummary } from "../../../src/coordinator/port.js";
import { HaLoop } from "../../../src/ha/loop.js";
import type { DataPort } from "../../../src/ha/ports.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { ProcessLife } from "../../fakes/crashable.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../../fakes/node-parts.js";

class RecordingData implements DataPort {
  readonly views: Parameters<DataPort["follow"]>[0][] = [];
  /** [vip held when stopShipping was called, vip held when it resolved] */
  readonly stops: [boolean, boolean][] = [];
  constructor(
    private readonly name: string,
    private readonly clock: FakeClock,
    private readonly vip: FakeVip,
  ) {}
  follow(view: Parameters<DataPort["follow"]>[0]): void {
    this.views.push(view);
  }
  /** [term, vip held when beforeServe was called] */
  readonly beforeServes: [number, boolean][] = [];
  async beforeServe(term: number): Promise<void> {
    this.beforeServes.push([term, this.vip.held]);
    await this.clock.sleep(50);
  }
  async stopShipping(): Promise<void> {
    const before = this.vip.held;
    // Killing the children takes time (SIGTERM, maybe SIGKILL after 1 s).
    await this.clock.sleep(300);
    this.stops.push([before, this.vip.held]);
  }
  memberSummary(): MemberDataSummary {
    return { receiving: this.name === "n1" ? null : 7, rejoin: null, freeBytes: 1234, lag: null, step: `${this.name} step` };
  }
}

function cluster(names: [string, number][]) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  const nodes = names.map(([name, prio]) => {
    const vip = new FakeVip(name, timeline);
    const life = new ProcessLife();
    const data = new RecordingData(name, clock, vip);
    const loop = new HaLoop({
      config: parseConfigText(
        `cluster: t\nnode: { name: ${name}, address: 198.18.0.${prio / 100}, priority: ${prio} }\netcd: { endpoints: ["http://198.18.0.2:2379"] }\nelection: { ttl: 5s, fence_margin: 1s, ranking_delay: 500ms }\ndaemon: { backend: process, mode: cold, command: [/bin/true] }\n`,
        "test.yaml",
      ),
      coordinator: life.coordinator(etcd),
      daemon: new FakeDaemon(),
      vip,
      health: new FakeHealth(),
      clock: life.clock(clock),
      log: silentLogger(),
      version: "test",
      probeGraceMs: 0,
      data,
    });
    return { name, vip, loop, data };
  });
  return { clock, etcd, timeline, nodes };
}

test("follow gets the role, the leader's address and the members' data summaries; the member key carries memberSummary()", async () => {
  const c = cluster([
    ["n1", 200],
    ["n2", 100],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  const [n1, n2] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
  assert.equal(c.etcd.leader?.node, "n1");
  const last1 = n1.data.views.at(-1)!;
  assert.equal(last1.acting, "primary");
  assert.equal(last1.term, c.etcd.leader?.term);
  assert.deepEqual(
    last1.members.map((m) => [m.node, m.address, m.data?.receiving]),
    [
      ["n1", "198.18.0.2", null],
      ["n2", "198.18.0.1", 7],
    ],
  );
  const last2 = n2.data.views.at(-1)!;
  assert.deepEqual([last2.acting, last2.leader], ["standby", { node: "n1", term: c.etcd.leader!.term, address: "198.18.0.2" }]);
  assert.deepEqual(c.etcd.members.get("n2")?.member.data, { receiving: 7, rejoin: null, freeBytes: 1234, lag: null, step: "n2 step" });
});

test("switchover and graceful stop: stopShipping resolves while the VIP is still held", async () => {
  const c = cluster([
    ["n1", 300],
    ["n2", 200],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  const [n1, n2] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
  assert.equal(c.etcd.leader?.node, "n1");
  const request = { kind: "switchover" as const, from: "n1", to: "n2", at: null, force: false, requestedBy: "test", reason: "maintenance", requestedAt: "" };
  assert.ok(await c.etcd.requestSwitchover(request), "await c.etcd.requestSwitchover(request)");
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.deepEqual(n1.data.stops[0], [true, true], "n1 stopped shipping before it dropped the VIP");
  assert.deepEqual(
    n2.data.beforeServes.map(([term, held]) => [term === c.etcd.leader?.term, held]),
    [[true, false]],
    "n2 closed its write modules and wrote its marker for its term before it added the VIP",
  );
  assert.equal(n1.vip.held, false);
  assert.equal(c.timeline.maxHolders, 1);

  const stopping = n2.loop.stop();
  await c.clock.advance(1000);
  await stopping;
  assert.deepEqual(n2.data.stops.at(-1), [true, true], "a graceful stop too");
  assert.equal(n2.vip.held, false);
});

test("etcd unreadable: a standby keeps receiving for ttl + fence_margin + request_timeout + tick after its last read, then its write modules close", async () => {
  const c = cluster([
    ["n1", 200],
    ["n2", 100],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  const n2 = c.nodes[1]!;
  assert.equal(n2.data.views.at(-1)?.leader?.node, "n1");
  const lastRead = c.clock.monotonicMs();
  c.etcd.unreachable = true;
  const from = n2.data.views.length;
  // ttl 5 s + fence_margin 1 s + request_timeout 1 s + tick 2 s = 9 s of hold.
  await c.clock.advance(8000);
  const held = n2.data.views.slice(from);
  assert.ok(held.length > 0, "cycles ran while etcd was unreadable");
  assert.ok(
    held.every((v) => v.unread === true && v.leader === null && v.acting === "standby"),
    `within the hold every view says unread (keep receiving): ${JSON.stringify(held)}`,
  );
  await c.clock.advance(4000);
  const after = n2.data.views.slice(from + held.length);
  assert.ok(after.length > 0, "cycles ran after the hold");
  assert.ok(c.clock.monotonicMs() - lastRead > 9000, "c.clock.monotonicMs() - lastRead > 9000");
  assert.ok(
    after.every((v) => v.unread === undefined && v.leader === null),
    `after the hold: a plain "no leader" view, the write modules close: ${JSON.stringify(after)}`,
  );
  c.etcd.unreachable = false;
  for (const n of c.nodes) {
    const stopping = n.loop.stop();
    await c.clock.advance(2000);
    await stopping;
  }
});
