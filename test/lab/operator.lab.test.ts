/**
 * Operator control and observability end to end: a real Prometheus scraping
 * the agents, a real HAProxy checking /primary, and the understudy CLI driving
 * switchovers, a scheduled switchover, a forced failover and automatic failback
 * through the REST API. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { LabCluster, pollUntil, startHaproxy, startPrometheus } from "./harness/index.js";
import { agentLog } from "../../bench/failover/lib.js";

const T = { timeout: 240_000 };

/** Which node's SFTP directory an upload through `port` on 127.0.0.1 (HAProxy) landed in. */
async function uploadVia(c: LabCluster, port: number): Promise<string | undefined> {
  const r = await c.lab.sftpLogin("127.0.0.1" as never, { port });
  if (!r.ok) return undefined;
  return c.lab.nodes.find((n) => existsSync(join(n.dir, "data", r.remoteName)))?.name;
}

test("Prometheus sees exactly one primary before and after a failover; HAProxy follows a CLI switchover; hooks fire", T, async () => {
  // post_promote hook: leaves a file named after the node and term (the hook gets both in its environment).
  const c = await LabCluster.create({
    extraYaml: (n) => `hooks: { post_promote: [/usr/bin/env, --, /usr/bin/touch, ${n.dir}/promoted] }`,
  });
  try {
    const prom = await startPrometheus(c.lab);
    await startHaproxy(c.lab, 2222);
    // The client pins the shared host key for the HAProxy frontend too.
    const key = readFileSync(c.lab.hostKeyPub, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    appendFileSync(c.lab.knownHosts, `[127.0.0.1]:2222 ${key}\n`);

    const primaries = async () => (await prom.query('understudy_role{role="primary"} == 1')).map((s) => s.metric.node).sort();
    // Compared with the leader key read at each check, not with the one read at start: on a busy
    // 2-core machine (ttl 2s) a starved renewal may fence the first primary while Prometheus and
    // HAProxy start (the product's job; the wire check is in failover.lab.test.ts).
    const leaderNow = async () => (await c.leader())?.node;
    const seen = await pollUntil(
      async () => {
        const p = await primaries();
        const l = await leaderNow();
        return p.length === 1 && p[0] === l && (await prom.query("up == 1")).length === 3 ? p : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    assert.ok(seen, "PromQL: exactly one primary, the leader");
    assert.equal((await prom.query("sum(understudy_vip_held)"))[0]?.value[1], "1");

    const landed = await pollUntil(
      async () => {
        const at = await uploadVia(c, 2222);
        return at !== undefined && at === (await leaderNow()) ? at : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.ok(landed, "HAProxy routes SFTP to the primary");
    const first = (await c.leader())!;

    // CLI switchover to a named standby; it follows the switchover to the end.
    const target = c.lab.nodes.map((n) => n.name).find((n) => n !== first.node)!;
    const sw = await c.cli(["switchover", "--to", target, "--reason", "lab test", "--requested-by", "alice"]);
    assert.equal(sw.code, 0, sw.stdout + sw.stderr);
    assert.match(sw.stdout, new RegExp(`switchover done: ${target} is the primary \\(term \\d+\\); handover took \\d+ ms`));
    // Every agent states its lease, so the key went to the target in the release's txn: a new term, no campaign.
    const moved = (await c.leader())!;
    assert.ok(moved.node === target && moved.term > first.term, JSON.stringify({ first, moved }));
    const handed = agentLog(c.lab, first.node).filter((e) => e.msg === "handed the leader key over");
    assert.ok(
      handed.some((e) => e.to === target && e.next_term === moved.term),
      JSON.stringify(handed),
    );
    const targetLog = agentLog(c.lab, target);
    assert.ok(!targetLog.some((e) => e.msg === "won the election" && e.term === moved.term), "the target did not campaign for the new term");
    assert.ok(
      targetLog.some((e) => e.msg.startsWith(`taking over: the leader key was handed over to me (term ${moved.term})`)),
      JSON.stringify(targetLog.filter((e) => e.msg.startsWith("taking over")).map((e) => e.msg)),
    );
    const routed = await pollUntil(async () => ((await uploadVia(c, 2222)) === target ? true : undefined), { timeoutMs: 10_000, intervalMs: 200 });
    assert.ok(routed, `HAProxy routes SFTP to ${target} after the switchover`);
    const hooked = await pollUntil(() => (existsSync(join(c.lab.node(target).dir, "promoted")) ? true : undefined), { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(hooked, `post_promote hook ran on ${target}`);

    // Unplanned failover: the primary host dies.
    await c.lab.linkDown(target);
    await c.lab.killAllIn(c.lab.node(target).ns);
    const next = await c.waitForLeader({ not: target, timeoutMs: 15_000 });
    assert.ok(next, "next");
    const after = await pollUntil(
      async () => {
        const p = await primaries();
        return p.length === 1 && p[0] === next.node ? p : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    assert.deepEqual(after, [next.node], "PromQL: exactly one primary after the failover");
    assert.equal((await prom.query("up == 0"))[0]?.metric.instance?.startsWith(c.lab.node(target).address), true, "the dead node is down for Prometheus");
    const routed2 = await pollUntil(async () => ((await uploadVia(c, 2222)) === next.node ? true : undefined), { timeoutMs: 10_000, intervalMs: 200 });
    assert.ok(routed2, "HAProxy routes to the new primary");

    const h = await c.cli(["history", "--json"], { via: next.node });
    const events = JSON.parse(h.stdout) as { kind: string; from: string | null; to: string | null; requestedBy?: string }[];
    assert.ok(
      events.some((e) => e.kind === "switchover" && e.from === first.node && e.to === target && e.requestedBy === "alice"),
      h.stdout,
    );
    assert.ok(
      events.some((e) => e.kind === "failover" && e.from === target && e.to === next.node),
      h.stdout,
    );
  } finally {
    await c.teardown();
  }
});

test("CLI: token required; forced failover refused without --force; scheduled switchover; automatic failback", T, async () => {
  const c = await LabCluster.create({
    priorities: [300, 200, 100],
    extraYaml: () => "failback: { policy: auto, preferred: n1, delay: 3s }",
    // n3 fails its readiness check: not a candidate unless forced.
    daemonYaml: (n) => (n.name === "n3" ? "  check: [/bin/false]\n  check_interval: 1s" : ""),
  });
  try {
    assert.ok(await c.waitForLeader({ timeoutMs: 15_000, term: () => true }), "await c.waitForLeader({ timeoutMs: 15_000, term: () => true })");
    const atN1 = await pollUntil(async () => ((await c.leader())?.node === "n1" ? true : undefined), { timeoutMs: 15_000, intervalMs: 200 });
    assert.ok(atN1, "the preferred node n1 is (or fails back to being) primary");

    const noToken = await c.cli(["pause"], { token: false });
    assert.equal(noToken.code, 4, noToken.stdout + noToken.stderr);
    assert.match(noToken.stdout, /US_E_API_UNAUTHORIZED/);

    const refused = await c.cli(["failover", "--to", "n3"]);
    assert.equal(refused.code, 3, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /n3 is not healthy or not ready; repeat with force/);
    assert.equal((await c.leader())?.node, "n1");

    // Scheduled switchover to n2 three seconds after the request lands. The CLI itself takes
    // 0.3 s idle and several seconds on a busy 2-core machine (the `failover` call above is the
    // baseline, measured in this run): `at` is 3 s plus twice that from now, so it is in the future
    // when the API checks it.
    const atMs = Date.now() + 3000 + 2 * refused.ms;
    const sched = await c.cli(["switchover", "--to", "n2", "--at", new Date(atMs).toISOString()]);
    assert.equal(sched.code, 0, sched.stdout + sched.stderr);
    assert.match(sched.stdout, /requested for/);
    // Not before its time: read the leader key 1.5 s before `at`; the read must end before `at`.
    await new Promise((r) => setTimeout(r, Math.max(0, atMs - 1500 - Date.now())));
    assert.equal((await c.leader())?.node, "n1", "not before its time");
    assert.ok(Date.now() < atMs, `the check ran before the scheduled time (${Date.now() - atMs} ms late)`);
    const atN2 = await pollUntil(async () => ((await c.leader())?.node === "n2" ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
    assert.ok(atN2, "the scheduled switchover happened");

    // failback policy auto: n1 is preferred and healthy; n2 hands back after the 3 s delay.
    const back = await pollUntil(async () => ((await c.leader())?.node === "n1" ? true : undefined), { timeoutMs: 20_000, intervalMs: 100 });
    assert.ok(back, "failed back to n1");
    // Timed from the agents' own history records, not from this test's polling (which lags under load).
    // The new primary writes its record SWITCHOVER_SETTLE_MS after it began serving: wait for it.
    type Event = { kind: string; at: string; to: string | null };
    let events: Event[] = [];
    // Events are oldest first; a failback may also have happened at bootstrap (if n2 or n3 won it): take the one after the switchover.
    const pair = (): { switched: Event; failedBack: Event } | undefined => {
      const si = events.findIndex((e) => e.kind === "switchover" && e.to === "n2");
      const failedBack = si < 0 ? undefined : events.slice(si + 1).find((e) => e.kind === "failback" && e.to === "n1");
      return failedBack ? { switched: events[si]!, failedBack } : undefined;
    };
    const recorded = await pollUntil(
      async () => {
        events = JSON.parse((await c.cli(["history", "--json"])).stdout) as Event[];
        return pair();
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.ok(recorded, JSON.stringify(events));
    const { switched, failedBack } = recorded;
    const waited = Date.parse(failedBack.at) - Date.parse(switched.at);
    assert.ok(waited >= 2800, `failback waited for the 3 s delay (${waited} ms between the two history records)`);

    // Forced failover to the not-ready n3 is accepted.
    const forced = await c.cli(["failover", "--to", "n3", "--force", "--reason", "drill"]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /failover done: n3 is the primary/);

    const h = JSON.parse((await c.cli(["history", "--json"])).stdout) as { kind: string; to: string | null; requestedBy?: string }[];
    assert.ok(
      h.some((e) => e.kind === "failback" && e.to === "n1" && e.requestedBy === "policy on n2"),
      JSON.stringify(h),
    );
    assert.ok(
      h.some((e) => e.kind === "failover" && e.to === "n3"),
      JSON.stringify(h),
    );
    const status = await c.status();
    assert.match(status, /n3/);
  } finally {
    await c.teardown();
  }
});
