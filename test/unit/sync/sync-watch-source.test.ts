// dirTreeSource (watch-source.ts) on real temp directories: one watch per
// directory, never per file; a write, a chmod, a rename and a delete in any
// directory reach the sink; a directory made later is watched (what was written
// into it before its watch is hinted again); a removed one is dropped; links are
// not followed; close() during the first scan settles `ready`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SystemClock } from "../../../src/platform/clock.js";
import { TreeWatcher } from "../../../src/sync/watch.js";
import { dirTreeSource } from "../../../src/sync/watch-source.js";
import type { WatchSource } from "../../../src/sync/watch.js";

const clock = new SystemClock();

/** A source on `roots` whose events are collected; `until` waits (≤ 5 s) for a path to be reported. */
function collect(roots: string[]) {
  const events: string[] = [];
  const errors: unknown[] = [];
  let wake: () => void = () => undefined;
  const source = dirTreeSource()(roots, {
    event: (p) => {
      events.push(p);
      wake();
    },
    error: (e) => void errors.push(e),
  });
  const until = async (what: string, ok: (p: string) => boolean, ms = 5000): Promise<void> => {
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<never>((_, rej) => (timer = clock.setTimer(ms, () => rej(new Error(`not reported within ${ms} ms: ${what}; saw ${JSON.stringify(events)}`)))));
    try {
      while (!events.some(ok)) await Promise.race([new Promise<void>((r) => (wake = r)), timeout]);
    } finally {
      timer?.cancel();
    }
  };
  /** Write `file` again every 200 ms (at most 25 times) until it is reported: passes once its directory is watched, on a slow host too. */
  const written = async (what: string, file: string): Promise<void> => {
    for (let i = 1; ; i++) {
      writeFileSync(file, String(i));
      try {
        return await until(what, (p) => p === file, 200);
      } catch (e) {
        if (i >= 25) throw e;
      }
    }
  };
  const size = (): number => (source as WatchSource & { size: number }).size;
  /** Wait (≤ 5 s) for the number of watched directories to become `n`: watches come and go after their events. */
  const sizeSettles = async (n: number): Promise<void> => {
    for (let i = 0; i < 250 && size() !== n; i++) await clock.sleep(20);
  };
  return { source, events, errors, until, written, size, sizeSettles };
}

function tree(): string {
  const dir = mkdtempSync(join(tmpdir(), "us-dirwatch-"));
  for (let i = 0; i < 3; i++) {
    mkdirSync(join(dir, `d${i}`, "sub"), { recursive: true });
    for (let j = 0; j < 20; j++) writeFileSync(join(dir, `d${i}`, `f${j}`), "x");
  }
  return dir;
}

