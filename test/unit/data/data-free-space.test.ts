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
import { FreeSpaceSampler, freeBytes, freeBytesOf, quantizeFree } from "../../../src/data/free-space.js";
import { FakeClock } from "../../fakes/clock.js";

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
    assert.ok(got !== null && got > 0, "got !== null && got > 0");
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
    assert.ok(Math.abs(both! - fa) <= 64 * 1024 * 1024, "Math.abs(both! - fa) <= 64 * 1024 * 1024");
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

test("quantizeFree rounds down to ~1/64 of the figure, at least 1 MiB; exact MiB near a reserve", () => {
  const MiB = 1024 * 1024;
  const GiB = 1024 * MiB;
  assert.equal(quantizeFree(null), null);
  assert.equal(quantizeFree(-1), null);
  assert.equal(quantizeFree(0), 0);
  assert.equal(quantizeFree(MiB - 1), 0, "below 1 MiB rounds to 0: errs towards full");
  assert.equal(quantizeFree(64 * MiB + 5), 64 * MiB);
  assert.equal(quantizeFree(100 * MiB + 123), 100 * MiB, "1 MiB steps around 100 MiB");
  assert.equal(quantizeFree(100 * GiB + 700 * MiB), 100 * GiB, "1 GiB steps around 100 GiB");
  for (const b of [1, 5 * MiB + 1, 3 * GiB + 12345, 2 ** 45 + 99]) {
    const q = quantizeFree(b)!;
    assert.ok(q <= b && (b < MiB || b - q <= Math.max(MiB, b / 64)), `${b} -> ${q}`);
  }
});

test("FreeSpaceSampler: publishes the quantized minimum, calls onChange only when it changes, unknown when a root fails", async () => {
  const clock = new FakeClock();
  const MiB = 1024 * 1024;
  const free = new Map<string, number | null>([
    ["/a", 500 * MiB],
    ["/b", 80 * MiB],
  ]);
  let changes = 0;
  const s = new FreeSpaceSampler(["/a", "/b"], clock, {
    everyMs: 2000,
    onChange: () => void changes++,
    measure: async (p) => {
      const v = free.get(p);
      if (v === undefined) assert.fail(`unexpected path ${p}`);
      return v;
    },
  });
  assert.equal(s.min(), null, "unknown before the first sample");
  s.start();
  await settle();
  assert.equal(s.min(), 80 * MiB);
  assert.equal(s.of("/a"), 500 * MiB);
  assert.equal(changes, 1);
  free.set("/b", 80 * MiB + 1000);
  await clock.advance(2000);
  await settle();
  assert.equal(changes, 1, "a change below the step publishes nothing new");
  free.set("/b", 10 * MiB);
  await clock.advance(2000);
  await settle();
  assert.equal(s.min(), 10 * MiB);
  assert.equal(changes, 2);
  free.set("/a", null);
  await clock.advance(2000);
  await settle();
  assert.equal(s.min(), null, "a root whose statfs failed makes the minimum unknown");
  assert.equal(changes, 3);
  s.stop();
  free.set("/a", 1);
  await clock.advance(10_000);
  await settle();
  assert.equal(s.min(), null, "stopped: no more samples");
});

test("FreeSpaceSampler over the real statfs: a temp dir's figure is a number", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "us-free-"));
  try {
    const s = new FreeSpaceSampler([dir], new FakeClock());
    await s.sample();
    assert.equal(typeof s.min(), "number");
    assert.equal(typeof s.of(dir), "number");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Let the sampler's promise chain run (its measure is async). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}
