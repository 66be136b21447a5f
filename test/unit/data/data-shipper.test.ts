// The data shipper (src/data/shipper.ts) against a strict scripted runner: a
// full pass first, then batches; the cursor advances only on success; failures
// are classified (fenced, disk full, transient) and retried on the clock; a
// standby of another term is not shipped to; stop() aborts the running rsync
// and resolves only once it returned.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChangeJournal } from "../../../src/data/journal.js";
import { Shipper, type ShipMember } from "../../../src/data/shipper.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

type Step = (argv: readonly string[], options: CommandOptions | undefined) => Promise<Partial<CommandResult>> | Partial<CommandResult>;

/** Strict: every call must be expected (in order); `done()` checks none is left. */
class ScriptRunner implements CommandRunner {
  readonly calls: { argv: readonly string[]; options?: CommandOptions }[] = [];
  private readonly queue: Step[] = [];
  expect(step: Step): this {
    this.queue.push(step);
    return this;
  }
  async run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    this.calls.push({ argv, ...(options ? { options } : {}) });
    const next = this.queue.shift();
    if (!next) throw new Error(`unexpected command: ${JSON.stringify(argv)}`);
    return { code: 0, signal: null, stdout: "", stderr: "", ...(await next(argv, options)) };
  }
  done(): void {
    assert.equal(this.queue.length, 0, "every expected command ran");
  }
}

const ssh = validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/cm" });
const member = (over: Partial<ShipMember> = {}): ShipMember => ({ node: "n2", address: "198.18.0.12", receiving: 3, rejoinPending: false, freeBytes: null, ...over });

/** fsync off by default here: a full pass is then one rsync; its barrier (fsync on) has its own tests below. */
function setup(runner: CommandRunner, fsync = false) {
  const clock = new FakeClock();
  const journal = new ChangeJournal({ stabilityWindowMs: 100, maxPending: 100, maxReady: 100 });
  const shipper = new Shipper({
    node: "n1",
    term: 3,
    roots: [{ name: "uploads", path: "/srv/sftp", journal, ready: () => true }],
    settings: { fsync, shipTimeoutMs: 60_000, maxBatchFiles: 1000, maxBatchBytes: 1 << 30, reserveBytes: 0, maxDelete: 1000, retryMaxMs: 5000, rsyncPath: "/usr/bin/rsync", sshUser: "root" },
    ssh,
    runner,
    clock,
    log: silentLogger(),
  });
  const closed = (path: string) => {
    journal.record({ kind: "closed", path }, clock.monotonicMs());
    journal.stabilise(clock.monotonicMs());
    shipper.kick("events");
  };
  return { clock, journal, shipper, closed };
}

const isFull = (argv: readonly string[]) => argv.includes("--delete") && argv.includes("--max-delete=1000") && argv.at(-1) === "root@198.18.0.12::d3-uploads/";
const isBatch = (argv: readonly string[]) => argv.includes("--files-from=-") && argv.includes("--exclude=/.understudy-tmp") && argv.at(-1) === "root@198.18.0.12::d3-uploads/";

test("a full pass first, then one batch per new change; the cursor follows successes and the journal is trimmed", async () => {
  const runner = new ScriptRunner()
    .expect((argv, o) => {
      assert.ok(isFull(argv), argv.join(" "));
      assert.equal(o?.timeoutMs, 60_000);
      assert.ok(o?.signal, "an abort signal on every run");
      return {};
    })
    .expect((argv, o) => {
      assert.ok(isBatch(argv), argv.join(" "));
      assert.equal(String(o?.input), "a.csv\0");
      return {};
    });
  const { shipper, closed, journal } = setup(runner);
  shipper.update([member()]);
  await flushMicrotasks();
  assert.deepEqual(
    shipper.status().map((s) => [s.node, s.acked, s.lag.full]),
    [["n2", 0, false]],
  );
  closed("a.csv");
  await flushMicrotasks();
  runner.done();
  const [s] = shipper.status();
  assert.deepEqual([s?.acked, s?.lag.files, s?.lastError], [1, 0, null]);
  assert.equal(journal.readyCount, 0, "acknowledged by every standby: trimmed");
  await shipper.stop();
});

