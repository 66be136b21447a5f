/**
 * `understudy status` where etcd is out of reach (issue 12): real agents, real
 * etcd (TLS+auth), the CLI run inside a node's namespace with that node's config.
 *  1. etcd reachable: read from etcd, exit 0.
 *  2. The CLI pointed at an etcd that does not answer (`--etcd` of a closed
 *     port), the node itself fine: the node's API reads etcd for it; the table
 *     says where it came from; same exit code as from etcd.
 *  3. The node partitioned from etcd (silent drop): the CLI cannot read etcd,
 *     the node's API cannot either; status prints that node's own view,
 *     labelled as not the cluster's state, exit 7.
 * Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CLI, LabCluster, NODE_FLAGS } from "./harness/index.js";

test("status without etcd: via the node's API, else the node's own view (exit 7), each labelled", { timeout: 300_000 }, async () => {
  const c = await LabCluster.create({ nodes: 2 });
  try {
    const leader = (await c.leader())!;
    const standby = c.lab.nodes.map((n) => n.name).find((n) => n !== leader.node)!;
    assert.ok(await c.waitForStandbys([standby], 60_000), `${standby} is a standby`);
    const n = c.lab.node(standby);
    const status = (...args: string[]) => c.lab.exec(n.ns, [process.execPath, ...NODE_FLAGS, CLI, "status", "--config", c.configPath(standby), ...args], { timeoutMs: 30_000 });

    const direct = await status();
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stdout, /\+ Cluster: lab \(revision \d+\)/);
    assert.doesNotMatch(direct.stdout, /^Source:/m, "read from etcd directly: no source line");

    // An etcd endpoint nobody answers on (the etcd host's port 1): only this CLI is cut off.
    const nowhere = c.lab.etcdEndpoint.split(",")[0]!.replace(/:2379$/, ":1");
    const viaApi = await status("--etcd", nowhere);
    assert.equal(viaApi.code, 0, viaApi.stderr);
    assert.match(viaApi.stderr, /US_E_ETCD_(UNREACHABLE|TLS): .*asking this node's API at http:\/\/127\.0\.0\.1:\d+ instead/);
    assert.match(viaApi.stdout, /\+ Cluster: lab \(revision \d+\)/);
    assert.match(viaApi.stdout, new RegExp(`\\| ${leader.node} +\\|[^\\n]*primary`));
    assert.match(viaApi.stdout, new RegExp(`^Source: etcd as read by the API of ${standby} \\(http://127\\.0\\.0\\.1:\\d+\\), not from here\\.$`, "m"));
    const viaApiJson = JSON.parse((await status("--etcd", nowhere, "--json")).stdout) as { source: string; leader: { node: string } };
    assert.deepEqual([viaApiJson.source, viaApiJson.leader.node], ["api", leader.node]);

    // The standby cut off from etcd: neither the CLI nor its agent can read it.
    await c.lab.partitionFromEtcd(standby);
    const own = await status();
    assert.equal(own.code, 7, `${own.stdout}\n${own.stderr}`);
    assert.match(own.stderr, /cannot read etcd either .*showing only .*'s own view/);
    assert.match(own.stdout, new RegExp(`^\\+ Node ${standby}'s own view \\(cluster lab\\): etcd is unreachable from here and from ${standby}, so this is NOT the cluster's state$`, "m"));
    assert.match(own.stdout, /\| Role +: standby/);
    assert.match(own.stdout, /\| Decision +: .*etcd unreachable/);
    const ownJson = JSON.parse((await status("--json")).stdout) as { source: string; view: { node: string; acting: string; etcdReachable: boolean } };
    assert.deepEqual([ownJson.source, ownJson.view.node, ownJson.view.acting, ownJson.view.etcdReachable], ["node", standby, "standby", false]);
    await c.lab.healPartition(standby);
  } finally {
    await c.teardown();
  }
});
