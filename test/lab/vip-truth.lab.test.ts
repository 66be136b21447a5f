// Issue 12, failure 1: the node checks its own tools and reports the truth about its VIP.
//   1. Habets' arping (Debian package "arping", extracted with dpkg -x, never installed:
//      it conflicts with iputils-arping) drives a real add / GARP / duplicate check.
//   2. A node whose arping is missing is not ready, never becomes primary, and says why.
//   3. A VIP held by a host that is not the primary: status shows "held by MAC" as
//      unhealthy; past vip.hold_timeout the primary holds (a standby would meet the
//      same host) and says so; the address is never on two hosts.
//   4. A primary that cannot add its VIP itself (its arping vanished) hands over after
//      vip.hold_timeout, the reason in history; the successor checks and adds it.
// Needs root. Everything is torn down in after(), even on failure.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../src/errors/catalogue.js";
import { SystemClock } from "../../src/platform/clock.js";
import { SpawnCommandRunner, checkResult, type CommandOptions, type CommandResult, type CommandRunner } from "../../src/platform/command.js";
import { silentLogger } from "../../src/platform/logger.js";
import { ProbingArpingLocator } from "../../src/vip/arping.js";
import { IpFloatingIp, type VipConfig } from "../../src/vip/ip.js";
import { LabCluster, pollUntil, type Observer } from "./harness/index.js";

const clock = new SystemClock();
const spawn = new SpawnCommandRunner();
const isRoot = process.getuid?.() === 0;

async function sh(argv: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = opts.cwd ? await spawn.run(["env", "-C", opts.cwd, ...argv], { timeoutMs: 120_000 }) : await spawn.run(argv, { timeoutMs: 10_000 });
  return checkResult(argv, r).stdout;
}

/**
 * Habets' arping from its Debian package, unpacked (not installed) by scripts/install-deps.sh
 * test into a cache dir; its libraries (libnet1, libpcap0.8) come from the same script. The
 * test never downloads: it talks only to loopback and its own namespaces.
 */
const HABETS_DIR = "/var/cache/understudy-test/arping";
function habetsArping(): string {
  const bin = join(HABETS_DIR, "usr", "sbin", "arping");
  if (!existsSync(bin)) throw new Error(`Habets' arping is not unpacked at ${bin}: run bash scripts/install-deps.sh test`);
  return bin;
}

// ------------------------------------------------------------------ 1. Habets' arping, real packets

const P = `ush${process.pid}`;
const NS = `${P}a`;
const PEER = `${P}b`;
const IF = `${P}a0`;
const PEER_IF = `${P}b0`;

class NetnsRunner implements CommandRunner {
  constructor(private readonly ns: string) {}
  run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    return spawn.run(["ip", "netns", "exec", this.ns, ...argv], options);
  }
}

async function macOf(ns: string, dev: string): Promise<string> {
  const [link] = JSON.parse(await sh(["ip", "-n", ns, "-j", "link", "show", "dev", dev])) as { address: string }[];
  return link!.address;
}

async function peerNeighbour(addr: string): Promise<string | undefined> {
  const entries = JSON.parse(await sh(["ip", "-n", PEER, "-j", "neigh", "show", "dev", PEER_IF])) as { dst: string; lladdr?: string }[];
  return entries.find((e) => e.dst === addr)?.lladdr;
}

