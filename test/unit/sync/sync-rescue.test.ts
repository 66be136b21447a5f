import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync } from "node:fs";
import os from "node:os";
import { lstat, readFile, readdir, readlink, stat, writeFile, chmod, unlink, symlink } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { buildManifest, type SyncRoot } from "../../../src/sync/manifest.js";
import { loadManifest, rescueDivergent, saveManifest } from "../../../src/sync/rescue.js";
import { FakeClock } from "../../fakes/clock.js";
import { makeTree, tempDir, type TreeSpec } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";

let base = "";
let cleanup = async () => {};
let n = 0;
before(async () => ({ dir: base, cleanup } = await tempDir("rescue")));
after(() => cleanup());

// FakeClock's wall time starts at 2026-01-01T00:00:00Z plus its monotonic start (1,000,000 ms).
const STAMP = "2026-01-01T00-16-40.000Z";
// /dev/shm is tmpfs on Linux: a second file system for the cross-device path.
const OTHER_FS = existsSync("/dev/shm") && statSync("/dev/shm").dev !== statSync(os.tmpdir()).dev;

async function setup(spec: TreeSpec, over: Partial<SyncRoot> = {}) {
  const caseDir = path.join(base, `case${n++}`);
  const root: SyncRoot = { name: "ssh", path: path.join(caseDir, "etc-ssh"), include: [], exclude: [], maxFileBytes: 1 << 20, ...over };
  await makeTree(root.path, spec);
  return { root, rescueBase: path.join(caseDir, "state", "rescue"), clock: new FakeClock() };
}

const modeOf = async (p: string) => (await lstat(p)).mode & 0o7777;

describe("rescueDivergent", () => {
  it("returns null and creates nothing when the live tree matches the last known manifest", async () => {
    const s = await setup({ k: { content: "key", mode: 0o600 }, "d/f": "f" });
    const lastKnown = await buildManifest(s.root);
    assert.equal(await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown }), null);
    await assert.rejects(stat(s.rescueBase), { code: "ENOENT" });
  });

  it("moves changed and added files (keeping mode) into <base>/<timestamp>/<root>, 0700, and records removals", async () => {
    const s = await setup({ ssh_host_key: { content: "published", mode: 0o600 }, same: "s", gone: "g", link: { link: "same" }, d: { dir: true } });
    const lastKnown = await buildManifest(s.root);
    await writeFile(path.join(s.root.path, "ssh_host_key"), "edited locally");
    await unlink(path.join(s.root.path, "gone"));
    await makeTree(s.root.path, { "d/new.conf": { content: "added", mode: 0o640 } });
    await unlink(path.join(s.root.path, "link"));
    await symlink("d/new.conf", path.join(s.root.path, "link"));
    await chmod(path.join(s.root.path, "d"), 0o700); // a directory's own change: nothing to move

    const r = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown });
    assert.ok(r, "r");
    assert.equal(r.dir, path.join(s.rescueBase, STAMP, "ssh"));
    assert.deepEqual(r.files, ["d/new.conf", "link", "ssh_host_key"]);
    assert.deepEqual(r.removedSinceKnown, ["gone"]);
    assert.equal(await readFile(path.join(r.dir, "ssh_host_key"), "utf8"), "edited locally");
    assert.equal(await modeOf(path.join(r.dir, "ssh_host_key")), 0o600);
    assert.equal(await modeOf(path.join(r.dir, "d/new.conf")), 0o640);
    assert.equal(await readlink(path.join(r.dir, "link")), "d/new.conf");
    for (const d of [s.rescueBase, path.join(s.rescueBase, STAMP), r.dir, path.join(r.dir, "d")]) assert.equal(await modeOf(d), 0o700, d);
    // Moved, not copied: the pull that follows brings the primary's versions.
    assert.deepEqual((await readdir(s.root.path)).sort(), ["d", "same"]);
    assert.deepEqual(await readdir(path.join(s.root.path, "d")), []);
    const record = JSON.parse(await readFile(`${r.dir}.json`, "utf8"));
    assert.deepEqual({ files: record.files, removed: record.removedSinceKnown, digest: record.lastKnownDigest }, { files: r.files, removed: ["gone"], digest: lastKnown.digest });
    assert.equal(await modeOf(`${r.dir}.json`), 0o600);
  });

  it("with no last known manifest, rescues every live file; a missing root has nothing to rescue", async () => {
    const s = await setup({ a: "a", "sub/b": "b", "skip.db": "x" }, { exclude: ["*.db"] });
    const r = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown: undefined });
    assert.deepEqual(r?.files, ["a", "sub/b"]);
    assert.equal(await readFile(path.join(s.root.path, "skip.db"), "utf8"), "x", "excluded files are not the sync's business");
    const missing = { ...s, root: { ...s.root, path: path.join(base, "no-such-root") } };
    assert.equal(await rescueDivergent({ fs: NODE_DURABLE_FS, ...missing, lastKnown: undefined }), null);
  });

  it("a removal alone is reported without a folder, and two rescues in the same millisecond get separate folders", async () => {
    const s = await setup({ a: "a", b: "b" });
    const lastKnown = await buildManifest(s.root);
    await unlink(path.join(s.root.path, "b"));
    const removedOnly = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown });
    assert.deepEqual({ dir: removedOnly?.dir, files: removedOnly?.files, removed: removedOnly?.removedSinceKnown }, { dir: "", files: [], removed: ["b"] });
    assert.equal(existsSync(s.rescueBase) ? readdirSync(s.rescueBase).length : 0, 0, "no rescue folder for nothing to keep");
    await writeFile(path.join(s.root.path, "a"), "changed");
    const first = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown });
    assert.equal(first?.dir, path.join(s.rescueBase, STAMP, "ssh"));
    await writeFile(path.join(s.root.path, "a"), "changed again");
    const second = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, lastKnown });
    assert.equal(second?.dir, path.join(s.rescueBase, `${STAMP}-1`, "ssh"));
    assert.equal(await readFile(path.join(first!.dir, "a"), "utf8"), "changed");
    assert.equal(await readFile(path.join(second!.dir, "a"), "utf8"), "changed again");
  });

  it("moves across file systems by copying with mode and mtime, then removing", { skip: !OTHER_FS && "no second file system at /dev/shm" }, async () => {
    const s = await setup({ k: { content: "key", mode: 0o600 }, l: { link: "k" }, t: "t" });
    const lastKnown = await buildManifest(s.root);
    await writeFile(path.join(s.root.path, "k"), "edited");
    await unlink(path.join(s.root.path, "l"));
    await symlink("t", path.join(s.root.path, "l"));
    const mtime = (await stat(path.join(s.root.path, "k"))).mtimeMs;
    const other = await tempDir("rescue-xfs", "/dev/shm");
    try {
      const r = await rescueDivergent({ fs: NODE_DURABLE_FS, ...s, rescueBase: other.dir, lastKnown });
      assert.deepEqual(r?.files, ["k", "l"]);
      assert.equal(await readFile(path.join(r!.dir, "k"), "utf8"), "edited");
      assert.equal(await modeOf(path.join(r!.dir, "k")), 0o600);
      assert.ok(Math.abs((await stat(path.join(r!.dir, "k"))).mtimeMs - mtime) < 1, "mtime kept");
      assert.equal(await readlink(path.join(r!.dir, "l")), "t");
      assert.deepEqual(await readdir(s.root.path), ["t"]);
    } finally {
      await other.cleanup();
    }
  });
});

