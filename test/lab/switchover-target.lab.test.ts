/**
 * A planned move asks its target first (src/ha/target-check.ts): with the
 * target's agent frozen (SIGSTOP), its lease and healthy member key live on
 * for election.ttl (10 s here), yet the primary keeps the role, the VIP and
 * its term, and `understudy switchover` says why and exits 3; a switchover
 * naming no target, with that frozen node the best candidate, passes over it
 * and goes to the next; once the agent runs again a switchover to it goes
 * through. Real agents, etcd, sshd and
 * the CLI over the REST API in the lab's namespaces. Needs root and
 * `npm run build`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LabCluster } from "./harness/index.js";
import { pollUntil } from "./harness/exec.js";
import { agentLog } from "../../bench/failover/lib.js";

/** Poll until `node`'s member key hangs on a lease etcd will keep for at least `leftMs` more. */
async function memberLeaseLeft(c: LabCluster, node: string, leftMs: number, timeoutMs: number): Promise<boolean> {
  const ok = await pollUntil(
    async () => {
      const r = await c.lab.etcdctl(["get", `${c.prefix}/lab/members/${node}`, "-w", "json"], { timeoutMs: 3000 });
      // Lease ids are 64-bit: read the digits, JSON.parse would round them to a double.
      const lease = /"lease":(\d+)/.exec(r.stdout)?.[1];
      if (lease === undefined) return undefined;
      const earliest = await c.leaseEarliestExpiry(BigInt(lease).toString(16));
      return earliest !== null && earliest - performance.now() >= leftMs ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
  return ok === true;
}

test("switchover to a frozen target: not handed over, the primary keeps serving; unnamed, it passes over it; after SIGCONT it goes through", { timeout: 240_000 }, async () => {
  const c = await LabCluster.create({ ttl: "10s", fenceMargin: "2s", priorities: [300, 200, 100] });
  try {
    const first = await c.waitForLeader({ timeoutMs: 30_000, term: () => true });
    assert.ok(first, "a leader within 30 s");
    assert.ok(await c.waitServing(first.node, 15_000), `${first.node} serves through the VIP`);
    // Priorities 300 / 200 / 100: the first standby found is the best candidate, the other the next.
    const others = c.lab.nodes.map((n) => n.name).filter((n) => n !== first.node);
    const [target, next] = [others[0]!, others[1]!];
    assert.ok(await c.waitForStandbys(others, 20_000), `${others.join(", ")} are healthy standbys`);

    await c.signalAgent(target, "SIGSTOP");
    let resumed = false;
    try {
      const r = await c.cli(["switchover", "--to", target, "--reason", "frozen target"], { via: first.node, timeoutMs: 60_000 });
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`switchover cancelled: ${target} did not answer that it is ready to take over within 5s`), r.stdout);
      const after = await c.leader();
      assert.deepEqual([after?.node, after?.term], [first.node, first.term], "the primary kept the role in its term");
      assert.ok(await c.waitServing(first.node, 3000), `${first.node} still serves through the VIP`);
      assert.ok(!agentLog(c.lab, first.node).some((l) => /^stepping down/.test(l.msg)), `${first.node} never stepped down`);
      const asked = agentLog(c.lab, first.node).filter((l) => l.msg.startsWith(`switchover target ${target}: not ready`));
      assert.ok(asked.length >= 2, `asked ${target} again after each failed ask (${asked.length} failures logged)`);

      // No target named: frozen again (a fresh lease: its key outlives the move), the best candidate is
      // asked once, passed over, and the next takes the role.
      await c.signalAgent(target, "SIGCONT");
      assert.ok(await c.waitForStandbys(others, 20_000), `${others.join(", ")} are healthy standbys again`);
      // Its member key may still hang on the lease it held before the first freeze (7-9 s old): wait
      // until that key's lease has most of its 10 s left, so it outlives the move below.
      assert.ok(await memberLeaseLeft(c, target, 7000, 20_000), `${target}'s member key on a renewed lease`);
      await c.signalAgent(target, "SIGSTOP");
      const unnamed = await c.cli(["switchover", "--reason", "any standby"], { via: first.node, timeoutMs: 60_000 });
      assert.equal(unnamed.code, 0, unnamed.stdout + unnamed.stderr);
      const moved = await c.leader();
      assert.equal(moved?.node, next, `${next} took the role`);
      assert.ok(await c.waitServing(next, 10_000), `${next} serves through the VIP`);
      assert.ok(
        agentLog(c.lab, first.node).some((l) => new RegExp(`^switchover: handing over to ${next} \\(.*${target} passed over: it answered it is not ready`).test(l.msg)),
        `the move named ${target} as passed over`,
      );
      await c.signalAgent(target, "SIGCONT");
      resumed = true;

      assert.ok(await c.waitForStandbys([target], 20_000), `${target} is a healthy standby again`);
      const again = await c.cli(["switchover", "--to", target, "--reason", "target back"], { via: next, timeoutMs: 60_000 });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.equal((await c.leader())?.node, target);
      assert.ok(await c.waitServing(target, 10_000), `${target} serves through the VIP`);
      assert.ok(
        agentLog(c.lab, next).some((l) => new RegExp(`^switchover: handing over to ${target} \\(${target} answered it is a healthy standby`).test(l.msg)),
        "the move said what the target answered",
      );
    } finally {
      if (!resumed) await c.signalAgent(target, "SIGCONT");
    }
  } finally {
    await c.teardown();
  }
});
