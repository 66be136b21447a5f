/**
 * Data lag end to end (issue 14, "leadership decides the direction"): three real agents with a
 * data root each, real etcd, real rsync over the sync sshd. The primary writes data/progress
 * (term-guarded, throttled), each standby copies its own lag into its member key, `understudy
 * status` shows it, GET /sync carries it, /metrics exports it. Then one standby (n2, the higher
 * priority) stops accepting files (its rsync temp dir replaced by a file) and falls behind; the
 * primary is killed with SIGKILL: n3, in sync and of lower priority, takes over (ranking by data
 * lag: n2 waits the ranking delay for it), and no data_lag_promotion is recorded.
 * Lag bytes are 0 here: the watcher's events carry no size yet (datacore's journal counts
 * e.size ?? 0), so this run shows ranking by files; the bytes gate is proven in unit tests.
 * Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import type { DataProgress, HistoryEvent, MemberRecord } from "../../src/coordinator/port.js";
import { LabCluster, pollUntil, type LabNode } from "./harness/index.js";

test("data lag: data/progress, member keys, status, /sync, metrics; the in-sync standby wins the failover", { timeout: 240_000 }, async (t) => {
  const c = await LabCluster.create(
    dataCluster({
      start: false,
      priorities: [300, 200, 100],
      dataYaml: "  stability_window: 100ms\n  progress_interval: 200ms\n  maximum_data_lag_on_failover: 1KiB\n",
    }),
  );
  const [n1, n2, n3] = c.lab.nodes as [LabNode, LabNode, LabNode];
  const get = async <T>(key: string): Promise<T | null> => {
    const r = await c.lab.etcdctl(["get", `${c.prefix}/lab/${key}`, "--print-value-only"], { timeoutMs: 3000 });
    try {
      return r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout.trim()) as T) : null;
    } catch {
      return null;
    }
  };
  const curl = async (node: string, path: string) => (await c.lab.exec(c.lab.client, ["curl", "-s", "--max-time", "3", `${c.apiUrl(node)}${path}`], { timeoutMs: 5000 })).stdout;
  try {
    writeFileSync(join(data(n1), "seed.txt"), "on the primary from the start\n");
    c.startAgent(n1.name);
    const first = await c.waitForLeader({ timeoutMs: 20_000 });
    assert.equal(first?.node, n1.name);
    const term = first!.term;
    c.startAgent(n2.name);
    c.startAgent(n3.name);
    assert.ok(await c.waitForStandbys([n2.name, n3.name], 30_000), "both standbys up");
    const up = performance.now();

    await t.test("the primary writes data/progress; both standbys in sync; each copies its own lag", async () => {
      const p = await pollUntil(
        async () => {
          const got = await get<DataProgress>("data/progress");
          const ok = got && got.term === term && [n2, n3].every((n) => got.standbys[n.name]?.files === 0 && got.standbys[n.name]?.full === false);
          return ok ? got : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      assert.ok(p, "data/progress of the first term with both standbys in sync");
      t.diagnostic(`data/progress showed both standbys in sync ${Math.round(performance.now() - up)} ms after both were up`);
      assert.equal(p.node, n1.name);
      const copies = await pollUntil(
        async () => {
          const ms = await Promise.all([n2, n3].map((n) => get<MemberRecord>(`members/${n.name}`)));
          return ms.every((m) => m?.data?.lag?.files === 0 && m.data.lag.full === false) ? ms : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      assert.ok(copies, "each standby's member key carries its own lag (data.lag)");
      const primaryKey = await get<MemberRecord>(`members/${n1.name}`);
      assert.equal(primaryKey?.data?.lag, null, "the primary has no lag of its own");
    });

    await t.test("n2 stops accepting files: its lag grows in data/progress, status, /sync and /metrics", async () => {
      // rsync's temp dir replaced by a file: every run to n2 fails (exit 23) and its cursor stays.
      const tmp = join(data(n2), ".understudy-tmp");
      rmSync(tmp, { recursive: true, force: true });
      writeFileSync(tmp, "not a directory\n");
      writeFileSync(join(data(n1), "after-block.bin"), Buffer.alloc(8192, 7));
      let seen: DataProgress | null = null;
      const p = await pollUntil(
        async () => {
          const got = await get<DataProgress>("data/progress");
          seen = got;
          const lagging = got?.standbys[n2.name];
          return got && lagging && lagging.files >= 1 && got.standbys[n3.name]?.files === 0 ? got : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      assert.ok(p, `n2 lags by the new file, n3 got it; last data/progress: ${JSON.stringify(seen)}`);
      t.diagnostic(`n2 lag in data/progress: ${p.standbys[n2.name]!.files} files / ${p.standbys[n2.name]!.bytes} B, ${p.standbys[n2.name]!.seconds}s`);
      const key = await pollUntil(async () => ((await get<MemberRecord>(`members/${n2.name}`))?.data?.lag?.files ?? 0) >= 1 || undefined, { timeoutMs: 10_000, intervalMs: 100 });
      assert.ok(key, "n2's member key shows its lag");
      const status = await c.cli(["status"]);
      assert.match(status.stdout, /Data lag/);
      assert.match(status.stdout, /\| n2 .*\| [1-9]\d* files \/ [^,|]+, \d+s \|/);
      assert.match(status.stdout, /\| n1 .*\| source +\|/);
      t.diagnostic(status.stdout);
      const sync = JSON.parse(await curl(n2.name, "/sync")) as { data?: { lag: { files: number } | null } };
      assert.ok((sync.data?.lag?.files ?? 0) >= 1, `GET /sync on n2 has its lag: ${JSON.stringify(sync.data)}`);
      const metrics = await curl(n1.name, "/metrics");
      const sample = new RegExp(`understudy_data_lag_files\\{standby="${n2.name}"[^}]*\\} (\\d+)`).exec(metrics);
      assert.ok(sample && Number(sample[1]) >= 1, "the primary exports n2's lag");
      assert.match(metrics, new RegExp(`understudy_data_lag_bytes\\{standby="${n2.name}"`));
      assert.match(metrics, new RegExp(`understudy_data_lag_files\\{standby="${n3.name}"[^}]*\\} 0`));
    });

    await t.test("kill -9 of the primary: n3 (in sync, priority 100) takes over, not n2 (lagging, priority 200)", async () => {
      await c.signalAgent(n1.name, "SIGKILL");
      const next = await c.waitForLeader({ not: n1.name, timeoutMs: 30_000 });
      assert.equal(next?.node, n3.name, "the standby with less data lag wins");
      const r = await c.lab.etcdctl(["get", "--prefix", `${c.prefix}/lab/history/`, "--print-value-only"], { timeoutMs: 3000 });
      const history = r.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as HistoryEvent);
      assert.ok(!history.some((e) => e.kind === "data_lag_promotion"), "n3 was within the limit: nothing to record");
      // What n2 decided during the vacancy (when it saw one before n3 won): the ranking sentence.
      const waited = readFileSync(join(c.lab.logDir, `${n2.name}-agent.log`), "utf8")
        .split("\n")
        .find((l) => l.includes("ranks higher (data lag"));
      t.diagnostic(`n2 during the vacancy: ${waited ? (JSON.parse(waited) as { msg: string }).msg : "(saw no vacancy)"}`);
    });
  } finally {
    await c.teardown();
  }
});