test("one watch per directory, none per file; writes, chmods, renames and deletes in any of them are reported", async () => {
  const dir = tree();
  const c = collect([dir]);
  try {
    await c.source.ready;
    assert.equal(c.size(), 7, "the root, d0-d2 and their sub/: 7 directories, 60 files unwatched");
    writeFileSync(join(dir, "d1", "sub", "new"), "1");
    await c.until("a new file two levels down", (p) => p === join(dir, "d1", "sub", "new"));
    chmodSync(join(dir, "d0", "f3"), 0o600);
    await c.until("a chmod", (p) => p === join(dir, "d0", "f3"));
    renameSync(join(dir, "d2", "f1"), join(dir, "d2", "g1"));
    await c.until("a rename", (p) => p === join(dir, "d2", "g1"));
    unlinkSync(join(dir, "d0", "f4"));
    await c.until("a delete", (p) => p === join(dir, "d0", "f4"));
    assert.deepEqual(c.errors, []);
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a directory made later is watched, one removed is dropped, a link to a directory is not followed", async () => {
  const dir = tree();
  const outside = mkdtempSync(join(tmpdir(), "us-dirwatch-out-"));
  mkdirSync(join(outside, "x", "y"), { recursive: true });
  const c = collect([dir]);
  try {
    await c.source.ready;
    mkdirSync(join(dir, "home", "alice", ".ssh"), { recursive: true });
    // Its watches come up after the event; wait for them, then a write deep inside must be seen.
    await c.written("a file in a directory made after the start", join(dir, "home", "alice", ".ssh", "authorized_keys"));
    assert.equal(c.size(), 10, "home, home/alice and home/alice/.ssh are watched");
    rmSync(join(dir, "d2"), { recursive: true });
    await c.sizeSettles(8);
    assert.equal(c.size(), 8, "d2 and d2/sub dropped");
    symlinkSync(outside, join(dir, "link"));
    await c.until("the link itself", (p) => p === join(dir, "link"));
    await clock.sleep(50);
    assert.equal(c.size(), 8, "the link's target is not watched");
    writeFileSync(join(outside, "x", "y", "z"), "1");
    await clock.sleep(100);
    assert.ok(!c.events.some((p) => p.includes(outside) || p.startsWith(join(dir, "link", "x"))), JSON.stringify(c.events));
    assert.deepEqual(c.errors, []);
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

test("what is written into a new directory before its watch exists is hinted again once the watch is up", async () => {
  const dir = tree();
  const c = collect([dir]);
  try {
    await c.source.ready;
    // mkdir and the write in the same tick: the write precedes the new directory's watch.
    mkdirSync(join(dir, "fresh"));
    writeFileSync(join(dir, "fresh", "early"), "1");
    await c.until("the new directory", (p) => p === join(dir, "fresh"));
    for (let i = 0; i < 250 && c.events.filter((p) => p === join(dir, "fresh")).length < 2; i++) await clock.sleep(20);
    assert.ok(c.events.filter((p) => p === join(dir, "fresh")).length >= 2, `hinted again after its watch: ${JSON.stringify(c.events)}`);
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("with TreeWatcher: each change reaches onChange for its own root", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-watch-"));
  const a = join(dir, "a");
  const b = join(dir, "b");
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, "f"), "1");
  const seen: string[][] = [];
  let wake: () => void = () => undefined;
  const w = new TreeWatcher({
    roots: [a, b],
    clock,
    onChange: (roots) => {
      seen.push([...roots]);
      wake();
    },
    onError: (e) => assert.fail(String(e)),
  });
  const next = async (what: string) => {
    const n = seen.length;
    const timeout = clock.sleep(5000).then(() => assert.fail(`no onChange within 5 s after ${what}`));
    while (seen.length === n) await Promise.race([new Promise<void>((r) => (wake = r)), timeout]);
    return seen.at(-1);
  };
  try {
    await w.start();
    writeFileSync(join(a, "f"), "2");
    assert.deepEqual(await next("write"), [a]);
    await clock.sleep(100); // let the burst of the write finish
    chmodSync(join(a, "f"), 0o600);
    assert.deepEqual(await next("chmod"), [a]);
    await clock.sleep(100);
    mkdirSync(join(b, "nested"));
    writeFileSync(join(b, "nested", "g"), "x");
    assert.deepEqual(await next("nested add"), [b]);
  } finally {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("closed during its first scan: ready settles, no watch is left and nothing more is reported", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-dirwatch-"));
  try {
    for (let i = 0; i < 50; i++) {
      mkdirSync(join(dir, `d${i}`, "a", "b"), { recursive: true });
      for (let j = 0; j < 5; j++) writeFileSync(join(dir, `d${i}`, `f${j}`), "x");
    }
    const c = collect([dir]);
    await c.source.close();
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<string>((r) => (timer = clock.setTimer(2000, () => r("timed out"))));
    assert.equal(await Promise.race([c.source.ready.then(() => "ready"), timeout]), "ready");
    timer?.cancel();
    assert.equal(c.size(), 0);
    writeFileSync(join(dir, "d0", "late"), "1");
    await clock.sleep(100);
    assert.deepEqual(c.events, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a root that does not exist is no error (the sweep reports it); the other roots are watched", async () => {
  const dir = tree();
  const c = collect([join(dir, "missing"), dir]);
  try {
    await c.source.ready;
    assert.equal(c.size(), 7);
    assert.deepEqual(c.errors, []);
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a path that comes to name another directory is watched again (rm -rf d && mkdir d; mv d.new d)", async () => {
  const dir = tree();
  const c = collect([dir]);
  try {
    await c.source.ready;
    // Both in one tick: the events arrive after the path names the new directory.
    rmSync(join(dir, "d0"), { recursive: true });
    mkdirSync(join(dir, "d0", "sub"), { recursive: true });
    mkdirSync(join(dir, "d1.new"));
    renameSync(join(dir, "d1"), join(dir, "d1.old"));
    renameSync(join(dir, "d1.new"), join(dir, "d1"));
    await c.written("a write in the new d0/sub", join(dir, "d0", "sub", "a"));
    await c.written("a write in the new d1", join(dir, "d1", "b"));
    await c.written("a write in the moved d1.old/sub", join(dir, "d1.old", "sub", "c"));
    // root, d0, d0/sub, d1, d1.old, d1.old/sub, d2, d2/sub: no stale watch left.
    assert.equal(c.size(), 8);
    assert.deepEqual(c.errors, []);
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a root that is a link is followed, and an entry named like it does not drop it", async () => {
  const dir = tree();
  const base = mkdtempSync(join(tmpdir(), "us-dirwatch-link-"));
  const root = join(base, "cfg");
  symlinkSync(dir, root);
  const c = collect([root]);
  try {
    await c.source.ready;
    assert.equal(c.size(), 7);
    writeFileSync(join(root, "cfg"), "same name as the root");
    await c.until("the entry named like the root", (p) => p === join(root, "cfg"));
    await c.written("a write below the linked root", join(root, "d1", "sub", "x"));
    await c.sizeSettles(7);
    assert.equal(c.size(), 7, "still all watched");
  } finally {
    await c.source.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(base, { recursive: true, force: true });
  }
});

test("a root deleted and made again, and a link root pointed elsewhere, are watched again (the root's parent is watched for its name)", async () => {
  const base = mkdtempSync(join(tmpdir(), "us-dirwatch-parent-"));
  const root = join(base, "cfg");
  const v1 = join(base, "v1");
  const v2 = join(base, "v2");
  mkdirSync(root);
  mkdirSync(join(v1, "sub"), { recursive: true });
  mkdirSync(join(v2, "sub"), { recursive: true });
  const link = join(base, "current");
  symlinkSync(v1, link);
  const c = collect([root, link]);
  try {
    await c.source.ready;
    assert.equal(c.size(), 3, "cfg, and v1 with its sub/ through the link");
    writeFileSync(join(base, "sibling"), "not a root");
    rmSync(root, { recursive: true });
    await c.until("the root's deletion", (p) => p === root);
    await c.sizeSettles(2);
    assert.equal(c.size(), 2, "the deleted root's watch dropped");
    mkdirSync(join(root, "sub"), { recursive: true });
    await c.written("a write in the root made again", join(root, "sub", "a"));
    // ln -sfn v2 current: a new link renamed over the old one.
    symlinkSync(v2, join(base, "current.tmp"));
    renameSync(join(base, "current.tmp"), link);
    await c.written("a write below the link's new target", join(link, "sub", "b"));
    assert.equal(c.size(), 4, "cfg, cfg/sub, and v2 with its sub/: v1's watches dropped");
    assert.ok(!c.events.includes(join(base, "sibling")), "the parent's other entries are not reported");
    assert.deepEqual(c.errors, []);
  } finally {
    await c.source.close();
    rmSync(base, { recursive: true, force: true });
  }
});
