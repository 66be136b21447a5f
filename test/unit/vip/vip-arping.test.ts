// Both Debian arping packages (issue 12, failure 1): flavour probe, argv and
// exit codes, with output recorded from iputils-arping 20221126 and Habets'
// arping 2.23 (Debian 12), and the tool check that names the package.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { parseConfigText } from "../../../src/config/load.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import type { CommandResult } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { ARPING_REPROBE_EVERY, TOOL_RECHECK_MS, ToolReadiness, checkTools } from "../../../src/tools/check.js";
import { packageFor, toolNeeds } from "../../../src/tools/needs.js";
import { ProbingArpingLocator, announceArgv, announced, duplicateArgv, fixedArping, flavourOf, readDuplicate, type ArpingTool } from "../../../src/vip/arping.js";
import { IpFloatingIp, type VipConfig } from "../../../src/vip/ip.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const IPUTILS: ArpingTool = { path: "/usr/bin/arping", flavour: "iputils" };
const HABETS: ArpingTool = { path: "/usr/sbin/arping", flavour: "habets" };
const res = (code: number, stdout = "", stderr = ""): CommandResult => ({ code, signal: null, stdout, stderr });

// `arping -V`
const IPUTILS_V = res(0, "arping from iputils 20221126\nlibcap: yes, IDN: yes, NLS: no, error.h: yes, getrandom(): yes, __fpending(): yes\n");
const HABETS_V = res(
  1,
  "ARPing 2.23, by Thomas Habets <thomas@habets.se>\nusage: arping [ -0aAbdDeFpPqrRuUvzZ ] [ -w <sec> ] [ -W <sec> ] [ -S <host/ip> ]\n",
  "arping: option requires an argument -- 'V'\n",
);
// Habets' duplicate check (-0) and announcement (-U)
const HABETS_REPLY = res(
  0,
  "ARPING 198.18.0.100\n42 bytes from 5e:83:5d:3a:40:c2 (198.18.0.100): index=0 time=18.845 usec\n\n--- 198.18.0.100 statistics ---\n1 packets transmitted, 1 packets received,   0% unanswered (0 extra)\nrtt min/avg/max/std-dev = 0.019/0.019/0.019/0.000 ms\n",
);
const HABETS_NO_REPLY = res(1, "ARPING 198.18.0.100\nTimeout\n\n--- 198.18.0.100 statistics ---\n1 packets transmitted, 0 packets received, 100% unanswered (0 extra)\n\n");
const HABETS_BAD_IFACE = res(1, "", "arping: libnet_init(LIBNET_LINK, nosuch): libnet_check_iface() ioctl: No such device\n");
// iputils' duplicate check (-D)
const IPUTILS_REPLY = res(1, "ARPING 198.18.0.100 from 0.0.0.0 eth0\nUnicast reply from 198.18.0.100 [3A:71:66:5C:ED:BC]  0.535ms\nSent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n");
const IPUTILS_NO_REPLY = res(0, "ARPING 198.18.0.100 from 0.0.0.0 eth0\nSent 1 probes (1 broadcast(s))\nReceived 0 response(s)\n");
const IPUTILS_USAGE = res(1, "", "arping: invalid argument: '0.1'\n");

