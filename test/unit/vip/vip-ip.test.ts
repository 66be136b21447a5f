import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { createFloatingIp } from "../../../src/vip/index.js";
import { IpFloatingIp, parseVipAddress, type VipConfig } from "../../../src/vip/ip.js";
import { NoFloatingIp } from "../../../src/vip/none.js";
import { fixedArping } from "../../../src/vip/arping.js";
import type { GarpSender } from "../../../src/vip/garp.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { deferred } from "../../fakes/floating-ip.js";

// Recorded from iproute2 6.1 (`ip -j addr show dev X`), interface renamed to eth0.
const LINK = `"ifindex":6,"link_index":5,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"d6:c3:c4:83:40:57","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":1`;
const OWN = `{"family":"inet","local":"198.18.0.11","prefixlen":24,"scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}`;
const LINK_LOCAL = `{"family":"inet6","local":"fe80::d4c3:c4ff:fe83:4057","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}`;
const vip4 = (prefix: number) =>
  `{"family":"inet","local":"198.18.0.100","prefixlen":${prefix},"scope":"global","secondary":true,"label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}`;
const VIP6 = `{"family":"inet6","local":"2001:db8::100","prefixlen":64,"scope":"global","nodad":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}`;
const show = (...infos: string[]) => `[{${LINK},"addr_info":[${infos.join(",")}]}]\n`;
const NOT_HELD = show(OWN, LINK_LOCAL);
const HELD = show(OWN, vip4(24), LINK_LOCAL);
const HELD6 = show(OWN, VIP6, LINK_LOCAL);

// Recorded from iputils arping 20221126 `-D` when the address is taken.
const DAD_ANSWERED = `ARPING 198.18.0.100 from 0.0.0.0 eth0\nUnicast reply from 198.18.0.100 [3A:71:66:5C:ED:BC]  0.535ms\nSent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n`;

const SHOW = ["ip", "-j", "addr", "show", "dev", "eth0"];
const DAD = ["/usr/bin/arping", "-D", "-c", "1", "-w", "1", "-I", "eth0", "198.18.0.100"];
const ADD = ["ip", "addr", "add", "198.18.0.100/24", "dev", "eth0"];
const DEL = ["ip", "addr", "del", "198.18.0.100/24", "dev", "eth0"];
const GARP = ["/usr/bin/arping", "-U", "-c", "1", "-I", "eth0", "198.18.0.100"];

function config(overrides: Partial<VipConfig> = {}): VipConfig {
  return {
    address: "198.18.0.100/24",
    interface: "eth0",
    backend: "ip",
    duplicate_check: true,
    duplicate_check_timeout: 300,
    arp_count: 3,
    announce_interval: 10_000,
    reconcile_interval: 2_000,
    hold_timeout: 30_000,
    ...overrides,
  };
}

function setup(overrides: Partial<VipConfig> = {}, runner: CommandRunner = new StrictCommandRunner()) {
  const vip = new IpFloatingIp(config(overrides), runner, new FakeClock(), silentLogger(), fixedArping({ path: "/usr/bin/arping", flavour: "iputils" }));
  return { vip };
}

/** Holds commands matching `gated` open until the test releases them, to see what runs meanwhile. */
class GatedRunner implements CommandRunner {
  constructor(
    readonly strict: StrictCommandRunner,
    private readonly gate: { argv: readonly string[]; promise: Promise<void> },
  ) {}
  async run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    const result = await this.strict.run(argv, options);
    if (JSON.stringify(argv) === JSON.stringify(this.gate.argv)) await this.gate.promise;
    return result;
  }
}

