// Warm batches (src/data/warm-rsync.ts and its use in src/data/shipper.ts) against a
// strict fake rsync: each run waits for its list on stdin (the deferred input), then
// "transfers" it; an abort kills it. The real daemon's side (connected before the list
// is read) is in data-warm-receive.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChangeJournal } from "../../../src/data/journal.js";
import { Shipper, type ShipMember } from "../../../src/data/shipper.js";
import { runShipRsync, WarmRsyncs } from "../../../src/data/warm-rsync.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

interface FakeRun {
  readonly argv: readonly string[];
  readonly options: CommandOptions;
  /** What it read on stdin, once its input settled; undefined while it waits. */
  list: string | undefined;
  /** How it ended: "SIGTERM" when aborted; undefined while it runs. */
  ended: string | undefined;
  /** Ends the run (the transfer's result). */
  finish(r: Partial<CommandResult>): void;
}

/** A fake rsync: runs stay open until the test finishes them; a run whose list came is `listed`. */
class FakeRsync implements CommandRunner {
  readonly runs: FakeRun[] = [];
  /** Results given to runs the moment their list arrives (in order); a run without one stays open. */
  readonly onList: Partial<CommandResult>[] = [];
  run(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    return new Promise((resolve) => {
      let done = false;
      const run: FakeRun = {
        argv,
        options,
        list: undefined,
        ended: undefined,
        finish: (r) => {
          if (done) return;
          done = true;
          run.ended = r.signal ?? `exit ${r.code ?? 0}`;
          resolve({ code: 0, signal: null, stdout: "", stderr: "", ...r });
        },
      };
      this.runs.push(run);
      // As the real runner: SIGTERM, and the exit a moment later.
      options.signal?.addEventListener("abort", () => setImmediate(() => run.finish({ code: null, signal: "SIGTERM" })));
      void Promise.resolve(options.input ?? "").then((data) => {
        run.list = String(data);
        const r = this.onList.shift();
        if (r) run.finish(r);
      });
    });
  }
}

const ARGV = ["/usr/bin/rsync", "--no-recursive", "--files-from=-", "x"];
/** The same batch needing -r (a tree moved in). */
const RECURSIVE = ["/usr/bin/rsync", "-r", "--files-from=-", "x"];
/** Another destination (the standby's address or term changed). */
const ELSEWHERE = ["/usr/bin/rsync", "--no-recursive", "--files-from=-", "y"];

test("a warm run waits for its list; take() hands it out once, only for the same argv; one per key", async () => {
  const clock = new FakeClock();
  const rsync = new FakeRsync();
  const warm = new WarmRsyncs({ runner: rsync, clock, idleMs: 20_000, shipTimeoutMs: 600_000 });
  const abort = new AbortController();
  warm.start("uploads", ARGV, abort.signal);
  warm.start("uploads", ARGV, abort.signal);
  assert.equal(rsync.runs.length, 1, "one waiting run per key");
  assert.equal(rsync.runs[0]!.options.timeoutMs, 620_000, "its bound: the wait plus one transfer");
  assert.equal(rsync.runs[0]!.options.signal, abort.signal);
  await flushMicrotasks();
  assert.equal(rsync.runs[0]!.list, undefined, "connected, waiting for its list");
  assert.equal(warm.take("uploads", RECURSIVE), null, "a batch needing -r: not this run");
  await flushMicrotasks();
  assert.equal(rsync.runs[0]!.list, undefined, "which stays for the next plain batch");
  assert.equal(warm.take("other", ARGV), null);
  const run = warm.take("uploads", ARGV);
  assert.ok(run, "run");
  assert.equal(warm.take("uploads", ARGV), null, "handed out once");
  run.send(Buffer.from("a.csv\0"));
  await flushMicrotasks();
  assert.equal(rsync.runs[0]!.list, "a.csv\0");
  rsync.runs[0]!.finish({});
  assert.equal((await run.result).code, 0);
  await clock.advance(60_000);
  assert.equal(rsync.runs.length, 1, "nothing started by itself");

  // A run for another destination will never be taken: retired at once, and the key warms again.
  rsync.onList.push({});
  warm.start("uploads", ARGV, abort.signal);
  assert.equal(warm.take("uploads", ELSEWHERE), null);
  await flushMicrotasks();
  assert.equal(rsync.runs[1]!.list, "", "retired with an empty list");
  await flushMicrotasks();
  assert.equal(warm.start("uploads", ELSEWHERE, abort.signal), true);
  assert.ok(warm.take("uploads", ELSEWHERE), 'warm.take("uploads", ELSEWHERE)');

  // Sessions on one ssh connection (sshd's MaxSessions): at most MAX_WAITING (2) wait per standby.
  assert.equal(warm.start("a", ARGV, abort.signal), true);
  assert.equal(warm.start("b", ARGV, abort.signal), true);
  assert.equal(warm.start("c", ARGV, abort.signal), false, "a third root waits for none");
  assert.ok(warm.take("a", ARGV), 'warm.take("a", ARGV)');
  assert.equal(warm.start("c", ARGV, abort.signal), true, "room again once one is taken");
  abort.abort();
  await warm.settled();
});

