/**
 * Smoke test of the lab harness itself: namespaces, etcd, OpenSSH with a
 * shared host key, the ARP observer, a hand-made VIP move, an etcd partition,
 * a link cut, killAllIn, and a clean teardown. Needs root (ip netns).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { Lab, listNetns, pollUntil } from "./harness/index.js";

test("lab harness: etcd, sshd behind a hand-moved VIP, observer, partitions, teardown", { timeout: 60_000 }, async (t) => {
  const lab = await Lab.create({ nodes: 3, etcdTuned: true });
  t.diagnostic(`prefix ${lab.prefix} subnet ${lab.subnet}`);
  const [n1, n2] = lab.nodes;
  assert.ok(n1 && n2, "n1 && n2");
  try {
    // Shape of the lab.
    assert.match(lab.prefix, /^us[0-9a-z]{5}$/);
    assert.equal(lab.vip, `${lab.vipAddress}/24`);
    assert.match(lab.etcdEndpoint, /^https:\/\/198\.18\.\d+\.2:2379$/, "the secure etcd by default");
    assert.deepEqual(
      lab.nodes.map((n) => [n.name, n.ns, n.iface]),
      [1, 2, 3].map((i) => [`n${i}`, `${lab.prefix}-n${i}`, "eth0"]),
    );
    const ours = listNetns().filter((n) => n.startsWith(`${lab.prefix}-`));
    assert.equal(ours.length, 7, `namespaces: ${ours.join(" ")}`); // sw, etcd, n1..n3, cl, ob

    // etcd is healthy from a node namespace.
    assert.equal(await lab.etcdHealthy(n1, 2000), true, "etcd healthy from n1");
    const put = await lab.etcdctl(["put", "lab/smoke", "ok"]);
    assert.equal(put.code, 0, put.stderr);

    // sshd on n1, observer, VIP on n1.
    await lab.startSshd(n1);
    const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 50 });
    assert.notEqual(await obs.waitForHolders([], { timeoutMs: 2000 }), undefined, "nobody answers before the VIP exists");
    await lab.addVip(n1);
    const t1 = await obs.waitForHolders([n1], { timeoutMs: 3000, consecutive: 5 });
    assert.notEqual(t1, undefined, "observer sees n1 answering for the VIP");
    assert.deepEqual(await lab.vipConfiguredOn(), ["n1"]);

    const hs1 = await lab.sshHandshake("vip");
    assert.ok(hs1.ok, `handshake via VIP on n1: ${hs1.stderr}`);
    const sftp1 = await lab.sftpLogin("vip");
    assert.ok(sftp1.ok, `sftp via VIP on n1: ${sftp1.stderr}\n${sftp1.stdout}`);
    assert.ok(existsSync(`${n1.dir}/data/${sftp1.remoteName}`), "upload landed in n1 data dir");

    // Move the VIP by hand to n2 (never two holders: delete before add).
    await lab.startSshd(n2);
    const tMove = Date.now();
    await lab.delVip(n1);
    await lab.addVip(n2, { count: 2 }); // 2 GARPs 1 s apart: the first may hit the client's 1 s locktime
    const t2 = await obs.waitForHolders([n2], { timeoutMs: 3000, consecutive: 5, sinceMs: tMove });
    assert.notEqual(t2, undefined, "observer sees n2 answering for the VIP");
    const sftp2 = await lab.sftpLogin("vip");
    assert.ok(sftp2.ok, `sftp via VIP on n2 with the same known_hosts: ${sftp2.stderr}\n${sftp2.stdout}`);
    assert.ok(existsSync(`${n2.dir}/data/${sftp2.remoteName}`), "upload landed in n2 data dir");

    // Partition n2 from etcd: etcd unreachable from n2, n1 still reachable, VIP still served.
    await lab.partitionFromEtcd(n2);
    const health = await lab.etcdctl(["endpoint", "health", "--dial-timeout=1s", "--command-timeout=1s"], { ns: n2, timeoutMs: 5000 });
    assert.notEqual(health.code, 0, "etcd must be unreachable from n2 while partitioned");
    const ping = await lab.exec(n2, ["ping", "-c", "1", "-W", "1", n1.address], { timeoutMs: 3000 });
    assert.equal(ping.code, 0, `n2 still reaches n1: ${ping.stdout}${ping.stderr}`);
    const back = await lab.exec(lab.etcd, ["ping", "-c", "1", "-W", "1", n2.address], { timeoutMs: 3000 });
    assert.notEqual(back.code, 0, "etcd cannot reach n2 either");
    const hs2 = await lab.sshHandshake("vip");
    assert.ok(hs2.ok, `client still reaches the VIP on n2: ${hs2.stderr}`);
    await lab.healPartition(n2);
    const healed = await pollUntil(async () => ((await lab.etcdHealthy(n2, 1000)) ? true : undefined), { timeoutMs: 5000, intervalMs: 100 });
    assert.equal(healed, true, "etcd reachable from n2 after heal");

    // Link cut: n3 unreachable while its port is down.
    const n3 = lab.node("n3");
    await lab.linkDown(n3);
    const cut = await lab.exec(lab.client, ["ping", "-c", "1", "-W", "1", n3.address], { timeoutMs: 3000 });
    assert.notEqual(cut.code, 0, "n3 unreachable with its link down");
    await lab.linkUp(n3);
    const up = await pollUntil(async () => ((await lab.exec(lab.client, ["ping", "-c", "1", "-W", "1", n3.address], { timeoutMs: 3000 })).code === 0 ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 100,
    });
    assert.equal(up, true, "n3 reachable again after linkUp");

    // Observer verdict: one holder at a time, n1 then n2.
    const samples = await obs.stop();
    assert.ok(samples.length > 50, `observer samples: ${samples.length}`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1);
    const lastN1 = obs.lastAnsweredBy(n1, samples);
    const firstN2 = obs.firstAnsweredBy(n2, samples);
    assert.ok(lastN1 !== undefined && firstN2 !== undefined && lastN1 < firstN2, `n1 (${lastN1}) before n2 (${firstN2})`);
    const names = new Set(obs.holders(samples).flatMap((h) => h.holders));
    assert.deepEqual([...names].sort(), ["n1", "n2"]);

    // killAllIn: sshd in n1 dies.
    const killed = await lab.killAllIn(n1);
    assert.ok(killed >= 1, `killed ${killed} in n1`);
    const hs3 = await lab.sshHandshake(n1, { timeoutMs: 3000 });
    assert.equal(hs3.ok, false, "sshd on n1 gone");
  } finally {
    await lab.teardown();
  }
  assert.deepEqual(
    listNetns().filter((n) => n.startsWith(`${lab.prefix}-`)),
    [],
    "no namespaces left",
  );
  assert.equal(existsSync(lab.dir), false, "lab dir removed");
  t.diagnostic(`timings ${JSON.stringify(lab.timings, (_k, v: unknown) => (typeof v === "number" ? Math.round(v) : v))}`);
  assert.ok((lab.timings.teardownMs ?? Infinity) < 5000, "(lab.timings.teardownMs ?? Infinity) < 5000");
});

test("lab harness: a 3-member etcd cluster survives its leader being killed, and a member rejoins", { timeout: 60_000 }, async (t) => {
  const lab = await Lab.create({ nodes: 1, etcdMembers: 3, etcdTuned: true });
  try {
    assert.equal(lab.etcdHosts.length, 3);
    assert.equal(lab.etcdEndpoint.split(",").length, 3);
    const leader = await pollUntil(() => lab.etcdLeaderIndex(), { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(leader !== undefined, "an etcd leader");
    t.diagnostic(`etcd leader: ${lab.etcdHosts[leader]!.name}`);
    await lab.stopEtcdMember(leader);
    const next = await pollUntil(
      async () => {
        const i = await lab.etcdLeaderIndex();
        return i !== undefined && i !== leader ? i : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.ok(next !== undefined, "the two others elect a new leader");
    const put = await lab.etcdctl(["put", "/lab/k", "v"], { ns: lab.client, endpoints: `${lab.etcdSecure ? "https" : "http"}://${lab.etcdHosts[next]!.address}:2379` });
    assert.equal(put.code, 0, `a write with quorum 2/3: ${put.stderr}`);
    lab.startEtcdMember(leader);
    assert.ok(await pollUntil(async () => ((await lab.etcdHealthy(lab.client, 1000)) ? true : undefined), { timeoutMs: 15_000, intervalMs: 200 }), "all three healthy again");
  } finally {
    await lab.teardown();
  }
});
