// The DurableFs adapter against its port's guarantees (src/platform/durable-fs.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";

function scratch(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "us-durable-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("writeFileAtomic replaces the content, with exactly the mode asked whatever the umask", async () => {
  using s = scratch();
  const file = path.join(s.dir, "state.json");
  writeFileSync(file, "old\n", { mode: 0o644 });
  const before = process.umask(0o077);
  try {
    await NODE_DURABLE_FS.writeFileAtomic(file, "new\n", 0o640);
  } finally {
    process.umask(before);
  }
  assert.equal(readFileSync(file, "utf8"), "new\n");
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.deepEqual(readdirSync(s.dir), ["state.json"], "no temporary file left");
});

test("a leftover temporary file from a crash, wider than asked, is replaced, not reused", async () => {
  using s = scratch();
  const file = path.join(s.dir, "track");
  const leftover = path.join(s.dir, `.track.tmp-${process.pid}`);
  writeFileSync(leftover, "stale", { mode: 0o666 });
  await NODE_DURABLE_FS.writeFileAtomic(file, "1\n", 0o600);
  assert.equal(readFileSync(file, "utf8"), "1\n");
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(s.dir), ["track"]);
});

test("a failed rename leaves the target as it was and no temporary file", async () => {
  using s = scratch();
  const target = path.join(s.dir, "busy");
  mkdirSync(path.join(target, "inside"), { recursive: true }); // a non-empty directory: rename onto it fails
  await assert.rejects(NODE_DURABLE_FS.writeFileAtomic(target, "x", 0o600));
  assert.equal(statSync(target).isDirectory(), true);
  assert.deepEqual(readdirSync(s.dir), ["busy"]);
});

test("a missing directory rejects with the system error", async () => {
  using s = scratch();
  await assert.rejects(NODE_DURABLE_FS.writeFileAtomic(path.join(s.dir, "no", "file"), "x", 0o600), { code: "ENOENT" });
  await assert.rejects(NODE_DURABLE_FS.fsyncDir(path.join(s.dir, "no")), { code: "ENOENT" });
  await NODE_DURABLE_FS.fsyncDir(s.dir);
});