test("a run not taken within idleMs is retired with an empty list; one that exited while waiting is dropped", async () => {
  const clock = new FakeClock();
  const rsync = new FakeRsync();
  const warm = new WarmRsyncs({ runner: rsync, clock, idleMs: 20_000, shipTimeoutMs: 600_000 });
  const abort = new AbortController();
  rsync.onList.push({});
  warm.start("uploads", ARGV, abort.signal);
  await clock.advance(19_999);
  assert.equal(rsync.runs[0]!.list, undefined);
  await clock.advance(1);
  assert.equal(rsync.runs[0]!.list, "", "retired: an empty list, rsync sends nothing and exits 0");
  assert.equal(warm.take("uploads", ARGV), null);

  warm.start("uploads", ARGV, abort.signal);
  assert.equal(rsync.runs.length, 2, "a retired key can warm again");
  rsync.runs[1]!.finish({ code: 255, stderr: "Connection closed" });
  await flushMicrotasks();
  assert.equal(warm.take("uploads", ARGV), null, "exited while waiting: the batch starts its own");
  assert.equal(warm.start("uploads", ARGV, abort.signal), false, "no new run for 5 s after one ended by itself");
  await clock.advance(4_999);
  assert.equal(warm.start("uploads", ARGV, abort.signal), false);
  await clock.advance(1);
  assert.equal(warm.start("uploads", ARGV, abort.signal), true, "then the key warms again");
  assert.equal(rsync.runs.length, 3);
  abort.abort();
  await warm.settled();
  assert.equal(rsync.runs[2]!.ended, "SIGTERM");
  assert.equal(warm.take("uploads", ARGV), null, "killed by the abort");
  warm.start("uploads", ARGV, abort.signal);
  assert.equal(rsync.runs.length, 3, "nothing starts once aborted");
});

const ssh = validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/cm" });
const member = (over: Partial<ShipMember> = {}): ShipMember => ({ node: "n2", address: "198.18.0.12", receiving: 3, rejoinPending: false, freeBytes: null, ...over });

function setup(runner: CommandRunner, warmMs: number) {
  const clock = new FakeClock();
  const journal = new ChangeJournal({ stabilityWindowMs: 100, maxPending: 100, maxReady: 100 });
  const shipper = new Shipper({
    node: "n1",
    term: 3,
    roots: [{ name: "uploads", path: "/srv/sftp", journal, ready: () => true }],
    settings: {
      // Off: a full pass is one rsync here (its barrier: data-full-pass.test.ts, data-shipper.test.ts).
      fsync: false,
      shipTimeoutMs: 60_000,
      maxBatchFiles: 1000,
      maxBatchBytes: 1 << 30,
      reserveBytes: 0,
      maxDelete: 1000,
      retryMaxMs: 5000,
      rsyncPath: "/usr/bin/rsync",
      sshUser: "root",
      warmMs,
    },
    ssh,
    runner,
    clock,
    log: silentLogger(),
  });
  const closed = async (path: string) => {
    journal.record({ kind: "closed", path }, clock.monotonicMs());
    journal.stabilise(clock.monotonicMs());
    shipper.kick("events");
    await flushMicrotasks();
  };
  const tree = async (path: string) => {
    journal.record({ kind: "dir", path, recursive: true }, clock.monotonicMs());
    journal.stabilise(clock.monotonicMs());
    shipper.kick("events");
    await flushMicrotasks();
  };
  return { clock, shipper, closed, tree };
}