describe("IpFloatingIp.isHeld", () => {
  const cases: { name: string; address: string; stdout: string; held: boolean; argv?: string[] }[] = [
    { name: "held", address: "198.18.0.100/24", stdout: HELD, held: true },
    { name: "not held", address: "198.18.0.100/24", stdout: NOT_HELD, held: false },
    { name: "held with another prefix (added by hand)", address: "198.18.0.100/24", stdout: show(OWN, vip4(32)), held: true },
    { name: "any prefix counts as held", address: "198.18.0.11/32", stdout: NOT_HELD, held: true },
    { name: "IPv6 held, config in non-canonical form", address: "2001:DB8:0::100/64", stdout: HELD6, held: true },
    { name: "IPv6 not held", address: "2001:db8::100/64", stdout: HELD, held: false },
    { name: "link without addresses", address: "198.18.0.100/24", stdout: `[{${LINK},"addr_info":[{},{}]}]`, held: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const runner = new StrictCommandRunner().expect(SHOW, { stdout: c.stdout });
      const { vip } = setup({ address: c.address }, runner);
      assert.equal(await vip.isHeld(), c.held);
      runner.done();
    });
  }

  it("rejects when the interface is missing or the output is not iproute2 JSON", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { code: 1, stderr: 'Device "eth0" does not exist.\n' }).expect(SHOW, { stdout: "inet 198.18.0.100/24" });
    const { vip } = setup({}, runner);
    await assert.rejects(vip.isHeld(), (e) => isUnderstudyError(e, "US_E_COMMAND_FAILED") && /does not exist/.test(e.message));
    await assert.rejects(vip.isHeld(), (e) => isUnderstudyError(e, "US_E_COMMAND_FAILED") && /not iproute2 JSON/.test(e.message));
    runner.done();
  });

  it("canonicalises the configured address", () => {
    assert.deepEqual(parseVipAddress("2001:DB8:0:0::0100/64"), { ip: "2001:db8::100", prefix: 64, family: 6 });
    assert.throws(() => parseVipAddress("198.18.0.100/33"), TypeError);
  });
});

describe("IpFloatingIp.add", () => {
  it("checks for a duplicate, adds, then announces arp_count times", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(DAD).expect(ADD).expect(GARP).expect(GARP).expect(GARP);
    const { vip } = setup({}, runner);
    await vip.add();
    await flushMicrotasks();
    runner.done();
    assert.equal(runner.calls[1]?.options?.timeoutMs, 300, "arping is killed at duplicate_check_timeout");
  });

  it("without duplicate check: adds and announces", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(ADD).expect(GARP).expect(GARP);
    const { vip } = setup({ duplicate_check: false, arp_count: 2 }, runner);
    await vip.add();
    await flushMicrotasks();
    runner.done();
  });

  it("notHeld (the caller just looked): adds without asking ip again", async () => {
    const runner = new StrictCommandRunner().expect(DAD).expect(ADD).expect(GARP).expect(GARP).expect(GARP);
    const { vip } = setup({}, runner);
    await vip.add({ notHeld: true });
    await flushMicrotasks();
    runner.done();
  });

  it("skipDuplicateCheck (the previous holder released it): adds without arping -D", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(ADD).expect(GARP).expect(GARP).expect(GARP);
    const { vip } = setup({}, runner);
    await vip.add({ skipDuplicateCheck: true });
    await flushMicrotasks();
    runner.done();
  });

  it("rounds -c and -w up to whole seconds (this arping rejects fractions)", async () => {
    const dad = [...DAD];
    dad[3] = "2";
    dad[5] = "2";
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(dad).expect(ADD);
    const { vip } = setup({ duplicate_check_timeout: 1_500, arp_count: 0 }, runner);
    await vip.add();
    runner.done();
  });

  it("treats a duplicate check killed at its timeout as 'no answer'", async () => {
    const timeout = new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: "/usr/bin/arping", timeout_ms: 300 });
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expectError(DAD, timeout).expect(ADD);
    const { vip } = setup({ arp_count: 0 }, runner);
    await vip.add();
    runner.done();
  });

  it("refuses to add when another host answers, naming its MAC", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(DAD, { code: 1, stdout: DAD_ANSWERED });
    const { vip } = setup({}, runner);
    await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_DUPLICATE") && e.details.mac === "3a:71:66:5c:ed:bc");
    runner.done();
  });

  it("refuses to add when the duplicate check itself fails (exit 1 without a reply is a usage error)", async () => {
    const runner = new StrictCommandRunner()
      .expect(SHOW, { stdout: NOT_HELD })
      .expect(DAD, { code: 1, stderr: "arping: invalid argument: '0.3'\n" })
      .expect(SHOW, { stdout: NOT_HELD })
      .expectError(DAD, Object.assign(new Error("spawn /usr/bin/arping ENOENT"), { code: "ENOENT" }));
    const { vip } = setup({}, runner);
    await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_CHECK") && /invalid argument/.test(e.message));
    await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_CHECK") && /ENOENT/.test(e.message));
    runner.done();
  });

  for (const stderr of ["Error: ipv4: Address already assigned.\n", "RTNETLINK answers: File exists\n"]) {
    it(`lost race with another add is success: ${stderr.trim()}`, async () => {
      const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(DAD).expect(ADD, { code: 2, stderr }).expect(GARP);
      const { vip } = setup({ arp_count: 1 }, runner);
      await vip.add();
      await flushMicrotasks();
      runner.done();
    });
  }

  it("fails with US_E_VIP_ADD on any other error, and announces nothing", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(DAD).expect(ADD, { code: 2, stderr: "Error: Nexthop device is not up.\n" });
    const { vip } = setup({}, runner);
    await assert.rejects(vip.add(), (e) => isUnderstudyError(e, "US_E_VIP_ADD") && /Nexthop/.test(e.message));
    await flushMicrotasks();
    runner.done();
  });

  it("already held: only announces", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: HELD }).expect(GARP);
    const { vip } = setup({ arp_count: 1 }, runner);
    await vip.add();
    await flushMicrotasks();
    runner.done();
  });

  it("IPv6: `ip -6 addr add ... nodad`, no ARP", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(["ip", "-6", "addr", "add", "2001:db8::100/64", "dev", "eth0", "nodad"]);
    const { vip } = setup({ address: "2001:db8::100/64" }, runner);
    await vip.add();
    await flushMicrotasks();
    runner.done();
  });

  it("returns after the first gratuitous ARP is sent, not after the series", async () => {
    const firstPacket = deferred();
    const strict = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(ADD).expect(GARP).expect(GARP);
    const { vip } = setup({ duplicate_check: false, arp_count: 2 }, new GatedRunner(strict, { argv: GARP, promise: firstPacket.promise }));
    await vip.add(); // resolves while arping is still running
    assert.equal(strict.calls.length, 3);
    firstPacket.resolve();
    await flushMicrotasks();
    strict.done();
  });

  it("a failing background announcement is logged, never an unhandled rejection", async () => {
    const runner = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(ADD).expect(GARP, { code: 2, stderr: "arping: bind: Cannot assign requested address\n" });
    const { vip } = setup({ duplicate_check: false }, runner);
    await vip.add();
    await flushMicrotasks();
    runner.done(); // the series stopped at the first failure
  });
});