describe("saveManifest / loadManifest", () => {
  it("round-trips a manifest through a 0600 file, and returns undefined when there is none", async () => {
    const s = await setup({ k: { content: "key", mode: 0o600 }, l: { link: "k" } });
    const m = await buildManifest(s.root);
    const file = path.join(base, `state${n++}.json`);
    assert.equal(await loadManifest(file), undefined);
    await saveManifest(file, m, NODE_DURABLE_FS);
    assert.equal(await modeOf(file), 0o600);
    assert.deepEqual(await loadManifest(file), m);
    await saveManifest(file, await buildManifest({ ...s.root, exclude: ["*"] }), NODE_DURABLE_FS);
    assert.deepEqual((await loadManifest(file))?.entries, []);
    assert.deepEqual(
      (await readdir(base)).filter((f) => f.includes(".tmp-")),
      [],
      "no temp file left behind",
    );
  });

  it("refuses a record that is not JSON, not a manifest, has unsafe paths or does not match its digest", async () => {
    const s = await setup({ k: "key" });
    const m = await buildManifest(s.root);
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      ["[]", /not a manifest/],
      [JSON.stringify({ ...m, entries: [{ path: "k" }] }), /malformed entry/],
      [JSON.stringify({ ...m, entries: m.entries.map((e) => ({ ...e, path: "../k" })) }), /'\.\.' segment/],
      [JSON.stringify({ ...m, entries: m.entries.map((e) => ({ ...e, mode: 0o777 })) }), /digest does not match/],
    ];
    for (const [text, re] of cases) {
      const file = path.join(base, `bad${n++}.json`);
      await writeFile(file, text);
      await assert.rejects(loadManifest(file), (e) => isUnderstudyError(e, "US_E_SYNC_STATE") && re.test(e.message), text);
    }
  });
});
