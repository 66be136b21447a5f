// The engine's data/progress wiring (issue 14): a primary offers its per-standby lag to the
// throttled writer, which puts data/progress under its term; a standby copies its own entry of
// the followed leader's record into its member-key summary (ownLag). Fakes only.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DataEngine, type ReceiverFiles } from "../../../src/data/engine.js";
import type { DataProgress } from "../../../src/coordinator/port.js";
import type { CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import type { StreamExit, StreamHandlers, StreamSpawner } from "../../../src/platform/stream-process.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const files: ReceiverFiles = { prepareRoot: async () => undefined, writeIfChanged: async () => true };
const spawner: StreamSpawner = {
  spawn(_argv: readonly string[], _h: StreamHandlers) {
    let exit: (e: StreamExit) => void = () => undefined;
    return { exited: new Promise<StreamExit>((r) => (exit = r)), kill: (signal: NodeJS.Signals) => exit({ code: null, signal }) };
  },
};
/** Strict: no standby receives the primary's term here, so no rsync may run. */
const noRunner: CommandRunner = { run: (argv) => Promise.reject(new Error(`unexpected command ${argv.join(" ")}`)) };

function engineFor(node: string, clock: FakeClock, etcd: FakeCoordinator) {
  return new DataEngine({
    node,
    roots: [{ name: "uploads", path: "/srv/sftp" }],
    ship: { fsync: true, shipTimeoutMs: 60_000, maxBatchFiles: 1000, maxBatchBytes: 1 << 30, reserveBytes: 0, maxDelete: 1000, retryMaxMs: 5000, rsyncPath: "/usr/bin/rsync", sshUser: "root" },
    journal: { stabilityWindowMs: 100, maxPending: 100, maxReady: 100 },
    reconcileMs: 600_000,
    inotifywaitPath: "/usr/bin/inotifywait",
    ssh: validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/cm" }),
    serve: { configPath: "/etc/understudy/sync-rsyncd.conf", syncRoots: [], daemonUser: "root" },
    runner: noRunner,
    spawner,
    files,
    clock,
    log: silentLogger(),
    progressSink: { coordinator: etcd, intervalMs: 500 },
  });
}

test("primary: data/progress is written under its term, listing each standby; a standby copies its own entry", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(10_000);
  const term = (await etcd.campaign("n1", lease.id, "2026-12-04T23:00:00.000Z")).leader!.term;
  const primary = engineFor("n1", clock, etcd);
  const summary = { receiving: null, rejoin: null, freeBytes: 1e9, lag: null };
  primary.follow({
    acting: "primary",
    term,
    leader: { node: "n1", term, address: "198.18.0.11" },
    members: [
      { node: "n2", address: "198.18.0.12", data: summary },
      { node: "n3", address: "198.18.0.13", data: summary },
    ],
  });
  await clock.advance(10);
  const written = etcd.dataProgress;
  assert.ok(written, "data/progress written");
  assert.equal(written.node, "n1");
  assert.equal(written.term, term);
  assert.deepEqual(Object.keys(written.standbys).sort(), ["n2", "n3"]);
  assert.deepEqual(written, primary.progress() ? { ...primary.progress()!, at: written.at } : null, "what progress() says");
  assert.equal(primary.memberSummary().lag, null, "the primary has no lag of its own");

  const standby = engineFor("n2", clock, etcd);
  const view = { acting: "standby" as const, term: null, leader: { node: "n1", term, address: "198.18.0.11" }, members: [] };
  standby.follow({ ...view, progress: written });
  assert.deepEqual(standby.memberSummary().lag, written.standbys.n2);
  standby.follow({ ...view, progress: { ...written, term: term - 1 } as DataProgress });
  assert.equal(standby.memberSummary().lag, null, "an older term's record is not its lag");
  standby.follow(view);
  assert.equal(standby.memberSummary().lag, null, "no record read: the last one (older term) still applies");

  // The primary deposed: a successor holds the key; the old primary's writer is refused.
  await etcd.revokeLease(lease.id);
  const l2 = await etcd.grantLease(10_000);
  await etcd.campaign("n3", l2.id, "2026-12-04T23:01:00.000Z");
  const before = etcd.dataProgress;
  primary.follow({ acting: "primary", term, leader: { node: "n1", term, address: "198.18.0.11" }, members: [] });
  await clock.advance(1000);
  assert.equal(etcd.dataProgress, before, "a deposed primary's write changes nothing");
  await primary.close();
  await standby.close();
});
