// Bad input to `config check` and the agent's start (issue 11, item 6): every
// refusal is coded, names file, key and value, never hangs, and writes nothing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { stringify } from "yaml";
import { loadConfigFile } from "../../../src/config/load.js";
import { UnderstudyError, type ErrorCode } from "../../../src/errors/catalogue.js";
import { readTokenFile } from "../../../src/api/token.js";

const dir = mkdtempSync(join(tmpdir(), "us-badinput-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const BASE = {
  cluster: "sftp-prod",
  node: { name: "n1", address: "198.18.0.11" },
  etcd: { endpoints: ["http://198.18.0.2:2379"] },
  daemon: { backend: "systemd", unit: "ssh.service" },
};
let seq = 0;
function configFile(doc: Record<string, unknown> | string): string {
  const file = join(dir, `c${++seq}.yaml`);
  writeFileSync(file, typeof doc === "string" ? doc : stringify(doc), { mode: 0o644 });
  return file;
}
function tokenFile(content: string, mode = 0o600): string {
  const file = join(dir, `t${++seq}`);
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
  return file;
}
const GOOD_TOKEN = "0123456789abcdef0123456789abcdef\n";

async function refused(file: string, code: ErrorCode, detail: RegExp): Promise<void> {
  const before = readdirSync(dir).sort();
  const t0 = performance.now();
  await assert.rejects(loadConfigFile(file, { hostChecks: true }), (e) => {
    assert.ok(e instanceof UnderstudyError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, detail);
    assert.ok(e.message.includes(file), `names the file: ${e.message}`);
    return true;
  });
  assert.ok(performance.now() - t0 < 5000, "answers at once (never blocks on a FIFO or device)");
  assert.deepEqual(readdirSync(dir).sort(), before, "nothing written");
}

const withToken = (tf: string) => configFile({ ...BASE, api: { listen: "127.0.0.1:8470", token_file: tf } });

test("token file: a good one passes; each bad one is refused with US_E_CONFIG_INVALID naming api.token_file and why", async () => {
  await loadConfigFile(withToken(tokenFile(GOOD_TOKEN)), { hostChecks: true });
  await loadConfigFile(withToken(tokenFile(GOOD_TOKEN, 0o640)), { hostChecks: true }); // root-owned 0640: the agent's group reads it
  await refused(withToken(join(dir, "absent")), "US_E_CONFIG_INVALID", /api\.token_file: does not exist/);
  await refused(withToken(tokenFile(GOOD_TOKEN, 0o644)), "US_E_CONFIG_INVALID", /api\.token_file: has mode 0644, wider than 0640/);
  await refused(withToken(tokenFile(GOOD_TOKEN, 0o660)), "US_E_CONFIG_INVALID", /api\.token_file: has mode 0660/);
  await refused(withToken(tokenFile("short\n")), "US_E_CONFIG_INVALID", /shorter than 16 characters/);
  await refused(withToken(tokenFile("x".repeat(5000))), "US_E_CONFIG_INVALID", /5000 bytes, more than a secret file holds/);
  const target = tokenFile(GOOD_TOKEN);
  const link = join(dir, `link${++seq}`);
  symlinkSync(target, link);
  await refused(withToken(link), "US_E_CONFIG_INVALID", /is a symbolic link/);
  const fifo = join(dir, `fifo${++seq}`);
  execFileSync("mkfifo", ["-m", "0600", fifo]);
  await refused(withToken(fifo), "US_E_CONFIG_INVALID", /not a regular file \(a FIFO\)/);
  await refused(withToken("/dev/zero"), "US_E_CONFIG_INVALID", /not a regular file \(a character device\)/);
  await refused(withToken(dir), "US_E_CONFIG_INVALID", /not a regular file \(a directory\)/);
});

test("a token file owned by another user must be 0600 or narrower", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to chown");
  const file = tokenFile(GOOD_TOKEN, 0o640);
  chownSync(file, 65534, 65534);
  await refused(withToken(file), "US_E_CONFIG_INVALID", /has mode 0640, wider than 0600/);
  // The agent's own reader says the same (US_E_API_TOKEN), without the token in the message.
  await assert.rejects(readTokenFile(file), (e) => e instanceof UnderstudyError && e.code === "US_E_API_TOKEN" && !e.message.includes("0123456789abcdef"));
});

test("the config file itself: a FIFO, a device, a directory, or more than 1 MiB is refused at once", async () => {
  const fifo = join(dir, `cfifo${++seq}`);
  execFileSync("mkfifo", ["-m", "0600", fifo]);
  await refused(fifo, "US_E_CONFIG_READ", /not a regular file/);
  await refused("/dev/zero", "US_E_CONFIG_READ", /not a regular file/);
  await refused(configFile(`# ${"x".repeat(1024 * 1024 + 10)}\n`), "US_E_CONFIG_READ", /more than 1048576/);
});

test("an alias bomb is a coded parse error, not an uncaught YAML exception", async () => {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(",")}]`);
  }
  lines.push("cluster: sftp-prod");
  await refused(configFile(lines.join("\n")), "US_E_CONFIG_PARSE", /alias/i);
});

test("paths with '..', relative hook programs and ports outside 1-65535 are refused with key and value", async () => {
  const cases: { doc: Record<string, unknown>; path: string; problem: RegExp }[] = [
    { doc: { state_dir: "/var/lib/../../etc" }, path: "state_dir", problem: /without '\.\.'/ },
    { doc: { api: { token_file: "/etc/understudy/../shadow" } }, path: "api.token_file", problem: /without '\.\.'/ },
    { doc: { hooks: { pre_promote: ["check-storage", "/srv"] } }, path: "hooks.pre_promote", problem: /absolute path/ },
    { doc: { hooks: { on_role_change: ["./notify.sh"] } }, path: "hooks.on_role_change", problem: /absolute path/ },
    { doc: { hooks: { post_sync: ["/usr/../tmp/x"] } }, path: "hooks.post_sync", problem: /no '\.\.'/ },
    { doc: { api: { listen: "127.0.0.1:0" } }, path: "api.listen", problem: /port from 1 to 65535/ },
    { doc: { api: { listen: "127.0.0.1:70000" } }, path: "api.listen", problem: /port from 1 to 65535/ },
  ];
  for (const c of cases) {
    await refused(configFile({ ...BASE, ...c.doc }), "US_E_CONFIG_INVALID", new RegExp(`${c.path.replace(/\./g, "\\.")}: .*${c.problem.source}`));
  }
});
