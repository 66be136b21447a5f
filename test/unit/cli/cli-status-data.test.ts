// Issue 14: `understudy status` shows each member's data lag (a column only in clusters that
// replicate data), read from the member key's own copy or the leader's data/progress.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderStatus, dataCell } from "../../../src/cli/status.js";
import type { ClusterSnapshot, DataLagRecord, DataProgress } from "../../../src/coordinator/port.js";
import { FakeEtcdGateway, cli, member } from "./cli-helpers.js";

const lag = (files: number, bytes: number, over: Partial<DataLagRecord> = {}): DataLagRecord => ({ acked: 1, files, bytes, seconds: 4.4, full: false, paused: null, ...over });
const leader = { node: "n1", term: 2, lease: "1", acquiredAt: "" };
const progress = (standbys: Record<string, DataLagRecord>, term = 2): DataProgress => ({ node: "n1", term, head: 9, at: "2026-12-04T23:00:00.000Z", standbys });
const summary = (l: DataLagRecord | null) => ({ receiving: 2, rejoin: null, freeBytes: 1e9, lag: l });

function snap(over: Partial<ClusterSnapshot>): ClusterSnapshot {
  return { revision: 5, leader, members: [member("n1", { role: "primary" }), member("n2")], paused: false, switchover: null, released: null, bans: [], sync: null, ...over };
}

test("dataCell: every case", () => {
  const p = progress({ n2: lag(3, 1536), n3: lag(0, 0), n4: lag(2, 10, { paused: "disk full" }), n5: lag(0, 0, { full: true }) });
  const s = snap({ dataProgress: p });
  const cases: [string, ReturnType<typeof member>, Partial<ClusterSnapshot>, string][] = [
    ["the primary", member("n1", { role: "primary" }), {}, "source"],
    ["from data/progress", member("n2"), {}, "3 files / 1.5 KiB, 4s"],
    ["in sync", member("n3"), {}, "in sync"],
    ["paused", member("n4"), {}, "paused (2 files / 10 B)"],
    ["full pass", member("n5"), {}, "full pass needed"],
    ["not listed", member("n6"), {}, "-"],
    ["the member key's copy wins", member("n2", { data: summary(lag(7, 7 * 1024 * 1024)) }), {}, "7 files / 7.0 MiB, 4s"],
    ["an older term's record is not shown", member("n2"), { dataProgress: progress({ n2: lag(3, 1536) }, 1) }, "-"],
    ["rejoin pending", member("n2", { data: { ...summary(null), rejoin: "pending" } }), {}, "rejoin pending"],
  ];
  for (const [name, m, over, want] of cases) assert.equal(dataCell(m, { ...s, ...over }), want, name);
});

test("renderStatus: the Data lag column only when the cluster replicates data", () => {
  const plain = renderStatus("c", snap({}));
  assert.doesNotMatch(plain, /Data lag/);
  const out = renderStatus("c", snap({ dataProgress: progress({ n2: lag(3, 1536) }) }));
  assert.match(out, /\| Sync \| Data lag +\| Decision/);
  assert.match(out, /\| n1 .*\| source +\|/);
  assert.match(out, /\| n2 .*\| 3 files \/ 1\.5 KiB, 4s \|/);
});

test("status --etcd reads data/progress in its one txn and shows the lag", async (t) => {
  const gw = new FakeEtcdGateway();
  gw.put("/understudy/c/leader", JSON.stringify({ node: "n1", lease: "1", acquired_at: "" })); // create revision 2
  gw.put("/understudy/c/members/n1", JSON.stringify(member("n1", { role: "primary" })));
  gw.put("/understudy/c/members/n2", JSON.stringify(member("n2")));
  gw.put("/understudy/c/data/progress", JSON.stringify(progress({ n2: lag(3, 1536) })));
  const url = await gw.start();
  t.after(() => gw.stop());
  const r = await cli(["status", "--etcd", url, "--cluster", "c"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\| n2 .*\| 3 files \/ 1\.5 KiB, 4s \|/);
  assert.deepEqual(gw.requests, ["/v3/kv/txn"], "still one read-only txn");
  const j = JSON.parse((await cli(["status", "--etcd", url, "--cluster", "c", "--json"])).out) as { dataProgress: DataProgress };
  assert.equal(j.dataProgress.standbys.n2!.bytes, 1536);
});
