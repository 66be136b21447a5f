// `understudy config check FILE` with bad input (issue 11, item 6), through the
// real CLI with host checks on: every refusal exits 2 with a coded error naming
// the file (and the key where there is one), and writes nothing: the directory
// holding the config, token and state paths is byte-identical afterwards (every
// name, mode, content) and the configured state_dir is not created.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { stringify } from "yaml";
import { snapshot } from "../../fakes/tree.js";
import { cli } from "../cli/cli-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "us-check-bad-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const STATE = join(dir, "state");
const TOKEN = join(dir, "token");
writeFileSync(TOKEN, "0123456789abcdef0123456789abcdef\n");
chmodSync(TOKEN, 0o600);
const WIDE = join(dir, "token-wide");
writeFileSync(WIDE, "0123456789abcdef0123456789abcdef\n");
chmodSync(WIDE, 0o644);
const LINK = join(dir, "token-link");
symlinkSync(TOKEN, LINK);
// The FIFO lives apart: the snapshot reads every file it finds, and reading a FIFO blocks.
const SPECIAL = mkdtempSync(join(tmpdir(), "us-check-fifo-"));
after(() => rmSync(SPECIAL, { recursive: true, force: true }));
const FIFO = join(SPECIAL, "fifo");
execFileSync("mkfifo", ["-m", "0600", FIFO]);

const BASE = {
  cluster: "sftp-prod",
  node: { name: "n1", address: "127.0.0.1" },
  etcd: { endpoints: ["http://127.0.0.1:2379"] },
  state_dir: STATE,
  daemon: { backend: "command", start: ["/bin/true"], stop: ["/bin/true"], status: ["/bin/true"] },
  api: { listen: "127.0.0.1:8470", token_file: TOKEN },
};
type Doc = Record<string, unknown>;
const at = (over: Doc): Doc => ({ ...BASE, ...over });
const daemon = (over: Doc): Doc => at({ daemon: { ...BASE.daemon, ...over } });
const api = (over: Doc): Doc => at({ api: { ...BASE.api, ...over } });

const bomb = (() => {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++)
    lines.push(
      `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
        .fill(`*${String.fromCharCode(96 + i)}`)
        .join(",")}]`,
    );
  return `${lines.join("\n")}\ncluster: x\n`;
})();

