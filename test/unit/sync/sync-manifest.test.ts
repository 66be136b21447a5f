import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, lstat, unlink, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { HashCache, buildManifest, diffManifests, manifestOf, type SyncRoot } from "../../../src/sync/manifest.js";
import { checkRelativePath, checkSyncRoot } from "../../../src/sync/paths.js";
import { copyTree, isRoot, makeTree, tempDir } from "../../fakes/tree.js";

const SHA_HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; // sha256("hello")

let base = "";
let cleanup = async () => {};
let n = 0;
before(async () => ({ dir: base, cleanup } = await tempDir("manifest")));
after(() => cleanup());

/** A fresh root directory with `spec`, and a SyncRoot over it. */
async function rootWith(spec: Parameters<typeof makeTree>[1], over: Partial<SyncRoot> = {}): Promise<SyncRoot> {
  const dir = path.join(base, `r${n++}`);
  await makeTree(dir, spec);
  return { name: "ssh", path: dir, include: [], exclude: [], maxFileBytes: 1024 * 1024, ...over };
}

const rejectsWith = (code: string, re?: RegExp) => (e: unknown) => isUnderstudyError(e) && e.code === code && (re === undefined || re.test(e.message));

describe("buildManifest", () => {
  it("records files, directories and links with type, mode, owner, size, hash and target, sorted", async () => {
    const root = await rootWith({
      ssh_host_ed25519_key: { content: "hello", mode: 0o600 },
      hooks: { dir: true, mode: 0o750 },
      "hooks/post.sh": { content: "#!/bin/sh\n", mode: 0o4755 },
      current: { link: "hooks/post.sh" },
      "a-b": "x",
    });
    const m = await buildManifest(root);
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ["a-b", "current", "hooks", "hooks/post.sh", "ssh_host_ed25519_key"],
    );
    const by = new Map(m.entries.map((e) => [e.path, e]));
    const key = by.get("ssh_host_ed25519_key")!;
    assert.equal(key.type, "file");
    assert.equal(key.mode, 0o600);
    assert.equal(key.size, 5);
    assert.equal(key.sha256, SHA_HELLO);
    assert.equal(key.uid, process.getuid!());
    assert.ok(Number.isInteger(key.mtimeMs), "Number.isInteger(key.mtimeMs)");
    assert.equal(key.target, undefined);
    assert.equal(by.get("hooks/post.sh")!.mode, 0o4755, "setuid bit kept");
    assert.deepEqual({ type: by.get("hooks")!.type, mode: by.get("hooks")!.mode, size: by.get("hooks")!.size }, { type: "dir", mode: 0o750, size: 0 });
    const link = by.get("current")!;
    assert.deepEqual({ type: link.type, target: link.target, sha256: link.sha256 }, { type: "symlink", target: "hooks/post.sh", sha256: undefined });
    assert.equal(m.root, "ssh");
    assert.match(m.digest, /^[0-9a-f]{64}$/);
    assert.deepEqual(m.skipped, []);
  });

  it("accepts links that stay inside the root: relative, absolute into the root, dangling, through other links", async () => {
    const root = await rootWith({ "d/deep": { dir: true }, "d/deep/f": "x", up: { link: "d/deep/../deep/f" }, gone: { link: "nothing-here" }, via: { link: "d/deep" }, through: { link: "via/f" } });
    await makeTree(root.path, { abs: { link: path.join(root.path, "d/deep/f") }, self: { link: root.path } });
    const m = await buildManifest(root);
    assert.equal(m.entries.filter((e) => e.type === "symlink").length, 6);
  });

  const ESCAPES: { name: string; spec: Parameters<typeof makeTree>[1]; re: RegExp }[] = [
    { name: "relative ../", spec: { out: { link: "../elsewhere" } }, re: /out.*resolves outside/ },
    { name: "absolute outside", spec: { out: { link: "/etc/passwd" } }, re: /outside/ },
    { name: "deep relative", spec: { "a/b": "x", "a/out": { link: "../../x" } }, re: /a\/out/ },
    // Lexically "sub/deep/x" — but up goes to the root, so ".." really leaves it.
    { name: "through another link", spec: { "sub/deep": { dir: true }, "sub/deep/up": { link: "../.." }, esc: { link: "sub/deep/up/../x" } }, re: /esc.*outside/ },
    { name: "link loop", spec: { l1: { link: "l2" }, l2: { link: "l1" } }, re: /too many levels/ },
  ];
  for (const c of ESCAPES) {
    it(`refuses a link escaping the root: ${c.name}`, async () => {
      const root = await rootWith(c.spec);
      await assert.rejects(buildManifest(root), rejectsWith("US_E_SYNC_UNSAFE_PATH", c.re));
    });
  }

  it("refuses a file over maxFileBytes, naming it and its size", async () => {
    const root = await rootWith({ "sub/big.bin": "x".repeat(101), small: "y".repeat(100) }, { maxFileBytes: 100 });
    await assert.rejects(buildManifest(root), rejectsWith("US_E_SYNC_FILE_TOO_LARGE", /sub\/big\.bin is 101 bytes, over the 100-byte limit/));
  });

  it("reports a missing root as US_E_SYNC_UNREADABLE", async () => {
    const root = await rootWith({});
    await assert.rejects(buildManifest(root, path.join(root.path, "nope")), rejectsWith("US_E_SYNC_UNREADABLE", /cannot read \.: .*ENOENT/));
  });

  it("reports an unreadable file as US_E_SYNC_UNREADABLE", { skip: isRoot && "root reads every file" }, async () => {
    const root = await rootWith({ secret: { content: "x", mode: 0o000 } });
    await assert.rejects(buildManifest(root), rejectsWith("US_E_SYNC_UNREADABLE", /secret/));
  });

  it("skips FIFOs with a note and keeps them out of the digest", async () => {
    const root = await rootWith({ a: "x" });
    const before = await buildManifest(root);
    execFileSync("mkfifo", [path.join(root.path, "pipe")]);
    const m = await buildManifest(root);
    assert.deepEqual(m.skipped, [{ path: "pipe", kind: "fifo" }]);
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ["a"],
    );
    assert.equal(m.digest, before.digest);
  });

  it("exclude prunes a directory's subtree; a pattern without / matches at any depth", async () => {
    const root = await rootWith({ "keep.conf": "", "cache/x.conf": "", "cache/deep/y": "", "sub/users.db": "", "sub/ok": "" }, { exclude: ["cache", "*.db"] });
    const m = await buildManifest(root);
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ["keep.conf", "sub", "sub/ok"],
    );
  });

  it("include keeps matches, their subtrees, and the directories leading to them; exclude wins", async () => {
    const root = await rootWith(
      { ssh_host_rsa_key: "", "ssh_host_rsa_key.pub": "", sshd_config: "", moduli: "", "conf.d/a.conf": "", "conf.d/old/b": "", "x/y/ssh_host_z": "", empty: { dir: true } },
      { include: ["ssh_host_*", "conf.d"], exclude: ["*.pub", "old"] },
    );
    const m = await buildManifest(root);
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ["conf.d", "conf.d/a.conf", "ssh_host_rsa_key", "x", "x/y", "x/y/ssh_host_z"],
    );
  });

  it("the digest is stable across builds and across a cp -a copy, and ignores mtime", async () => {
    const root = await rootWith({ k: { content: "key", mode: 0o600 }, "d/f": "f", l: { link: "d/f" } });
    const first = await buildManifest(root);
    assert.equal((await buildManifest(root)).digest, first.digest);
    const copy = path.join(base, `copy${n++}`);
    copyTree(root.path, copy);
    assert.equal((await buildManifest(root, copy)).digest, first.digest);
    await utimes(path.join(root.path, "k"), 1000, 1000);
    const touched = await buildManifest(root);
    assert.equal(touched.digest, first.digest);
    assert.notEqual(touched.entries.find((e) => e.path === "k")!.mtimeMs, first.entries.find((e) => e.path === "k")!.mtimeMs);
  });

  it("the digest changes with content and with mode", async () => {
    const root = await rootWith({ k: { content: "key", mode: 0o600 } });
    const first = await buildManifest(root);
    await chmod(path.join(root.path, "k"), 0o644);
    const widened = await buildManifest(root);
    assert.notEqual(widened.digest, first.digest);
    await chmod(path.join(root.path, "k"), 0o600);
    await writeFile(path.join(root.path, "k"), "kex");
    assert.notEqual((await buildManifest(root)).digest, first.digest);
  });
});

