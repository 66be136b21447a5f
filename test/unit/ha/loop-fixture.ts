// What the HA loop tests share: a node's configuration, and a cluster of loops on one fake etcd.
import { parseConfigText } from "../../../src/config/load.js";
import { HaLoop } from "../../../src/ha/loop.js";
import { silentLogger } from "../../../src/platform/logger.js";
import type { SwitchoverRequest } from "../../../src/coordinator/port.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakeDaemon, FakeHealth, FakeVip, VipTimeline } from "../../fakes/node-parts.js";
import { ProcessLife } from "../../fakes/crashable.js";
import { FakeTargetPeers, type AskedAgent } from "../../fakes/target-peers.js";

/** The API address the fixture's agent `name` publishes. */
export const apiOf = (name: string) => `http://${name}.test:8080`;

export function configFor(name: string, priority = 100, extra = "", mode: "cold" | "warm" = "cold", election = "ttl: 5s, fence_margin: 1s, ranking_delay: 500ms") {
  return parseConfigText(
    `cluster: t
node: { name: ${name}, address: 198.18.0.1, priority: ${priority} }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
election: { ${election} }
daemon: { backend: process, mode: ${mode}, command: [/bin/true] }
${extra}`,
    "test.yaml",
  );
}

/** Loops named with their priorities, each with its fake daemon, VIP, health and process life. */
export function cluster(names: [string, number][], readiness: Record<string, string | null> = {}, mode: "cold" | "warm" = "cold", extra = "", election?: string) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const timeline = new VipTimeline(clock);
  // Each agent publishes an API address; a planned move asks its target there (target-check.ts).
  const agents = new Map<string, AskedAgent>();
  const peers = new FakeTargetPeers(clock, agents);
  const nodes = names.map(([name, prio]) => {
    const daemon = new FakeDaemon();
    const vip = new FakeVip(name, timeline);
    const health = new FakeHealth();
    const life = new ProcessLife();
    const loop = new HaLoop({
      config: configFor(name, prio, extra, mode, election),
      coordinator: life.coordinator(etcd),
      daemon,
      vip,
      health,
      clock: life.clock(clock),
      log: silentLogger(),
      version: "test",
      probeGraceMs: 0,
      readiness: { problem: () => readiness[name] ?? null, start: () => undefined, stop: () => undefined },
      apiUrl: apiOf(name),
      targetPeers: peers,
    });
    agents.set(apiOf(name), { view: () => loop.view(), silent: () => life.dead });
    return { name, daemon, vip, health, loop, life };
  });
  return { clock, etcd, timeline, nodes, peers, agents };
}

/** A cluster started and settled (2 s of fake time: the first election is over). */
export async function running(names: [string, number][]) {
  const c = cluster(names);
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  return c;
}

/**
 * n1 / n2 / n3 (priorities 300 / 200 / 100, cold) started and led by n1, with a 30 s lease: a node
 * killed now keeps its healthy member key for longer than any planned move takes, so only the
 * target check can tell it is gone.
 */
export async function runningLongLease() {
  const c = cluster(
    [
      ["n1", 300],
      ["n2", 200],
      ["n3", 100],
    ],
    {},
    "cold",
    "",
    "ttl: 30s, fence_margin: 1s, ranking_delay: 500ms",
  );
  for (const n of c.nodes) await n.loop.start();
  await c.clock.advance(2000);
  return c;
}

/**
 * A new agent for node `index` after its old one crashed (life.crash()): the same daemon, VIP and
 * health, as kernel state survives an agent, and the same API address, now answered by the new
 * agent; not started. `notReady`: its readiness problem; `apiAnswersPeers: false`: an API on loopback.
 */
export function restarted(c: ReturnType<typeof cluster>, index: number, priority: number, options: { extra?: string; notReady?: string; apiAnswersPeers?: boolean } = {}): HaLoop {
  const n = c.nodes[index]!;
  const loop = new HaLoop({
    config: configFor(n.name, priority, options.extra ?? ""),
    coordinator: c.etcd,
    daemon: n.daemon,
    vip: n.vip,
    health: n.health,
    clock: c.clock,
    log: silentLogger(),
    version: "test",
    probeGraceMs: 0,
    apiUrl: apiOf(n.name),
    targetPeers: c.peers,
    ...(options.apiAnswersPeers !== undefined ? { apiAnswersPeers: options.apiAnswersPeers } : {}),
    ...(options.notReady !== undefined ? { readiness: { problem: () => options.notReady!, start: () => undefined, stop: () => undefined } } : {}),
  });
  c.agents.set(apiOf(n.name), { view: () => loop.view(), silent: () => false });
  return loop;
}

export function request(c: ReturnType<typeof cluster>, over: Partial<SwitchoverRequest>): SwitchoverRequest {
  return { kind: "switchover", from: c.etcd.leader?.node ?? null, to: null, at: null, force: false, requestedBy: "test", reason: "maintenance", requestedAt: "", ...over };
}
