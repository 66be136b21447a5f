/**
 * A data root the kernel will not let the primary watch (issue 14, hostile hosts): a tree with
 * more directories than `fs.inotify.max_user_watches` allows. Before, the watcher retried
 * forever, nothing shipped and nothing said why but a warning per retry. Now the primary says
 * it once with a code (US_E_DATA_WATCH_LIMIT) in GET /data and the metric, the root still
 * replicates by full passes, and the standby's lag shows as unknown.
 *
 * Real parts: two agents, etcd, rsync over the sync sshd. The limit is real too: the
 * primary's `data.inotifywait_path` is a wrapper that runs the real inotifywait in a user
 * namespace of its own whose inotify watch limit (/proc/sys/user/max_inotify_watches, per user
 * namespace since Linux 5.11) is 3, below the root's 6 directories. The host's own limit is
 * not touched. Needs root, `unshare` and `npm run build`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster, dataDir as data } from "./data-setup.js";
import type { MemberRecord } from "../../src/coordinator/port.js";
import { LabCluster, pollUntil, type LabNode } from "./harness/index.js";

const WRAPPER = `#!/bin/sh
# The real inotifywait, in a user namespace whose inotify watch limit is 3 (test only).
exec unshare --user --map-root-user -- /bin/sh -c 'echo 3 > /proc/sys/user/max_inotify_watches && exec /usr/bin/inotifywait "$@"' inotifywait "$@"
`;

test("data root over the inotify watch limit: said once with a code, replicated by full passes, lag unknown", { timeout: 180_000 }, async (t) => {
  const probe = spawnSync("unshare", ["--user", "--map-root-user", "--", "/bin/sh", "-c", "echo 3 > /proc/sys/user/max_inotify_watches"]);
  if (probe.status !== 0) return t.skip(`no per-user-namespace inotify limit here: ${String(probe.stderr).trim()}`);
  const c = await LabCluster.create(
    dataCluster({
      nodes: 2,
      start: false,
      priorities: [300, 100],
      dataYaml: (n) => `  inotifywait_path: ${join(n.dir, "inotifywait-limited")}\n`,
    }),
  );
  const [n1, n2] = c.lab.nodes as [LabNode, LabNode];
  const curl = async (node: string, path: string) => (await c.lab.exec(c.lab.client, ["curl", "-s", "--max-time", "3", `${c.apiUrl(node)}${path}`], { timeoutMs: 5000 })).stdout;
  const dataOf = async (node: string) => {
    try {
      return JSON.parse(await curl(node, "/data")) as { roots: { name: string; unwatched?: string | null }[]; standbys: { node: string; full: boolean }[] };
    } catch {
      return null;
    }
  };
  try {
    for (const n of [n1, n2]) {
      writeFileSync(join(n.dir, "inotifywait-limited"), WRAPPER);
      chmodSync(join(n.dir, "inotifywait-limited"), 0o755);
    }
    mkdirSync(join(data(n1), "partners", "acme", "in"), { recursive: true });
    mkdirSync(join(data(n1), "partners", "globex", "in"), { recursive: true });
    writeFileSync(join(data(n1), "partners", "acme", "in", "before.csv"), "uploaded before the agents started\n");
    c.startAgent(n1.name);
    const leader = await c.waitForLeader({ timeoutMs: 20_000 });
    assert.equal(leader?.node, n1.name);
    c.startAgent(n2.name);
    assert.ok(await c.waitForStandbys([n2.name], 30_000), "the standby is up");

    const said = await pollUntil(
      async () => {
        const d = await dataOf(n1.name);
        return d?.roots.find((r) => r.name === "uploads")?.unwatched ?? undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    assert.ok(said, "GET /data names the unwatched root");
    assert.match(said, /^US_E_DATA_WATCH_LIMIT: data root uploads \(.*\) cannot be watched: the kernel's limit on inotify watches is reached; raise fs\.inotify\.max_user_watches/);
    t.diagnostic(said);

    const before = join(data(n2), "partners", "acme", "in", "before.csv");
    const t0 = performance.now();
    writeFileSync(join(data(n1), "partners", "globex", "in", "after.csv"), "uploaded while the root is unwatched\n");
    const after = join(data(n2), "partners", "globex", "in", "after.csv");
    const arrived = await pollUntil(
      async () => {
        try {
          return readFileSync(after, "utf8") === "uploaded while the root is unwatched\n" && readFileSync(before, "utf8") === "uploaded before the agents started\n" ? true : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    assert.ok(arrived, "both files reach the standby by full passes, although no event was seen");
    t.diagnostic(`a file written on the unwatched primary was on the standby ${Math.round(performance.now() - t0)} ms later (full pass after a watcher retry, every 10 s)`);

    const d = await dataOf(n1.name);
    assert.equal(d?.standbys.find((s) => s.node === n2.name)?.full, true, "the standby's lag is unknown while the root is unwatched");
    const metrics = await curl(n1.name, "/metrics");
    assert.match(metrics, /^understudy_data_watch_degraded\{[^}]*root="uploads"[^}]*\} 1$/m, "the metric says it");
    const r = await c.lab.etcdctl(["get", `${c.prefix}/lab/members/${n2.name}`, "--print-value-only"], { timeoutMs: 3000 });
    const member = JSON.parse(r.stdout.trim()) as MemberRecord;
    assert.equal(member.data?.lag?.full, true, "the standby's member key carries an unknown lag (the promotion gate will not pass it)");
  } finally {
    await c.teardown();
  }
});
