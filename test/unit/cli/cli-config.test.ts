// The CLI's quick read of a node's config (src/cli/client-config.ts) against
// the full loader: the same answer on every example config and on variations
// of the fields it reads; the full loader's coded error whenever a field it
// needs is off.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fullClientConfig, pickClientConfig, readClientConfig } from "../../../src/cli/client-config.js";

const EXAMPLES = fileURLToPath(new URL("../../../deploy/examples/", import.meta.url));
const BASE = "cluster: c\nnode: { name: n1, address: 198.18.0.11 }\ndaemon: { backend: systemd, unit: ssh.service }\n";

function dir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "cli-config-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("equal to the full loader on every example config", async () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 3, "files.length >= 3");
  for (const f of files) assert.deepEqual(await readClientConfig(join(EXAMPLES, f)), await fullClientConfig(join(EXAMPLES, f)), f);
});

test("equal to the full loader on variations of the fields it reads (defaults included)", async (t) => {
  const d = dir(t);
  const variants = [
    'etcd: { endpoints: ["http://198.18.0.2:2379"] }\n',
    'etcd: { endpoints: ["http://198.18.0.2:2379", "http://198.18.0.3:2379"], prefix: /ha }\n',
    'etcd: { endpoints: ["http://198.18.0.2:2379"] }\napi: { listen: "127.0.0.1:9000", token_file: /etc/understudy/api-token }\n',
    'etcd: { endpoints: ["http://198.18.0.2:2379"] }\napi: { auth_reads: true }\n',
    'etcd: { endpoints: ["http://198.18.0.2:2379"] }\napi: { listen: "[::1]:8470", tls: { cert: /etc/c.pem, key: /etc/k.pem } }\n',
  ];
  for (const [i, v] of variants.entries()) {
    const f = join(d, `v${i}.yaml`);
    writeFileSync(f, BASE + v);
    assert.deepEqual(await readClientConfig(f), await fullClientConfig(f), v);
  }
});

test("a needed field that is off gets the full loader's coded error", async (t) => {
  const d = dir(t);
  const bad: [string, RegExp][] = [
    ['etcd: { endpoints: ["not a url"] }\n', /US_E_CONFIG_INVALID: config file .*: etcd\.endpoints/],
    ["etcd: { endpoints: [] }\n", /US_E_CONFIG_INVALID: config file .*: etcd\.endpoints/],
    ['etcd: { endpoints: ["http://198.18.0.2:2379"], prefix: nope }\n', /etcd\.prefix/],
    ['etcd: { endpoints: ["http://198.18.0.2:2379"] }\napi: { listen: "8470" }\n', /api\.listen/],
  ];
  for (const [v, want] of bad) {
    const f = join(d, "bad.yaml");
    writeFileSync(f, BASE + v);
    await assert.rejects(readClientConfig(f), want, v);
  }
  writeFileSync(join(d, "name.yaml"), BASE.replace("cluster: c", "cluster: Bad_Name") + 'etcd: { endpoints: ["http://198.18.0.2:2379"] }\n');
  await assert.rejects(readClientConfig(join(d, "name.yaml")), /US_E_CONFIG_INVALID: .*cluster/);
  await assert.rejects(readClientConfig(join(d, "missing.yaml")), /US_E_CONFIG_READ/);
  writeFileSync(join(d, "dup.yaml"), `${BASE}cluster: d\netcd: { endpoints: ["http://198.18.0.2:2379"] }\n`);
  await assert.rejects(readClientConfig(join(d, "dup.yaml")), /US_E_CONFIG_PARSE/);
});

test("pickClientConfig declines anything it does not fully understand", () => {
  assert.equal(pickClientConfig(null), undefined);
  assert.equal(pickClientConfig({ cluster: "c", etcd: { endpoints: "http://x:1" } }), undefined);
  assert.equal(pickClientConfig({ cluster: "c", etcd: { endpoints: ["http://x:1"] }, api: { token_file: "relative" } }), undefined);
  assert.deepEqual(pickClientConfig({ cluster: "c", etcd: { endpoints: ["http://x:1"] } }), { cluster: "c", etcd: { endpoints: ["http://x:1"], prefix: "/understudy" } });
  assert.ok(
    readFileSync(fileURLToPath(new URL("../../../src/config/schema.ts", import.meta.url)), "utf8").includes("listen: c.api.listen ?? defaultApiListen(c.node.address)"),
    "the api.listen default this reader assumes",
  );
  assert.deepEqual(pickClientConfig({ cluster: "c", node: { address: "198.18.0.11" }, etcd: { endpoints: ["http://x:1"] }, api: {} })?.api?.listen, "198.18.0.11:8470");
});

test("apiUrlOf: the port is kept for every listen form; a wildcard listen is reached on the loopback", async () => {
  const { apiUrlOf } = await import("../../../src/cli/control.js");
  assert.equal(apiUrlOf("0.0.0.0:8008", false), "http://127.0.0.1:8008");
  assert.equal(apiUrlOf("[::]:8008", true), "https://127.0.0.1:8008");
  assert.equal(apiUrlOf("198.18.0.1:8009", false), "http://198.18.0.1:8009");
  assert.equal(apiUrlOf("[fd00::1]:8008", true), "https://[fd00::1]:8008");
  assert.equal(apiUrlOf("node1.example:8443", true), "https://node1.example:8443");
});
