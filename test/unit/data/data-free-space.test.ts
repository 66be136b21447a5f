// src/data/free-space.ts against the real statfs: the figure matches `df`'s
// "Avail" for the same filesystem, the smallest root wins, and any root that
// cannot be read makes the answer null (unknown), never 0 or the others' minimum.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freeBytes, freeBytesOf } from "../../../src/data/free-space.js";

function withDirs(n: number, fn: (dirs: string[]) => Promise<void>) {
  return async () => {
    const dirs = Array.from({ length: n }, () => mkdtempSync(path.join(tmpdir(), "us-free-")));
    try {
      await fn(dirs);
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  };
}

test(
  "freeBytesOf is statfs bavail × bsize, the same figure as df's Avail (within what others wrote meanwhile)",
  withDirs(1, async ([dir]) => {
    const got = await freeBytesOf(dir!);
    const s = await statfs(dir!);
    assert.ok(got !== null && got > 0);
    // The machine is shared: other writers move the figure between two calls; 64 MiB of slack.
    assert.ok(Math.abs(got - s.bavail * s.bsize) <= 64 * 1024 * 1024, `${got} vs ${s.bavail * s.bsize}`);
    const df = spawnSync("df", ["-B1", "--output=avail", dir!], { encoding: "utf8" });
    if (df.status === 0) {
      const avail = Number(df.stdout.trim().split("\n").pop());
      assert.ok(Math.abs(got - avail) <= 64 * 1024 * 1024, `freeBytesOf ${got}, df ${avail}`);
    }
  }),
);

test(
  "freeBytes is the smallest over the roots; one root on /dev/shm and one on the temp dir give the smaller of the two",
  withDirs(2, async ([a, b]) => {
    const fa = (await freeBytesOf(a!))!;
    const both = await freeBytes([a!, b!]);
    assert.equal(typeof both, "number");
    // Same filesystem: the same figure (give or take concurrent writers).
    assert.ok(Math.abs(both! - fa) <= 64 * 1024 * 1024);
    const shm = "/dev/shm";
    const fs = await freeBytesOf(shm);
    if (fs !== null) {
      const min = await freeBytes([a!, shm]);
      assert.ok(min !== null && min <= Math.max(fs, fa) && Math.abs(min - Math.min(fs, fa)) <= 64 * 1024 * 1024, `min ${min}, shm ${fs}, tmp ${fa}`);
    }
  }),
);

test(
  "a root that cannot be statted makes the answer null (unknown), not the other roots' figure; no roots is null",
  withDirs(1, async ([dir]) => {
    const missing = path.join(dir!, "not-there");
    assert.equal(await freeBytesOf(missing), null);
    assert.equal(await freeBytes([dir!, missing]), null);
    assert.equal(await freeBytes([missing, dir!]), null);
    assert.equal(await freeBytes([]), null);
  }),
);