describe("arping flavours", () => {
  it("tells the flavours apart from `arping -V`, whatever the exit code", () => {
    assert.equal(flavourOf(IPUTILS_V), "iputils");
    assert.equal(flavourOf(HABETS_V), "habets");
    assert.equal(flavourOf(res(1, "BusyBox v1.35.0 multi-call binary.\nUsage: arping [-fqbDUA] [-c CNT] [-w SEC] [-I IFACE] [-s SRC_IP] DST_IP\n")), null);
  });

  it("announcement argv: iputils -U -I; Habets -U -S VIP -i (without -S its sender is the interface's own address)", () => {
    assert.deepEqual(announceArgv(IPUTILS, "eth0", "198.18.0.100"), ["/usr/bin/arping", "-U", "-c", "1", "-I", "eth0", "198.18.0.100"]);
    assert.deepEqual(announceArgv(HABETS, "eth0", "198.18.0.100"), ["/usr/sbin/arping", "-U", "-S", "198.18.0.100", "-c", "1", "-i", "eth0", "198.18.0.100"]);
  });

  const announceCases: { tool: ArpingTool; r: CommandResult; ok: boolean; name: string }[] = [
    { tool: IPUTILS, r: res(0), ok: true, name: "iputils exit 0" },
    { tool: IPUTILS, r: res(2, "", "arping: socket: Operation not permitted"), ok: false, name: "iputils exit 2" },
    { tool: HABETS, r: HABETS_NO_REPLY, ok: true, name: "Habets exit 1 with '1 packets transmitted' (nobody answers a GARP)" },
    { tool: HABETS, r: HABETS_REPLY, ok: true, name: "Habets exit 0" },
    { tool: HABETS, r: HABETS_BAD_IFACE, ok: false, name: "Habets exit 1 without statistics (an error)" },
  ];
  for (const c of announceCases) it(`announced(): ${c.name}`, () => assert.equal(announced(c.tool, c.r), c.ok));

  it("duplicate-check argv: iputils whole seconds with -D -I; Habets -0 with a fractional -w and -i", () => {
    assert.deepEqual(duplicateArgv(IPUTILS, "eth0", "198.18.0.100", 100), ["/usr/bin/arping", "-D", "-c", "1", "-w", "1", "-I", "eth0", "198.18.0.100"]);
    assert.deepEqual(duplicateArgv(IPUTILS, "eth0", "198.18.0.100", 1500), ["/usr/bin/arping", "-D", "-c", "2", "-w", "2", "-I", "eth0", "198.18.0.100"]);
    assert.deepEqual(duplicateArgv(HABETS, "eth0", "198.18.0.100", 100), ["/usr/sbin/arping", "-0", "-C", "1", "-c", "1", "-w", "0.1", "-i", "eth0", "198.18.0.100"]);
    assert.deepEqual(duplicateArgv(HABETS, "eth0", "198.18.0.100", 1500), ["/usr/sbin/arping", "-0", "-C", "1", "-c", "1", "-w", "1.5", "-i", "eth0", "198.18.0.100"]);
  });

  const dadCases: { tool: ArpingTool; r: CommandResult; want: ReturnType<typeof readDuplicate>; name: string }[] = [
    { tool: IPUTILS, r: IPUTILS_NO_REPLY, want: { kind: "free" }, name: "iputils exit 0: free" },
    { tool: IPUTILS, r: IPUTILS_REPLY, want: { kind: "taken", mac: "3a:71:66:5c:ed:bc" }, name: "iputils exit 1 with a reply: taken" },
    { tool: IPUTILS, r: IPUTILS_USAGE, want: { kind: "error" }, name: "iputils exit 1 without a reply: usage error" },
    { tool: IPUTILS, r: res(2, "", "arping: socket: Operation not permitted"), want: { kind: "error" }, name: "iputils exit 2: error" },
    { tool: HABETS, r: HABETS_REPLY, want: { kind: "taken", mac: "5e:83:5d:3a:40:c2" }, name: "Habets exit 0 with a reply: taken" },
    { tool: HABETS, r: HABETS_NO_REPLY, want: { kind: "free" }, name: "Habets exit 1 with '0 packets received': free" },
    { tool: HABETS, r: HABETS_BAD_IFACE, want: { kind: "error" }, name: "Habets exit 1 without statistics: error" },
    { tool: HABETS, r: res(0, "ARPING 198.18.0.100\n"), want: { kind: "error" }, name: "Habets exit 0 without a MAC: error" },
  ];
  for (const c of dadCases) it(`readDuplicate(): ${c.name}`, () => assert.deepEqual(readDuplicate(c.tool, c.r), c.want));
});

