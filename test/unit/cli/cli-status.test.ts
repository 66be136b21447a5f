// `understudy status` through the real main(): over a node's API (--api), the
// fallback from an unreachable etcd to the config's API, and what reaches the
// terminal from etcd values (control characters escaped, except in --json).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printable } from "../../../src/cli/io.js";
import { renderStatus } from "../../../src/cli/status.js";
import { FakeEtcdGateway, TOKEN, cli, deadUrl, member, realApi } from "./cli-helpers.js";

test("status --api: the cluster as a node's API sees it (GET /cluster), no etcd needed", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const r = await cli(["status", "--api", api.url]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\+ Cluster: \(as the API of n1 \(http:\/\/127\.0\.0\.1:\d+\) sees it\)/);
  assert.match(r.out, /\| n1 +\| 198\.18\.0\.1 \| primary/);
  const j = JSON.parse((await cli(["status", "--api", api.url, "--json"])).out) as { source: string; leader: { node: string } };
  assert.equal(j.source, "api");
  assert.equal(j.leader.node, "n1");
});

test("status --api with api.auth_reads: exit 4 without the token, 0 with it", async (t) => {
  const api = await realApi({ authReads: true });
  t.after(() => api.close());
  const no = await cli(["status", "--api", api.url]);
  assert.equal(no.code, 4);
  assert.match(no.err, /401 US_E_API_UNAUTHORIZED/);
  assert.equal((await cli(["status", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN })).code, 0);
});

test("status --config: etcd unreachable falls back to the node's API, and says so on stderr", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), "cli-status-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dead = await deadUrl();
  const file = join(dir, "n1.yaml");
  writeFileSync(
    file,
    `cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: ["${dead}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${new URL(api.url).host}" }\n`,
  );
  const r = await cli(["status", "--config", file]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`US_E_ETCD_UNREACHABLE: etcd is unreachable at ${dead}.*; asking this node's API at ${api.url} instead`));
  assert.match(r.out, /\+ Cluster: c \(revision/);
  assert.match(r.out, /\| n2 +\|/);
});

test("status --config: a reachable etcd is read directly; the API is not asked", async (t) => {
  const gw = new FakeEtcdGateway();
  gw.put("/understudy/c/members/n1", JSON.stringify(member("n1")));
  const url = await gw.start();
  t.after(() => gw.stop());
  const dir = mkdtempSync(join(tmpdir(), "cli-status-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "n1.yaml");
  const dead = new URL(await deadUrl()).host;
  writeFileSync(file, `cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: ["${url}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${dead}" }\n`);
  const r = await cli(["status", "--config", file]);
  assert.equal(r.code, 6, r.err);
  assert.equal(r.err, "");
  assert.deepEqual(gw.requests, ["/v3/kv/txn"], "one read-only txn");
});

test("control characters from etcd values are escaped in the table, left to JSON's encoder in --json", async (t) => {
  const gw = new FakeEtcdGateway();
  const evil = "no action: \x1b]0;pwned\x07\x1b[2J\r\n| n9 | forged |\u009b31m";
  gw.put("/understudy/c/members/n1", JSON.stringify(member("n1", { role: "primary", decision: evil, address: "198.18.0.1\x07" })));
  gw.put("/understudy/c/leader", JSON.stringify({ node: "n1", lease: "1", acquired_at: "" }));
  // A name with control characters is not a node name: the record is ignored, not printed.
  gw.put("/understudy/c/members/n2\x1b", JSON.stringify(member("n2\x1b[31m", { decision: "forged-name" })));
  const url = await gw.start();
  t.after(() => gw.stop());
  const r = await cli(["status", "--etcd", url, "--cluster", "c"]);
  assert.equal(r.code, 0, r.err);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, "no control character but the table's own newlines");
  assert.match(r.out, /\\x1b\]0;pwned\\x07\\x1b\[2J/);
  assert.doesNotMatch(r.out, /forged-name|n2/, "the record with a control character in its name is ignored");
  assert.match(r.out, /198\.18\.0\.1\\x07/);
  assert.equal(r.out.split("\n").filter((l) => l.includes("forged")).length, 1, "a newline in a value does not make a row");
  const j = await cli(["status", "--etcd", url, "--cluster", "c", "--json"]);
  const parsed = JSON.parse(j.out) as { members: { decision: string }[] };
  assert.equal(parsed.members[0]!.decision, evil, "--json carries the value unchanged");
});

test("printable() escapes C0, DEL and C1, and leaves other text alone", () => {
  assert.equal(printable("a\x1bb\x7fc\u0085d\te"), "a\\x1bb\\x7fc\\x85d\\x09e");
  assert.equal(printable("n1 é ✓"), "n1 é ✓");
  const table = renderStatus("c\x1b", { revision: 1, leader: null, members: [], paused: false, switchover: null, released: null, bans: [], sync: null });
  assert.match(table, /^\+ Cluster: c\\x1b /);
});

test("status --config: etcd out of reach from here and from the node: the node's own view, labelled, exit 7", async (t) => {
  const api = await realApi({
    view: {
      etcdReachable: false,
      leaseRemainingMs: 1200,
      decision: "no action: etcd unreachable (…); keeping the role until the lease deadline",
      probes: [{ name: "sftp", critical: true, up: true, detail: "SSH-2.0-OpenSSH" }],
    },
  });
  t.after(() => api.close());
  api.etcd.unreachable = true;
  const dir = mkdtempSync(join(tmpdir(), "cli-status-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dead = await deadUrl();
  const file = join(dir, "n1.yaml");
  writeFileSync(
    file,
    `cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: ["${dead}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${new URL(api.url).host}" }\n`,
  );
  const r = await cli(["status", "--config", file]);
  assert.equal(r.code, 7, r.err);
  assert.match(r.err, /asking this node's API at .* instead/);
  assert.match(r.err, /the node's API \(http:\/\/127\.0\.0\.1:\d+\) cannot read etcd either .*showing only n1's own view/);
  assert.match(r.out, /^\+ Node n1's own view \(cluster c\): etcd is unreachable from here and from n1, so this is NOT the cluster's state$/m);
  assert.match(r.out, /\| Role +: primary \(term 1\)/);
  assert.match(r.out, /\| Lease +: 1\.2 s left before it fences itself/);
  assert.match(r.out, /\| etcd +: unreachable from this node too/);
  assert.match(r.out, /\| Probes +: sftp up/);
  assert.doesNotMatch(r.out, /\+ Cluster:/, "no cluster table: nobody could read etcd");
  const j = await cli(["status", "--config", file, "--json"]);
  assert.equal(j.code, 7);
  const doc = JSON.parse(j.out) as { source: string; cluster: string; view: { node: string; acting: string } };
  assert.deepEqual([doc.source, doc.cluster, doc.view.node, doc.view.acting], ["node", "c", "n1", "primary"]);
  // --api alone: the same fallback, without the cluster's name.
  const direct = await cli(["status", "--api", api.url]);
  assert.equal(direct.code, 7, direct.err);
  assert.match(direct.out, /^\+ Node n1's own view: etcd is unreachable/m);
});

test("status through the API (etcd unreachable from here, read by the node): the table says where it came from", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const r = await cli(["status", "--api", api.url]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\nSource: etcd as read by the API of n1 \(http:\/\/127\.0\.0\.1:\d+\), not from here\.$/);
});
