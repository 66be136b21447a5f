// The data watcher (src/data/watch.ts): inotifywait's NUL-separated records
// read back exactly (names with spaces, newlines, UTF-8 split across chunks),
// mapped to journal events; the process restarted with backoff as an overflow.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { eventOf, inotifyArgv, InotifyParser, RootWatcher } from "../../../src/data/watch.js";
import type { DataEvent } from "../../../src/data/journal.js";
import { silentLogger } from "../../../src/platform/logger.js";
import type { StreamExit, StreamHandlers, StreamSpawner } from "../../../src/platform/stream-process.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

const ROOT = "/srv/sftp";

test("argv: monitor, recursive, NUL-separated records, the temp dir excluded by an anchored regex", () => {
  assert.deepEqual(inotifyArgv("/usr/bin/inotifywait", "/srv/a.b"), [
    "/usr/bin/inotifywait",
    "-m",
    "-r",
    "--format",
    "%e%0%w%f%0",
    "--no-newline",
    "-e",
    "close_write,moved_to,moved_from,delete,create,attrib,modify",
    "--exclude",
    "^/srv/a\\.b/\\.understudy-tmp(/|$)",
    "/srv/a.b",
  ]);
});

test("events: each inotify record becomes the journal event its table says", () => {
  const table: [string, string, DataEvent | null][] = [
    ["CLOSE_WRITE,CLOSE", `${ROOT}/a.csv`, { kind: "closed", path: "a.csv" }],
    ["CREATE", `${ROOT}/alice/b.csv`, { kind: "change", path: "alice/b.csv" }],
    ["MODIFY", `${ROOT}/alice/b.csv`, { kind: "change", path: "alice/b.csv" }],
    ["ATTRIB", `${ROOT}/a.csv`, { kind: "change", path: "a.csv" }],
    ["DELETE", `${ROOT}/a.csv`, { kind: "remove", path: "a.csv" }],
    ["MOVED_FROM", `${ROOT}/a.csv`, { kind: "remove", path: "a.csv" }],
    ["MOVED_TO", `${ROOT}/c.csv`, { kind: "closed", path: "c.csv" }],
    ["CREATE,ISDIR", `${ROOT}/bob`, { kind: "dir", path: "bob", recursive: true }],
    ["MOVED_TO,ISDIR", `${ROOT}/tree`, { kind: "dir", path: "tree", recursive: true }],
    ["ATTRIB,ISDIR", `${ROOT}/bob`, { kind: "dir", path: "bob" }],
    ["DELETE,ISDIR", `${ROOT}/bob`, { kind: "remove", path: "bob" }],
    ["MODIFY,ISDIR", `${ROOT}/bob`, null],
    ["Q_OVERFLOW", "", { kind: "overflow", why: "the kernel's inotify queue overflowed" }],
    ["ATTRIB,ISDIR", `${ROOT}/`, null],
    ["DELETE_SELF", `${ROOT}/`, { kind: "overflow", why: `the data root ${ROOT} itself was moved or deleted` }],
    ["CLOSE_WRITE,CLOSE", `${ROOT}/.understudy-tmp/x.1`, null],
    ["CREATE,ISDIR", `${ROOT}/.understudy-tmp`, null],
    ["CLOSE_WRITE,CLOSE", `${ROOT}/.understudy-tmpfoo`, { kind: "closed", path: ".understudy-tmpfoo" }],
    ["CLOSE_WRITE,CLOSE", "/srv/sftp2/x", null],
  ];
  for (const [events, path, want] of table) assert.deepEqual(eventOf(events, path, ROOT), want, `${events} ${path}`);
});

test("parser: records split anywhere, names with spaces, newlines and multi-byte UTF-8 come back exactly", () => {
  const p = new InotifyParser(ROOT, () => undefined);
  const stream = Buffer.from(`CLOSE_WRITE,CLOSE\0${ROOT}/a b\nc.csv\0CREATE,ISDIR\0${ROOT}/zoë\0DELETE\0${ROOT}/-rf\0`, "utf8");
  const out: DataEvent[] = [];
  // One byte at a time: every split point, including inside "ë".
  for (let i = 0; i < stream.length; i++) out.push(...p.push(stream.subarray(i, i + 1)));
  assert.deepEqual(out, [
    { kind: "closed", path: "a b\nc.csv" },
    { kind: "dir", path: "zoë", recursive: true },
    { kind: "remove", path: "-rf" },
  ]);
});

test("parser: a closed file carries its size (lag in bytes, max_batch_bytes); gone or not a file: no size", () => {
  const sizes: Record<string, number> = { [`${ROOT}/big.bin`]: 1_048_576 };
  const asked: string[] = [];
  const p = new InotifyParser(ROOT, (full) => (asked.push(full), sizes[full]));
  const out = p.push(`CLOSE_WRITE,CLOSE\0${ROOT}/big.bin\0CLOSE_WRITE,CLOSE\0${ROOT}/gone\0MODIFY\0${ROOT}/big.bin\0MOVED_TO\0${ROOT}/big.bin\0`);
  assert.deepEqual(out, [
    { kind: "closed", path: "big.bin", size: 1_048_576 },
    { kind: "closed", path: "gone" },
    { kind: "change", path: "big.bin" },
    { kind: "closed", path: "big.bin", size: 1_048_576 },
  ]);
  assert.deepEqual(asked, [`${ROOT}/big.bin`, `${ROOT}/gone`, `${ROOT}/big.bin`], "one lstat per closed file, none per write");
});

