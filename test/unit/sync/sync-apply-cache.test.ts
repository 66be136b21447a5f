// applyStaged with a hash cache: what goes live is remembered under its live
// path, so the next verify of the root hashes nothing again; files that went
// live inside a directory moved whole keep the key the checks cached (no lstat),
// and nothing of them stays cached under the staged path.
import assert from "node:assert/strict";
import { lstat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { SpawnCommandRunner } from "../../../src/platform/command.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { applyStaged } from "../../../src/sync/apply.js";
import { HashCache, buildManifest, statKey } from "../../../src/sync/manifest.js";
import { isRoot } from "../../fakes/tree.js";
import { applySetups } from "./apply-setup.js";

const setup = applySetups("apply-cache");

/** A HashCache that lists every path it hashed (a miss) since the last reset. */
class CountingCache extends HashCache {
  hashed: string[] = [];
  override set(abs: string, key: string, sha256: string): void {
    this.hashed.push(abs);
    super.set(abs, key, sha256);
  }
}

const TREE = {
  "top.conf": "top",
  "keys/a": { content: "A", mode: 0o600 },
  "keys/deep/b": "B",
  "hooks/run.sh": { content: "#!/bin/sh\n", mode: 0o755 },
};
const LIVE_FILES = ["top.conf", "keys/a", "keys/deep/b", "hooks/run.sh"];

describe("applyStaged with a hash cache", () => {
  it("files placed one by one and files in directories moved whole: the next verify reads nothing", async () => {
    const s = await setup(TREE, { "top.conf": "old", "keys/a": { content: "old", mode: 0o600 } });
    const expected = await s.restage();
    const cache = new CountingCache();
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, cache });
    assert.deepEqual(r.added, ["hooks", "hooks/run.sh", "keys/deep", "keys/deep/b"], "hooks and keys/deep went live whole");
    cache.hashed = [];
    const live = await buildManifest(s.root, s.root.path, cache);
    assert.equal(live.digest, expected.digest);
    assert.deepEqual(cache.hashed, [], "no live file hashed again");
  });

  it("a first sync (no live root) carries every key from the staged path to the live one", async () => {
    const s = await setup(TREE, undefined);
    const expected = await s.restage();
    const cache = new CountingCache();
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, cache });
    // top.conf is placed alone (lstat'ed at its live path); the others were carried, not copied.
    for (const rel of LIVE_FILES.slice(1)) assert.equal(cache.carry(path.join(s.stage, rel), "/nowhere"), false, `${rel}: nothing left under the staged path`);
    for (const rel of LIVE_FILES) {
      const abs = path.join(s.root.path, rel);
      assert.ok(cache.get(abs, statKey(await lstat(abs, { bigint: true }))), `${rel}: the cached key is the live file's stat identity`);
    }
    cache.hashed = [];
    assert.equal((await buildManifest(s.root, s.root.path, cache)).digest, expected.digest);
    assert.deepEqual(cache.hashed, []);
  });

  it("a forced owner (chown after the checks changes ctime): those files are read at their live path, still nothing hashed next", { skip: !isRoot && "needs root (chown)" }, async () => {
    const s = await setup(TREE, undefined);
    const expected = await s.restage();
    const cache = new CountingCache();
    const owner = { uid: 1234, gid: 2345 };
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, cache, owner });
    cache.hashed = [];
    await buildManifest(s.root, s.root.path, cache);
    assert.deepEqual(cache.hashed, [], "no live file hashed again");
  });

  it("a key carried for a file changed after the checks only misses: the file is hashed again, never trusted", async () => {
    const s = await setup(TREE, undefined);
    const expected = await s.restage();
    const cache = new CountingCache();
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, cache });
    await writeFile(path.join(s.root.path, "keys/deep/b"), "C"); // same size, new content
    cache.hashed = [];
    const live = await buildManifest(s.root, s.root.path, cache);
    assert.deepEqual(cache.hashed, [path.join(s.root.path, "keys/deep/b")]);
    assert.notEqual(live.digest, expected.digest);
  });
});