function vipConfig(overrides: Partial<VipConfig> = {}): VipConfig {
  return {
    address: "198.18.0.100/24",
    interface: "eth0",
    backend: "ip",
    duplicate_check: true,
    duplicate_check_timeout: 100,
    arp_count: 1,
    announce_interval: 10_000,
    reconcile_interval: 2_000,
    hold_timeout: 30_000,
    ...overrides,
  };
}

describe("IpFloatingIp with Habets' arping", () => {
  const ADD = ["ip", "addr", "add", "198.18.0.100/24", "dev", "eth0"];
  const DAD = ["/usr/sbin/arping", "-0", "-C", "1", "-c", "1", "-w", "0.1", "-i", "eth0", "198.18.0.100"];
  const GARP = ["/usr/sbin/arping", "-U", "-S", "198.18.0.100", "-c", "1", "-i", "eth0", "198.18.0.100"];

  it("checks with -0, adds, announces with -U -S (exit 1 '1 packets transmitted' is success)", async () => {
    const runner = new StrictCommandRunner().expect(DAD, HABETS_NO_REPLY).expect(ADD).expect(GARP, HABETS_NO_REPLY);
    const vip = new IpFloatingIp(vipConfig(), runner, new FakeClock(), silentLogger(), fixedArping(HABETS));
    await vip.add({ notHeld: true });
    await vip.announce();
    runner.done();
    // Habets' arping opens a pcap handle before it probes: killed only a second after its own -w.
    assert.equal(runner.calls[0]!.options?.timeoutMs, 1100);
  });

  it("refuses to add when another host answers, naming its MAC", async () => {
    const runner = new StrictCommandRunner().expect(DAD, HABETS_REPLY);
    const vip = new IpFloatingIp(vipConfig(), runner, new FakeClock(), silentLogger(), fixedArping(HABETS));
    await assert.rejects(vip.add({ notHeld: true }), (e) => isUnderstudyError(e, "US_E_VIP_DUPLICATE") && e.details.mac === "5e:83:5d:3a:40:c2");
    runner.done();
  });

  it("a failing check (no statistics line) refuses the add with US_E_VIP_CHECK", async () => {
    const runner = new StrictCommandRunner().expect(DAD, HABETS_BAD_IFACE);
    const vip = new IpFloatingIp(vipConfig(), runner, new FakeClock(), silentLogger(), fixedArping(HABETS));
    await assert.rejects(vip.add({ notHeld: true }), (e) => isUnderstudyError(e, "US_E_VIP_CHECK"));
    runner.done();
  });

  it("no arping at all: the add fails with US_E_TOOL_MISSING naming the package, and nothing is added", async () => {
    const runner = new StrictCommandRunner();
    const locator = new ProbingArpingLocator(runner, "/nonexistent/arping");
    const vip = new IpFloatingIp(vipConfig(), runner, new FakeClock(), silentLogger(), locator);
    await assert.rejects(vip.add({ notHeld: true }), (e) => isUnderstudyError(e, "US_E_TOOL_MISSING") && /iputils-arping/.test(e.message) && /vip\.arping/.test(e.message));
    runner.done();
  });
});

