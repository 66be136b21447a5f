// TreeWatcher: hints coalesced by debounce into one onChange per burst, never
// concurrent, bounded by maxDelayMs, plus the periodic full reconcile; driven
// by a fake event source and FakeClock. The real source: sync-watch-source.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { TreeWatcher, type ChangeCause, type TreeWatcherOptions, type WatchSink, type WatchSourceFactory } from "../../../src/sync/watch.js";
import { FakeClock } from "../../fakes/clock.js";

class FakeSource {
  sink: WatchSink | undefined;
  roots: readonly string[] = [];
  closed = 0;
  readonly factory: WatchSourceFactory = (roots, sink) => {
    assert.equal(this.sink, undefined, "source started twice");
    this.roots = roots;
    this.sink = sink;
    return { ready: Promise.resolve(), close: async () => void this.closed++ };
  };
  emit(path: string): void {
    assert.ok(this.sink, "source not started");
    this.sink.event(path);
  }
}

const A = "/etc/ssh";
const B = "/etc/sftpgo";

async function setup(over: Partial<TreeWatcherOptions> = {}) {
  const clock = new FakeClock();
  const source = new FakeSource();
  const calls: { roots: string[]; cause: ChangeCause; at: number }[] = [];
  const errors: unknown[] = [];
  const w = new TreeWatcher({
    roots: [A, B],
    clock,
    source: source.factory,
    onChange: (roots, cause) => void calls.push({ roots: [...roots].sort(), cause, at: clock.monotonicMs() - 1_000_000 }),
    onError: (e) => void errors.push(e),
    ...over,
  });
  await w.start();
  return { clock, source, calls, errors, w };
}

test("one event -> one onChange for its root after the 20 ms debounce", async () => {
  const { clock, source, calls } = await setup();
  source.emit(`${A}/sshd_config`);
  await clock.advance(19);
  assert.deepEqual(calls, []);
  await clock.advance(1);
  assert.deepEqual(calls, [{ roots: [A], cause: "events", at: 20 }]);
});

test("a burst (tmp write, rename, chmod, events in both roots) coalesces into one call", async () => {
  const { clock, source, calls } = await setup();
  for (const p of [`${A}/.sshd_config.tmp`, `${A}/sshd_config`, `${A}/sshd_config`, `${B}/sftpgo.json`]) {
    source.emit(p);
    await clock.advance(5);
  }
  await clock.advance(100);
  assert.deepEqual(calls, [{ roots: [B, A].sort(), cause: "events", at: 35 }]);
});

test("events map to the longest matching root; the root itself counts; an outside path hints every root", async () => {
  const { clock, source, calls } = await setup({ roots: ["/srv", "/srv/keys/", "/srv2"] });
  source.emit("/srv/keys/host_key");
  await clock.advance(20);
  source.emit("/srv2");
  await clock.advance(20);
  source.emit("/srv2x/file");
  await clock.advance(20);
  assert.deepEqual(
    calls.map((c) => c.roots),
    [["/srv/keys"], ["/srv2"], ["/srv", "/srv/keys", "/srv2"]],
  );
});

test("a tree that never goes quiet is still delivered every maxDelayMs", async () => {
  const { clock, source, calls } = await setup({ debounceMs: 20, maxDelayMs: 100 });
  for (let t = 0; t < 300; t += 10) {
    source.emit(`${A}/busy`);
    await clock.advance(10);
  }
  assert.deepEqual(
    calls.map((c) => c.at),
    [100, 200, 300],
  );
});

test("onChange is never concurrent: hints during a slow call are delivered right after it", async () => {
  const clock = new FakeClock();
  const source = new FakeSource();
  let active = 0;
  let maxActive = 0;
  const batches: string[][] = [];
  let release: () => void = () => undefined;
  const w = new TreeWatcher({
    roots: [A, B],
    clock,
    source: source.factory,
    onError: (e) => assert.fail(String(e)),
    onChange: async (roots) => {
      batches.push([...roots]);
      maxActive = Math.max(maxActive, ++active);
      await new Promise<void>((r) => (release = r));
      active--;
    },
  });
  await w.start();
  source.emit(`${A}/x`);
  await clock.advance(20);
  source.emit(`${B}/y`);
  await clock.advance(500);
  assert.deepEqual(batches, [[A]]);
  release();
  await clock.advance(0);
  assert.deepEqual(batches, [[A], [B]]);
  release();
  await clock.advance(0);
  assert.equal(maxActive, 1);
  await w.close();
});

test("a failing onChange goes to onError and the watcher keeps delivering", async () => {
  let n = 0;
  const { clock, source, errors } = await setup({
    onChange: () => {
      if (++n === 1) throw new Error("manifest failed");
    },
  });
  source.emit(`${A}/x`);
  await clock.advance(20);
  source.emit(`${A}/x`);
  await clock.advance(20);
  assert.equal(n, 2);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /manifest failed/);
});

test("the periodic reconcile delivers every root with cause reconcile; reconcileNow does so at once", async () => {
  const { clock, calls, w } = await setup({ reconcileMs: 60_000 });
  await clock.advance(60_000);
  await clock.advance(60_000);
  assert.deepEqual(calls, [
    { roots: [B, A].sort(), cause: "reconcile", at: 60_000 },
    { roots: [B, A].sort(), cause: "reconcile", at: 120_000 },
  ]);
  w.reconcileNow();
  await clock.advance(0);
  assert.equal(calls.length, 3);
  assert.equal(calls[2]!.cause, "reconcile");
});

test("source errors reach onError as US_E_SYNC_WATCH", async () => {
  const { source, errors } = await setup();
  source.sink!.error(Object.assign(new Error("ENOSPC: System limit for number of file watchers reached"), { code: "ENOSPC" }));
  assert.equal(errors.length, 1);
  assert.ok(isUnderstudyError(errors[0], "US_E_SYNC_WATCH"), 'isUnderstudyError(errors[0], "US_E_SYNC_WATCH")');
  assert.match((errors[0] as Error).message, /ENOSPC/);
});

test("close() stops the source and every timer; later hints do nothing", async () => {
  const { clock, source, calls, w } = await setup();
  source.emit(`${A}/x`);
  await w.close();
  assert.equal(source.closed, 1);
  assert.equal(clock.pendingTimers(), 0);
  source.emit(`${A}/y`);
  w.reconcileNow();
  await clock.advance(120_000);
  assert.deepEqual(calls, []);
});

test("timing and roots are validated at construction (US_E_SYNC_CONFIG)", () => {
  const base = { roots: [A], clock: new FakeClock(), onChange: () => undefined, onError: () => undefined };
  for (const over of [{ roots: [] }, { reconcileMs: 500 }, { debounceMs: -1 }, { debounceMs: 50, maxDelayMs: 20 }, { debounceMs: Number.NaN }]) {
    assert.throws(
      () => new TreeWatcher({ ...base, ...over }),
      (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"),
      JSON.stringify(over),
    );
  }
});

test("a source that never becomes ready: close() releases start() (a demoted primary's pass does not hang)", async () => {
  let closed = 0;
  const w = new TreeWatcher({
    roots: [A],
    clock: new FakeClock(),
    source: () => ({ ready: new Promise<void>(() => {}), close: async () => void closed++ }),
    onChange: () => assert.fail("no change expected"),
    onError: (e) => assert.fail(String(e)),
  });
  let started = false;
  const starting = w.start().then(() => (started = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(started, false, "start() waits for the source");
  await w.close();
  await starting;
  assert.equal(closed, 1);
});
