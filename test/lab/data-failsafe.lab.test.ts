/**
 * Data replication goes on through an etcd outage that failsafe rides out (failsafe-design.md,
 * open question 5). The primary holds the VIP on its standby's grants; the standby cannot read
 * etcd, and keeps the write modules of the term it follows past its recency hold on its failsafe
 * promise (src/ha/follow.ts unreadHold, src/data/engine.ts `unread`): an upload made on the
 * primary 9 s into the outage reaches it. Before, the standby closed them at its first failed
 * read, so nothing was replicated until etcd returned (and a single etcd timeout under load
 * killed a running full pass).
 *
 * Real parts: two agents, one etcd member (stopped and restarted), rsync over the sync sshd and its
 * forced daemon. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import { LabCluster, pollUntil, sleep, type LabNode } from "./harness/index.js";

const TTL_MS = 4000;
/** ttl 4 s + fence_margin 1 s + request_timeout 1 s + the 2 s tick (src/ha/follow.ts unreadHoldMs). */
const UNREAD_HOLD_MS = 8000;

/** The nodes' data log lines from `from` on (the first 30), for a failure message. */
function logSince(c: LabCluster, nodes: readonly LabNode[], from: number, only = /data|ship|rsync|pass|module|receiv|batch/i): string {
  return nodes
    .flatMap((n) =>
      readFileSync(join(c.lab.logDir, `${n.name}-agent.log`), "utf8")
        .split("\n")
        .flatMap((line) => {
          try {
            const j = JSON.parse(line) as { time?: string; msg?: string };
            const t = Date.parse(j.time ?? "");
            return t >= from && only.test(j.msg ?? "") ? [{ t, text: `${n.name} +${t - from}ms ${j.msg}` }] : [];
          } catch {
            return [];
          }
        }),
    )
    .sort((a, b) => a.t - b.t)
    .slice(0, 30)
    .map((l) => l.text)
    .join("\n");
}

test("failsafe on, etcd down: an upload on the holding primary still reaches the standby, whose write module stays open", { timeout: 180_000 }, async (t) => {
  const c = await LabCluster.create(
    dataCluster({
      nodes: 2,
      start: false,
      priorities: [300, 100],
      ttl: `${TTL_MS}ms`,
      fenceMargin: "1000ms",
      electionYaml: "failsafe: on",
    }),
  );
  const [n1, n2] = c.lab.nodes as [LabNode, LabNode];
  const arrives = (name: string, body: Buffer, timeoutMs: number) =>
    pollUntil(async () => (existsSync(join(data(n2), name)) && readFileSync(join(data(n2), name)).equals(body) ? Date.now() : undefined), { timeoutMs, intervalMs: 50 });
  try {
    c.startAgent(n1.name);
    const primary = await c.waitForLeader({ timeoutMs: 20_000 });
    assert.equal(primary?.node, n1.name);
    c.startAgent(n2.name);
    assert.ok(await c.waitForStandbys([n2.name], 30_000), "the standby is up");
    assert.ok(await c.waitServing(n1.name, 10_000), "n1 serves");
    const listed = await pollUntil(
      async () => {
        const r = await c.lab.etcdctl(["get", "--print-value-only", `${c.prefix}/lab/failsafe/members`], { timeoutMs: 3000 });
        return r.stdout.includes(`"term":${primary!.term}`) && r.stdout.includes(`"${n2.name}"`) ? true : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.ok(listed, "failsafe/members lists both nodes in n1's term");
    const warm = Buffer.from("in sync first\n");
    writeFileSync(join(data(n1), "warm.txt"), warm);
    assert.ok(await arrives("warm.txt", warm, 30_000), "replication works before the outage");

    await c.lab.stopEtcdMember(0);
    const downAt = Date.now();
    // Past the lease: from here n1 serves only on n2's grants. Past n2's hold after its last read
    // (ttl + fence_margin + request_timeout + tick = 8 s here): n2 keeps receiving on its promise alone.
    await sleep(TTL_MS + 1000);
    assert.deepEqual(await c.lab.vipConfiguredOn(), [n1.name], "n1 holds the VIP one lease period into the outage (failsafe)");
    await sleep(Math.max(0, downAt + UNREAD_HOLD_MS + 1000 - Date.now()));
    assert.deepEqual(await c.lab.vipConfiguredOn(), [n1.name], "and past n2's hold");
    const body = Buffer.alloc(256 * 1024, 7);
    const wroteAt = Date.now();
    writeFileSync(join(data(n1), "during-outage.bin"), body);
    const landed = await arrives("during-outage.bin", body, 15_000);
    assert.equal(await c.lab.etcdHealthy(c.lab.client, 1500), false, "etcd was down all along");
    assert.ok(landed, `the upload made during the outage is on the standby; the agents' log lines since etcd went down:\n${logSince(c, [n1, n2], downAt)}`);
    const n2log = readFileSync(join(c.lab.logDir, `${n2.name}-agent.log`), "utf8")
      .split("\n")
      .filter((l) => l.includes("write modules closed") || l.includes("killed"));
    assert.deepEqual(n2log, [], "n2 closed no write module and killed no session");
    const said = logSince(c, [n2], downAt, /^data: etcd unread/);
    assert.match(said, /data: etcd unread, the write modules stay as they are: failsafe: promised n1/, "n2 failed its reads and kept receiving on its failsafe promise");
    t.diagnostic(`etcd down +${wroteAt - downAt}ms: the upload was on n2 ${landed - wroteAt}ms after it was written on n1`);

    c.lab.startEtcdMember(0);
    assert.ok(await pollUntil(async () => ((await c.lab.etcdHealthy(c.lab.client, 1500)) ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 }), "etcd is back");
    const after = Buffer.from("after the outage\n");
    writeFileSync(join(data(n1), "after.txt"), after);
    assert.ok(await arrives("after.txt", after, 30_000), "replication goes on once etcd is back");
    assert.equal((await c.leader())?.node, n1.name, "n1 is still the primary");
  } finally {
    await c.teardown();
  }
});