const isFull = (argv: readonly string[]) => argv.includes("--delete");
const isBatch = (argv: readonly string[]) => argv.includes("--files-from=-") && argv.at(-1) === "root@198.18.0.12::d3-uploads/";

test("shipper: after the full pass a batch rsync waits connected; each batch takes it and starts the next", async () => {
  const rsync = new FakeRsync();
  const { shipper, closed, tree, clock } = setup(rsync, 20_000);
  rsync.onList.push({});
  shipper.update([member()]);
  await flushMicrotasks();
  assert.ok(isFull(rsync.runs[0]!.argv), "isFull(rsync.runs[0]!.argv)");
  assert.equal(rsync.runs.length, 2, "the full pass, then a batch run warming");
  const w1 = rsync.runs[1]!;
  assert.ok(isBatch(w1.argv) && w1.argv.includes("--no-recursive"), w1.argv.join(" "));
  assert.equal(w1.options.timeoutMs, 80_000);
  assert.equal(w1.list, undefined);

  await closed("a.csv");
  assert.equal(w1.list, "a.csv\0", "the batch went to the run that was waiting");
  assert.equal(rsync.runs.length, 3, "and the next one is warming while it transfers");
  w1.finish({});
  await flushMicrotasks();
  assert.equal(shipper.status()[0]!.acked, 1);

  // Its connection broke while it waited: the batch starts a run of its own, and no warm run is
  // started for 5 s.
  rsync.runs[2]!.finish({ code: 255, stderr: "ssh: connection closed" });
  await flushMicrotasks();
  rsync.onList.push({});
  await closed("b.csv");
  const cold = rsync.runs.find((r) => r.list === "b.csv\0");
  assert.ok(cold && cold.options.timeoutMs === 60_000, "a cold run, bounded by ship_timeout alone");
  assert.equal(shipper.status()[0]!.acked, 2);
  assert.equal(shipper.status()[0]!.lastError, null, "not counted as a failure");
  assert.equal(rsync.runs.length, 4, "nothing warming during the pause");
  await clock.advance(5_000);
  rsync.onList.push({});
  await closed("c.csv");
  assert.equal(shipper.status()[0]!.acked, 3);
  assert.equal(rsync.runs.length, 6, "after it, the next batch (cold) starts a warm run again");

  // A tree moved in needs -r: not the warm run's flags, so a cold run; the warm one keeps waiting.
  const waiting = rsync.runs.filter((r) => r.ended === undefined);
  assert.equal(waiting.length, 1);
  rsync.onList.push({});
  await tree("carol");
  const moved = rsync.runs.find((r) => r.list === "carol\0");
  assert.ok(moved && moved.argv.includes("-r"), "a cold run with -r");
  assert.equal(waiting[0]!.list, undefined, "the warm run still waits");
  assert.equal(shipper.status()[0]!.acked, 4);
  await shipper.stop();
  assert.equal(waiting[0]!.ended, "SIGTERM", "stop kills the run that waited, and waits for its exit");
});

test("shipper: a warm run that fails after its list is retried cold once; a second failure counts", async () => {
  const rsync = new FakeRsync();
  const { shipper, closed } = setup(rsync, 20_000);
  rsync.onList.push({});
  shipper.update([member()]);
  await flushMicrotasks();
  rsync.onList.push({ code: 23, stderr: "rsync: write failed" }, { code: 23, stderr: "rsync: write failed" });
  await closed("a.csv");
  const listed = rsync.runs.filter((r) => r.list === "a.csv\0");
  assert.equal(listed.length, 2, "the warm run, then one cold run");
  const s = shipper.status()[0]!;
  assert.equal(s.acked, 0);
  assert.match(s.lastError ?? "", /rsync exit 23/);
  await shipper.stop();
});