test("a standby still on another term waits; it is shipped to once it says it receives this term", async () => {
  const runner = new ScriptRunner();
  const { shipper } = setup(runner);
  shipper.update([member({ receiving: 2 }), { ...member(), node: "n1" }]);
  await flushMicrotasks();
  assert.equal(runner.calls.length, 0, "nothing shipped, and never to this node itself");
  assert.match(shipper.status()[0]!.step, /does not accept term 3's files yet \(it still follows term 2\)/);
  runner.expect((argv) => (assert.ok(isFull(argv), "isFull(argv)"), {}));
  shipper.update([member()]);
  await flushMicrotasks();
  runner.done();
  await shipper.stop();
});

test("failures: fenced and transient back off on the clock from the same cursor; disk full pauses", async () => {
  const runner = new ScriptRunner().expect(() => ({})).expect(() => ({ code: 5, stderr: "@ERROR: Unknown module 'd3-uploads'\nrsync error: error starting client-server protocol (code 5)" }));
  const { shipper, closed, clock } = setup(runner);
  shipper.update([member()]);
  await flushMicrotasks();
  closed("a.csv");
  await flushMicrotasks();
  let s = shipper.status()[0]!;
  assert.match(s.step, /n2 refused this term's module \(it follows another leader\); retrying in 200ms after 1 failure/);
  assert.match(s.lastError ?? "", /rsync exit 5: @ERROR: Unknown module/);
  assert.equal(s.acked, 0, "the cursor did not move");
  runner.expect((_argv, o) => (assert.equal(String(o?.input), "a.csv\0"), { code: 12, stderr: "rsync: write failed: No space left on device (28)" }));
  await clock.advance(199);
  assert.equal(runner.calls.length, 2, "not before the retry is due");
  await clock.advance(1);
  s = shipper.status()[0]!;
  assert.match(s.step, /^paused: n2's data volume is full/);
  assert.match(s.paused ?? "", /^paused/);
  runner.expect(() => ({ code: 255, stderr: "ssh: connect to host 198.18.0.12 port 22: Connection refused" }));
  await clock.advance(30_000);
  assert.match(shipper.status()[0]!.step, /the run to n2 failed; retrying in 800ms after 3 failure/);
  runner.expect((_argv, o) => (assert.equal(String(o?.input), "a.csv\0"), {}));
  await clock.advance(800);
  runner.done();
  s = shipper.status()[0]!;
  assert.deepEqual([s.acked, s.lastError, s.paused], [1, null, null]);
  await shipper.stop();
});

test("stop aborts the running rsync and resolves only when it returned; nothing runs after", async () => {
  let aborted = false;
  let returned = false;
  const runner = new ScriptRunner().expect(
    (_argv, o) =>
      new Promise((resolve) => {
        o?.signal?.addEventListener("abort", () => {
          aborted = true;
          // The real runner: SIGTERM, then the child's exit.
          setImmediate(() => {
            returned = true;
            resolve({ code: null, signal: "SIGTERM" });
          });
        });
      }),
  );
  const { shipper, closed } = setup(runner);
  shipper.update([member()]);
  await flushMicrotasks();
  assert.equal(runner.calls.length, 1, "the full pass is running");
  await shipper.stop();
  assert.ok(aborted && returned, "stop waited for the killed child");
  closed("b.csv");
  shipper.update([member({ address: "198.18.0.13" })]);
  await flushMicrotasks();
  runner.done();
  assert.equal(runner.calls.length, 1, "no run after stop");
});

test("a journal that overflowed sends every standby back to a full pass", async () => {
  const runner = new ScriptRunner().expect(() => ({}));
  const { shipper, journal, clock } = setup(runner);
  shipper.update([member()]);
  await flushMicrotasks();
  runner.expect((argv) => (assert.ok(isFull(argv), "a full pass, not a batch"), {}));
  journal.record({ kind: "overflow", why: "Q_OVERFLOW" }, clock.monotonicMs());
  shipper.kick("overflow");
  await flushMicrotasks();
  runner.done();
  assert.equal(shipper.status()[0]!.lag.full, false);
  await shipper.stop();
});

test("a full pass stopped at max_delete (exit 25) is retried with --max-delete=0: the limit is never spent twice", async () => {
  const runner = new ScriptRunner().expect((argv) => (assert.ok(isFull(argv), argv.join(" ")), { code: 25, stderr: "Deletions stopped due to --max-delete limit (30 skipped)" }));
  const { shipper, clock } = setup(runner);
  shipper.update([member()]);
  await flushMicrotasks();
  assert.match(shipper.status()[0]!.step, /^stopped deleting on n2: .*retrying in 30000ms with no deletion at all \(--max-delete=0\)/);
  runner.expect((argv) => {
    assert.ok(argv.includes("--delete") && argv.includes("--max-delete=0") && !argv.includes("--max-delete=1000"), argv.join(" "));
    return { code: 25, stderr: "Deletions stopped due to --max-delete limit (30 skipped)" };
  });
  await clock.advance(30_000);
  runner.expect(() => ({}));
  await clock.advance(30_000);
  runner.done();
  // Checked on the record too: an assertion thrown inside a runner step only fails that run.
  assert.deepEqual(
    runner.calls.map((c) => c.argv.find((a) => a.startsWith("--max-delete="))),
    ["--max-delete=1000", "--max-delete=0", "--max-delete=0"],
  );
  assert.equal(shipper.status()[0]!.lastError, null, "the last pass (copy only) succeeded");
  await shipper.stop();
});

test("the journal is not trimmed past a standby whose first full pass is still running", async () => {
  let finishN3: (r: Partial<CommandResult>) => void = () => undefined;
  const runner = new ScriptRunner()
    .expect((argv) => (assert.ok(isFull(argv), "isFull(argv)"), {}))
    .expect((argv) => (assert.ok(argv.at(-1) === "root@198.18.0.13::d3-uploads/" && argv.includes("--delete"), argv.join(" ")), new Promise<Partial<CommandResult>>((r) => (finishN3 = r))));
  const { shipper, closed, journal } = setup(runner);
  shipper.update([member(), member({ node: "n3", address: "198.18.0.13" })]);
  await flushMicrotasks();
  // n2's full pass is done; n3's is still scanning when a.csv closes: n2 gets it in a batch.
  runner.expect((argv, o) => (assert.ok(isBatch(argv), "isBatch(argv)"), assert.equal(String(o?.input), "a.csv\0"), {}));
  closed("a.csv");
  await flushMicrotasks();
  assert.equal(journal.readyCount, 1, "n3 has no cursor yet: a.csv stays in the journal for it");
  // n3's pass ends at the head it was planned at (0): a.csv still reaches it, in a batch.
  runner.expect(
    (argv, o) => (
      assert.ok(argv.at(-1) === "root@198.18.0.13::d3-uploads/" && argv.includes("--files-from=-"), 'argv.at(-1) === "root@198.18.0.13::d3-uploads/" && argv.includes("--files-from=-")'),
      assert.equal(String(o?.input), "a.csv\0"),
      {}
    ),
  );
  finishN3({});
  await flushMicrotasks();
  runner.done();
  assert.equal(journal.readyCount, 0, "acknowledged by both: trimmed");
  await shipper.stop();
});

test("data.fsync on: a full pass is probe, new files, barrier, fsynced pass; a failed barrier makes every root's next pass a rewrite", async () => {
  const isBarrier = (argv: readonly string[]) => argv.includes("--list-only") && argv.at(-1) === "root@198.18.0.12::s3-uploads/";
  const isNew = (argv: readonly string[]) => argv.includes("--ignore-existing") && !argv.includes("--fsync") && argv.at(-1) === "root@198.18.0.12::d3-uploads/";
  const runner = new ScriptRunner()
    .expect((argv) => (assert.ok(isBarrier(argv), argv.join(" ")), {}))
    .expect((argv) => (assert.ok(isNew(argv), argv.join(" ")), {}))
    .expect((argv) => (assert.ok(isBarrier(argv), argv.join(" ")), { code: 5, stderr: "sync: error syncing '/srv/sftp': Input/output error\n@ERROR: pre-xfer exec returned failure (256)" }));
  const { shipper, clock } = setup(runner, true);
  shipper.update([member()]);
  await flushMicrotasks();
  let s = shipper.status()[0]!;
  assert.equal(s.acked, 0, "the barrier failed: the pass does not count");
  assert.match(s.lastError ?? "", /the new files are copied but the standby could not sync its data volume \(the next pass sends every file again\): sync: error syncing/);
  // The next pass rewrites every file, each fsynced; no barrier (nothing is left to it).
  runner.expect((argv) => (assert.ok(isFull(argv) && argv.includes("--fsync") && argv.includes("--ignore-times"), argv.join(" ")), {}));
  await clock.advance(200);
  s = shipper.status()[0]!;
  assert.deepEqual([s.acked, s.lastError], [0, null], "the rewrite counted (cursor at the head, 0)");
  assert.equal(s.lag.full, false);
  // A reconcile of a standby in sync (it has a cursor): one pass with --fsync, no probe, no barrier.
  runner.expect((argv) => (assert.ok(isFull(argv) && argv.includes("--fsync") && !argv.includes("--ignore-times"), argv.join(" ")), {}));
  shipper.askFullPass("test");
  await flushMicrotasks();
  runner.done();
  assert.equal(shipper.status()[0]!.lastError, null);
  assert.equal(runner.calls.length, 5);
  await shipper.stop();
});
