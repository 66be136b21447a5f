// SyncStateStore (src/sync/state.ts): the held generation and the last known
// manifests across restarts; anything it cannot trust is US_E_SYNC_STATE.
// resolveOwner (src/sync/owner.ts): `owner: user:group` against passwd/group files.
import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { buildManifest } from "../../../src/sync/manifest.js";
import { resolveOwner } from "../../../src/sync/owner.js";
import { EMPTY_STATE, SyncStateStore } from "../../../src/sync/state.js";
import { makeTree, tempDir } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";

let base = "";
let cleanup = async () => {};
let n = 0;
before(async () => ({ dir: base, cleanup } = await tempDir("state")));
after(() => cleanup());

const fresh = () => path.join(base, `s${n++}`);
const modeOf = async (p: string) => (await stat(p)).mode & 0o7777;
const coded = (code: string, re?: RegExp) => (e: unknown) => isUnderstudyError(e) && e.code === code && (re === undefined || re.test(e.message));

describe("SyncStateStore", () => {
  it("lays out <state_dir>/sync (0700) and <state_dir>/rescue; holds nothing before the first save", async () => {
    const dir = fresh();
    const store = new SyncStateStore(dir, NODE_DURABLE_FS);
    assert.equal(store.dir, path.join(dir, "sync"));
    assert.equal(store.rescueBase, path.join(dir, "rescue"));
    await store.init();
    assert.equal(await modeOf(path.join(dir, "sync")), 0o700);
    assert.equal(await modeOf(path.join(dir, "sync", "known")), 0o700);
    assert.deepEqual(await store.loadHeld(), EMPTY_STATE);
    assert.equal(await store.loadKnown("ssh"), undefined);
    await store.init(); // idempotent
  });

  it("saves and loads the held generation (state.json, 0600, replaced whole)", async () => {
    const store = new SyncStateStore(fresh(), NODE_DURABLE_FS);
    await store.init();
    await store.saveHeld({ generation: 3, roots: { ssh: "a".repeat(64), web: "b".repeat(64) } });
    await store.saveHeld({ generation: 4, roots: { ssh: "c".repeat(64) } });
    assert.deepEqual(await store.loadHeld(), { generation: 4, roots: { ssh: "c".repeat(64) } });
    const file = path.join(store.dir, "state.json");
    assert.equal(await modeOf(file), 0o600);
    assert.deepEqual(JSON.parse(await readFile(file, "utf8")), { generation: 4, roots: { ssh: "c".repeat(64) } });
  });

  const CORRUPT: [string, string][] = [
    ["not JSON", "{ not json"],
    ["truncated", '{"generation":4,"roots":{"ssh":"c'],
    ["null", "null"],
    ["no generation", '{"roots":{}}'],
    ["negative generation", '{"generation":-1,"roots":{}}'],
    ["fractional generation", '{"generation":1.5,"roots":{}}'],
    ["generation as a string", '{"generation":"4","roots":{}}'],
    ["no roots", '{"generation":4}'],
    ["a digest that is not a string", '{"generation":4,"roots":{"ssh":5}}'],
  ];
  for (const [name, text] of CORRUPT) {
    it(`refuses a corrupt state.json (${name}) with US_E_SYNC_STATE naming the file`, async () => {
      const store = new SyncStateStore(fresh(), NODE_DURABLE_FS);
      await store.init();
      const file = path.join(store.dir, "state.json");
      await writeFile(file, text);
      await assert.rejects(store.loadHeld(), (e: unknown) => coded("US_E_SYNC_STATE")(e) && isUnderstudyError(e) && e.details.file === file && e.message.includes(file));
    });
  }

  it("refuses a state.json it cannot read (a directory) with US_E_SYNC_STATE", async () => {
    const store = new SyncStateStore(fresh(), NODE_DURABLE_FS);
    await store.init();
    await mkdir(path.join(store.dir, "state.json"));
    await assert.rejects(store.loadHeld(), coded("US_E_SYNC_STATE", /EISDIR/));
  });

  it("saves and loads a root's last known manifest; an edited record is not trusted", async () => {
    const dir = fresh();
    const root = { name: "ssh", path: path.join(dir, "etc-ssh"), include: [], exclude: [], maxFileBytes: 1 << 20 };
    await makeTree(root.path, { k: { content: "key", mode: 0o600 }, "d/f": "f" });
    const m = await buildManifest(root);
    const store = new SyncStateStore(path.join(dir, "state"), NODE_DURABLE_FS);
    await store.init();
    await store.saveKnown("ssh", m);
    assert.deepEqual(await store.loadKnown("ssh"), m);
    assert.equal(await store.loadKnown("web"), undefined);
    const file = path.join(store.dir, "known", "ssh.json");
    assert.equal(await modeOf(file), 0o600);
    const tampered = JSON.parse(await readFile(file, "utf8"));
    tampered.entries[0].mode = 0o777;
    await writeFile(file, JSON.stringify(tampered));
    await assert.rejects(store.loadKnown("ssh"), coded("US_E_SYNC_STATE", /digest does not match/));
    await writeFile(file, "[]");
    await assert.rejects(store.loadKnown("ssh"), coded("US_E_SYNC_STATE", /not a manifest/));
  });
});