describe("ProbingArpingLocator", () => {
  const dir = mkdtempSync(join(tmpdir(), "us-arping-"));
  const fake = join(dir, "arping");
  writeFileSync(fake, "#!/bin/sh\nexit 0\n");
  chmodSync(fake, 0o755);
  const notExec = join(dir, "arping-not-exec");
  writeFileSync(notExec, "");
  chmodSync(notExec, 0o644);
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

  it("probes the configured binary once and remembers its flavour", async () => {
    const runner = new StrictCommandRunner().expect([fake, "-V"], HABETS_V);
    const locator = new ProbingArpingLocator(runner, fake);
    assert.deepEqual(await locator.locate(), { path: fake, flavour: "habets" });
    assert.deepEqual(await locator.locate(), { path: fake, flavour: "habets" });
    runner.done();
  });

  it("a binary replaced at the same path is probed again", async () => {
    const runner = new StrictCommandRunner().expect([fake, "-V"], HABETS_V).expect([fake, "-V"], IPUTILS_V);
    const locator = new ProbingArpingLocator(runner, fake);
    assert.deepEqual(await locator.locate(), { path: fake, flavour: "habets" });
    writeFileSync(fake, "#!/bin/sh\n# the other package's arping\nexit 0\n");
    assert.deepEqual(await locator.locate(), { path: fake, flavour: "iputils" });
    assert.deepEqual(await locator.locate(), { path: fake, flavour: "iputils" });
    runner.done();
  });

  it("finds `arping` on PATH and tells iputils by its banner", async () => {
    const runner = new StrictCommandRunner().expect([fake, "-V"], IPUTILS_V);
    assert.deepEqual(await new ProbingArpingLocator(runner, undefined, dir).locate(), { path: fake, flavour: "iputils" });
    runner.done();
  });

  it("a binary that is neither flavour: US_E_TOOL_FLAVOUR, quoting what it said", async () => {
    const runner = new StrictCommandRunner().expect([fake, "-V"], res(1, "BusyBox v1.35.0 multi-call binary.\n"));
    await assert.rejects(new ProbingArpingLocator(runner, fake).locate(), (e) => isUnderstudyError(e, "US_E_TOOL_FLAVOUR") && /BusyBox/.test(e.message));
  });

  it("missing or not executable: US_E_TOOL_MISSING, nothing run; a failure is not remembered", async () => {
    const runner = new StrictCommandRunner();
    await assert.rejects(new ProbingArpingLocator(runner, join(dir, "nope")).locate(), (e) => isUnderstudyError(e, "US_E_TOOL_MISSING") && /does not exist/.test(e.message));
    await assert.rejects(new ProbingArpingLocator(runner, notExec).locate(), (e) => isUnderstudyError(e, "US_E_TOOL_MISSING") && /not executable/.test(e.message));
    runner.done();
  });
});

