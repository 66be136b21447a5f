/**
 * A deposed primary's batch already in flight cannot land on the node promoted after it
 * (issue 14: "a node that loses leadership stops shipping at once"). The term-scoped write
 * modules fence a deposed primary at session start only; its agent frozen (SIGSTOP), its
 * rsync child goes on. Here the batch carries v1 of a file, slowed to a crawl by tc; the
 * primary's agent is frozen, the standby takes over, a partner writes v2 of the same file on
 * the new primary, then the link is freed. Before, the stale rsync finished and renamed v1
 * over v2 (a partner's upload lost on the serving node). Now the standby kills the sessions of
 * the modules it closes before it serves: v2 stays.
 *
 * Real parts: two agents, etcd, rsync over the sync sshd and its forced daemon, `tc` shaping
 * only n1 -> n2 traffic (etcd is not slowed). Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import { LabCluster, pollUntil, type LabNode } from "./harness/index.js";

test("a frozen primary's in-flight batch is cut when the standby is promoted: it never overwrites a newer upload", { timeout: 180_000 }, async (t) => {
  const c = await LabCluster.create(
    dataCluster({
      nodes: 2,
      start: false,
      priorities: [300, 100],
    }),
  );
  const [n1, n2] = c.lab.nodes as [LabNode, LabNode];
  const tc = async (argv: string[]) => {
    const r = await c.lab.exec(n1, ["tc", ...argv], { timeoutMs: 5000 });
    assert.equal(r.code, 0, `tc ${argv.join(" ")}: ${r.stderr}`);
  };
  try {
    c.startAgent(n1.name);
    assert.equal((await c.waitForLeader({ timeoutMs: 20_000 }))?.node, n1.name);
    c.startAgent(n2.name);
    assert.ok(await c.waitForStandbys([n2.name], 30_000), "the standby is up");
    writeFileSync(join(data(n1), "warm.txt"), "in sync first\n");
    assert.ok(await pollUntil(async () => (existsSync(join(data(n2), "warm.txt")) ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 }), "replication works before the fault");

    // Only n1 -> n2 is slowed (etcd is elsewhere): 2 MiB at 256 kbit/s takes over a minute.
    // htb + u32 (this lab kernel has no sch_prio or sch_netem; htb and tbf are there).
    await tc(["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10", "r2q", "100000"]);
    await tc(["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"]);
    await tc(["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "256kbit"]);
    await tc(["filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "u32", "match", "ip", "dst", `${n2.address}/32`, "flowid", "1:20"]);
    const v1 = Buffer.alloc(2 * 1024 * 1024, 1);
    const v2 = Buffer.alloc(1024, 2);
    writeFileSync(join(data(n1), "report.bin"), v1);
    const tmp = join(data(n2), ".understudy-tmp");
    const inFlight = await pollUntil(async () => (existsSync(tmp) && readdirSync(tmp).length > 0 ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
    assert.ok(inFlight, "v1 is being received by n2 (a temp file in its .understudy-tmp)");

    await c.signalAgent(n1.name, "SIGSTOP");
    const next = await c.waitForLeader({ timeoutMs: 30_000, not: n1.name });
    assert.equal(next?.node, n2.name, "n2 took over from the frozen primary");
    // A partner's newer upload on the new primary.
    writeFileSync(join(data(n2), "report.bin"), v2);
    await tc(["qdisc", "del", "dev", "eth0", "root"]);
    // The stale batch had ~2 MiB left: unshaped it would land within a second or two.
    await new Promise((r) => setTimeout(r, 5000));
    const now = readFileSync(join(data(n2), "report.bin"));
    assert.ok(now.equals(v2), `the newer upload stays on the new primary (got ${now.length} bytes of ${now[0] === 1 ? "v1: the stale batch landed" : "v2"})`);
    const log = readFileSync(join(c.lab.logDir, `${n2.name}-agent.log`), "utf8");
    const cut = /killed (\d+) rsync session\(s\) still writing term \d+'s files/.exec(log);
    assert.ok(cut, "n2 says it cut the stale session");
    t.diagnostic(cut[0]);
    // What the killed session was receiving does not stay behind as a partial file (a disk leak).
    assert.deepEqual(
      readdirSync(tmp).filter((n) => !n.startsWith("inbox-")),
      [],
      "no partial file left in n2's .understudy-tmp",
    );
    assert.match(log, /removed \d+ partial file\(s\) left by term \d+'s sessions/);
  } finally {
    await c.signalAgent(n1.name, "SIGCONT").catch(() => undefined);
    await c.teardown();
  }
});
