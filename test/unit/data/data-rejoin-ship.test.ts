// The shipper's rejoin step (src/data/shipper.ts with src/data/rejoin-agent.ts's
// `run` faked): a pending former primary gets one pull+merge for all roots and
// no rsync of this primary's files; merged paths are journaled; a failure backs
// off and is retried; after done it waits, and once it receives this term it
// gets a full pass.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChangeJournal } from "../../../src/data/journal.js";
import type { RejoinResult } from "../../../src/data/rejoin-exec.js";
import { Shipper, type ShipMember } from "../../../src/data/shipper.js";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

class RecordingRunner implements CommandRunner {
  readonly argvs: string[][] = [];
  async run(argv: readonly string[], _o?: CommandOptions): Promise<CommandResult> {
    this.argvs.push([...argv]);
    return { code: 0, signal: null, stdout: "", stderr: "" };
  }
}

function setup() {
  const clock = new FakeClock(0);
  const runner = new RecordingRunner();
  const journals = { uploads: new ChangeJournal(), homes: new ChangeJournal() };
  const calls: { from: string; address: string; term: number }[] = [];
  let fail: string | null = null;
  const result: RejoinResult = { moved: 1, restored: 0, conflicts: 0, dropped: 0, bytes: 3, dirs: 1, done: true, reason: "merged n1's files into n2's tree: 1 moved" };
  const shipper = new Shipper({
    node: "n2",
    term: 12,
    roots: Object.entries(journals).map(([name, journal]) => ({ name, path: `/srv/${name}`, journal, ready: () => true })),
    // fsync off: a full pass is one rsync here (its barrier: data-full-pass.test.ts, data-shipper.test.ts).
    settings: { fsync: false, shipTimeoutMs: 60_000, maxBatchFiles: 1000, maxBatchBytes: 1 << 28, reserveBytes: 0, maxDelete: 1000, retryMaxMs: 5000, rsyncPath: "/usr/bin/rsync", sshUser: "root" },
    ssh: validateSshTransport({ user: "root", key: "/etc/understudy/sync_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" }),
    runner,
    clock,
    log: silentLogger(),
    rejoin: {
      run: async (from, address, term, journal) => {
        calls.push({ from, address, term });
        if (fail !== null) throw new UnderstudyError("US_E_DATA_REJOIN", { from, root: "uploads", problem: fail });
        journal("uploads", "home-x", "dir");
        journal("uploads", "home-x/a.csv", "file");
        return result;
      },
    },
  });
  return { clock, runner, journals, calls, shipper, setFail: (f: string | null) => (fail = f) };
}

const member = (over: Partial<ShipMember> = {}): ShipMember => ({ node: "n1", address: "198.18.0.11", receiving: null, rejoinPending: true, freeBytes: null, ...over });

test("a pending former primary: one pull+merge for every root, nothing shipped to it, merged paths journaled; then the full pass", async () => {
  const { runner, journals, calls, shipper } = setup();
  shipper.update([member()]);
  await flushMicrotasks();
  assert.deepEqual(calls, [{ from: "n1", address: "198.18.0.11", term: 12 }], "one rejoin run, for all roots");
  assert.deepEqual(runner.argvs, [], "no rsync towards the former primary");
  assert.equal(journals.uploads.head, 2, "the merged directory and file are journaled (they reach the other standbys)");
  assert.match(shipper.status()[0]!.step, /^waiting: n1's files were merged here \(rejoin done in term 12\)/);
  // It read the record, cleared its marker and opened d12-*: the full pass to it, per root, with --delete.
  shipper.update([member({ rejoinPending: false, receiving: 12 })]);
  await flushMicrotasks();
  assert.equal(calls.length, 1, "no second rejoin");
  assert.equal(runner.argvs.length, 2);
  const dests = runner.argvs.map((argv: string[]) => [argv.includes("--delete"), argv[argv.length - 1]]);
  assert.deepEqual(dests.sort(), [
    [true, "root@198.18.0.11::d12-homes/"],
    [true, "root@198.18.0.11::d12-uploads/"],
  ]);
  await shipper.stop();
});

test("a failed rejoin backs off and is retried; nothing is shipped meanwhile", async () => {
  const { clock, runner, calls, shipper, setFail } = setup();
  setFail("pull exited 5: @ERROR: Unknown module 'r12-uploads'");
  shipper.update([member()]);
  await flushMicrotasks();
  assert.equal(calls.length, 1);
  assert.match(shipper.status()[0]!.step, /^rejoin of n1 failed: US_E_DATA_REJOIN: .*Unknown module 'r12-uploads'; retrying in 200ms/);
  await clock.advance(100);
  assert.equal(calls.length, 1, "not before the backoff");
  setFail(null);
  await clock.advance(200);
  await flushMicrotasks();
  assert.equal(calls.length, 2, "retried after 200 ms");
  assert.match(shipper.status()[0]!.step, /^waiting: n1's files were merged here/);
  assert.deepEqual(runner.argvs, []);
  await shipper.stop();
});