/** Counts the files actually read and hashed: set() runs only on a cache miss. */
class CountingCache extends HashCache {
  readonly hashed: string[] = [];
  override set(abs: string, key: string, sha256: string): void {
    this.hashed.push(abs);
    super.set(abs, key, sha256);
  }
}

describe("HashCache", () => {
  it("a rebuild after a one-file edit re-hashes only that file, even with its size and mtime restored (ctime moved)", async () => {
    const root = await rootWith({ a: "hello", b: "bbbbb", "d/c": "ccccc" });
    const a = path.join(root.path, "a");
    await utimes(a, 1000, 1000); // whole seconds: restorable exactly
    const cache = new CountingCache();
    const first = await buildManifest(root, root.path, cache);
    assert.deepEqual(cache.hashed.map((p) => path.relative(root.path, p)).sort(), ["a", "b", "d/c"]);
    assert.equal(cache.size, 3);
    assert.equal(first.entries.find((e) => e.path === "a")!.sha256, SHA_HELLO);

    const again = await buildManifest(root, root.path, cache);
    assert.equal(cache.hashed.length, 3, "nothing changed: nothing read");
    assert.equal(again.digest, first.digest);

    const before = await lstat(a, { bigint: true });
    await writeFile(a, "HELLO"); // same size
    await utimes(a, 1000, 1000);
    const after = await lstat(a, { bigint: true });
    assert.equal(after.size, before.size);
    assert.equal(after.mtimeNs, before.mtimeNs, "mtime restored exactly");
    assert.notEqual(after.ctimeNs, before.ctimeNs, "ctime cannot be restored");
    const edited = await buildManifest(root, root.path, cache);
    assert.deepEqual(cache.hashed.slice(3), [a], "only the edited file is read again");
    assert.notEqual(edited.digest, first.digest);
    assert.equal(edited.entries.find((e) => e.path === "a")!.sha256, (await buildManifest(root)).entries.find((e) => e.path === "a")!.sha256);
    assert.notEqual(edited.entries.find((e) => e.path === "a")!.sha256, SHA_HELLO);
    assert.equal(edited.digest, (await buildManifest(root)).digest, "same manifest as without a cache");
  });

  it("forgets deleted files, keeps other trees' entries (even a sibling sharing the name prefix)", async () => {
    const root = await rootWith({ a: "a", b: "b" });
    const sibling = `${root.path}-copy`;
    copyTree(root.path, sibling);
    const cache = new CountingCache();
    await buildManifest(root, root.path, cache);
    await buildManifest(root, sibling, cache);
    assert.equal(cache.size, 4);
    assert.equal(cache.hashed.length, 4, "a copy at another path is hashed on its own");
    await unlink(path.join(root.path, "b"));
    await buildManifest(root, root.path, cache);
    assert.equal(cache.size, 3, "the deleted file's entry is gone");
    assert.equal(cache.get(path.join(sibling, "b"), "any"), undefined, "get() needs the stat key too");
    await buildManifest(root, sibling, cache);
    assert.equal(cache.hashed.length, 4, "the sibling's entries survived the prune: no re-hash");
  });
});