describe("resolveOwner", () => {
  const PASSWD = [
    "root:x:0:0:root:/root:/bin/bash",
    "sshd:x:105:65534::/run/sshd:/usr/sbin/nologin",
    "sftp-admin:x:1001:1001::/srv/sftp:/bin/sh",
    "broken:x:notanumber:0::/:/bin/sh",
    "host$:x:3001:3001::/:/usr/sbin/nologin",
    "",
  ].join("\n");
  const GROUP = ["root:x:0:", "ssh-users:x:2001:alice,bob", "nogroup:x:65534:", ""].join("\n");

  async function files() {
    const dir = fresh();
    await mkdir(dir, { recursive: true });
    const passwd = path.join(dir, "passwd");
    const group = path.join(dir, "group");
    await writeFile(passwd, PASSWD);
    await writeFile(group, GROUP);
    return { passwd, group };
  }

  it("resolves names from the passwd and group files", async () => {
    const f = await files();
    assert.deepEqual(await resolveOwner("ssh", "sshd:ssh-users", f), { uid: 105, gid: 2001 });
    assert.deepEqual(await resolveOwner("ssh", "sftp-admin:nogroup", f), { uid: 1001, gid: 65534 });
    assert.deepEqual(await resolveOwner("ssh", "host$:root", f), { uid: 3001, gid: 0 });
  });

  it("takes numbers as they are, without reading the files", async () => {
    const missing = { passwd: path.join(base, "no-passwd"), group: path.join(base, "no-group") };
    assert.deepEqual(await resolveOwner("ssh", "1000:1000", missing), { uid: 1000, gid: 1000 });
    assert.deepEqual(await resolveOwner("ssh", "0:0", missing), { uid: 0, gid: 0 });
    const f = await files();
    assert.deepEqual(await resolveOwner("ssh", "sshd:0", f), { uid: 105, gid: 0 });
    assert.deepEqual(await resolveOwner("ssh", "0:ssh-users", f), { uid: 0, gid: 2001 });
  });

  it("refuses unknown names with US_E_SYNC_ROOT_INVALID naming the root; names match whole, not as prefixes", async () => {
    const f = await files();
    const cases: [string, RegExp][] = [
      ["ssh:root", /no user named ssh in .*passwd/], // "sshd" exists
      ["root:ssh", /no group named ssh in .*group/], // "ssh-users" exists
      ["broken:root", /no user named broken/], // its uid field is not a number
      ["nobody-here:root", /no user named nobody-here/],
    ];
    for (const [spec, re] of cases) {
      await assert.rejects(resolveOwner("keys", spec, f), (e: unknown) => coded("US_E_SYNC_ROOT_INVALID", re)(e) && isUnderstudyError(e) && e.details.name === "keys", spec);
    }
  });

  it("refuses a name it cannot look up because the file is unreadable", async () => {
    const f = await files();
    const missing = path.join(base, "missing-group");
    await assert.rejects(resolveOwner("ssh", "sshd:ssh-users", { ...f, group: missing }), coded("US_E_SYNC_ROOT_INVALID", /cannot read .*missing-group to look up group ssh-users \(ENOENT\)/));
  });

  it("reads /etc/passwd and /etc/group by default", async () => {
    assert.deepEqual(await resolveOwner("ssh", "root:root"), { uid: 0, gid: 0 });
  });
});