test("shipper: data.warm_batch 0 starts nothing ahead", async () => {
  const rsync = new FakeRsync();
  const { shipper, closed } = setup(rsync, 0);
  rsync.onList.push({}, {});
  shipper.update([member()]);
  await flushMicrotasks();
  await closed("a.csv");
  assert.deepEqual(
    rsync.runs.map((r) => [isFull(r.argv), r.list]),
    [
      [true, ""],
      [false, "a.csv\0"],
    ],
  );
  await shipper.stop();
});

test("shipper: prewarm (an upload began) starts a warm run only where the next step would be a batch of this term", async () => {
  const rsync = new FakeRsync();
  const { shipper, clock, closed } = setup(rsync, 20_000);
  rsync.onList.push({}, {});
  shipper.prewarm("uploads");
  shipper.update([member()]);
  shipper.prewarm("uploads");
  assert.deepEqual(
    rsync.runs.map((r) => isFull(r.argv)),
    [true],
    "no cursor yet (the full pass runs): nothing warmed",
  );
  await flushMicrotasks();
  assert.equal(rsync.runs.length, 2, "the full pass, then its warm run");
  await clock.advance(20_000);
  assert.equal(rsync.runs[1]!.ended, "exit 0", "retired after a quiet spell");

  shipper.prewarm("uploads");
  shipper.prewarm("uploads");
  shipper.prewarm("elsewhere");
  assert.equal(rsync.runs.length, 3, "one warm run for the upload that began, none for an unknown root");
  const w = rsync.runs[2]!;
  assert.ok(isBatch(w.argv) && w.list === undefined, "isBatch(w.argv) && w.list === undefined");
  await closed("a.csv");
  assert.equal(w.list, "a.csv\0", "its batch took it");
  w.finish({});
  await flushMicrotasks();

  shipper.update([member({ receiving: 4 })]);
  await flushMicrotasks();
  const before = rsync.runs.length;
  for (const r of rsync.runs) if (r.ended === undefined) r.finish({ code: 5, stderr: "@ERROR: Unknown module" });
  await flushMicrotasks();
  shipper.prewarm("uploads");
  assert.equal(rsync.runs.length, before, "a standby on another term: nothing warmed");
  await shipper.stop();
  shipper.prewarm("uploads");
  assert.equal(rsync.runs.length, before, "nothing after stop");
});

test("shipper: prewarm does nothing with warm_batch 0s", async () => {
  const rsync = new FakeRsync();
  const { shipper } = setup(rsync, 0);
  rsync.onList.push({});
  shipper.update([member()]);
  await flushMicrotasks();
  shipper.prewarm("uploads");
  assert.equal(rsync.runs.length, 1, "the full pass only");
  await shipper.stop();
});

test("runShipRsync: no cold retry after a full disk or a timeout; the retry is reported", async () => {
  const rsync = new FakeRsync();
  const clock = new FakeClock();
  const abort = new AbortController();
  const warm = new WarmRsyncs({ runner: rsync, clock, idleMs: 20_000, shipTimeoutMs: 600_000 });
  const retried: number[] = [];
  const ship = (list: string) =>
    runShipRsync({ runner: rsync, warm, key: "k", argv: ARGV, input: Buffer.from(list), next: ARGV, timeoutMs: 600_000, signal: abort.signal, onRetry: (f) => retried.push(f.code) });
  warm.start("k", ARGV, abort.signal);
  rsync.onList.push({ code: 11, stderr: 'rsync: write failed on "/a": No space left on device (28)' });
  const full = await ship("a\0");
  assert.equal(full.code, 11);
  assert.equal(rsync.runs.filter((r) => r.list === "a\0").length, 1, "a full disk waits for its own pause");
  rsync.onList.push({ code: -1, stderr: "US_E_COMMAND_TIMEOUT: command /usr/bin/rsync did not finish within 620000 ms" });
  const slow = await ship("b\0");
  assert.equal(slow.code, -1);
  assert.equal(rsync.runs.filter((r) => r.list === "b\0").length, 1, "a hung standby is not given a second ship_timeout");
  rsync.onList.push({ code: 12, stderr: "rsync: connection unexpectedly closed" }, {});
  const broken = await ship("c\0");
  assert.equal(broken.code, 0, "a broken connection: retried cold, and it went through");
  assert.deepEqual(retried, [12]);
  abort.abort();
  await warm.settled();
});
