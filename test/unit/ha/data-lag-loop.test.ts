// Issue 14: the data-lag ranking and gate through the real HA loop (fake clock, fake etcd):
// who takes over when the primary stops, and the data_lag_promotion history record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HaLoop } from "../../../src/ha/loop.js";
import { parseConfigText } from "../../../src/config/load.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../../fakes/node-parts.js";
import type { DataLagRecord } from "../../../src/coordinator/port.js";

const MiB = 1024 * 1024;

function configFor(name: string, priority: number) {
  return parseConfigText(
    `cluster: t
node: { name: ${name}, address: 198.18.0.1, priority: ${priority} }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
election: { ttl: 5s, fence_margin: 1s, ranking_delay: 500ms }
daemon: { backend: process, mode: cold, command: [/bin/true] }
sync:
  roots: [{ name: ssh, path: /etc/ssh }]
  ssh: { user: root, key: /etc/understudy/sync_ed25519, known_hosts: /etc/understudy/known_hosts }
data:
  roots: [{ name: uploads, path: /srv/uploads }]
  maximum_data_lag_on_failover: 64MiB
`,
    "test.yaml",
  );
}

function cluster(names: [string, number][]) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  const nodes = names.map(([name, prio]) => {
    const loop = new HaLoop({
      config: configFor(name, prio),
      coordinator: etcd,
      daemon: new FakeDaemon(),
      vip: new FakeVip(name, timeline),
      health: new FakeHealth(),
      clock,
      log: silentLogger(),
      version: "test",
      probeGraceMs: 0,
    });
    const events: string[] = [];
    loop.onEvent((e) => events.push(e.type));
    return { name, loop, events };
  });
  return { clock, etcd, nodes };
}

const lag = (files: number, bytes: number): DataLagRecord => ({ acked: 1, files, bytes, seconds: 3, full: false, paused: null });

async function primaryStopsWith(standbys: Record<string, DataLagRecord>) {
  const c = cluster([
    ["n1", 300],
    ["n2", 200],
    ["n3", 100],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n1");
  const term = c.etcd.leader!.term;
  assert.equal(await c.etcd.publishDataProgress(term, { node: "n1", term, head: 50, at: "2026-12-04T23:00:00.000Z", standbys }), true);
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(3000);
  const winner = c.etcd.leader?.node;
  const history = [...c.etcd.historyEvents];
  for (const n of c.nodes) await n.loop.stop();
  return { c, term, winner, history };
}

test("data lag ranks before priority, and the gate passes over a standby over the limit", async () => {
  const { c, winner, history } = await primaryStopsWith({ n2: lag(40, 100 * MiB), n3: lag(1, 1024) });
  assert.equal(winner, "n3", "n3 has less data lag: it wins although n2 has the higher priority");
  assert.equal(c.etcd.dataProgress?.node, "n1", "data/progress outlived n1's lease");
  assert.ok(!history.some((e) => e.kind === "data_lag_promotion"), "n3 was within the limit");
});

test("every standby over the limit: the best one takes over and a data_lag_promotion is recorded", async () => {
  const { c, term, winner, history } = await primaryStopsWith({ n2: lag(40, 100 * MiB), n3: lag(80, 200 * MiB) });
  assert.equal(winner, "n2");
  const rec = history.find((e) => e.kind === "data_lag_promotion");
  assert.ok(rec, JSON.stringify(history));
  assert.equal(rec.to, "n2");
  assert.equal(rec.from, "n1");
  assert.equal(
    rec.reason,
    `data lag promotion: I became primary with data lag 40 files / 100.0 MiB in n1's data/progress of term ${term}, over maximum_data_lag_on_failover (64.0 MiB); files n1 shipped after that are not here until it rejoins`,
  );
  assert.deepEqual(rec.durations, { lag_ms: 3000 });
  assert.ok(c.nodes[1]!.events.includes("data_lag_promotion"), "the metric's event fired");
});
