/**
 * Failsafe mode end to end (docs/failsafe-design.md): 3 real agents with
 * `election.failsafe: on`, a real 3-member etcd (TLS + auth, LAN-tuned), real
 * sshd behind the VIP, and an observer sampling ARP answers for the VIP every
 * 20 ms. An etcd quorum loss (SIGKILL of the raft leader and one more member)
 * held for four lease periods: the primary keeps the VIP and serves SFTP
 * throughout on its standbys' grants, the observer never sees two holders, and
 * when quorum returns the same node leads in the same term. Without failsafe the
 * same fault fences the primary within ttl - fence_margin (docs/reliability.md).
 * Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Lab, LabCluster, pollUntil, sleep } from "./harness/index.js";

const TTL_MS = 3000;
const MARGIN_MS = 1000;

test("failsafe on, etcd quorum lost for 4 lease periods: the primary keeps serving, never two VIP holders, same term after", { timeout: 300_000 }, async () => {
  const lab = await Lab.create({ nodes: 3, etcdTuned: true, etcdMembers: 3 });
  let c: LabCluster | undefined;
  const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 280 });
  try {
    c = await LabCluster.create({ lab, ttl: `${TTL_MS}ms`, fenceMargin: `${MARGIN_MS}ms`, priorities: [300, 200, 100], electionYaml: "failsafe: on" });
    const before = (await c.leader())!;
    assert.ok(
      await c.waitForStandbys(
        ["n1", "n2", "n3"].filter((n) => n !== before.node),
        30_000,
      ),
      "both standbys published their member keys (with their API URLs)",
    );
    assert.ok(await c.waitServing(before.node, 10_000), "await c.waitServing(before.node, 10_000)");

    // Quorum loss: the raft leader and one more member, as the chaos suite's etcd_quorum_loss.
    const etcdLeader = (await lab.etcdLeaderIndex()) ?? 0;
    const victims = [etcdLeader, [0, 1, 2].find((i) => i !== etcdLeader)!];
    const lostAt = Date.now();
    for (const i of victims) await lab.stopEtcdMember(i);
    assert.equal(await lab.etcdHealthy(lab.client, 1500), false, "etcd has no quorum");

    // Four lease periods: without failsafe the primary fences ttl - margin after its last renewal.
    const checks: { atMs: number; vipOn: string[]; sftp: boolean }[] = [];
    while (Date.now() - lostAt < 4 * TTL_MS) {
      const vipOn = await lab.vipConfiguredOn();
      const sftp = (await lab.sshHandshake("vip", { timeoutMs: 3000 })).ok;
      checks.push({ atMs: Date.now() - lostAt, vipOn, sftp });
      await sleep(250);
    }
    const late = checks.filter((k) => k.atMs > TTL_MS);
    assert.ok(late.length >= 3, `checked past one lease period (${checks.length} checks)`);
    for (const k of checks) assert.deepEqual(k.vipOn, [before.node], `+${k.atMs}ms: the VIP stays on ${before.node} only`);
    const served = late.filter((k) => k.sftp).length;
    assert.ok(served >= late.length - 1 && late.at(-1)!.sftp, `SFTP through the VIP past one lease period: ${served} of ${late.length} handshakes`);
    const log = readFileSync(join(lab.logDir, `${before.node}-agent.log`), "utf8");
    assert.match(log, /failsafe: 2 of 2 member\(s\) granted/, "the primary held on its standbys' grants");
    assert.doesNotMatch(log, /fencing: lease deadline passed/, "and never fenced");

    // Quorum back: the lease survived (etcd's new leader extends it), so the same node goes on in the same term.
    for (const i of victims) lab.startEtcdMember(i);
    assert.ok(await pollUntil(async () => ((await lab.etcdHealthy(lab.client, 1500)) ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 }), "etcd healthy again");
    await sleep(2 * TTL_MS);
    const after = await c.leader();
    assert.deepEqual(after, before, "same leader, same term: nothing failed over");
    assert.ok(await c.waitServing(before.node, 10_000), "await c.waitServing(before.node, 10_000)");

    const samples = await obs.stop();
    assert.ok(samples.length > 100, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
    const gaps = obs.silentPeriods(samples, lostAt).filter((g) => g.to - g.from > 1000);
    assert.deepEqual(gaps, [], "the VIP never went silent for more than a second during the outage");
  } finally {
    await obs.stop().catch(() => undefined);
    if (c) await c.teardown();
    else await lab.teardown();
  }
});

test("failsafe on, the primary cut off from a working etcd: it serves on its standbys' grants, then wins its key back under a new term; the VIP never moves", { timeout: 300_000 }, async () => {
  const lab = await Lab.create({ nodes: 3, etcdTuned: true, etcdMembers: 3 });
  let c: LabCluster | undefined;
  const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 280 });
  try {
    c = await LabCluster.create({ lab, ttl: `${TTL_MS}ms`, fenceMargin: `${MARGIN_MS}ms`, priorities: [300, 200, 100], electionYaml: "failsafe: on" });
    const before = (await c.leader())!;
    const standbys = ["n1", "n2", "n3"].filter((n) => n !== before.node);
    assert.ok(await c.waitForStandbys(standbys, 30_000), "both standbys published their member keys (with their API URLs)");
    assert.ok(await c.waitServing(before.node, 10_000), "await c.waitServing(before.node, 10_000)");

    // Only the primary loses etcd; the standbys still read it and see its key expire.
    const cutAt = Date.now();
    await lab.partitionFromEtcd(before.node);
    const vacant = await pollUntil(async () => ((await c!.leader()) === null ? true : undefined), { timeoutMs: 4 * TTL_MS, intervalMs: 100 });
    assert.ok(vacant, "the primary's lease expired in etcd: the leader key is vacant");
    const vacantAtMs = Date.now() - cutAt;
    // Two more lease periods with the key vacant: without failsafe a standby would have promoted by now.
    const checks: { atMs: number; vipOn: string[]; sftp: boolean }[] = [];
    while (Date.now() - cutAt < vacantAtMs + 2 * TTL_MS) {
      checks.push({ atMs: Date.now() - cutAt, vipOn: await lab.vipConfiguredOn(), sftp: (await lab.sshHandshake("vip", { timeoutMs: 3000 })).ok });
      await sleep(250);
    }
    for (const k of checks) assert.deepEqual(k.vipOn, [before.node], `+${k.atMs}ms: the VIP stays on ${before.node} only`);
    assert.ok(checks.filter((k) => k.sftp).length >= checks.length - 1, `SFTP through the VIP while the key was vacant: ${checks.filter((k) => k.sftp).length} of ${checks.length}`);
    assert.equal(await c.leader(), null, "nobody took the vacant key: every standby promised");
    for (const s of standbys) assert.match(readFileSync(join(lab.logDir, `${s}-agent.log`), "utf8"), /not campaigning: I promised/, `${s} held its campaign on its promise`);

    // etcd reachable again: E3b, the key won back under a new term before anything else.
    await lab.healPartition(before.node);
    const back = await pollUntil(
      async () => {
        const l = await c!.leader();
        return l && l.node === before.node && l.term > before.term ? l : undefined;
      },
      { timeoutMs: 4 * TTL_MS, intervalMs: 100 },
    );
    assert.ok(back, `${before.node} leads again under a new term (was ${before.term})`);
    // The agent logs the re-acquisition after etcd answers its campaign, so the key can be seen first.
    const logOf = () => readFileSync(join(lab.logDir, `${before.node}-agent.log`), "utf8");
    const reacquired = await pollUntil(async () => (/failsafe: re-acquired the leader key under a new term/.test(logOf()) ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 100,
    });
    const story = logOf()
      .split("\n")
      .filter((l) => /failsafe|fenc|campaign|election|grant|deadline/.test(l))
      .slice(-20)
      .join("\n");
    assert.ok(reacquired, `${before.node} won its key back through the failsafe return (E3b), not a fence and a new election:\n${story}`);
    assert.deepEqual(await lab.vipConfiguredOn(), [before.node]);
    assert.ok(await c.waitServing(before.node, 10_000), "await c.waitServing(before.node, 10_000)");

    const samples = await obs.stop();
    assert.ok(samples.length > 100, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
    assert.deepEqual(
      obs.silentPeriods(samples, cutAt).filter((g) => g.to - g.from > 1000),
      [],
      "the VIP never went silent for more than a second",
    );
  } finally {
    await obs.stop().catch(() => undefined);
    if (c) await c.teardown();
    else await lab.teardown();
  }
});