describe("buildManifest: paths deleted while the tree is walked", () => {
  it("a file deleted before its hash, or a directory before it is listed, is simply not in the tree", async () => {
    const root = await rootWith({ keep: "k", gone: "g", "sub/inner": "i", "stay/x": "x" });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const hasher = async (abs: string) => {
      if (abs.endsWith("/gone")) await gate; // held: the file is deleted meanwhile
      const { readFile } = await import("node:fs/promises");
      const data = await readFile(abs);
      return { size: data.length, sha256: "0".repeat(64) };
    };
    let paced = 0;
    const pace = async () => {
      if (++paced === 2) {
        // The root's entries are stat'ed; before "stay" is walked: delete "gone" and the whole of "sub".
        await unlink(path.join(root.path, "gone"));
        execFileSync("rm", ["-rf", path.join(root.path, "sub")]);
        release();
      }
    };
    const m = await buildManifest(root, root.path, new HashCache(), hasher, { pace });
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ["keep", "stay", "stay/x"],
    );
  });
});

describe("diffManifests", () => {
  it("lists added, changed (content, mode, owner, type, target) and removed paths, ignoring mtime", () => {
    const f = { type: "file" as const, size: 1, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1, sha256: "aa" };
    const a = manifestOf("r", [
      { ...f, path: "same" },
      { ...f, path: "touched" },
      { ...f, path: "content" },
      { ...f, path: "mode" },
      { ...f, path: "owner" },
      { ...f, path: "kind" },
      { path: "link", type: "symlink", size: 1, mode: 0o777, uid: 0, gid: 0, mtimeMs: 1, target: "x" },
      { ...f, path: "gone" },
    ]);
    const b = manifestOf("r", [
      { ...f, path: "same" },
      { ...f, path: "touched", mtimeMs: 99 },
      { ...f, path: "content", sha256: "bb" },
      { ...f, path: "mode", mode: 0o600 },
      { ...f, path: "owner", gid: 5 },
      { path: "kind", type: "dir", size: 0, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1 },
      { path: "link", type: "symlink", size: 1, mode: 0o777, uid: 0, gid: 0, mtimeMs: 1, target: "y" },
      { ...f, path: "new" },
    ]);
    assert.deepEqual(diffManifests(a, b), { added: ["new"], changed: ["content", "kind", "link", "mode", "owner"], removed: ["gone"] });
    assert.deepEqual(diffManifests(a, a), { added: [], changed: [], removed: [] });
  });
});

