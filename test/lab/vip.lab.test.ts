// The real IpFloatingIp against the kernel: two network namespaces joined by a
// veth pair, 198.18.200.0/24 (RFC 2544 test range) and 2001:db8:200::/64 only.
// Needs root (ip netns). Everything is torn down in after(), even on failure.
import assert from "node:assert/strict";
import { spawn as nodeSpawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../src/errors/catalogue.js";
import { SystemClock } from "../../src/platform/clock.js";
import { SpawnCommandRunner, checkResult, type CommandOptions, type CommandResult, type CommandRunner } from "../../src/platform/command.js";
import { silentLogger } from "../../src/platform/logger.js";
import { IpFloatingIp, type VipConfig } from "../../src/vip/ip.js";
import { VipReconciler } from "../../src/vip/reconcile.js";
import { fixedArping } from "../../src/vip/arping.js";
import { ResidentGarpSender } from "../../src/vip/garp.js";
import { IpBatchRunner } from "../../src/platform/ip-batch.js";

const P = `usv${process.pid}`; // unique per run: two runs never collide
const NS = `${P}a`; // "our" node
const PEER = `${P}b`; // a neighbour: the router, a client, or the other node
const IF = `${P}a0`;
const PEER_IF = `${P}b0`;
const clock = new SystemClock();
const spawn = new SpawnCommandRunner();
const isRoot = process.getuid?.() === 0;
/** Built by `npm run build` (the source tree has only garp.c). */
const GARP_BINARY = fileURLToPath(new URL("../../dist/vip/understudy-garp", import.meta.url));

/** Runs every command inside a namespace, as the agent would run on its own host. */
class NetnsRunner implements CommandRunner {
  constructor(private readonly ns: string) {}
  run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    return spawn.run(["ip", "netns", "exec", this.ns, ...argv], options);
  }
}

async function sh(...argv: string[]): Promise<string> {
  return checkResult(argv, await spawn.run(argv, { timeoutMs: 5_000 })).stdout;
}

async function macOf(ns: string, dev: string): Promise<string> {
  const [link] = JSON.parse(await sh("ip", "-n", ns, "-j", "link", "show", "dev", dev)) as { address: string }[];
  return link!.address;
}

async function peerNeighbour(addr: string): Promise<string | undefined> {
  const entries = JSON.parse(await sh("ip", "-n", PEER, "-j", "neigh", "show", "dev", PEER_IF)) as { dst: string; lladdr?: string }[];
  return entries.find((e) => e.dst === addr)?.lladdr;
}

/** Poll until `check` is true, at most `ms`; bounded so a broken kernel path fails instead of hanging. */
async function eventually(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = clock.monotonicMs() + ms;
  while (clock.monotonicMs() < deadline) {
    if (await check()) return true;
    await clock.sleep(50);
  }
  return check();
}

function floatingIp(address: string, overrides: Partial<VipConfig> = {}): IpFloatingIp {
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
    ...overrides,
  };
  return new IpFloatingIp(config, new NetnsRunner(NS), clock, silentLogger(), fixedArping({ path: "/usr/bin/arping", flavour: "iputils" }));
}