describe("IpFloatingIp with Habets' arping (dpkg -x, not installed) in network namespaces", { skip: isRoot ? false : "needs root for ip netns", timeout: 180_000 }, () => {
  let arping = "";
  const floatingIp = (address: string, overrides: Partial<VipConfig> = {}) => {
    const config: VipConfig = {
      address,
      interface: IF,
      backend: "ip",
      duplicate_check: true,
      duplicate_check_timeout: 300,
      arp_count: 2,
      announce_interval: 10_000,
      reconcile_interval: 2_000,
      hold_timeout: 30_000,
      arping,
      ...overrides,
    };
    const runner = new NetnsRunner(NS);
    return new IpFloatingIp(config, runner, clock, silentLogger(), new ProbingArpingLocator(runner, arping));
  };

  before(async () => {
    arping = habetsArping();
    await sh(["ip", "netns", "add", NS]);
    await sh(["ip", "netns", "add", PEER]);
    await sh(["ip", "link", "add", IF, "netns", NS, "type", "veth", "peer", "name", PEER_IF, "netns", PEER]);
    for (const [ns, dev, addr] of [
      [NS, IF, "198.18.201.1/24"],
      [PEER, PEER_IF, "198.18.201.2/24"],
    ] as const) {
      await sh(["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
      await sh(["ip", "-n", ns, "link", "set", dev, "up"]);
      await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
  });

  after(async () => {
    for (const ns of [NS, PEER]) await spawn.run(["ip", "netns", "del", ns], { timeoutMs: 5_000 }).catch(() => undefined);
  });

  it("the flavour is found by asking the binary", async () => {
    assert.deepEqual(await new ProbingArpingLocator(new NetnsRunner(NS), arping).locate(), { path: arping, flavour: "habets" });
  });

  it("add(): duplicate check (-0) passes, the address is added, and the GARP (-U -S) moves the peer's stale entry", { timeout: 20_000 }, async () => {
    const vip = floatingIp("198.18.201.100/24");
    const ourMac = await macOf(NS, IF);
    await sh(["ip", "-n", PEER, "neigh", "replace", "198.18.201.100", "lladdr", "02:00:00:00:00:01", "dev", PEER_IF, "nud", "stale"]);
    const started = clock.monotonicMs();
    await vip.add();
    const addMs = clock.monotonicMs() - started;
    assert.equal(await vip.isHeld(), true);
    const moved = await pollUntil(async () => ((await peerNeighbour("198.18.201.100")) === ourMac ? true : undefined), { timeoutMs: 3_000, intervalMs: 50 });
    assert.equal(moved, true, "the peer never learned our MAC for the VIP from Habets' arping -U");
    console.log(`habets arping: add() took ${Math.round(addMs)} ms (duplicate_check_timeout 300 ms)`);
    await vip.remove();
  });

  it("refuses to add an address the peer holds, naming the peer's MAC", { timeout: 20_000 }, async () => {
    await sh(["ip", "-n", PEER, "addr", "add", "198.18.201.101/24", "dev", PEER_IF]);
    try {
      const peerMac = await macOf(PEER, PEER_IF);
      const vip = floatingIp("198.18.201.101/24");
      await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_DUPLICATE") && e.details.mac === peerMac);
      assert.equal(await vip.isHeld(), false);
    } finally {
      await sh(["ip", "-n", PEER, "addr", "del", "198.18.201.101/24", "dev", PEER_IF]);
    }
  });
});

// ------------------------------------------------------------------ 2 and 3: agents on the lab

interface MemberJson {
  node: string;
  role: string;
  healthy: boolean;
  notReady?: string;
  decision: string;
  vipHeld: boolean;
  vipMissingSince?: string;
  vipHolder?: string;
  vipProblem?: string;
}
interface StatusJson {
  leader: { node: string; term: number } | null;
  members: MemberJson[];
  vipProblems: string[];
}

async function statusJson(c: LabCluster): Promise<StatusJson | undefined> {
  try {
    return JSON.parse(await c.status(true)) as StatusJson;
  } catch {
    return undefined;
  }
}

describe("a node whose arping is missing", { skip: isRoot ? false : "needs root", timeout: 300_000 }, () => {
  let c: LabCluster | undefined;
  after(async () => c?.teardown());

  it("is reported not ready, says why in status, and never becomes primary (not even when the others stop)", { timeout: 240_000 }, async () => {
    c = await LabCluster.create({
      nodes: 3,
      priorities: [300, 200, 100],
      start: false,
      vipYaml: (n, lab) => `vip: { address: ${lab.vip}, interface: ${n.iface}${n.name === "n1" ? ", arping: /nonexistent/sbin/arping" : ""} }`,
    });
    for (const n of c.lab.nodes) c.startAgent(n.name);
    const leaders = new Set<string>();
    // Agents take seconds to start on a busy machine: wait for the primary, not a fixed 20 s.
    const first = await c.waitForLeader({ timeoutMs: 90_000 });
    assert.ok(first, "a primary was elected");
    leaders.add(first.node);
    assert.notEqual(first.node, "n1", "n1 ranks first but cannot hold the VIP: it must not be primary");

    const s = await pollUntil(
      async () => {
        const j = await statusJson(c!);
        const n1 = j?.members.find((m) => m.node === "n1");
        return n1?.notReady ? { j: j!, n1 } : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    assert.ok(s, "n1 published why it is not ready");
    assert.equal(s.n1.healthy, false);
    assert.match(s.n1.notReady!, /US_E_TOOL_MISSING: \/nonexistent\/sbin\/arping \(needed by vip\.arping\) does not exist; install the Debian package iputils-arping \(or arping\)/);
    assert.match(await c.status(), /\| n1 .*\| no: US_E_TOOL_MISSING/);

    // The only other candidates go away one by one: n1 still never campaigns.
    await c.waitForStandbys(
      ["n1", "n2", "n3"].filter((n) => n !== first.node && n !== "n1"),
      30_000,
    );
    await c.signalAgent(first.node, "SIGTERM", 15_000);
    const watchUntil = performance.now() + 8_000;
    while (performance.now() < watchUntil) {
      const l = await c.leader();
      if (l) leaders.add(l.node);
      await clock.sleep(100);
    }
    const second = await c.leader();
    assert.ok(second && second.node !== "n1", `after ${first.node} stopped, the other healthy node took over (got ${second?.node ?? "none"})`);
    // While there was no primary, n1 said why it did not campaign (its log keeps every new decision).
    const log = join(c.lab.logDir, "n1-agent.log");
    const said = await pollUntil(() => (readFileSync(log, "utf8").includes("no action: no primary, but I am not ready to serve (US_E_TOOL_MISSING") ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    assert.equal(said, true, "n1's decision during the vacancy names the missing tool");
    assert.ok(!leaders.has("n1"), `n1 was primary at some point: ${[...leaders].join(", ")}`);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [second.node]);
  });
});

describe("the VIP held by a host that is not the primary", { skip: isRoot ? false : "needs root", timeout: 300_000 }, () => {
  let c: LabCluster | undefined;
  let obs: Observer | undefined;
  after(async () => {
    await obs?.stop().catch(() => undefined);
    await c?.teardown();
  });

  it("shows 'held by MAC' as unhealthy, holds past vip.hold_timeout saying a standby would meet the same host, never two holders", { timeout: 240_000 }, async () => {
    c = await LabCluster.create({
      nodes: 3,
      priorities: [200, 100, 50],
      start: false,
      vipYaml: (n, lab) => `vip: { address: ${lab.vip}, interface: ${n.iface}, hold_timeout: 15s, reconcile_interval: 1s, duplicate_check_timeout: 300ms }`,
    });
    const lab = c.lab;
    // n3 runs no agent: a dead agent's node that still holds the address (never fenced), or a static assignment.
    const foreign = lab.node("n3");
    await sh(["ip", "-n", foreign.ns, "addr", "add", lab.vip, "dev", "eth0"]);
    obs = await lab.startObserver({ intervalMs: 20 });
    const configuredOnNodes: string[][] = [];
    const agentNodes = ["n1", "n2"];
    const onAgentNodes = async () => (await lab.vipConfiguredOn()).filter((n) => agentNodes.includes(n));
    for (const n of agentNodes) c.startAgent(n);

    const first = await c.waitForLeader({ timeoutMs: 90_000 });
    assert.ok(first, "a primary was elected");
    let lastStatus = "";
    const seen = await pollUntil(
      async () => {
        configuredOnNodes.push(await onAgentNodes());
        lastStatus = await c!.status(true);
        const j = await statusJson(c!);
        const p = j?.members.find((m) => m.role === "primary" && m.vipHolder !== undefined);
        return p?.vipHolder ? { j: j!, p } : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.ok(seen, `the primary published the MAC that answers for its VIP; status: ${lastStatus.slice(0, 3000)}`);
    assert.equal(seen.p.vipHolder, foreign.mac);
    assert.ok(seen.p.vipMissingSince, "and since when it has been without it");
    assert.ok(
      seen.j.vipProblems.some((f) => f.includes(`VIP held by ${foreign.mac}`)),
      JSON.stringify(seen.j.vipProblems),
    );
    const text = await c.status();
    // Whichever agent node is primary right now (a slow status read can straddle a handover).
    assert.match(text, new RegExp(`\\| n[12] .*\\| primary .*\\| no: primary without VIP \\| MISSING: held by ${foreign.mac} \\|`));
    assert.match(text, new RegExp(`^UNHEALTHY: primary n[12] without its floating IP .*VIP held by ${foreign.mac}`, "m"));
    const metrics = await pollUntil(
      async () => {
        const l = await c!.leader();
        if (!l) return undefined;
        const r = await lab.exec(lab.client, ["curl", "-s", "--max-time", "3", `${c!.apiUrl(l.node)}/metrics`]);
        return new RegExp(`understudy_vip_foreign_holder\\{mac="${foreign.mac}"[^}]*\\} 1`).test(r.stdout) ? r.stdout : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.ok(metrics, "the primary's metrics carry understudy_vip_foreign_holder with the MAC");

    // Past vip.hold_timeout (15s) the primary holds: the foreign host would answer for the address whoever
    // added it (a failure the standby shares), so it says so instead of handing the role around.
    const primaryLog = join(lab.logDir, `${seen.p.node}-agent.log`);
    const holding = await pollUntil(
      () => {
        const text = readFileSync(primaryLog, "utf8");
        const m = /holding, not handing over: primary without the floating IP for (\d+)s, over vip\.hold_timeout 15s \(held by ([0-9a-f:]+)[^"]*a standby would meet the same host/.exec(text);
        return m ? { seconds: Number(m[1]), mac: m[2] } : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.ok(holding, `${seen.p.node} logged the hold decision`);
    assert.equal(holding.mac, foreign.mac);
    assert.ok(holding.seconds >= 15, `held after ${holding.seconds}s: not before vip.hold_timeout`);
    await clock.sleep(5_000);
    const still = await c.leader();
    assert.equal(still?.node, seen.p.node, "no handover while the foreign copy stays");
    type Event = { kind: string; at: string; from: string | null; to: string | null; reason: string };
    const hist = await c.cli(["history", "--json"], { via: "n1" });
    const moves = (hist.code === 0 ? (JSON.parse(hist.stdout) as Event[]) : []).filter((e) => e.kind === "handover" && Date.parse(e.at) > Date.parse(seen.p.vipMissingSince!));
    assert.deepEqual(moves, [], "no handover in history after the VIP went missing");
    const handoverMs = holding.seconds * 1000;

    configuredOnNodes.push(await onAgentNodes());
    assert.ok(
      configuredOnNodes.every((on) => on.length === 0),
      `a node added the VIP while ${foreign.name} held it: ${JSON.stringify(configuredOnNodes.filter((o) => o.length > 0))}`,
    );

    // The foreign copy goes: the primary of the moment takes the address within a few reconcile intervals.
    await lab.delVip(foreign);
    const removedAt = performance.now();
    const serving = await pollUntil(
      async () => {
        const l = await c!.leader();
        return l && (await lab.vipConfiguredOn()).join() === l.node ? l : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    assert.ok(serving, "after the foreign copy was removed, the primary holds the VIP");
    const recoverMs = performance.now() - removedAt;
    const samples = await obs.stop();
    assert.ok(obs.maxSimultaneousHolders(samples) <= 1, "never two hosts answering ARP for the VIP");
    console.log(
      `vip truth: held by another host -> hold decision after ${handoverMs} ms without the VIP (hold_timeout 15000 ms); foreign copy removed -> ${serving.node} holds the VIP in ${Math.round(recoverMs)} ms`,
    );
  });
});

describe("a primary that cannot add its VIP itself", { skip: isRoot ? false : "needs root", timeout: 300_000 }, () => {
  let c: LabCluster | undefined;
  let obs: Observer | undefined;
  let dir = "";
  after(async () => {
    await obs?.stop().catch(() => undefined);
    await c?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("hands over after vip.hold_timeout with the reason in history; the successor adds the address", { timeout: 240_000 }, async () => {
    // Each node's arping is its own copy, so one node's can vanish (a package swap gone wrong).
    dir = mkdtempSync(join(tmpdir(), "us-vip-arping-"));
    for (const n of ["n1", "n2"]) copyFileSync("/usr/bin/arping", join(dir, `arping-${n}`));
    c = await LabCluster.create({
      nodes: 2,
      priorities: [200, 100],
      start: false,
      vipYaml: (n, lab) => `vip: { address: ${lab.vip}, interface: ${n.iface}, hold_timeout: 10s, reconcile_interval: 1s, arping: ${join(dir, `arping-${n.name}`)} }`,
    });
    const lab = c.lab;
    obs = await lab.startObserver({ intervalMs: 20 });
    for (const n of lab.nodes) c.startAgent(n.name);
    const first = await c.waitForLeader({ timeoutMs: 90_000 });
    assert.ok(first, "a primary was elected");
    const other = first.node === "n1" ? "n2" : "n1";
    await c.waitForStandbys([other], 60_000);
    assert.ok(await pollUntil(async () => ((await lab.vipConfiguredOn()).join() === first.node ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 }), `${first.node} holds the VIP`);
    // The primary's arping goes, then its address: the reconciler cannot add it back.
    rmSync(join(dir, `arping-${first.node}`));
    await lab.delVip(lab.node(first.node));
    const lostAt = performance.now();
    type Event = { kind: string; at: string; from: string | null; to: string | null; reason: string };
    const event = await pollUntil(
      async () => {
        const r = await c!.cli(["history", "--json"], { via: other });
        const events = r.code === 0 ? (JSON.parse(r.stdout) as Event[]) : [];
        return events.find((e) => e.kind === "handover" && e.from === first.node && /primary without the floating IP/.test(e.reason));
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    assert.ok(event, `a handover from ${first.node} for the missing VIP in history`);
    assert.match(event.reason, /handing over: primary without the floating IP for \d+s, over vip\.hold_timeout 10s \((?!held by)/);
    const handoverMs = performance.now() - lostAt;
    assert.ok(handoverMs >= 10_000, `handed over ${Math.round(handoverMs)} ms after the VIP went: not before vip.hold_timeout`);
    const serving = await pollUntil(async () => ((await lab.vipConfiguredOn()).join() === other ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 });
    assert.ok(serving, `${other} holds the VIP after the handover`);
    const samples = await obs.stop();
    assert.ok(obs.maxSimultaneousHolders(samples) <= 1, "never two hosts answering ARP for the VIP");
    console.log(`vip truth: primary unable to add its VIP -> handover seen ${Math.round(handoverMs)} ms after the address went (hold_timeout 10000 ms)`);
  });
});
