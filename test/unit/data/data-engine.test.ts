// The data engine's transitions (src/data/engine.ts) with fakes: a standby
// opens the followed term's write module in the one daemon config and only
// then reports `receiving`; a new term replaces the module; a primary serves
// none and starts its watcher; stopShipping kills the watcher; rejoin pending
// opens nothing; notify journals paths under a root only on the primary.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DataEngine, type DataFollowView, type ReceiverFiles } from "../../../src/data/engine.js";
import type { CommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import type { StreamExit, StreamHandlers, StreamSpawner } from "../../../src/platform/stream-process.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

class Files implements ReceiverFiles {
  content = "";
  writes = 0;
  readonly prepared: string[] = [];
  async prepareRoot(root: string, tempDir: string): Promise<void> {
    this.prepared.push(`${root} ${tempDir}`);
  }
  async writeIfChanged(_file: string, text: string): Promise<boolean> {
    if (text === this.content) return false;
    this.content = text;
    this.writes += 1;
    return true;
  }
}

class Spawner implements StreamSpawner {
  readonly procs: { argv: readonly string[]; handlers: StreamHandlers; kills: string[] }[] = [];
  spawn(argv: readonly string[], handlers: StreamHandlers) {
    let exit: (e: StreamExit) => void = () => undefined;
    const rec = { argv, handlers, kills: [] as string[] };
    this.procs.push(rec);
    return {
      exited: new Promise<StreamExit>((r) => (exit = r)),
      kill: (signal: NodeJS.Signals) => {
        rec.kills.push(signal);
        exit({ code: null, signal });
      },
    };
  }
}

/** Strict: no rsync may run in these tests (no standby ever says it receives the primary's term). */
const noRunner: CommandRunner = { run: (argv) => Promise.reject(new Error(`unexpected command ${argv.join(" ")}`)) };

function setup(rejoin = false) {
  const files = new Files();
  const spawner = new Spawner();
  const clock = new FakeClock();
  let progress = 0;
  const engine = new DataEngine({
    node: "n2",
    roots: [{ name: "uploads", path: "/srv/sftp" }],
    ship: { fsync: true, shipTimeoutMs: 60_000, maxBatchFiles: 1000, maxBatchBytes: 1 << 30, reserveBytes: 0, maxDelete: 1000, retryMaxMs: 5000, rsyncPath: "/usr/bin/rsync", sshUser: "root" },
    journal: { stabilityWindowMs: 100, maxPending: 100, maxReady: 100 },
    reconcileMs: 600_000,
    inotifywaitPath: "/usr/bin/inotifywait",
    ssh: validateSshTransport({ user: "root", key: "/k", knownHosts: "/kh", stateDir: "/run/cm" }),
    serve: { configPath: "/etc/understudy/sync-rsyncd.conf", syncRoots: [{ name: "app", path: "/etc/app" }], daemonUser: "root" },
    vipAddress: "198.18.0.100",
    runner: noRunner,
    spawner,
    files,
    clock,
    log: silentLogger(),
    onProgress: () => (progress += 1),
    rejoinPending: () => rejoin,
  });
  return { engine, files, spawner, clock, progress: () => progress };
}

const standbyOf = (leader: string, term: number, address: string | null = "198.18.0.11"): DataFollowView => ({
  acting: "standby",
  term: null,
  leader: { node: leader, term, address },
  members: [],
});

test("standby: the followed term's write module is rendered into the sync config, then receiving is reported; a new term replaces it", async () => {
  const { engine, files, progress } = setup();
  engine.start();
  await flushMicrotasks();
  assert.match(files.content, /\[app\]/, "the read-only sync module stays");
  assert.doesNotMatch(files.content, /\[d\d+-/, "no write module before a leader is followed");
  assert.equal(engine.memberSummary().receiving, null);

  engine.follow(standbyOf("n1", 3));
  assert.equal(engine.memberSummary().receiving, null, "not before the file says so");
  await flushMicrotasks();
  assert.deepEqual(files.prepared, ["/srv/sftp /srv/sftp/.understudy-tmp"]);
  assert.match(files.content, /\n\[d3-uploads\]\n {4}path = \/srv\/sftp\n(.*\n)* {4}hosts allow = 198\.18\.0\.11 198\.18\.0\.100\n/);
  assert.equal(engine.memberSummary().receiving, 3);
  assert.equal(progress(), 1, "the loop is woken to publish receiving");
  assert.equal(engine.status().role, "standby");

  const writes = files.writes;
  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  assert.equal(files.writes, writes, "same leader, same term: nothing rewritten");

  engine.follow(standbyOf("n3", 4, "198.18.0.13"));
  assert.equal(engine.memberSummary().receiving, null, "the old term is not reported once a new one is followed");
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /d3-uploads/, "the deposed term's module is gone");
  assert.match(files.content, /\[d4-uploads\][^[]*hosts allow = 198\.18\.0\.13 198\.18\.0\.100/);
  assert.equal(engine.memberSummary().receiving, 4);

  engine.follow(standbyOf("n3", 4, null));
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /\[d\d+-/, "a leader without an address: nothing to allow, no module");
  assert.equal(engine.memberSummary().receiving, null);
  await engine.close();
});

test("primary: no write module, a watcher per root; stopShipping kills it; notify journals only paths under a root", async () => {
  const { engine, files, spawner } = setup();
  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  assert.match(files.content, /d3-uploads/);
  engine.follow({
    acting: "primary",
    term: 5,
    leader: { node: "n2", term: 5, address: "198.18.0.12" },
    members: [{ node: "n1", address: "198.18.0.11", data: { receiving: 3, rejoin: null, freeBytes: null, lag: null } }],
  });
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /\[d\d+-/, "a primary serves no write module");
  assert.equal(engine.memberSummary().receiving, null);
  assert.equal(spawner.procs.length, 1);
  assert.equal(spawner.procs[0]!.argv.at(-1), "/srv/sftp");
  spawner.procs[0]!.handlers.stderr(Buffer.from("Watches established.\n"));
  await flushMicrotasks();
  const s = engine.status();
  assert.deepEqual([s.role, s.term], ["primary", 5]);
  assert.match(s.standbys[0]?.step ?? "", /waiting: n1 does not accept term 5's files yet \(it still follows term 3\)/);

  const n = engine.notify(["/srv/sftp/alice/a.csv", "/srv/other/x", "/srv/sftp", "/srv/sftp/.understudy-tmp/x", "relative/x"]);
  assert.deepEqual(n, { role: "primary", accepted: 1, ignored: ["/srv/other/x", "/srv/sftp", "/srv/sftp/.understudy-tmp/x", "relative/x"] });
  assert.equal(engine.status().journal?.head, 1, "the notified path is ready at once");
  assert.equal(engine.progress()?.standbys["n1"]?.full, true);

  await engine.stopShipping();
  assert.deepEqual(spawner.procs[0]!.kills, ["SIGTERM"]);
  assert.equal(engine.progress(), null);
  assert.deepEqual(engine.notify(["/srv/sftp/b"]).accepted, 0, "nothing journaled once shipping stopped");

  // Primary again in a later term: a new watcher (and a new journal).
  engine.follow({ acting: "primary", term: 6, leader: null, members: [] });
  assert.equal(spawner.procs.length, 2);
  assert.equal(engine.status().journal?.head, 0, "a new journal per term");
  engine.follow(standbyOf("n1", 7));
  await flushMicrotasks();
  assert.deepEqual(spawner.procs[1]!.kills, ["SIGTERM"], "losing the primary role stops the watcher");
  await engine.close();
});

test("rejoin pending (datarejoin's hook): a former primary opens no write module", async () => {
  const { engine, files } = setup(true);
  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /\[d\d+-/);
  assert.equal(engine.memberSummary().receiving, null);
  await engine.close();
});

test("agent stop closes the write modules: no one writes here while no agent follows the terms", async () => {
  const { engine, files } = setup();
  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  assert.match(files.content, /d3-uploads/);
  await engine.close();
  assert.doesNotMatch(files.content, /\[d\d+-/);
  assert.match(files.content, /\[app\]/);
});

test("beforeServe: a standby taking over closes the old term's write module before it resolves", async () => {
  const { engine, files } = setup();
  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  assert.match(files.content, /d3-uploads/);
  // The take-over awaits this before the daemon starts and the VIP comes up.
  await engine.beforeServe(4);
  assert.doesNotMatch(files.content, /\[d\d+-/, "no write module of any term once it serves");
  assert.equal(engine.memberSummary().receiving, null);
  await engine.close();
});

test("a standby that cannot read etcd keeps receiving the term it follows; etcd naming no leader or another term closes it", async () => {
  const { engine, files } = setup();
  const unread: DataFollowView = { acting: "standby", term: null, leader: null, members: [], unread: true };
  engine.follow(unread);
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /\[d\d+-/, "following no one before: nothing opened while etcd is unread");

  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  const writes = files.writes;
  for (let i = 0; i < 3; i++) engine.follow(unread);
  await flushMicrotasks();
  assert.equal(files.writes, writes, "etcd unread: the config is not rewritten");
  assert.match(files.content, /\[d3-uploads\]/, "the followed term's module stays open (a running full pass goes on)");
  assert.equal(engine.memberSummary().receiving, 3);

  engine.follow({ acting: "standby", term: null, leader: null, members: [] });
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /\[d\d+-/, "etcd read, no leader: closed");
  assert.equal(engine.memberSummary().receiving, null);

  engine.follow(standbyOf("n1", 3));
  await flushMicrotasks();
  engine.follow(unread);
  engine.follow(standbyOf("n3", 4, "198.18.0.13"));
  await flushMicrotasks();
  assert.doesNotMatch(files.content, /d3-uploads/, "etcd back with a new term: the old one closed");
  assert.match(files.content, /\[d4-uploads\]/);
  await engine.close();
});