describe("tool needs", () => {
  const base = {
    cluster: "c1",
    node: { name: "n1", address: "198.18.0.11" },
    etcd: { endpoints: ["http://198.18.0.2:2379"] },
  };
  const parse = (doc: Record<string, unknown>) => parseConfigText(stringify({ ...base, ...doc }), "/etc/understudy/understudy.yaml");

  it("lists ip and arping for the ip backend, the daemon's programs, sync's rsync and ssh, hooks and validators", () => {
    const config = parse({
      vip: { address: "198.18.0.100/24", interface: "eth0", arping: "/opt/arping" },
      daemon: { backend: "command", start: ["/usr/sbin/proftpd"], stop: ["/bin/kill", "x"], status: ["pgrep", "proftpd"] },
      sync: { roots: [{ name: "etc", path: "/etc/proftpd", validate: ["/usr/sbin/proftpd", "-t"] }], ssh: { key: "/k", known_hosts: "/kh" } },
      hooks: { post_promote: ["/usr/local/bin/notify"] },
    });
    assert.deepEqual(
      toolNeeds(config).map((n) => [n.program, n.setting, n.kind]),
      [
        ["ip", "vip (ip addr), the fence guard", "program"],
        ["/opt/arping", "vip.arping", "arping"],
        ["/usr/sbin/proftpd", "daemon.start", "program"],
        ["/bin/kill", "daemon.stop", "program"],
        ["pgrep", "daemon.status", "program"],
        ["/usr/bin/rsync", "sync.rsync_path", "program"],
        ["/usr/bin/ssh", "sync.ssh (pulls from the primary)", "program"],
        ["/usr/local/bin/notify", "hooks.post_promote", "program"],
      ],
    );
  });

  it("data roots need inotifywait (inotify-tools): a node without it never sees an upload close", () => {
    const config = parse({
      vip: { address: "198.18.0.100/24", interface: "eth0" },
      daemon: { backend: "systemd", unit: "ssh.service" },
      sync: { roots: [{ name: "etc", path: "/etc/ssh" }], ssh: { user: "root", key: "/k", known_hosts: "/kh" } },
      data: { roots: [{ name: "up", path: "/srv/sftp" }] },
    });
    assert.deepEqual(
      toolNeeds(config)
        .filter((n) => n.setting.startsWith("data"))
        .map((n) => [n.program, n.setting]),
      [["/usr/bin/inotifywait", "data (the upload watcher)"]],
    );
  });

  it("no arping when it would never run (no duplicate check, no announcements, IPv6, keepalived)", () => {
    const daemon = { backend: "systemd", unit: "ssh.service" };
    for (const vip of [
      { address: "198.18.0.100/24", interface: "eth0", duplicate_check: false, arp_count: 0 },
      { address: "2001:db8::100/64", interface: "eth0" },
      { address: "198.18.0.100/24", interface: "eth0", backend: "keepalived", keepalived: { virtual_router_id: 51 } },
    ]) {
      assert.ok(!toolNeeds(parse({ vip, daemon })).some((n) => n.kind === "arping"), JSON.stringify(vip));
    }
  });

  it("names the Debian package of each program", () => {
    assert.equal(packageFor("ip"), "iproute2");
    assert.equal(packageFor("/usr/bin/rsync"), "rsync");
    assert.equal(packageFor("/usr/sbin/sshd"), "openssh-server");
    assert.equal(packageFor("/usr/sbin/proftpd"), "proftpd-core");
    assert.equal(packageFor("/usr/bin/inotifywait"), "inotify-tools");
    assert.match(packageFor("/opt/x/frobd"), /apt-file search frobd/);
  });

  it("the periodic tool recheck runs an unchanged arping once per 20 rechecks, not at each one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "us-tools-"));
    try {
      const bin = join(dir, "arping");
      writeFileSync(bin, "#!/bin/sh\nexit 0\n");
      chmodSync(bin, 0o755);
      const config = parse({ vip: { address: "198.18.0.100/24", interface: "eth0", arping: bin }, daemon: { backend: "process", command: [bin, "-D"] } });
      // One probe, then none until the ARPING_REPROBE_EVERY-th recheck (a binary broken by a removed library keeps its identity).
      const runner = new StrictCommandRunner().expect([bin, "-V"], IPUTILS_V).expect([bin, "-V"], IPUTILS_V);
      const clock = new FakeClock();
      const ready = new ToolReadiness(config, { runner, clock, log: silentLogger(), onChange: () => undefined }, { problems: [], arping: null });
      ready.start();
      for (let i = 0; i < ARPING_REPROBE_EVERY; i++) await clock.advance(TOOL_RECHECK_MS);
      ready.stop();
      runner.done();
      assert.equal(ready.problem(), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("checkTools reports every missing program with its setting and package", async () => {
    const config = parse({
      vip: { address: "198.18.0.100/24", interface: "eth0", arping: "/nonexistent/arping" },
      daemon: { backend: "process", command: ["/nonexistent/sshd", "-D"] },
    });
    const report = await checkTools(config, new StrictCommandRunner(), "/usr/bin:/bin");
    assert.deepEqual(
      report.problems.map((p) => p.code),
      ["US_E_TOOL_MISSING", "US_E_TOOL_MISSING"],
    );
    assert.match(report.problems[0]!.message, /\/nonexistent\/arping \(needed by vip\.arping\) does not exist; install the Debian package iputils-arping \(or arping\)/);
    assert.match(report.problems[1]!.message, /\/nonexistent\/sshd \(needed by daemon\.command\) does not exist; install the Debian package openssh-server/);
    assert.equal(report.arping, null);
  });
});
