// The sync engine's injected parts (issue 15): the hasher it builds manifests
// with, and the hash worker's idle timer on the Clock port.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { silentLogger } from "../../../src/platform/logger.js";
import { SyncEngine } from "../../../src/sync/engine.js";
import { HashWorker, type FileHashService, type FileHasher } from "../../../src/sync/hasher.js";
import { SyncStateStore } from "../../../src/sync/state.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { FakePublisher, FakePuller, FakeWatchSource } from "../../fakes/sync.js";
import { makeTree, tempDir } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";

let base = "";
let cleanup = async () => {};
before(async () => ({ dir: base, cleanup } = await tempDir("injected")));
after(() => cleanup());

const SETTINGS = { debounceMs: 20, maxDelayMs: 250, reconcileMs: 60_000, validateTimeoutMs: 4000, postSyncTimeoutMs: 3000, retryMaxMs: 30_000, maximumLagMs: 60_000 };

/** A strict fake: hashes in the calling thread, counts what it hashed, and must be closed exactly once. */
class CountingHasher implements FileHashService {
  readonly hashed: string[] = [];
  closed = 0;
  readonly hash: FileHasher = async (abs) => {
    if (this.closed > 0) throw new Error(`hash(${abs}) after close`);
    this.hashed.push(path.basename(abs));
    const data = await readFile(abs);
    return { size: data.length, sha256: createHash("sha256").update(data).digest("hex") };
  };
  async close(): Promise<void> {
    this.closed++;
  }
}

async function waitFor(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("the engine builds its manifests with the injected hasher and closes it; its step reason reaches status and the member key", async () => {
  const root = path.join(base, "n1", "roots", "conf");
  await makeTree(root, { "a.conf": "A\n", "b.conf": "B\n" });
  const hasher = new CountingHasher();
  const coord = new FakePublisher();
  const engine = new SyncEngine({
    fs: NODE_DURABLE_FS,
    node: "n1",
    settings: { ...SETTINGS, roots: [{ name: "conf", path: root, include: [], exclude: [], maxFileBytes: 1 << 20 }] },
    store: new SyncStateStore(path.join(base, "n1", "state"), NODE_DURABLE_FS),
    coordinator: coord,
    puller: new FakePuller(() => root),
    runner: new StrictCommandRunner(),
    clock: new FakeClock(),
    log: silentLogger(),
    watch: new FakeWatchSource().factory,
    hasher,
  });
  try {
    await engine.start();
    engine.follow({ acting: "primary", term: 7, leader: { node: "n1", term: 7, address: "198.18.0.11" }, published: null });
    await waitFor("published", () => coord.calls.length === 1);
    assert.deepEqual(hasher.hashed.sort(), ["a.conf", "b.conf"]);
    await waitFor("step noted", () => engine.status().step !== undefined);
    assert.equal(engine.status().step, "published: new generation 1 under my term 7 (the first generation)");
    assert.equal(engine.memberSummary().step, engine.status().step);
  } finally {
    await engine.close();
  }
  assert.equal(hasher.closed, 1);
});

test("HashWorker: the idle timer runs on the injected clock", async () => {
  const clock = new FakeClock();
  const file = path.join(base, "h.txt");
  await writeFile(file, "hello");
  const worker = new HashWorker(500, clock);
  try {
    assert.equal(clock.pendingTimers(), 0);
    assert.equal((await worker.hash(file, 1024)).size, 5);
    assert.equal(clock.pendingTimers(), 1, "idle timer armed once no hash is waiting");
    await clock.advance(500);
    assert.equal(clock.pendingTimers(), 0, "fired: the worker stopped");
    assert.equal((await worker.hash(file, 1024)).size, 5, "a stopped worker starts again on the next hash");
  } finally {
    await worker.close();
  }
  assert.equal(clock.pendingTimers(), 0, "close cancels the idle timer");
});