/** A strict fake of the stream spawner: each spawn is recorded, the test drives output and exit. */
class FakeSpawner implements StreamSpawner {
  readonly procs: { argv: readonly string[]; handlers: StreamHandlers; kills: string[]; exit: (e: StreamExit) => void }[] = [];
  spawn(argv: readonly string[], handlers: StreamHandlers) {
    let exit: (e: StreamExit) => void = () => undefined;
    const exited = new Promise<StreamExit>((r) => (exit = r));
    const rec = { argv, handlers, kills: [] as string[], exit };
    this.procs.push(rec);
    return {
      exited,
      kill: (signal: NodeJS.Signals) => {
        rec.kills.push(signal);
        if (signal === "SIGTERM") exit({ code: null, signal });
      },
    };
  }
}

test("watcher: ready on 'Watches established', events forwarded, an exit is an overflow and a restart with backoff, stop kills", async () => {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const events: DataEvent[] = [];
  let ready = 0;
  const w = new RootWatcher({
    spawner,
    clock,
    log: silentLogger(),
    inotifywaitPath: "/usr/bin/inotifywait",
    name: "uploads",
    root: ROOT,
    onEvents: (e) => events.push(...e),
    onReady: () => (ready += 1),
  });
  w.start();
  assert.equal(spawner.procs.length, 1);
  assert.equal(w.isReady(), false);
  spawner.procs[0]!.handlers.stderr(Buffer.from("Setting up watches.  Beware: since -r was given, this may take a while!\nWatches established.\n"));
  assert.equal(w.isReady(), true);
  assert.equal(ready, 1);
  spawner.procs[0]!.handlers.stdout(Buffer.from(`CLOSE_WRITE,CLOSE\0${ROOT}/a\0`));
  assert.deepEqual(events, [{ kind: "closed", path: "a" }]);

  spawner.procs[0]!.handlers.stderr(Buffer.from("Couldn't watch /srv/up/x: No such file or directory\n"));
  spawner.procs[0]!.exit({ code: 1, signal: null });
  await flushMicrotasks();
  assert.equal(w.isReady(), false);
  assert.equal(w.degraded(), null, "an ordinary exit is not the inotify limit");
  assert.equal(events[1]?.kind, "overflow");
  assert.match((events[1] as { why: string }).why, /exited \(code 1\): Couldn't watch \/srv\/up\/x/);
  await clock.advance(199);
  assert.equal(spawner.procs.length, 1, "not restarted before the backoff");
  await clock.advance(1);
  assert.equal(spawner.procs.length, 2, "restarted after 200 ms");
  spawner.procs[1]!.exit({ code: 1, signal: null });
  await flushMicrotasks();
  await clock.advance(399);
  assert.equal(spawner.procs.length, 2);
  await clock.advance(1);
  assert.equal(spawner.procs.length, 3, "the backoff doubled");

  await w.stop();
  assert.deepEqual(spawner.procs[2]!.kills, ["SIGTERM"]);
  await clock.advance(60_000);
  assert.equal(spawner.procs.length, 3, "never restarted after stop");
  assert.equal(events.filter((e) => e.kind === "overflow").length, 2, "a stop is not an overflow");
});

test("watcher at the kernel's inotify limit: one coded error, slow retries (each an overflow), degraded until a start succeeds", async () => {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const events: DataEvent[] = [];
  const lines: { level: number; msg: string; code?: string }[] = [];
  const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string; code?: string }) });
  const w = new RootWatcher({ spawner, clock, log, inotifywaitPath: "/usr/bin/inotifywait", name: "uploads", root: ROOT, onEvents: (e) => events.push(...e), onReady: () => undefined });
  const limit = (i: number) => {
    spawner.procs[i]!.handlers.stderr(
      Buffer.from(
        `Setting up watches.  Beware: since -r was given, this may take a while!\nFailed to watch ${ROOT}/a/b; upper limit on inotify watches reached!\nPlease increase the amount of inotify watches allowed per user via \`/proc/sys/fs/inotify/max_user_watches'.\n`,
      ),
    );
    spawner.procs[i]!.exit({ code: 1, signal: null });
  };
  w.start();
  limit(0);
  await flushMicrotasks();
  assert.equal(w.isReady(), false);
  assert.match(w.degraded() ?? "", /^US_E_DATA_WATCH_LIMIT: data root uploads \(\/srv\/sftp\) cannot be watched: .*inotify watches.*fs\.inotify\.max_user_watches.*every 10 s/);
  assert.equal(events.filter((e) => e.kind === "overflow").length, 1, "the exit is an overflow: every standby gets a full pass");
  await clock.advance(9_999);
  assert.equal(spawner.procs.length, 1, "no quick retry at the host's limit");
  await clock.advance(1);
  assert.equal(spawner.procs.length, 2, "retried after the longest backoff");
  limit(1);
  await flushMicrotasks();
  assert.equal(events.filter((e) => e.kind === "overflow").length, 2, "each retry is a full pass: the root still replicates");
  const errors = lines.filter((l) => l.level >= 50);
  assert.equal(errors.length, 1, "said once, as an error, not at every retry");
  assert.equal(errors[0]!.code, "US_E_DATA_WATCH_LIMIT");
  await clock.advance(10_000);
  spawner.procs[2]!.handlers.stderr(Buffer.from("Setting up watches.  Beware: since -r was given, this may take a while!\nWatches established.\n"));
  assert.equal(w.isReady(), true);
  assert.equal(w.degraded(), null, "watched again: by events, not full passes");
  assert.ok(
    lines.some((l) => /is watched again/.test(l.msg)),
    "lines.some((l) => /is watched again/.test(l.msg))",
  );
  await w.stop();
});
