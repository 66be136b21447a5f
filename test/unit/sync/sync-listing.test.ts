// Directory listing in the hash worker (src/sync/hasher.ts, listing.ts): the
// same stats and cache keys as an lstat in the calling thread, the same
// manifests, and the same coded errors for what cannot be read.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { HashWorker, type FileHasher, type TreeReader } from "../../../src/sync/hasher.js";
import { entryStatOf, listedFromWorker, type ListedEntry } from "../../../src/sync/listing.js";
import { HashCache, buildManifest, statKey, type SyncRoot } from "../../../src/sync/manifest.js";

function tree(): { dir: string; root: SyncRoot } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-list-"));
  mkdirSync(path.join(dir, "etc/ssh"), { recursive: true });
  mkdirSync(path.join(dir, "cache"));
  writeFileSync(path.join(dir, "etc/ssh/host_key"), "secret\n", { mode: 0o600 });
  writeFileSync(path.join(dir, "etc/app.conf"), "a = 1\n");
  writeFileSync(path.join(dir, "cache/junk"), "x");
  writeFileSync(path.join(dir, "run.sh"), "#!/bin/sh\n");
  chmodSync(path.join(dir, "run.sh"), 0o4755);
  symlinkSync("etc/app.conf", path.join(dir, "current.conf"));
  execFileSync("mkfifo", [path.join(dir, "etc/pipe")]);
  for (const d of ["etc", "etc/ssh", "cache"]) chmodSync(path.join(dir, d), 0o755); // whatever the umask
  // mtime set back: unlike ctime, so a key with the two swapped would differ (a fresh file's are often equal).
  for (const f of ["etc/app.conf", "etc/ssh/host_key", "run.sh"]) utimesSync(path.join(dir, f), 1_000_000, 1_000_000);
  return { dir, root: { name: "r", path: dir, include: [], exclude: ["cache"], maxFileBytes: 1 << 20 } };
}

