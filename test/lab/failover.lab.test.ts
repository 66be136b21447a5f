/**
 * End to end in the namespace lab: 3 real agents (dist/cli/main.js), real etcd,
 * real sshd as the transfer daemon, real `ip`/arping, and an observer sampling
 * ARP answers for the VIP every 20 ms. Needs root and `npm run build`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabCluster, pollUntil, type Observer } from './harness/index.js';

const T = { timeout: 90_000 };

async function withCluster(fn: (c: LabCluster, obs: Observer) => Promise<void>, opts: Parameters<typeof LabCluster.create>[0] = {}) {
  const c = await LabCluster.create(opts);
  const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 85 });
  try {
    await fn(c, obs);
    const samples = await obs.stop();
    assert.ok(samples.length > 20, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, 'never two VIP holders on the wire');
  } finally {
    await obs.stop().catch(() => undefined);
    await c.teardown();
  }
}

test('primary host dies (processes killed, link down): a standby serves SFTP through the VIP', T, async () => {
  await withCluster(async (c) => {
    const old = (await c.leader())!;
    await c.lab.linkDown(old.node);
    await c.lab.killAllIn(c.lab.node(old.node).ns);
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next, 'a new primary was elected');
    assert.ok(next.term > old.term, 'with a higher term');
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    const sftp = await c.lab.sftpLogin('vip');
    assert.ok(sftp.ok, `real SFTP login and upload via the VIP with the pinned host key: ${sftp.stderr}`);
  });
});

test('primary partitioned from etcd only: it drops the VIP before the new primary adds it', T, async () => {
  await withCluster(async (c, obs) => {
    const old = (await c.leader())!;
    const t0 = Date.now();
    await c.lab.partitionFromEtcd(old.node);
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next, 'a new primary was elected');
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    const samples = obs.samples();
    const lastOld = obs.lastAnsweredBy(old.node, samples);
    const firstNew = obs.firstAnsweredBy(next.node, samples, t0);
    assert.ok(lastOld !== undefined && firstNew !== undefined, 'both answered at some point');
    assert.ok(lastOld < firstNew, `old primary last answered at +${lastOld - t0}ms, new first at +${firstNew - t0}ms`);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
    // Healed, the old primary stays a standby: no flapping back.
    await c.lab.healPartition(old.node);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await c.leader())?.node, next.node);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
  });
});

test('daemon crash on the primary: restarted in place, then handed over when it keeps failing', T, async () => {
  await withCluster(async (c) => {
    const first = (await c.leader())!;
    const ns = c.lab.node(first.node).ns;
    const sshdPids = async () => c.lab.pidsIn(ns, 'sshd').map(String);
    const [pid] = await sshdPids();
    assert.ok(pid, 'sshd runs on the primary');
    await c.lab.exec(ns, ['kill', '-KILL', pid!]);
    const restarted = await pollUntil(async () => ((await sshdPids()).some((p) => p !== pid) ? true : undefined), { timeoutMs: 5000, intervalMs: 20 });
    assert.ok(restarted, 'sshd restarted on the same node');
    assert.equal((await c.leader())?.node, first.node, 'no failover for one crash');
    assert.ok(await c.waitServing(first.node, 5000));
    // It keeps failing: the second crash within the window hands over to a healthy standby.
    const [pid2] = await sshdPids();
    await c.lab.exec(ns, ['kill', '-KILL', pid2!]);
    const next = await c.waitForLeader({ not: first.node, timeoutMs: 10_000 });
    assert.ok(next, 'handed over');
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    assert.deepEqual(await sshdPids(), [], 'the old primary stopped its daemon (cold mode)');
  });
});

test('SIGTERM on the primary hands over without waiting for the TTL; an agent restart adopts its lease', T, async () => {
  await withCluster(
    async (c) => {
      // ttl 5s here: a takeover well under it proves the lease was revoked, not expired.
      const old = (await c.leader())!;
      const t0 = Date.now();
      await c.signalAgent(old.node, 'SIGTERM');
      const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
      assert.ok(next);
      assert.ok(await c.waitServing(next.node, 10_000));
      const took = Date.now() - t0;
      assert.ok(took < 4000, `handover took ${took}ms, under the 5s TTL`);
      assert.deepEqual(c.lab.pidsIn(old.node, 'sshd'), [], 'old primary stopped sshd');

      // Crash-restart the agent on the current primary: it adopts its lease, same term, VIP stays.
      const term = next.term;
      await c.signalAgent(next.node, 'SIGKILL');
      c.startAgent(next.node);
      await new Promise((r) => setTimeout(r, 4000));
      const after = await c.leader();
      assert.deepEqual(after, { node: next.node, term }, 'same leader, same term: no failover');
      assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
      assert.ok((await c.lab.sshHandshake('vip')).ok);
      assert.equal(c.lab.pidsIn(next.node, 'sshd').length, 1, 'the restarted agent adopted the running sshd instead of starting a second one');
    },
    { ttl: '5s', fenceMargin: '1s' },
  );
});

test('frozen primary agent (SIGSTOP): its fence guard drops the VIP before a standby adds it', T, async () => {
  await withCluster(async (c, obs) => {
    const old = (await c.leader())!;
    const t0 = Date.now();
    await c.signalAgent(old.node, 'SIGSTOP');
    try {
      const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
      assert.ok(next, 'a standby took over from the frozen primary');
      assert.ok(await c.waitServing(next.node, 10_000));
      const samples = obs.samples();
      const lastOld = obs.lastAnsweredBy(old.node, samples);
      const firstNew = obs.firstAnsweredBy(next.node, samples, t0);
      assert.ok(lastOld !== undefined && firstNew !== undefined && lastOld < firstNew, `old last +${(lastOld ?? 0) - t0}ms, new first +${(firstNew ?? 0) - t0}ms`);
      assert.deepEqual(c.lab.pidsIn(old.node, 'sshd'), [], 'the guard stopped the frozen primary\'s sshd');
      assert.match(readFileSync(join(c.lab.node(old.node).dir, 'state', 'fence-guard.log'), 'utf8'), /fencing/);
    } finally {
      await c.signalAgent(old.node, 'SIGCONT');
    }
    // Thawed, the old agent finds its deadline long past and stays a standby.
    await new Promise((r) => setTimeout(r, 3000));
    assert.notEqual((await c.leader())?.node, old.node);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [(await c.leader())!.node]);
  });
});

test('primary agent killed (-9) and not restarted: the guard removes the VIP and stops the daemon', T, async () => {
  await withCluster(async (c) => {
    const old = (await c.leader())!;
    await c.signalAgent(old.node, 'SIGKILL');
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next);
    assert.ok(await c.waitServing(next.node, 10_000));
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node], 'the dead agent\'s VIP is gone');
    assert.deepEqual(c.lab.pidsIn(old.node, 'sshd'), [], 'and its sshd');
  });
});
