// File hashing in a worker thread (src/sync/hasher.ts) gives the same
// manifests as hashing in the calling thread, and the same coded errors.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { HashWorker } from "../../../src/sync/hasher.js";
import { buildManifest, type SyncRoot } from "../../../src/sync/manifest.js";

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