test("HashWorker.list: every entry with the lstat an in-thread lstat gives, and statKey's key", async () => {
  const { dir } = tree();
  const worker = new HashWorker(50, new SystemClock());
  try {
    for (const sub of ["", "etc", "etc/ssh"]) {
      const listed = await worker.list(path.join(dir, sub));
      const names = listed.map((l) => l.name).sort();
      assert.deepEqual(names, lsNames(path.join(dir, sub)));
      for (const l of listed) {
        assert.ok("stat" in l, `${l.name} listed without a stat`);
        const st = lstatSync(path.join(dir, sub, l.name), { bigint: true });
        assert.deepEqual(l.stat, entryStatOf(st), l.name);
        assert.equal(l.stat.key, statKey(st));
      }
    }
    const kinds = Object.fromEntries((await worker.list(dir)).map((l) => [l.name, "stat" in l ? `${l.stat.kind} ${l.stat.mode.toString(8)}` : "error"]));
    assert.deepEqual(kinds, { cache: "dir 755", "current.conf": "symlink 777", etc: "dir 755", "run.sh": "file 4755" });
    const pipe = (await worker.list(path.join(dir, "etc"))).find((l) => l.name === "pipe");
    assert.ok(pipe && "stat" in pipe && pipe.stat.kind === "fifo", "a FIFO is listed as one (never opened)");
    await assert.rejects(worker.list(path.join(dir, "missing")), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
    await assert.rejects(worker.list(path.join(dir, "run.sh")), (e: NodeJS.ErrnoException) => e.code === "ENOTDIR");
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

function lsNames(dir: string): string[] {
  return execFileSync("ls", ["-A", "-1", dir], { encoding: "utf8" }).split("\n").filter(Boolean).sort();
}

test("buildManifest listing in the worker: the same manifest as in the calling thread, and the same cache keys", async () => {
  const { dir, root } = tree();
  const worker = new HashWorker(50, new SystemClock());
  try {
    const cache = new HashCache();
    const inThread = await buildManifest(root, dir, cache);
    const hashed: string[] = [];
    const counting: TreeReader = { hash: (abs, max) => (hashed.push(abs), worker.hash(abs, max)), list: worker.list };
    const inWorker = await buildManifest(root, dir, cache, counting);
    assert.deepEqual(inWorker, inThread);
    assert.deepEqual(hashed, [], "every file hit the cache keyed by the in-thread lstat");
    assert.deepEqual(
      inWorker.skipped.map((s) => `${s.path} ${s.kind}`),
      ["etc/pipe fifo"],
    );
    assert.ok(!inWorker.entries.some((e) => e.path.startsWith("cache")), "excluded directory left out");
    writeFileSync(path.join(dir, "etc/app.conf"), "a = 2\n");
    const fresh = await buildManifest(root, dir, new HashCache(), worker);
    assert.deepEqual(await buildManifest(root, dir, cache, counting), fresh);
    assert.deepEqual(hashed, [path.join(dir, "etc/app.conf")], "only the changed file hashed again");
    // A hasher alone (a function) still lists in the calling thread.
    const fn: FileHasher = worker.hash;
    assert.deepEqual(await buildManifest(root, dir, undefined, fn), fresh);
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a listed entry that cannot be read fails the build with a coded error; one deleted since the readdir, or a vanished directory, is not in the tree", async () => {
  const { dir, root } = tree();
  const worker = new HashWorker(50, new SystemClock());
  const errno = (code: string): Error & { code: string } => Object.assign(new Error(`${code}: test`), { code });
  const reader = (edit: (dir: string, listed: ListedEntry[]) => ListedEntry[] | Promise<ListedEntry[]>): TreeReader => ({
    hash: worker.hash,
    list: async (d) => edit(d, await worker.list(d)),
  });
  try {
    const whole = await buildManifest(root, dir, undefined, worker);
    const sub = path.join(dir, "etc");
    const denied = reader((d, l) => (d === sub ? l.map((e) => (e.name === "app.conf" ? { name: e.name, error: errno("EACCES") } : e)) : l));
    await assert.rejects(buildManifest(root, dir, undefined, denied), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_UNREADABLE") && /etc\/app\.conf/.test(String(e)) && /EACCES/.test(String(e)));
    const deleted = reader((d, l) => (d === sub ? l.map((e) => (e.name === "app.conf" ? { name: e.name, error: errno("ENOENT") } : e)) : l));
    const without = await buildManifest(root, dir, undefined, deleted);
    assert.deepEqual(
      without.entries.map((e) => e.path),
      whole.entries.map((e) => e.path).filter((p) => p !== "etc/app.conf"),
    );
    const vanished = reader((d, l) => (d === sub ? Promise.reject(errno("ENOENT")) : l));
    assert.deepEqual(
      (await buildManifest(root, dir, undefined, vanished)).entries.map((e) => e.path),
      ["current.conf", "run.sh"],
      "a directory deleted after its parent listed it is not in the tree",
    );
    const rootGone = reader((d, l) => (d === dir ? Promise.reject(errno("ENOENT")) : l));
    await assert.rejects(buildManifest(root, dir, undefined, rootGone), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_UNREADABLE"));
    const garbled = reader((d, l) => (d === sub ? [...l.filter((e) => e.name !== "app.conf"), ...listedFromWorker([["app.conf", "file", -1, 0, 0, 6, 0, "k"]])] : l));
    await assert.rejects(buildManifest(root, dir, undefined, garbled), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_UNREADABLE") && /malformed/.test(String(e)));
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("listedFromWorker: a row of any other shape is an error entry, never a guessed stat", () => {
  const rows = [
    ["a", "file", 0o644, 0, 0, 5, 1.5, "1:2:5:3:4"],
    ["b", null, "EACCES: permission denied", "EACCES"],
    ["c", "bogus", 0o644, 0, 0, 5, 1, "k"],
    ["d", "file", 0o644, 0, 0, -5, 1, "k"],
    ["e", "file", 0o644, 0, 0, 5, 1],
  ];
  const out = listedFromWorker(rows);
  assert.deepEqual(out[0], { name: "a", stat: { kind: "file", mode: 0o644, uid: 0, gid: 0, size: 5, mtimeMs: 1.5, key: "1:2:5:3:4" } });
  const err = (i: number) => {
    const e = out[i]!;
    assert.ok("error" in e, `row ${i} kept as a stat`);
    return e.error;
  };
  assert.equal(err(1).code, "EACCES");
  assert.match(err(1).message, /permission denied/);
  for (const i of [2, 3, 4]) assert.match(err(i).message, /malformed/);
});

test("a walk lists in the calling thread until the worker is up or 500 entries were listed: a cached sweep of a small root starts no thread", async () => {
  const { dir, root } = tree();
  const worker = new HashWorker(60_000, new SystemClock());
  try {
    const cache = new HashCache();
    const first = await buildManifest(root, dir, cache); // in the calling thread: every hash cached now
    assert.equal(worker.running(), false);
    assert.deepEqual(await buildManifest(root, dir, cache, worker), first);
    assert.equal(worker.running(), false, "a cached walk of 10 entries started the worker");

    const listedIn: string[] = [];
    const spy = (up: boolean): TreeReader => ({
      hash: worker.hash,
      list: (d) => (listedIn.push(path.relative(dir, d) || "."), worker.list(d)),
      running: () => up,
    });
    assert.deepEqual(await buildManifest(root, dir, cache, spy(true)), first);
    assert.deepEqual(listedIn, [".", "etc", "etc/ssh"], "worker up: every directory listed there (the excluded one never)");

    // A large tree: the first 500 entries here, the rest in the worker, the same manifest.
    for (let d = 0; d < 8; d++) {
      mkdirSync(path.join(dir, `bulk${d}`));
      for (let f = 0; f < 100; f++) writeFileSync(path.join(dir, `bulk${d}`, `f${f}`), `${d}/${f}`);
    }
    const inThread = await buildManifest(root, dir, cache);
    listedIn.length = 0;
    assert.deepEqual(await buildManifest(root, dir, cache, spy(false)), inThread);
    assert.deepEqual(listedIn, ["bulk5", "bulk6", "bulk7", "etc", "etc/ssh"], "the root (12 names) and bulk0-4 listed here, 512 entries; the rest in the worker");
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
