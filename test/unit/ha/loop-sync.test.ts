// The HA loop with file sync: the promotion gate (a stale standby waits, or takes over and says so)
// and the member key a campaign is judged by.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HaLoop } from "../../../src/ha/loop.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakeHealth, FakeDaemon, FakeVip, VipTimeline } from "../../fakes/node-parts.js";
import { configFor } from "./loop-fixture.js";

const SYNC_YAML = `sync:
  roots: [{ name: ssh, path: /etc/ssh }]
  ssh: { key: /etc/understudy/sync_ed25519, known_hosts: /etc/understudy/known_hosts }
  maximum_lag_on_failover: 30s`;

class FakeSync {
  views: Parameters<import("../../../src/ha/ports.js").SyncPort["follow"]>[0][] = [];
  constructor(
    public held: number,
    public behindSinceMs: number | null = null,
  ) {}
  generation() {
    return this.held;
  }
  behindSince() {
    return this.behindSinceMs;
  }
  follow(view: (typeof this.views)[number]) {
    this.views.push(view);
  }
  memberSummary() {
    return { behindSince: null, lastSuccessAt: null, lastError: null, failures: 0, rescues: 0, waiting: null };
  }
}

function syncCluster(nodes: [string, number, FakeSync][]) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  etcd.sync = { generation: 5, digest: "d5", roots: { ssh: "r5" }, files: 3, source: "n1", term: 1, publishedAt: "" };
  const built = nodes.map(([name, prio, sync]) => {
    const daemon = new FakeDaemon();
    const vip = new FakeVip(name, timeline);
    const events: string[] = [];
    const loop = new HaLoop({
      config: configFor(name, prio, SYNC_YAML),
      coordinator: etcd,
      daemon,
      vip,
      health: new FakeHealth(),
      clock,
      log: silentLogger(),
      version: "test",
      probeGraceMs: 0,
      sync,
    });
    loop.onEvent((e) => events.push(e.type));
    return { name, loop, sync, events, daemon };
  });
  return { clock, etcd, timeline, nodes: built };
}