// [what, YAML text or a document, what the message must name]
const CASES: [string, string | Doc, RegExp][] = [
  ["an empty file", "", /US_E_CONFIG_INVALID/],
  ["a list at the top", "- a\n- b\n", /US_E_CONFIG_INVALID/],
  ["a scalar at the top", "hello\n", /US_E_CONFIG_INVALID/],
  ["broken YAML", "cluster: [unclosed\n", /US_E_CONFIG_PARSE/],
  ["a tab indent", "cluster: x\nnode:\n\tname: n1\n", /US_E_CONFIG_PARSE/],
  ["a NUL byte", "cluster: sftp\u0000prod\n", /US_E_CONFIG_(PARSE|INVALID)/],
  ["binary garbage", "\u00ff\u00fe\u0000\u0001\u0002garbage", /US_E_CONFIG_(PARSE|INVALID)/],
  ["an alias bomb", bomb, /US_E_CONFIG_PARSE.*alias/i],
  ["a duplicate key", `${stringify(BASE)}cluster: other\n`, /US_E_CONFIG_PARSE|cluster/],
  ["an unknown top-level key", at({ clustr: "x" }), /clustr/],
  ["an unknown nested key", daemon({ stop_timout: "5s" }), /daemon.*stop_timout/],
  ["a cluster name with upper case", at({ cluster: "SFTP" }), /cluster:/],
  ["a cluster name with an escape code", at({ cluster: "sftp\u001b[2J" }), /cluster:/],
  ["a node name of 64 characters", at({ node: { name: "n".repeat(64), address: "127.0.0.1" } }), /node\.name:/],
  ["a node name as a number", at({ node: { name: 7, address: "127.0.0.1" } }), /node\.name:/],
  ["a node address that is not an IP", at({ node: { name: "n1", address: "localhost; rm -rf /" } }), /node\.address:/],
  ["a bare-number duration", at({ election: { ttl: 5 } }), /election\.ttl:/],
  ["a duration with a space", at({ election: { ttl: "5 sec" } }), /election\.ttl:/],
  ["a combined-unit duration", at({ election: { ttl: "1m30s" } }), /election\.ttl:/],
  ["a negative duration", at({ election: { ttl: "-5s" } }), /election\.ttl:/],
  ["an etcd endpoint without a scheme", at({ etcd: { endpoints: ["127.0.0.1:2379"] } }), /etcd\.endpoints/],
  ["no etcd endpoints", at({ etcd: { endpoints: [] } }), /etcd\.endpoints/],
  ["etcd auth over http", at({ etcd: { endpoints: ["http://127.0.0.1:2379"], auth: { user: "u", password_file: TOKEN } } }), /etcd/],
  ["a relative state_dir", at({ state_dir: "state" }), /state_dir:/],
  ["'..' in state_dir", at({ state_dir: `${dir}/../etc` }), /state_dir:.*'\.\.'/],
  // (daemon.start/stop/status/command/check may name a program on PATH, by design: the tool
  // check resolves it at config check and start; hooks, validators and post_sync may not.)
  ["a daemon argv that is a string", daemon({ status: "/bin/true" }), /daemon\.status/],
  ["an empty daemon argv", daemon({ status: [] }), /daemon\.status/],
  ["an unknown daemon backend", daemon({ backend: "docker" }), /daemon\.backend/],
  ["a relative hook", at({ hooks: { pre_promote: ["check-storage"] } }), /hooks\.pre_promote/],
  ["a hook with '..'", at({ hooks: { post_sync: ["/usr/../tmp/x"] } }), /hooks\.post_sync/],
  ["an API port 0", api({ listen: "127.0.0.1:0" }), /api\.listen:.*1 to 65535/],
  ["an API port 70000", api({ listen: "127.0.0.1:70000" }), /api\.listen:.*1 to 65535/],
  ["an API port -1", api({ listen: "127.0.0.1:-1" }), /api\.listen/],
  ["an API listen without a port", api({ listen: "127.0.0.1" }), /api\.listen/],
  ["a probe port 65536", at({ probes: [{ name: "sftp", type: "tcp", port: 65536 }] }), /probes.*port/],
  ["a probe port as a string", at({ probes: [{ name: "sftp", type: "tcp", port: "22" }] }), /probes.*port/],
  ["an unknown probe type", at({ probes: [{ name: "sftp", type: "telnet", port: 22 }] }), /probes.*type/],
  [
    "two probes with one name",
    at({
      probes: [
        { name: "a", type: "tcp", port: 22 },
        { name: "a", type: "tcp", port: 23 },
      ],
    }),
    /probes/,
  ],
  ["a priority as a string", at({ node: { name: "n1", address: "127.0.0.1", priority: "100" } }), /node\.priority/],
  ["a token file that does not exist", api({ token_file: join(dir, "absent") }), /api\.token_file: does not exist/],
  ["a token file 0644", api({ token_file: WIDE }), /api\.token_file: has mode 0644/],
  ["a token file that is a symlink", api({ token_file: LINK }), /api\.token_file: .*symbolic link/],
  ["a token file that is a FIFO", api({ token_file: FIFO }), /api\.token_file: .*FIFO/],
  ["a token file /dev/zero", api({ token_file: "/dev/zero" }), /api\.token_file: .*character device/],
  ["a token file that is a directory", api({ token_file: SPECIAL }), /api\.token_file: .*directory/],
  ["'..' in the token file path", api({ token_file: `${dir}/../token` }), /api\.token_file:.*'\.\.'/],
];

let seq = 0;
test("config check refuses each bad config with exit 2 and a coded error naming the file, and writes nothing", async () => {
  const good = join(dir, "good.yaml");
  writeFileSync(good, stringify(BASE));
  const ok = await cli(["config", "check", good]);
  assert.equal(ok.code, 0, `the base config is valid here: ${ok.err}`);
  assert.ok(!existsSync(STATE), "config check does not create state_dir");
  let tried = 0;
  for (const [what, doc, names] of CASES) {
    const file = join(dir, `bad${++seq}.yaml`);
    writeFileSync(file, typeof doc === "string" ? doc : stringify(doc));
    const before = await snapshot(dir);
    const t0 = performance.now();
    const r = await cli(["config", "check", file]);
    assert.ok(performance.now() - t0 < 10_000, `${what}: answered at once`);
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.out}\n${r.err}`);
    assert.match(r.err, /US_E_CONFIG_(INVALID|PARSE|READ)/, `${what}: ${r.err}`);
    assert.match(r.err, names, `${what}: ${r.err}`);
    assert.ok(r.err.includes(file), `${what}: names the file: ${r.err}`);
    // eslint-disable-next-line no-control-regex -- the escape character is what this looks for
    assert.doesNotMatch(r.err, /\u001b/, `${what}: no raw escape code echoed`);
    assert.equal(r.out, "", `${what}: nothing on stdout`);
    assert.deepEqual(await snapshot(dir), before, `${what}: something was written`);
    assert.ok(!existsSync(STATE), `${what}: state_dir created`);
    tried++;
  }
  assert.equal(tried, CASES.length);
});
