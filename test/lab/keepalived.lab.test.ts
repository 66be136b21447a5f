/**
 * vip.backend keepalived (issue 5): Debian's keepalived in every node
 * namespace, with the keepalived.conf that `understudy keepalived render`
 * writes, unicast VRRP between the nodes, and understudy agents deciding
 * through etcd who may be MASTER (the track file). The address follows the
 * etcd leader through a graceful handover and through a kill -9 of the
 * primary's agent (the fence guard pushes its keepalived into FAULT); the
 * ARP observer never sees two holders. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, LabCluster, NODE_FLAGS, pollUntil, runOk, type LabNode } from "./harness/index.js";

const KEEPALIVED = "/usr/sbin/keepalived";

test("vip backend keepalived: only the etcd primary is VRRP MASTER, through a handover and a kill -9", { timeout: 240_000 }, async (t) => {
  const track = (n: LabNode) => join(n.dir, "keepalived-track");
  const c = await LabCluster.create({
    start: false,
    priorities: [300, 200, 100],
    vipYaml: (n, lab) =>
      [
        "vip:",
        `  address: ${lab.vip}`,
        `  interface: ${n.iface}`,
        "  backend: keepalived",
        `  keepalived: { virtual_router_id: 77, track_file: ${track(n)}, unicast_peers: [${lab.nodes.map((x) => x.address).join(", ")}] }`,
      ].join("\n"),
  });
  const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 230 });
  const [n1, n2, n3] = c.lab.nodes as [LabNode, LabNode, LabNode];
  try {
    for (const n of c.lab.nodes) {
      const conf = join(n.dir, "keepalived.conf");
      await runOk([process.execPath, ...NODE_FLAGS, CLI, "keepalived", "render", "--config", c.configPath(n.name), "--out", conf]);
      assert.match(readFileSync(conf, "utf8"), /track_file \{\n\s+understudy_primary weight 0/);
      c.lab.spawn(
        n,
        [
          KEEPALIVED,
          "--dont-fork",
          "--log-console",
          "--log-detail",
          "--no-syslog",
          "--vrrp",
          "--use-file",
          conf,
          "--pid",
          join(n.dir, "keepalived.pid"),
          "--vrrp_pid",
          join(n.dir, "vrrp.pid"),
          "--checkers_pid",
          join(n.dir, "checkers.pid"),
        ],
        { logFile: join(c.lab.logDir, `${n.name}-keepalived.log`) },
      );
    }
    // keepalived alone: every instance starts in FAULT (init_file 1), nobody holds the address.
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(await c.lab.vipConfiguredOn(), [], "no MASTER before an etcd primary exists");

    c.startAgent(n1.name);
    const first = await c.waitForLeader({ timeoutMs: 20_000 });
    assert.equal(first?.node, n1.name);
    c.startAgent(n2.name);
    c.startAgent(n3.name);
    const onLeader = async (node: string, timeoutMs: number) => {
      const t0 = performance.now();
      const ok = await pollUntil(
        async () => {
          const on = await c.lab.vipConfiguredOn();
          return on.length === 1 && on[0] === node ? true : undefined;
        },
        { timeoutMs, intervalMs: 50 },
      );
      assert.ok(ok, `the VIP is on ${node} only (now on ${JSON.stringify(await c.lab.vipConfiguredOn())})`);
      return Math.round(performance.now() - t0);
    };
    t.diagnostic(`n1 MASTER ${await onLeader(n1.name, 15_000)} ms after the check began`);
    assert.equal(readFileSync(track(n1), "utf8"), "0\n");
    assert.equal(readFileSync(track(n2), "utf8"), "1\n");
    assert.ok((await c.lab.sshHandshake("vip")).ok, "SFTP through the VIP to n1");

    // Graceful handover: n1's agent writes 1 (FAULT) and releases; n2 (priority 200) takes over.
    // Only once n2 and n3 run and follow n1: on a busy machine an agent takes seconds to start.
    assert.ok(await c.waitForStandbys([n2.name, n3.name], 30_000), "n2 and n3 are up as healthy standbys");
    await c.signalAgent(n1.name, "SIGTERM");
    const second = await c.waitForLeader({ not: n1.name, timeoutMs: 10_000 });
    assert.equal(second?.node, n2.name);
    t.diagnostic(`after SIGTERM: VIP on n2 ${await onLeader(n2.name, 15_000)} ms after the new leader appeared`);
    assert.equal(readFileSync(track(n1), "utf8"), "1\n", "the stopped agent left its keepalived in FAULT");
    assert.ok(await c.waitServing(n2.name, 10_000), "n2 serves through the VIP");

    // kill -9 of the primary's agent: its keepalived would keep the address forever (keepalived's
    // own failure mode); the fence guard writes 1 at the lease deadline, then n3 takes over.
    await c.signalAgent(n2.name, "SIGKILL");
    const third = await c.waitForLeader({ not: n2.name, timeoutMs: 15_000 });
    assert.equal(third?.node, n3.name);
    t.diagnostic(`after kill -9: VIP on n3 ${await onLeader(n3.name, 15_000)} ms after the new leader appeared`);
    assert.equal(readFileSync(track(n2), "utf8"), "1\n", "the fence guard put n2 keepalived in FAULT");
    const samples = await obs.stop();
    assert.ok(samples.length > 50, `observer samples: ${samples.length}`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
  } finally {
    await obs.stop().catch(() => undefined);
    await c.teardown();
  }
});
