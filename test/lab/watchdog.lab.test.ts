/**
 * watchdog.mode in the namespace lab, with real agents, their real fence
 * guards and real etcd, on a host where the watchdog device does not exist
 * (this machine's kernel has no watchdog driver and cannot load modules): a
 * `required` node refuses to campaign and says why everywhere an operator
 * looks; `automatic` nodes serve without one. The device path is
 * /dev/watchdog9 so that a CI host that does have a watchdog is never armed by
 * a test (a killed guard would reset it). The device logic itself (timeout,
 * feeding bound, magic close) is covered with a strict fake in
 * test/unit/fence/fence-watchdog.test.ts.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { LabCluster, pollUntil } from "./harness/index.js";

const DEVICE = "/dev/watchdog9";

test(
  "watchdog required but unavailable: the node never campaigns and says why; automatic nodes fail over without one",
  { timeout: 120_000, skip: existsSync(DEVICE) ? `${DEVICE} exists on this host` : false },
  async () => {
    const c = await LabCluster.create({
      ttl: "5s",
      fenceMargin: "1s",
      // n1 would win every election on priority; only the watchdog keeps it out.
      priorities: [300, 100, 100],
      extraYaml: (n) => `watchdog: { mode: ${n.name === "n1" ? "required" : "automatic"}, device: ${DEVICE} }`,
    });
    try {
      const first = await c.waitForLeader({ timeoutMs: 20_000 });
      assert.ok(first, "a primary was elected");
      assert.notEqual(first.node, "n1", "the required node did not take the role");
      assert.ok(await c.waitServing(first.node, 10_000), `${first.node} serves without a watchdog (automatic)`);

      // Why, in the member key (understudy status) and in the metrics.
      const why = /"notReady": "watchdog \/dev\/watchdog9 unavailable: cannot read \/sys\/class\/watchdog\/watchdog9\/nowayout/;
      const status = await pollUntil(
        async () => {
          const s = await c.status(true);
          return why.test(s) ? s : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 250 },
      );
      assert.ok(status, `understudy status shows n1's reason: ${await c.status(true)}`);
      const fetchText = "fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))";
      const metrics = await c.lab.exec(c.lab.client, [process.execPath, "-e", fetchText, `${c.apiUrl("n1")}/metrics`], { timeoutMs: 5000 });
      assert.match(metrics.stdout, /understudy_watchdog_state\{[^}]*state="unavailable"[^}]*\} 1/);
      assert.match(metrics.stdout, /understudy_watchdog_state\{[^}]*state="active"[^}]*\} 0/);

      // The primary's own guard looked for the device and said it is not there.
      const guardLog = readFileSync(join(c.lab.node(first.node).dir, "state", "fence-guard.log"), "utf8");
      assert.match(guardLog, /watchdog \/dev\/watchdog9 unavailable: cannot read/);
      const agentLog = readFileSync(join(c.lab.logDir, `${first.node}-agent.log`), "utf8");
      assert.match(agentLog, /promoting without it \(watchdog\.mode automatic\)/);

      // Kill the primary's agent: the other automatic node takes over, never n1.
      await c.signalAgent(first.node, "SIGKILL");
      const next = await c.waitForLeader({ not: first.node, timeoutMs: 15_000 });
      assert.ok(next, "a standby took over");
      assert.notEqual(next.node, "n1", "still not the node whose watchdog is required and missing");
      assert.ok(await c.waitServing(next.node, 10_000), "await c.waitServing(next.node, 10_000)");
    } finally {
      await c.teardown();
    }
  },
);
