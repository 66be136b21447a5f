// File hashing in a worker thread (src/sync/hasher.ts) gives the same
// manifests as hashing in the calling thread, and the same coded errors, one
// file at a time or in batches (hashMany).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { HashWorker, hashResultOf, isTooLarge, type FileHashResult } from "../../../src/sync/hasher.js";
import { buildManifest, HashCache, type SyncRoot } from "../../../src/sync/manifest.js";

test("HashWorker: same digest as in-thread hashing; too-large and swapped-for-a-link files give coded errors; idle worker stops", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-hash-"));
  const worker = new HashWorker(50, new SystemClock());
  try {
    writeFileSync(path.join(dir, "a"), "hello");
    writeFileSync(path.join(dir, "big"), Buffer.alloc(3 * 1024 * 1024, 1));
    const root: SyncRoot = { name: "r", path: dir, include: [], exclude: [], maxFileBytes: 8 * 1024 * 1024 };
    const inThread = await buildManifest(root);
    const inWorker = await buildManifest(root, dir, undefined, worker.hash);
    assert.equal(inWorker.digest, inThread.digest);
    await assert.rejects(buildManifest({ ...root, maxFileBytes: 1024 * 1024 }, dir, undefined, worker.hash), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_FILE_TOO_LARGE"));
    symlinkSync("a", path.join(dir, "l"));
    await assert.rejects(worker.hash(path.join(dir, "l"), 1024), /ELOOP|symbolic link/i, "O_NOFOLLOW: a link is never followed");
    await assert.rejects(worker.hash(path.join(dir, "missing"), 1024), /ENOENT/);
    const again = await worker.hash(path.join(dir, "a"), 1024);
    assert.deepEqual(again, { size: 5, sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" });
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("HashWorker.hashMany: one outcome per file in order, a failure that file's alone; a malformed row is an error, never a hash", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-hash-many-"));
  const worker = new HashWorker(50, new SystemClock());
  try {
    writeFileSync(path.join(dir, "a"), "hello");
    writeFileSync(path.join(dir, "big"), Buffer.alloc(4096, 1));
    symlinkSync("a", path.join(dir, "l"));
    const files = ["a", "missing", "l", "big", "a"].map((f) => path.join(dir, f));
    const out = await worker.hashMany(files, 1024);
    assert.equal(out.length, 5);
    assert.deepEqual(out[0], await worker.hash(files[0]!, 1024));
    assert.deepEqual(out[4], out[0]);
    assert.ok(out[1] instanceof Error && (out[1] as { code?: string }).code === "ENOENT", "a vanished file: ENOENT, for the walk to skip");
    assert.ok(out[2] instanceof Error && /ELOOP|symbolic link/i.test(out[2].message), "O_NOFOLLOW in a batch too");
    assert.ok(isTooLarge(out[3]) && out[3].tooLarge === 4096, "isTooLarge(out[3]) && out[3].tooLarge === 4096");
    const sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert.deepEqual(hashResultOf({ size: 5, sha256: sha }), { size: 5, sha256: sha });
    for (const bad of [null, 7, {}, { size: "5", sha256: sha }, { size: 5, sha256: "XYZ" }, { size: 5 }]) {
      const r = hashResultOf(bad);
      assert.ok(r instanceof Error && !isTooLarge(r), `row ${JSON.stringify(bad)} is an error`);
    }
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("buildManifest with a batch hasher: the in-thread manifest at every width, each file hashed once, cached after; per-file failures coded", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-hash-batch-"));
  const worker = new HashWorker(1000, new SystemClock());
  try {
    for (const d of ["d0", "d1", "d1/e", "d2"]) {
      mkdirSync(path.join(dir, d), { recursive: true });
      for (let i = 0; i < 7; i++) writeFileSync(path.join(dir, d, `f${i}`), `${d}/${i}`.repeat(i + 1));
    }
    const root: SyncRoot = { name: "r", path: dir, include: [], exclude: [], maxFileBytes: 1024 };
    const want = await buildManifest(root);
    for (const hashesInFlight of [1, 2, 5, 32]) {
      const batches: number[] = [];
      const counting = { hash: worker.hash, list: worker.list, running: worker.running, hashMany: (f: readonly string[], max: number) => (batches.push(f.length), worker.hashMany(f, max)) };
      const cache = new HashCache();
      const got = await buildManifest(root, dir, cache, counting, { hashesInFlight });
      assert.equal(got.digest, want.digest, `width ${hashesInFlight}`);
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        28,
        "every file hashed once",
      );
      assert.ok(Math.max(...batches) <= Math.ceil(hashesInFlight / 2), `batches of at most half the width: ${batches.join(",")}`);
      batches.length = 0;
      assert.equal((await buildManifest(root, dir, cache, counting, { hashesInFlight })).digest, want.digest);
      assert.deepEqual(batches, [], "all cached: no batch sent");
    }
    const failing = (fail: (abs: string) => FileHashResult | undefined) => ({
      hash: worker.hash,
      hashMany: async (f: readonly string[], max: number) => {
        const real = await worker.hashMany(f, max);
        return real.map((r, i) => fail(f[i]!) ?? r);
      },
    });
    const at = (name: string, r: FileHashResult) => (abs: string) => (abs === path.join(dir, name) ? r : undefined);
    const gone = await buildManifest(root, dir, undefined, failing(at("d1/e/f3", Object.assign(new Error("gone"), { code: "ENOENT" }))));
    assert.equal(gone.entries.length, want.entries.length - 1, "a file deleted during the walk is not in the tree");
    assert.ok(!gone.entries.some((e) => e.path === "d1/e/f3"), '!gone.entries.some((e) => e.path === "d1/e/f3")');
    await assert.rejects(buildManifest(root, dir, undefined, failing(at("d2/f6", Object.assign(new Error("too large"), { tooLarge: 5000 })))), (e: unknown) => {
      return isUnderstudyError(e, "US_E_SYNC_FILE_TOO_LARGE") && e.details.path === "d2/f6" && e.details.size === 5000;
    });
    await assert.rejects(buildManifest(root, dir, undefined, failing(at("d0/f1", Object.assign(new Error("denied"), { code: "EACCES" })))), (e: unknown) => {
      return isUnderstudyError(e, "US_E_SYNC_UNREADABLE") && e.details.path === "d0/f1";
    });
  } finally {
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
