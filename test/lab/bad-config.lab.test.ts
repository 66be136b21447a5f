/**
 * The agent refuses a bad config before touching anything: run the real CLI
 * inside a lab node with each broken file and check the coded error, the exit
 * code, and that nothing started (no sshd, no VIP, no keys in etcd).
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, Lab, LabCluster } from "./harness/index.js";

const cases: { name: string; edit: (yaml: string) => string; code: string; mentions: RegExp[] }[] = [
  { name: "unknown key", edit: (y) => y.replace("cluster: lab", "cluster: lab\nclsuter: typo"), code: "US_E_CONFIG_INVALID", mentions: [/clsuter: unknown key/, /"typo"/] },
  { name: "ttl below 1s", edit: (y) => y.replace(/ttl: [^,]+,/, "ttl: 500ms,"), code: "US_E_CONFIG_TIMING", mentions: [/election\.ttl/, /500ms/] },
  { name: "fence margin not below ttl", edit: (y) => y.replace(/fence_margin: [^,]+,/, "fence_margin: 2s,"), code: "US_E_CONFIG_TIMING", mentions: [/election\.fence_margin/, /2000ms/] },
  { name: "bad CIDR", edit: (y) => y.replace(/address: (198\.18\.\d+\.100)\/24/, "address: $1/33"), code: "US_E_CONFIG_INVALID", mentions: [/vip\.address/, /\/33/] },
  { name: "missing interface", edit: (y) => y.replace("interface: eth0", "interface: eth9"), code: "US_E_CONFIG_INTERFACE", mentions: [/vip\.interface/, /eth9/] },
  { name: "wrong type", edit: (y) => y.replace(/priority: \d+/, "priority: high"), code: "US_E_CONFIG_INVALID", mentions: [/node\.priority/, /"high"/] },
];

test("bad configs: coded error naming key and value, exit 2, nothing started", { timeout: 120_000 }, async (t) => {
  const c = await LabCluster.create({ nodes: 1, start: false });
  const lab: Lab = c.lab;
  try {
    const n1 = lab.node("n1");
    const good = readFileSync(c.configPath("n1"), "utf8");
    for (const k of cases) {
      await t.test(k.name, async () => {
        const file = join(n1.dir, `bad-${k.name.replace(/\W+/g, "-")}.yaml`);
        const text = k.edit(good);
        assert.notEqual(text, good, "the edit applied");
        writeFileSync(file, text);
        const r = await lab.exec(n1, [process.execPath, CLI, "agent", "--config", file], { timeoutMs: 20_000 });
        assert.equal(r.code, 2, `exit code 2; stderr: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(k.code));
        for (const m of k.mentions) assert.match(r.stderr, m);
        assert.match(r.stderr, new RegExp(file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")), "names the file");
        assert.deepEqual(lab.pidsIn(n1, "sshd"), [], "no daemon started");
        assert.deepEqual(await lab.vipConfiguredOn(), [], "no VIP added");
        const keys = await lab.etcdctl(["get", "--prefix", "/understudy", "--keys-only"]);
        assert.equal(keys.code, 0);
        assert.equal(keys.stdout.trim(), "", "nothing written to etcd");
      });
    }
    // The same file, corrected, starts: the failures above were the config, not the lab.
    const check = await lab.exec(n1, [process.execPath, CLI, "config", "check", c.configPath("n1")], { timeoutMs: 20_000 });
    assert.equal(check.code, 0, check.stderr);
  } finally {
    await c.teardown();
  }
});
