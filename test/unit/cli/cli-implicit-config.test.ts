// Operator commands with no target on the command line: on a node they read
// the node's config ($UNDERSTUDY_CONFIG, else /etc/understudy/understudy.yaml),
// so the docs' `understudy switchover --to n2` works as written there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_CONFIG, NO_IMPLICIT_CONFIG, implicitConfig } from "../../../src/cli/client-config.js";
import { TOKEN, cli, deadUrl, realApi } from "./cli-helpers.js";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "cli-implicit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("implicitConfig: $UNDERSTUDY_CONFIG first, else the default file only when it exists", (t) => {
  const dir = tempDir(t);
  const present = join(dir, "understudy.yaml");
  writeFileSync(present, "cluster: c\n");
  assert.equal(DEFAULT_CONFIG, "/etc/understudy/understudy.yaml");
  assert.equal(implicitConfig({ UNDERSTUDY_CONFIG: "/srv/n1.yaml" }, present), "/srv/n1.yaml");
  assert.equal(implicitConfig({}, present), present);
  assert.equal(implicitConfig({ UNDERSTUDY_CONFIG: "" }, present), present, "an empty variable is not a file name");
  assert.equal(implicitConfig({}, join(dir, "absent.yaml")), undefined);
  const commented = join(dir, "example.yaml");
  writeFileSync(commented, "# the package's example: every line a comment\n#cluster: sftp-prod\n\n   # indented\n");
  assert.equal(implicitConfig({}, commented), undefined, "the package's commented example is not a config");
  assert.equal(implicitConfig({}, dir), undefined, "unreadable as a file: none (the usage error says so)");
});

test("history and status with no --api/--config read $UNDERSTUDY_CONFIG: its API and its token file", async (t) => {
  const api = await realApi({ authReads: true });
  t.after(() => api.close());
  const dir = tempDir(t);
  const token = join(dir, "token");
  writeFileSync(token, `${TOKEN}\n`, { mode: 0o600 });
  const file = join(dir, "n1.yaml");
  const etcd = await deadUrl();
  writeFileSync(
    file,
    `cluster: c\nnode: { name: n1, address: 198.18.0.11 }\netcd: { endpoints: ["${etcd}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${new URL(api.url).host}", token_file: ${token} }\n`,
  );
  const h = await cli(["history"], { UNDERSTUDY_CONFIG: file });
  assert.equal(h.code, 0, h.err);
  const s = await cli(["status"], { UNDERSTUDY_CONFIG: file });
  assert.equal(s.code, 0, s.err);
  assert.match(s.err, /asking this node's API at http:\/\/127\.0\.0\.1:\d+ instead/, "etcd read first, as with --config");
  assert.match(s.out, /\| n1 +\| 198\.18\.0\.1 \| primary/);
});

test("an explicit target wins over $UNDERSTUDY_CONFIG; a missing implicit file is a coded error naming it", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const missing = "/nonexistent/understudy-implicit.yaml";
  assert.equal((await cli(["history", "--api", api.url], { UNDERSTUDY_CONFIG: missing })).code, 0);
  const r = await cli(["history"], { UNDERSTUDY_CONFIG: missing });
  assert.equal(r.code, 2);
  assert.match(r.err, /US_E_CONFIG_\w+.*\/nonexistent\/understudy-implicit\.yaml/);
  const s = await cli(["status", "--etcd", await deadUrl()], { UNDERSTUDY_CONFIG: missing });
  assert.equal(s.code, 2, "--etcd without --cluster is a usage error, not a read of the implicit config");
  assert.match(s.err, /US_E_CLI_USAGE: status needs --config FILE, or --etcd URL and --cluster NAME, or --api URL; see/);
  assert.equal(NO_IMPLICIT_CONFIG, "no /etc/understudy/understudy.yaml with settings readable here, and UNDERSTUDY_CONFIG not set");
});