/** n1 (priority 300) primary holding the published generation 5, n2 (200) a standby holding `n2Held`, both running 2 s. */
async function runningPair(n2Held: number) {
  const c = syncCluster([
    ["n1", 300, new FakeSync(5)],
    ["n2", 200, new FakeSync(n2Held)],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  return c;
}

test("sync gate: a stale standby with the higher priority waits; the in-sync one takes over, no stale promotion", async () => {
  const c = syncCluster([
    ["n1", 300, new FakeSync(5)],
    ["n2", 200, new FakeSync(4, 0)],
    ["n3", 100, new FakeSync(5)],
  ]);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  assert.equal(c.etcd.leader?.node, "n1");
  assert.equal(c.etcd.members.get("n2")?.member.generation, 4, "member keys carry the held generation");
  assert.deepEqual(c.etcd.members.get("n3")?.member.sync?.failures, 0, "and the sync summary");
  const seen = c.nodes[1]!.sync.views.at(-1)!;
  assert.deepEqual(
    { acting: seen.acting, leader: seen.leader, published: seen.published?.generation },
    { acting: "standby", leader: { node: "n1", term: c.etcd.leader!.term, address: "198.18.0.1" }, published: 5 },
  );
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(3000);
  assert.equal(c.etcd.leader?.node, "n3", "n3 holds generation 5: it wins although n2 has the higher priority");
  assert.match(c.nodes[1]!.loop.status().decision, /following n3/);
  assert.ok(!c.etcd.historyEvents.some((e) => e.kind === "stale_promotion"), '!c.etcd.historyEvents.some((e) => e.kind === "stale_promotion")');
});

test("sync gate: alone and within maximum_lag_on_failover, a stale standby takes over and records a stale promotion", async () => {
  const c = await runningPair(4);
  c.nodes[1]!.sync.behindSinceMs = c.clock.monotonicMs() - 1500;
  await c.nodes[0]!.loop.stop();
  const callsBefore = c.etcd.calls.length;
  await c.clock.advance(1000);
  const after = c.etcd.calls.slice(callsBefore);
  const campaign = after.indexOf("campaign");
  const sent = after.indexOf("appendHistory", campaign);
  assert.ok(campaign >= 0 && sent > campaign, after.join(" "));
  assert.ok(!after.slice(campaign, sent).includes("snapshot"), `sent by the take-over, not at the next cycle's start: ${after.slice(campaign).join(" ")}`);
  assert.equal(c.etcd.leader?.node, "n2");
  const stale = c.etcd.historyEvents.find((e) => e.kind === "stale_promotion");
  assert.ok(stale, JSON.stringify(c.etcd.historyEvents));
  assert.equal(stale.to, "n2");
  assert.match(stale.reason, /sync generation 4 while n1 had published 5/);
  assert.ok((stale.durations?.lag_ms ?? 0) >= 1500, "(stale.durations?.lag_ms ?? 0) >= 1500");
  assert.ok(c.nodes[1]!.events.includes("stale_promotion"), "the metric's event fired");
});

test("sync gate: a campaign decided on a view older than the published generation loses, and the retry records the stale promotion", async () => {
  const c = await runningPair(5);
  // n1 published 6 just before it went: n2's view (the snapshot its campaign was decided on) lacks it.
  c.etcd.beforeCampaign = () => {
    c.etcd.sync = { ...c.etcd.sync!, generation: 6, digest: "d6" };
    c.etcd.revision++;
    c.etcd.syncRevision = c.etcd.revision;
  };
  c.nodes[1]!.sync.behindSinceMs = c.clock.monotonicMs();
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(1000);
  assert.equal(c.etcd.beforeCampaign, null, `n2 campaigned on the old view: ${c.etcd.leader?.node} ${c.nodes[1]!.loop.status().decision}`);
  assert.equal(c.etcd.leader?.node, "n2", "and won on the retry");
  const stale = c.etcd.historyEvents.find((e) => e.kind === "stale_promotion");
  assert.ok(stale, `the promotion holding 5 while 6 was published is recorded: ${JSON.stringify(c.etcd.historyEvents)}`);
  assert.match(stale.reason, /sync generation 5 while n1 had published 6/);
});

test("sync gate: a standby behind for longer than maximum_lag_on_failover does not take over by itself", async () => {
  const c = await runningPair(4);
  c.nodes[1]!.sync.behindSinceMs = c.clock.monotonicMs() - 31_000;
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(5000);
  assert.equal(c.etcd.leader, null, "no automatic stale takeover");
  assert.match(c.nodes[1]!.loop.status().decision, /over maximum_lag_on_failover \(30s\); `understudy failover --to n2 --force` overrides$/);
});

test("a standby that applied the published generation since its last cycle shows it in its member key before it campaigns", async () => {
  const c = await runningPair(4);
  assert.equal(c.etcd.members.get("n2")?.member.generation, 4);
  // The pull of 5 is applied; no cycle has run since, so the key still says 4.
  c.nodes[1]!.sync.held = 5;
  let atCampaign: number | undefined;
  c.etcd.beforeCampaign = () => {
    atCampaign = c.etcd.members.get("n2")?.member.generation;
  };
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(1000);
  assert.equal(c.etcd.leader?.node, "n2");
  assert.equal(atCampaign, 5, "the key showed the generation n2 campaigned with when the leader key was created");
  assert.ok(!c.etcd.historyEvents.some((e) => e.kind === "stale_promotion"), "it held 5: not a stale promotion");
});

test("a stale take-over whose won campaign is promoted on a later cycle (its reply lost) records the stale promotion and the take-over", async () => {
  const c = await runningPair(4);
  c.nodes[1]!.sync.behindSinceMs = c.clock.monotonicMs() - 1500;
  c.etcd.loseCampaignReply = true;
  const term1 = c.etcd.leader!.term;
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(3000);
  assert.equal(c.etcd.loseCampaignReply, false, "n2's campaign committed and its reply was lost");
  assert.equal(c.etcd.leader?.node, "n2");
  assert.equal(c.nodes[1]!.loop.status().acting, "primary", "promoted on a later cycle, the key naming n2 with its lease");
  const term = c.etcd.leader!.term;
  const stale = c.etcd.historyEvents.find((e) => e.kind === "stale_promotion");
  assert.ok(stale, `recorded: ${JSON.stringify(c.etcd.historyEvents)}`);
  assert.equal(stale.term, term);
  assert.match(stale.reason, /sync generation 4 while n1 had published 5/);
  assert.ok(c.nodes[1]!.events.includes("stale_promotion"), "the metric's event fired");
  assert.ok(term > term1, "term > term1");
  const takeover = c.etcd.historyEvents.find((e) => e.kind === "handover" && e.term === term);
  assert.ok(takeover, `the take-over from n1 (it released the role on stop) is in history: ${JSON.stringify(c.etcd.historyEvents.map((e) => e.kind))}`);
  assert.equal(takeover.from, "n1");
});

test("a stale take-over fenced while it promotes (etcd gone during a slow daemon start) still records the stale promotion of the term it won", async () => {
  const c = await runningPair(4);
  const n2 = c.nodes[1]!;
  n2.sync.behindSinceMs = c.clock.monotonicMs() - 1500;
  n2.daemon.start = () => c.clock.sleep(10_000); // cold mode: the take-over waits for the daemon
  await c.nodes[0]!.loop.stop();
  await c.clock.advance(1000);
  const term = c.etcd.leader?.node === "n2" ? c.etcd.leader.term : undefined;
  assert.ok(term !== undefined, `n2 won the key (${JSON.stringify(c.etcd.leader)})`);
  c.etcd.unreachable = true; // its lease cannot be renewed: the fence ends the take-over at the deadline
  await c.clock.advance(11_000);
  assert.notEqual(n2.loop.status().acting, "primary", "fenced while promoting");
  c.etcd.unreachable = false;
  await c.clock.advance(2000);
  const stale = c.etcd.historyEvents.filter((e) => e.kind === "stale_promotion").map((e) => e.term);
  assert.ok(stale.includes(term), `a stale_promotion for term ${term} (recorded: ${JSON.stringify(stale)})`);
});
