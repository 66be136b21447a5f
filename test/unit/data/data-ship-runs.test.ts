// Shipper.onRun (understudy_data_ship_runs_total{standby,kind,result}): one call per finished
// rsync run, ok for exit 0/24, error otherwise. A strict runner: two runs, no more.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChangeJournal } from "../../../src/data/journal.js";
import { Shipper } from "../../../src/data/shipper.js";
import type { CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

test("onRun: a full pass that succeeded, then a batch that failed", async () => {
  const results: Partial<CommandResult>[] = [{ code: 0 }, { code: 23, stderr: "rsync: mkstemp failed: Not a directory (20)" }];
  const runner: CommandRunner = {
    run: async (argv) => {
      const next = results.shift();
      if (!next) throw new Error(`unexpected command ${argv.join(" ")}`);
      return { code: 0, signal: null, stdout: "", stderr: "", ...next };
    },
  };
  const clock = new FakeClock();
  const journal = new ChangeJournal({ stabilityWindowMs: 100, maxPending: 100, maxReady: 100 });
  const runs: unknown[] = [];
  const shipper = new Shipper({
    node: "n1",
    term: 3,
    roots: [{ name: "uploads", path: "/srv/sftp", journal, ready: () => true }],
    // fsync off: a full pass is one rsync here (its barrier: data-full-pass.test.ts, data-shipper.test.ts).
    settings: { fsync: false, shipTimeoutMs: 60_000, maxBatchFiles: 1000, maxBatchBytes: 1 << 30, reserveBytes: 0, maxDelete: 1000, retryMaxMs: 5000, rsyncPath: "/usr/bin/rsync", sshUser: "root" },
    ssh: validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/cm" }),
    runner,
    clock,
    log: silentLogger(),
    onRun: (r) => runs.push(r),
  });
  shipper.update([{ node: "n2", address: "198.18.0.12", receiving: 3, rejoinPending: false, freeBytes: null }]);
  await flushMicrotasks();
  journal.record({ kind: "closed", path: "a.csv" }, clock.monotonicMs());
  journal.stabilise(clock.monotonicMs());
  shipper.kick("events");
  await flushMicrotasks();
  assert.deepEqual(runs, [
    { standby: "n2", kind: "full", result: "ok" },
    { standby: "n2", kind: "batch", result: "error" },
  ]);
  await shipper.stop();
});