describe("IpFloatingIp in network namespaces", { skip: isRoot ? false : "needs root for ip netns", timeout: 90_000 }, () => {
  before(async () => {
    await sh("ip", "netns", "add", NS);
    await sh("ip", "netns", "add", PEER);
    await sh("ip", "link", "add", IF, "netns", NS, "type", "veth", "peer", "name", PEER_IF, "netns", PEER);
    for (const [ns, dev, addr6] of [
      [NS, IF, "2001:db8:200::1/64"],
      [PEER, PEER_IF, "2001:db8:200::2/64"],
    ] as const) {
      await sh("ip", "-n", ns, "addr", "add", ns === NS ? "198.18.200.1/24" : "198.18.200.2/24", "dev", dev);
      await sh("ip", "-n", ns, "-6", "addr", "add", addr6, "dev", dev, "nodad");
      await sh("ip", "-n", ns, "link", "set", dev, "up");
      await sh("ip", "-n", ns, "link", "set", "lo", "up");
    }
  });

  after(async () => {
    // Deleting the namespaces deletes the veth pair with them.
    for (const ns of [NS, PEER]) await spawn.run(["ip", "netns", "del", ns], { timeoutMs: 5_000 }).catch(() => undefined);
  });

  it("add() holds the VIP within the duplicate-check timeout, and the gratuitous ARP updates the peer's stale entry", { timeout: 15_000 }, async () => {
    const vip = floatingIp("198.18.200.100/24");
    const ourMac = await macOf(NS, IF);
    // The peer still maps the VIP to the old primary's MAC, as after a failover.
    await sh("ip", "-n", PEER, "neigh", "replace", "198.18.200.100", "lladdr", "02:00:00:00:00:01", "dev", PEER_IF, "nud", "stale");

    const started = clock.monotonicMs();
    await vip.add();
    const addMs = clock.monotonicMs() - started;
    assert.ok(addMs < 1_000, `add() took ${Math.round(addMs)} ms: it waited for arping's 1 s deadline or the announcement series`);
    assert.equal(await vip.isHeld(), true);

    // No traffic from the peer yet, so only our announcement can have changed its entry.
    assert.ok(await eventually(3_000, async () => (await peerNeighbour("198.18.200.100")) === ourMac), "peer never learned our MAC for the VIP");
    await sh("ip", "netns", "exec", PEER, "ping", "-c", "1", "-W", "2", "198.18.200.100");
    await vip.remove();
  });

  it("control: without announcements the peer keeps the stale MAC", { timeout: 15_000 }, async () => {
    const vip = floatingIp("198.18.200.105/24", { arp_count: 0 });
    await sh("ip", "-n", PEER, "neigh", "replace", "198.18.200.105", "lladdr", "02:00:00:00:00:01", "dev", PEER_IF, "nud", "stale");
    await vip.add();
    await clock.sleep(1_200); // longer than the first test needed to see the update
    assert.equal(await peerNeighbour("198.18.200.105"), "02:00:00:00:00:01");
    await vip.remove();
  });

  it("refuses to add an address the peer already holds, naming the peer's MAC", { timeout: 15_000 }, async () => {
    await sh("ip", "-n", PEER, "addr", "add", "198.18.200.101/24", "dev", PEER_IF);
    try {
      const vip = floatingIp("198.18.200.101/24");
      const peerMac = await macOf(PEER, PEER_IF);
      await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_DUPLICATE") && e.details.mac === peerMac);
      assert.equal(await vip.isHeld(), false);
    } finally {
      await sh("ip", "-n", PEER, "addr", "del", "198.18.200.101/24", "dev", PEER_IF);
    }
  });

  it("remove() drops the VIP and is idempotent", { timeout: 15_000 }, async () => {
    const vip = floatingIp("198.18.200.102/24", { duplicate_check: false });
    await vip.add();
    assert.equal(await vip.isHeld(), true);
    await vip.remove();
    assert.equal(await vip.isHeld(), false);
    await vip.remove();
    assert.doesNotMatch(await sh("ip", "-n", NS, "-j", "addr", "show", "dev", IF), /198\.18\.200\.102/);
  });

  it("two concurrent add() calls both succeed (the loser sees 'already assigned')", { timeout: 15_000 }, async () => {
    const vip = floatingIp("198.18.200.103/24", { duplicate_check: false, arp_count: 1 });
    await Promise.all([vip.add(), vip.add()]);
    const held = (await sh("ip", "-n", NS, "-j", "addr", "show", "dev", IF)).match(/198\.18\.200\.103/g) ?? [];
    assert.equal(held.length, 1);
    await vip.remove();
  });

  it("IPv6: add with nodad, reachable from the peer, remove twice", { timeout: 15_000 }, async () => {
    const vip = floatingIp("2001:DB8:200:0::100/64");
    await vip.add();
    assert.equal(await vip.isHeld(), true);
    await sh("ip", "netns", "exec", PEER, "ping", "-6", "-c", "1", "-W", "2", "2001:db8:200::100");
    await vip.remove();
    await vip.remove();
    assert.equal(await vip.isHeld(), false);
  });

  it("the reconciler re-adds a VIP deleted by hand and releases it on shutdown", { timeout: 15_000 }, async () => {
    const vip = floatingIp("198.18.200.104/24", { duplicate_check: false, arp_count: 1 });
    const reconciler = new VipReconciler(vip, clock, silentLogger(), { reconcileIntervalMs: 200, announceIntervalMs: 1_000 });
    const errors: unknown[] = [];
    reconciler.onError((e) => errors.push(e));
    try {
      await reconciler.setDesired(true);
      assert.equal(await vip.isHeld(), true);
      await sh("ip", "-n", NS, "addr", "del", "198.18.200.104/24", "dev", IF);
      assert.ok(await eventually(3_000, () => vip.isHeld()), "reconciler did not re-add the VIP");
      await reconciler.release();
      assert.equal(await vip.isHeld(), false);
      assert.deepEqual(reconciler.state(), { desired: false, held: false, lastError: undefined });
      assert.deepEqual(errors, []);
    } finally {
      reconciler.stop();
    }
  });

  it("the agent's resident ip and understudy-garp: add, announce and remove without a spawn each", { timeout: 15_000 }, async () => {
    assert.ok(existsSync(GARP_BINARY), "npm run build makes dist/vip/understudy-garp");
    const ip = new IpBatchRunner(new NetnsRunner(NS), (file, args) => nodeSpawn("ip", ["netns", "exec", NS, file, ...args], { stdio: ["pipe", "pipe", "pipe"] }));
    const garp = new ResidentGarpSender(clock, GARP_BINARY, (file) => nodeSpawn("ip", ["netns", "exec", NS, file], { stdio: ["pipe", "pipe", "ignore"] }));
    /** Fails the test if anything but `ip` is spawned: the announcement must not fall back to arping. */
    const noArping: CommandRunner = { run: (argv) => Promise.reject(new Error(`spawned ${argv.join(" ")}`)) };
    const spawned: string[] = [];
    const runner: CommandRunner = {
      run: (argv, options) => {
        if (argv[0] !== "ip") return noArping.run(argv, options);
        return ip.run(argv, options).finally(() => spawned.push(argv.join(" ")));
      },
    };
    const config: VipConfig = {
      address: "198.18.200.106/24",
      interface: IF,
      backend: "ip",
      duplicate_check: false,
      duplicate_check_timeout: 300,
      arp_count: 1,
      announce_interval: 10_000,
      reconcile_interval: 2_000,
      hold_timeout: 30_000,
    };
    const vip = new IpFloatingIp(config, runner, clock, silentLogger(), fixedArping({ path: "/usr/bin/arping", flavour: "iputils" }), garp);
    try {
      const ourMac = await macOf(NS, IF);
      await sh("ip", "-n", PEER, "neigh", "replace", "198.18.200.106", "lladdr", "02:00:00:00:00:01", "dev", PEER_IF, "nud", "stale");
      await vip.add();
      assert.equal(await vip.isHeld(), true);
      assert.ok(await eventually(3_000, async () => (await peerNeighbour("198.18.200.106")) === ourMac), "peer never learned our MAC from understudy-garp");
      await vip.remove();
      assert.equal(await vip.isHeld(), false);
      assert.ok(spawned.length >= 4, spawned.join("; "));
    } finally {
      ip.close();
      garp.close();
    }
  });
});
