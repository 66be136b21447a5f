/**
 * End to end in the namespace lab: 3 real agents (dist/cli/main.js), real etcd,
 * real sshd as the transfer daemon, real `ip`/arping, and an observer sampling
 * ARP answers for the VIP every 20 ms. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { LabCluster, agentLoadMs, pollUntil, type Observer } from "./harness/index.js";

const T = { timeout: 180_000 };

async function withCluster(fn: (c: LabCluster, obs: Observer) => Promise<void>, opts: Parameters<typeof LabCluster.create>[0] = {}) {
  const c = await LabCluster.create(opts);
  const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 175 });
  try {
    await fn(c, obs);
    const samples = await obs.stop();
    assert.ok(samples.length > 20, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
  } finally {
    await obs.stop().catch(() => undefined);
    await c.teardown();
  }
}

test("primary host dies (processes killed, link down): a standby serves SFTP through the VIP", T, async () => {
  await withCluster(async (c) => {
    const old = (await c.leader())!;
    await c.lab.linkDown(old.node);
    await c.lab.killAllIn(c.lab.node(old.node).ns);
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next, "a new primary was elected");
    assert.ok(next.term > old.term, "with a higher term");
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    const sftp = await c.lab.sftpLogin("vip");
    assert.ok(sftp.ok, `real SFTP login and upload via the VIP with the pinned host key: ${sftp.stderr}`);
  });
});

test("primary partitioned from etcd only: it drops the VIP before the new primary adds it", T, async () => {
  await withCluster(async (c, obs) => {
    const old = (await c.leader())!;
    const t0 = Date.now();
    await c.lab.partitionFromEtcd(old.node);
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next, "a new primary was elected");
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    const samples = obs.samples();
    const lastOld = obs.lastAnsweredBy(old.node, samples);
    const firstNew = obs.firstAnsweredBy(next.node, samples, t0);
    assert.ok(lastOld !== undefined && firstNew !== undefined, "both answered at some point");
    assert.ok(lastOld < firstNew, `old primary last answered at +${lastOld - t0}ms, new first at +${firstNew - t0}ms`);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
    // Healed, the old primary stays a standby: no flapping back.
    await c.lab.healPartition(old.node);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await c.leader())?.node, next.node);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
  });
});

test("daemon crash on the primary: restarted in place, then handed over when it keeps failing", T, async () => {
  await withCluster(async (c) => {
    const first = (await c.leader())!;
    const ns = c.lab.node(first.node).ns;
    const sshdPids = async () => c.lab.sshdListeners(ns).map(String);
    const [pid] = await sshdPids();
    assert.ok(pid, "sshd runs on the primary");
    await c.lab.exec(ns, ["kill", "-KILL", pid!]);
    const restarted = await pollUntil(async () => ((await sshdPids()).some((p) => p !== pid) ? true : undefined), { timeoutMs: 5000, intervalMs: 20 });
    assert.ok(restarted, "sshd restarted on the same node");
    assert.equal((await c.leader())?.node, first.node, "no failover for one crash");
    assert.ok(await c.waitServing(first.node, 5000), "await c.waitServing(first.node, 5000)");
    // It keeps failing: the second crash within the window hands over to a healthy standby.
    const [pid2] = await sshdPids();
    await c.lab.exec(ns, ["kill", "-KILL", pid2!]);
    const next = await c.waitForLeader({ not: first.node, timeoutMs: 10_000 });
    assert.ok(next, "handed over");
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    assert.deepEqual(await sshdPids(), [], "the old primary stopped its daemon (cold mode)");
  });
});

test("SIGTERM on the primary hands over without waiting for the TTL; an agent restart adopts its lease", T, async (t) => {
  // The restart half claims the restarted agent adopts its lease before the lease runs out: that
  // needs a TTL longer than a restart takes on this machine now. Loading the agent takes ~0.7 s
  // idle, 6-10 s on a busy 2-core runner, and a whole restart (netns exec, config, API, etcd) about
  // twice that, plus up to a renew interval (ttl/4) already gone at the kill: 4x the load + 4 s.
  // The SIGTERM half does not depend on the TTL's size: it is checked against the old lease's
  // own earliest expiry, read from etcd.
  const load = await agentLoadMs();
  const ttlS = Math.max(5, Math.ceil((4 * load + 4000) / 1000));
  t.diagnostic(`agent load ${Math.round(load)} ms here: ttl ${ttlS}s`);
  await withCluster(
    async (c) => {
      const old = (await c.leader())!;
      const oldLease = await c.leaderLease();
      assert.ok(oldLease, "the leader key has a lease");
      const oldExpiry = await c.leaseEarliestExpiry(oldLease);
      assert.ok(oldExpiry !== null, "the primary's lease is alive before the SIGTERM");
      const t0 = performance.now();
      const oldAgent = c.agents.get(old.node)!;
      const exited = new Promise<number>((r) => oldAgent.once("exit", () => r(performance.now())));
      const signalled = c.signalAgent(old.node, "SIGTERM");
      // Revoked, not expired: the successor's key exists before etcd could have expired the old lease.
      const next = await c.waitForLeader({ not: old.node, timeoutMs: Math.max(0, oldExpiry - performance.now()) });
      const seen = performance.now();
      assert.ok(next, `a successor was elected before the old lease could expire (+${Math.round(oldExpiry - t0)} ms after the SIGTERM)`);
      assert.ok(seen < oldExpiry, `successor seen at +${Math.round(seen - t0)} ms, before the old lease's earliest expiry at +${Math.round(oldExpiry - t0)} ms`);
      const released = await c.lab.etcdctl(["get", "--print-value-only", `${c.prefix}/lab/control/released`], { timeoutMs: 3000 });
      const record = JSON.parse(released.stdout) as { node: string; term: number; why: string };
      assert.deepEqual([record.node, record.term, record.why], [old.node, old.term, "shutdown"], "the old primary released its term on SIGTERM");
      assert.ok(await c.waitServing(next.node, 10_000), "await c.waitServing(next.node, 10_000)");
      const serving = performance.now();
      await signalled; // returns when the agent exited, or after 10 s
      const exitedAt = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(r, 20_000))]);
      const exitMs = exitedAt === undefined ? `not by +${Math.round(performance.now() - t0)} ms` : `+${Math.round(exitedAt - t0)} ms`;
      t.diagnostic(
        `SIGTERM -> successor seen +${Math.round(seen - t0)} ms, serving +${Math.round(serving - t0)} ms, old agent exited ${exitMs}; old lease earliest expiry +${Math.round(oldExpiry - t0)} ms`,
      );
      assert.deepEqual(c.lab.sshdListeners(old.node), [], "old primary stopped sshd");

      // Crash-restart the agent on the current primary: it adopts its lease, same term, VIP stays.
      const term = next.term;
      const log = join(c.lab.logDir, `${next.node}-agent.log`);
      const logFrom = statSync(log).size;
      const lease = await c.leaderLease();
      await c.signalAgent(next.node, "SIGKILL");
      const expiry = await c.leaseEarliestExpiry(lease!);
      assert.ok(expiry !== null, "the killed agent's lease is still alive");
      const t1 = performance.now();
      c.startAgent(next.node);
      const adopted = await pollUntil(() => (readFileSync(log, "utf8").slice(logFrom).includes("adopted my lease from a previous run") ? performance.now() : undefined), {
        timeoutMs: Math.max(0, expiry - performance.now()),
        intervalMs: 100,
      });
      assert.ok(adopted, `the restarted agent adopted its lease before it could expire (+${Math.round(expiry - t1)} ms)`);
      // Its first decision after adopting: primary with the lease, same term (nothing to promote again).
      const settled = await pollUntil(() => (readFileSync(log, "utf8").slice(logFrom).includes(`the primary with the lease (term ${term})`) ? true : undefined), {
        timeoutMs: Math.max(1000, expiry - performance.now()),
        intervalMs: 100,
      });
      assert.ok(settled, "the restarted agent acts as the primary of the same term");
      t.diagnostic(`restarted agent adopted its lease +${Math.round(adopted - t1)} ms after the restart (lease earliest expiry +${Math.round(expiry - t1)} ms)`);
      const after = await c.leader();
      assert.deepEqual(after, { node: next.node, term }, "same leader, same term: no failover");
      assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node]);
      assert.ok((await c.lab.sshHandshake("vip")).ok, '(await c.lab.sshHandshake("vip")).ok');
      assert.equal(c.lab.sshdListeners(next.node).length, 1, "the restarted agent adopted the running sshd instead of starting a second one");
      const guardLog = join(c.lab.node(next.node).dir, "state", "fence-guard.log");
      assert.doesNotMatch(existsSync(guardLog) ? readFileSync(guardLog, "utf8") : "", /fencing/, "the fence guard never fenced: the restart came back within the lease");
    },
    { ttl: `${ttlS}s`, fenceMargin: "1s" },
  );
});

test("frozen primary agent (SIGSTOP): its fence guard drops the VIP before a standby adds it", T, async (t) => {
  await withCluster(async (c, obs) => {
    const old = (await c.leader())!;
    const t0 = Date.now();
    await c.signalAgent(old.node, "SIGSTOP");
    try {
      const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
      assert.ok(next, "a standby took over from the frozen primary");
      assert.ok(await c.waitServing(next.node, 10_000), "await c.waitServing(next.node, 10_000)");
      const samples = obs.samples();
      const lastOld = obs.lastAnsweredBy(old.node, samples);
      const firstNew = obs.firstAnsweredBy(next.node, samples, t0);
      assert.ok(lastOld !== undefined && firstNew !== undefined && lastOld < firstNew, `old last +${(lastOld ?? 0) - t0}ms, new first +${(firstNew ?? 0) - t0}ms`);
      // The guard stopped the daemon: nothing listens on :22 any more. (A per-connection sshd child may
      // outlive its master: the frozen agent's own ssh probe, stopped mid-banner, holds one open until
      // LoginGraceTime; sshd's children are in their own sessions, out of reach of a group kill.)
      const listening = await c.lab.exec(old.node, ["ss", "-Hltn", "sport", "=", ":22"], { timeoutMs: 5000 });
      assert.equal(listening.code, 0, listening.stderr);
      assert.equal(listening.stdout.trim(), "", "the guard stopped the frozen primary's sshd (no listener on :22)");
      assert.deepEqual(c.lab.sshdListeners(old.node), [], "no sshd listener left");
      const left = c.lab.pidsIn(old.node, "sshd");
      if (left.length > 0) t.diagnostic(`per-connection sshd children left after the fence: ${left.join(", ")}`);
      assert.match(readFileSync(join(c.lab.node(old.node).dir, "state", "fence-guard.log"), "utf8"), /fencing/);
    } finally {
      await c.signalAgent(old.node, "SIGCONT");
    }
    // Thawed, the old agent finds its deadline long past and stays a standby.
    await new Promise((r) => setTimeout(r, 3000));
    assert.notEqual((await c.leader())?.node, old.node);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [(await c.leader())!.node]);
  });
});

test("primary agent killed (-9) and not restarted: the guard removes the VIP and stops the daemon", T, async () => {
  await withCluster(async (c) => {
    const old = (await c.leader())!;
    await c.signalAgent(old.node, "SIGKILL");
    const next = await c.waitForLeader({ not: old.node, timeoutMs: 10_000 });
    assert.ok(next, "next");
    assert.ok(await c.waitServing(next.node, 10_000), "await c.waitServing(next.node, 10_000)");
    assert.deepEqual(await c.lab.vipConfiguredOn(), [next.node], "the dead agent's VIP is gone");
    assert.deepEqual(c.lab.sshdListeners(old.node), [], "and its sshd");
  });
});
