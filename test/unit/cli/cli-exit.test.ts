// One test per exit code of the table in src/cli/spec.ts (EXIT), each through
// the real main() against loopback servers: a strict fake of etcd's JSON
// gateway, and the real REST API (buildApi) over the fake coordinator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../../src/cli/spec.js";
import { exitCodeFor } from "../../../src/cli/run.js";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { FakeEtcdGateway, TOKEN, cli, deadUrl, member, realApi } from "./cli-helpers.js";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "cli-exit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tokenFile(dir: string, text = TOKEN, mode = 0o600): string {
  const f = join(dir, `token-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `${text}\n`);
  chmodSync(f, mode);
  return f;
}

/** A cluster "c" under /understudy with n1 leading (or no leader). */
async function gateway(t: { after: (fn: () => Promise<void>) => void }, leader = true): Promise<{ gw: FakeEtcdGateway; url: string }> {
  const gw = new FakeEtcdGateway();
  gw.put("/understudy/c/members/n1", JSON.stringify(member("n1", { role: leader ? "primary" : "standby" })));
  gw.put("/understudy/c/members/n2", JSON.stringify(member("n2")));
  if (leader) gw.put("/understudy/c/leader", JSON.stringify({ node: "n1", lease: "7", acquired_at: "2026-12-04T00:00:00Z" }));
  gw.put("/understudy/other/history/0001", "{}");
  const url = await gw.start();
  t.after(() => gw.stop());
  return { gw, url };
}

test("the exit code table has distinct codes 0..7", () => {
  assert.deepEqual(
    Object.values(EXIT).map((e) => e.code),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
});

test("exit 0: --version, and status of a cluster with a primary (etcd gateway)", async (t) => {
  const v = await cli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.out, /^\d+\.\d+\.\d+/);
  const { url } = await gateway(t);
  const r = await cli(["status", "--etcd", url, "--cluster", "c"]);
  assert.equal(r.code, EXIT.OK.code, r.err);
  assert.match(r.out, /\+ Cluster: c \(revision \d+\)/);
  assert.match(r.out, /\| n1 +\| 198\.18\.0\.1 \| primary +\| \d+ /);
  assert.doesNotMatch(r.out, /No primary/);
});

test("exit 1: etcd unreachable (no API to fall back to), API unreachable", async () => {
  const dead = await deadUrl();
  const s = await cli(["status", "--etcd", dead, "--cluster", "c"]);
  assert.equal(s.code, EXIT.FAILURE.code);
  assert.match(s.err, /US_E_ETCD_UNREACHABLE: etcd is unreachable at http:\/\/127\.0\.0\.1:\d+/);
  const h = await cli(["history", "--api", dead]);
  assert.equal(h.code, EXIT.FAILURE.code);
  assert.match(h.err, /US_E_API_UNREACHABLE/);
});

test("exit 2: unknown command, unknown option (with did-you-mean), missing argument", async () => {
  const c = await cli(["swtichover", "--to", "n2"]);
  assert.equal(c.code, EXIT.USAGE.code);
  assert.match(c.err, /US_E_CLI_USAGE: unknown command "swtichover" \(did you mean `switchover`\?\)/);
  const s = await cli(["sync", "stauts"]);
  assert.equal(s.code, EXIT.USAGE.code);
  assert.match(s.err, /unknown sync subcommand "stauts" \(did you mean `sync status`\?\)/);
  const o = await cli(["switchover", "--too", "n2", "--api", "http://127.0.0.1:1"]);
  assert.equal(o.code, EXIT.USAGE.code);
  assert.match(o.err, /unknown option --too for `understudy switchover` \(did you mean --to\?\)/);
  const far = await cli(["frobnicate"]);
  assert.equal(far.code, EXIT.USAGE.code);
  assert.doesNotMatch(far.err, /did you mean/, "no suggestion when nothing is close");
  const b = await cli(["ban", "n1", "--api", "http://127.0.0.1:1"]);
  assert.equal(b.code, EXIT.USAGE.code);
  assert.match(b.err, /`understudy ban` needs --for DURATION/);
  const none = await cli([]);
  assert.equal(none.code, EXIT.USAGE.code);
  assert.match(none.err, /Usage: understudy COMMAND/);
});

test("exit 2: a token file that cannot be read or is malformed is a config problem, found before any request", async (t) => {
  const dir = tempDir(t);
  const api = await realApi();
  t.after(() => api.close());
  const cases = [
    { file: join(dir, "missing"), why: /does not exist/ },
    { file: tokenFile(dir, "short"), why: /shorter than 16 characters/ },
    { file: tokenFile(dir, TOKEN, 0o644), why: /has mode 0644, wider than 0640/ },
  ];
  for (const { file, why } of cases) {
    const r = await cli(["pause", "--api", api.url, "--token-file", file]);
    assert.equal(r.code, EXIT.USAGE.code, file);
    assert.match(r.err, /US_E_API_TOKEN: cannot use API credential file/);
    assert.match(r.err, why);
  }
  assert.equal((await api.etcd.snapshot()).paused, false, "nothing reached the cluster");
});

test("exit 2: an invalid config file (status: a field it reads; config check: any field)", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "bad.yaml");
  writeFileSync(file, "cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: [not-a-url] }\ndaemon: { backend: systemd, unit: ssh.service }\n");
  const r = await cli(["status", "--config", file]);
  assert.equal(r.code, EXIT.USAGE.code);
  assert.match(r.err, /US_E_CONFIG_INVALID: config file .*bad\.yaml: etcd\.endpoints/);
  writeFileSync(file, "cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: [http://127.0.0.1:1] }\ndaemon: { backend: systemd, unit: ssh.service }\nelection: { ttl: 500ms }\n");
  const c = await cli(["config", "check", file, "--no-host-checks"]);
  assert.equal(c.code, EXIT.USAGE.code);
  assert.match(c.err, /US_E_CONFIG_TIMING: config file .*: election\.ttl/);
});

test("exit 3: refused by the cluster (pause when already paused)", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  await api.etcd.setPaused(true);
  const r = await cli(["pause", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
  assert.equal(r.code, EXIT.REFUSED.code, r.err);
  assert.match(r.out, /refused \(412 US_E_API_PRECONDITION\): the cluster is already paused/);
});

test("exit 4: the API rejects the token (wrong token, or none)", async (t) => {
  const dir = tempDir(t);
  const api = await realApi();
  t.after(() => api.close());
  const wrong = await cli(["pause", "--api", api.url, "--token-file", tokenFile(dir, "a-wrong-token-of-enough-length")]);
  assert.equal(wrong.code, EXIT.UNAUTHORIZED.code);
  assert.match(wrong.out, /refused \(401 US_E_API_UNAUTHORIZED\)/);
  const none = await cli(["resume", "--api", api.url]);
  assert.equal(none.code, EXIT.UNAUTHORIZED.code);
  assert.equal((await api.etcd.snapshot()).paused, false);
  assert.equal(exitCodeFor(new UnderstudyError("US_E_API_UNAUTHORIZED", { why: "x" })), EXIT.UNAUTHORIZED.code);
});

test("exit 5: an unknown cluster is US_E_CLUSTER_UNKNOWN naming the clusters that exist", async (t) => {
  const { url } = await gateway(t);
  const r = await cli(["status", "--etcd", url, "--cluster", "othr"]);
  assert.equal(r.code, EXIT.UNKNOWN_CLUSTER.code);
  assert.equal(r.out, "", "no table for a cluster that does not exist");
  assert.match(
    r.err,
    /US_E_CLUSTER_UNKNOWN: no cluster othr in etcd at http:\/\/127\.0\.0\.1:\d+: no key under \/understudy\/othr\/ \(no member, no leader, no history\); clusters under \/understudy\/: c, other; did you mean other\?/,
  );
  const p = await cli(["status", "--etcd", url, "--cluster", "c", "--prefix", "/elsewhere"]);
  assert.equal(p.code, EXIT.UNKNOWN_CLUSTER.code);
  assert.match(p.err, /nothing at all under \/elsewhere\/ \(wrong --prefix, or another etcd\?\)/);
});

test("exit 6: the cluster exists but has no primary now; the table is still printed", async (t) => {
  const { url } = await gateway(t, false);
  const r = await cli(["status", "--etcd", url, "--cluster", "c"]);
  assert.equal(r.code, EXIT.NO_PRIMARY.code, r.err);
  assert.match(r.out, /\| n1 +\|/);
  assert.match(r.out, /No primary: the leader key is absent/);
  const j = await cli(["status", "--etcd", url, "--cluster", "c", "--json"]);
  assert.equal(j.code, EXIT.NO_PRIMARY.code);
  assert.equal((JSON.parse(j.out) as { leader: unknown }).leader, null);
});