describe("IpFloatingIp.remove and announce", () => {
  it("removes the address", async () => {
    const runner = new StrictCommandRunner().expect(DEL);
    await setup({}, runner).vip.remove();
    runner.done();
  });

  for (const stderr of ["Error: ipv4: Address not found.\n", "RTNETLINK answers: Cannot assign requested address\n"]) {
    it(`absent is success: ${stderr.trim()}`, async () => {
      const runner = new StrictCommandRunner().expect(DEL, { code: 2, stderr }).expect(SHOW, { stdout: NOT_HELD });
      await setup({}, runner).vip.remove();
      runner.done();
    });
  }

  it("removes a copy held with another prefix", async () => {
    const runner = new StrictCommandRunner()
      .expect(DEL, { code: 2, stderr: "Error: ipv4: Address not found.\n" })
      .expect(SHOW, { stdout: show(OWN, vip4(32)) })
      .expect(["ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"]);
    await setup({}, runner).vip.remove();
    runner.done();
  });

  it("IPv6 remove, absent", async () => {
    const runner = new StrictCommandRunner()
      .expect(["ip", "-6", "addr", "del", "2001:db8::100/64", "dev", "eth0"], { code: 2, stderr: "Error: ipv6: address not found.\n" })
      .expect(SHOW, { stdout: NOT_HELD });
    await setup({ address: "2001:db8::100/64" }, runner).vip.remove();
    runner.done();
  });

  it("fails with US_E_VIP_DEL on any other error", async () => {
    const runner = new StrictCommandRunner().expect(DEL, { code: 1, stderr: 'Cannot find device "eth0"\n' });
    await assert.rejects(setup({}, runner).vip.remove(), (e) => isUnderstudyError(e, "US_E_VIP_DEL"));
    runner.done();
  });

  it("remove() stops an announcement series between packets", async () => {
    const firstPacket = deferred();
    const strict = new StrictCommandRunner().expect(SHOW, { stdout: NOT_HELD }).expect(ADD).expect(GARP).expect(DEL);
    const { vip } = setup({ duplicate_check: false, arp_count: 3 }, new GatedRunner(strict, { argv: GARP, promise: firstPacket.promise }));
    await vip.add();
    await vip.remove();
    firstPacket.resolve();
    await flushMicrotasks();
    strict.done(); // no second or third packet claiming an address we gave up
  });

  it("concurrent announce() calls share one series; failures reject with US_E_VIP_ANNOUNCE", async () => {
    const runner = new StrictCommandRunner().expect(GARP).expect(GARP).expect(GARP, { code: 2, stderr: "arping: socket: Operation not permitted\n" });
    const { vip } = setup({ arp_count: 3 }, runner);
    const a = vip.announce();
    const b = vip.announce();
    assert.equal(a, b);
    await assert.rejects(a, (e) => isUnderstudyError(e, "US_E_VIP_ANNOUNCE") && /not permitted/.test(e.message));
    runner.done();
  });

  it("arp_count 0 and IPv6 announce nothing", async () => {
    const runner = new StrictCommandRunner();
    await setup({ arp_count: 0 }, runner).vip.announce();
    await setup({ address: "2001:db8::100/64" }, runner).vip.announce();
    runner.done();
  });
});