describe("path rules", () => {
  const BAD: [string, RegExp][] = [
    ["", /empty path/],
    ["/etc/passwd", /absolute/],
    ["a/../b", /'\.\.' segment/],
    ["..", /'\.\.'/],
    ["./a", /'\.' segment/],
    ["a//b", /empty segment/],
    ["a/", /empty segment/],
    ["a\0b", /NUL/],
  ];
  for (const [p, re] of BAD) {
    it(`checkRelativePath refuses ${JSON.stringify(p)}`, () => {
      assert.throws(() => checkRelativePath("r", p), rejectsWith("US_E_SYNC_UNSAFE_PATH", re));
    });
  }
  it("checkRelativePath accepts plain paths, including odd but harmless names", () => {
    for (const p of ["a", "a/b", "..a", "a..", ".hidden/x", "sp ace", "back\\slash"]) checkRelativePath("r", p);
  });
  it("checkSyncRoot refuses names that are not plain file names, relative paths and bad limits", () => {
    const ok: SyncRoot = { name: "ssh", path: "/etc/ssh", include: [], exclude: [], maxFileBytes: 1 };
    checkSyncRoot(ok);
    for (const bad of [{ name: "../x" }, { name: "" }, { name: "a/b" }, { path: "etc/ssh" }, { path: "/" }, { maxFileBytes: 0 }, { maxFileBytes: 1.5 }, { exclude: [""] }]) {
      assert.throws(() => checkSyncRoot({ ...ok, ...bad }), rejectsWith("US_E_SYNC_ROOT_INVALID"), JSON.stringify(bad));
    }
  });
});
