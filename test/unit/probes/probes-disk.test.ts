// The disk probe (src/probes/disk.ts) on the real os.tmpdir() volume, and its size parsing and formatting.
import assert from "node:assert/strict";
import { statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { SystemClock } from "../../../src/platform/clock.js";
import { formatSize, parseSize } from "../../../src/probes/disk.js";
import { createProbe, type ProbeConfig } from "../../../src/probes/index.js";

const clock = new SystemClock();
const disk = (path: string, minFree: number, extra: Partial<ProbeConfig> = {}) =>
  createProbe({ name: "data", type: "disk", host: "127.0.0.1", expect_status: 200, interval: 30_000, timeout: 2000, rise: 1, fall: 1, critical: false, path, min_free: minFree, ...extra }, clock);
const check = (p: ReturnType<typeof disk>, signal = new AbortController().signal) => p.check(signal);

describe("disk probe", () => {
  it("is up with a tiny min_free and reports free and total bytes", async () => {
    const r = await check(disk(tmpdir(), 1));
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB) free of \d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)$/);
    const s = statfsSync(tmpdir());
    assert.equal(r.data?.totalBytes, s.blocks * s.bsize);
    assert.ok(
      r.data?.freeBytes !== undefined && r.data.freeBytes > 0 && r.data.freeBytes <= r.data.totalBytes!,
      "r.data?.freeBytes !== undefined && r.data.freeBytes > 0 && r.data.freeBytes <= r.data.totalBytes!",
    );
  });

  it("is down when less than min_free is free, naming the minimum, and still reports the space", async () => {
    const r = await check(disk(tmpdir(), 1024 ** 5 * 1000));
    assert.equal(r.ok, false);
    assert.match(r.detail, / free of .*, below min_free 1000 PiB$/);
    assert.ok(r.data?.freeBytes !== undefined, "r.data?.freeBytes !== undefined");
  });

  it("is down on a path that does not exist; aborts at once", async () => {
    const r = await check(disk(join(tmpdir(), "understudy-no-such-dir", "x"), 1));
    assert.equal(r.ok, false);
    assert.match(r.detail, /^cannot read free space of .*: ENOENT/);
    assert.equal(r.data, undefined);
    const aborted = new AbortController();
    aborted.abort();
    assert.deepEqual(await check(disk(tmpdir(), 1), aborted.signal).then((x) => [x.ok, x.detail]), [false, "aborted"]);
  });

  it("parses binary sizes and formats them back", () => {
    assert.equal(parseSize("500MiB"), 500 * 1024 ** 2);
    assert.equal(parseSize("1GiB"), 1024 ** 3);
    assert.equal(parseSize("1.5TiB"), 1.5 * 1024 ** 4);
    assert.equal(parseSize("4096B"), 4096);
    for (const bad of ["1GB", "1 GiB", "GiB", "-1GiB", "1gib", ""]) assert.equal(parseSize(bad), undefined, bad);
    assert.equal(formatSize(40 * 1024 ** 3), "40 GiB");
    assert.equal(formatSize(12.34 * 1024 ** 3), "12.3 GiB");
    assert.equal(formatSize(512), "512 B");
    assert.equal(formatSize(1536), "1.5 KiB");
  });
});