describe("createFloatingIp", () => {
  it("no vip section or backend none: holds nothing, runs nothing", async () => {
    const runner = new StrictCommandRunner();
    const deps = { runner, clock: new FakeClock(), logger: silentLogger() };
    for (const ip of [createFloatingIp(undefined, deps), createFloatingIp(config({ backend: "none" }), deps)]) {
      assert.ok(ip instanceof NoFloatingIp, "ip instanceof NoFloatingIp");
      await Promise.all([ip.add(), ip.announce(), ip.remove()]);
      assert.equal(await ip.isHeld(), false);
    }
    assert.ok(createFloatingIp(config(), deps) instanceof IpFloatingIp, "createFloatingIp(config(), deps) instanceof IpFloatingIp");
    runner.done();
  });
});

/** A GarpSender that records what it was asked, and fails when told to. */
class RecordingGarp implements GarpSender {
  readonly sent: string[] = [];
  failWith: Error | null = null;
  announce(iface: string, ip: string): Promise<void> {
    this.sent.push(`${iface} ${ip}`);
    return this.failWith ? Promise.reject(this.failWith) : Promise.resolve();
  }
}

describe("IpFloatingIp with the resident gratuitous-ARP sender", () => {
  const withGarp = (garp: GarpSender, runner: CommandRunner, clock = new FakeClock(), overrides: Partial<VipConfig> = {}) =>
    new IpFloatingIp(config({ duplicate_check: false, ...overrides }), runner, clock, silentLogger(), fixedArping({ path: "/usr/bin/arping", flavour: "iputils" }), garp);

  it("sends the first packet at once and the others a second apart, with no arping run", async () => {
    const garp = new RecordingGarp();
    const clock = new FakeClock();
    const runner = new StrictCommandRunner().expect(ADD);
    const vip = withGarp(garp, runner, clock);
    await vip.add({ notHeld: true });
    await flushMicrotasks();
    assert.deepEqual(garp.sent, ["eth0 198.18.0.100"], "the first packet leaves with the add");
    await clock.advance(999);
    assert.equal(garp.sent.length, 1);
    await clock.advance(1);
    assert.equal(garp.sent.length, 2);
    await clock.advance(1000);
    assert.equal(garp.sent.length, 3);
    await clock.advance(5000);
    assert.equal(garp.sent.length, 3, "arp_count packets, no more");
    runner.done();
  });

  it("remove() between packets stops the series", async () => {
    const garp = new RecordingGarp();
    const clock = new FakeClock();
    const runner = new StrictCommandRunner().expect(ADD).expect(DEL);
    const vip = withGarp(garp, runner, clock);
    await vip.add({ notHeld: true });
    await flushMicrotasks();
    await vip.remove();
    await clock.advance(5000);
    assert.deepEqual(garp.sent, ["eth0 198.18.0.100"]);
    runner.done();
  });

  it("a sender that fails falls back to one arping run for that packet", async () => {
    const garp = new RecordingGarp();
    garp.failWith = new Error("understudy-garp: eth0: Operation not permitted");
    const runner = new StrictCommandRunner().expect(GARP);
    const vip = withGarp(garp, runner, new FakeClock(), { arp_count: 1 });
    await vip.announce();
    assert.deepEqual(garp.sent, ["eth0 198.18.0.100"]);
    runner.done();
  });
});
