// The new primary's rejoin (src/data/rejoin-exec.ts) with the real rsync between
// temp directories: the inbox pull with --compare-dest, the merge (move, drop,
// conflict name, a new home directory, a restore), every moved file recorded,
// nothing deleted in the live tree, a second run a no-op; then the former
// primary's read-only module served by the real daemon (rejoin-pull.ts).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { renderReceiveConf, TEMP_DIR_NAME } from "../../../src/data/receive.js";
import { runRejoin, type RejoinDeps, type RejoinEvent, type RejoinRun } from "../../../src/data/rejoin-exec.js";
import { inboxPath, pullCommand, renderRejoinModules } from "../../../src/data/rejoin-pull.js";
import { SpawnCommandRunner } from "../../../src/platform/command.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { fsyncDir } from "../../../src/platform/node-durable-fs.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const BASE = mkdtempSync(join(tmpdir(), "us-rejoin-exec-"));
after(() => rmSync(BASE, { recursive: true, force: true }));
const WALL = Date.UTC(2026, 11, 4, 23, 40, 5);
const STAMP = "20261204T234005Z";

function put(root: string, path: string, content: string, mtimeS?: number): void {
  const p = join(root, path);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, content);
  if (mtimeS !== undefined) utimesSync(p, mtimeS, mtimeS);
}

/** Every file under `dir` (not the temp dir) with its content. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === TEMP_DIR_NAME) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, "utf8");
    }
  };
  walk(dir);
  return out;
}

function setup(name: string) {
  const f = join(BASE, name, "f");
  const n = join(BASE, name, "n");
  mkdirSync(f, { recursive: true });
  mkdirSync(n, { recursive: true });
  const clock = new FakeClock(0, WALL);
  const coordinator = new FakeCoordinator(clock);
  coordinator.leader = { node: "n2", term: 12, lease: "1", acquiredAt: "" };
  const journaled: string[] = [];
  const events: RejoinEvent[] = [];
  const deleted = new Set<string>();
  const deps: RejoinDeps = {
    runner: new SpawnCommandRunner(),
    clock,
    log: silentLogger(),
    coordinator,
    fsyncDir,
    journal: (root, path) => journaled.push(`${root}:${path}`),
    deletedHere: (_root, path) => deleted.has(path),
    onEvent: (e) => events.push(e),
  };
  const run: RejoinRun = { node: "n2", term: 12, from: "n1", roots: [{ name: "uploads", path: n }], source: () => ({ kind: "local", path: f }) };
  return { f, n, coordinator, deps, run, journaled, events, deleted };
}

test("pull + merge: moved, conflict kept beside under the documented name, same content dropped, new home dir, restore; recorded; nothing deleted here", async () => {
  const { f, n, coordinator, deps, run, journaled, events, deleted } = setup("main");
  // F (the former primary) took these uploads in its term; N (primary now) took others.
  put(f, "alice/in/new.csv", "only on F");
  put(f, "alice/in/a.csv", "F's a.csv");
  put(n, "alice/in/a.csv", "N's a.csv, different");
  put(f, "same-mtime.txt", "shared", 1_700_000_000);
  put(n, "same-mtime.txt", "shared", 1_700_000_000);
  put(f, "same-bytes.txt", "shared bytes", 1_700_000_000);
  put(n, "same-bytes.txt", "shared bytes", 1_700_000_100);
  put(f, "bob/b.txt", "bob's first upload");
  chmodSync(join(f, "bob"), 0o700);
  put(f, "gone.txt", "F held it; a partner deleted it on N during term 12");
  deleted.add("gone.txt");
  put(n, "n-only.txt", "uploaded to N after the failover");
  const before = tree(n);
  const fBefore = tree(f);

  const r = await runRejoin(run, deps);

  assert.deepEqual(
    { moved: r.moved, restored: r.restored, conflicts: r.conflicts, dropped: r.dropped, dirs: r.dirs, done: r.done },
    { moved: 3, restored: 1, conflicts: 1, dropped: 1, dirs: 1, done: true },
  );
  const after = tree(n);
  for (const [p, c] of Object.entries(before)) assert.equal(after[p], c, `${p} is untouched on the primary`);
  assert.equal(after["alice/in/new.csv"], "only on F");
  assert.equal(after[`alice/in/a.understudy-conflict-n1-${STAMP}.csv`], "F's a.csv", "F's copy kept beside N's under the conflict name");
  assert.equal(after["bob/b.txt"], "bob's first upload");
  assert.equal(statSync(join(n, "bob")).mode & 0o7777, 0o700, "a new home directory keeps its mode");
  assert.equal(after["gone.txt"], "F held it; a partner deleted it on N during term 12");
  assert.equal(Object.keys(after).length, Object.keys(before).length + 4);
  assert.deepEqual(readdirSync(join(n, TEMP_DIR_NAME)), [], "the inbox is gone");
  assert.deepEqual(tree(f), fBefore, "nothing changed on F: it keeps every file");

  assert.deepEqual(journaled.sort(), ["uploads:alice/in/a.understudy-conflict-n1-20261204T234005Z.csv", "uploads:alice/in/new.csv", "uploads:bob", "uploads:bob/b.txt", "uploads:gone.txt"]);
  const files = events.filter((e) => e.type === "data_rejoin_file");
  assert.deepEqual(files.map((e) => `${e.kind} ${e.path}${e.restored ? " restored" : ""}`).sort(), ["conflict alice/in/a.csv", "moved alice/in/new.csv", "moved bob/b.txt", "moved gone.txt restored"]);
  const summary = events.find((e) => e.type === "data_rejoin");
  assert.deepEqual(summary, { type: "data_rejoin", from: "n1", term: 12, moved: 3, restored: 1, conflicts: 1, bytes: r.bytes, done: true });
  assert.equal(r.bytes, "only on F".length + "F's a.csv".length + "bob's first upload".length + "F held it; a partner deleted it on N during term 12".length);

  const h = coordinator.historyEvents.at(-1)!;
  assert.equal(h.kind, "data_rejoin");
  assert.deepEqual([h.from, h.to, h.term, h.node], ["n1", "n2", 12, "n2"]);
  assert.deepEqual(h.counts, { moved: 3, restored: 1, conflicts: 1, bytes: r.bytes });
  assert.match(h.reason, /^merged n1's files into n2's tree: 3 moved \(1 restored: deleted here during term 12\), 1 conflict\(s\) kept beside under a conflict name, 1 already held, \d+ B$/);
  assert.deepEqual({ ...coordinator.dataRejoins.get("n1"), at: "" }, { node: "n1", by: "n2", term: 12, done: true, moved: 3, conflicts: 1, at: "" });

  // Again (the primary died after merging, the next run starts over): nothing moves, no second conflict copy.
  events.length = 0;
  const again = await runRejoin(run, deps);
  assert.deepEqual({ moved: again.moved, conflicts: again.conflicts, done: again.done }, { moved: 0, conflicts: 0, done: true });
  assert.ok(again.dropped >= 1, "F's a.csv is pulled again (it differs from N's) and dropped: already kept");
  assert.deepEqual(tree(n), after);
  assert.deepEqual(
    events.filter((e) => e.type === "data_rejoin_file"),
    [],
  );
});

test("a merge cut short by a crash: what was placed stays, the rerun places the rest once", async () => {
  const { f, n, deps, run } = setup("crash");
  for (let i = 0; i < 5; i++) put(f, `u/${i}.csv`, `upload ${i}`);
  // As if a run had moved 0..2 and died: those are in the live tree, a stale inbox is left.
  for (let i = 0; i < 3; i++) put(n, `u/${i}.csv`, `upload ${i}`);
  mkdirSync(join(inboxPath(n, 11, "n1"), "u"), { recursive: true });
  writeFileSync(join(inboxPath(n, 11, "n1"), "u", "3.csv"), "upload 3");
  const r = await runRejoin(run, deps);
  assert.equal(r.moved, 2);
  assert.equal(r.conflicts, 0);
  assert.deepEqual(Object.keys(tree(n)).sort(), ["u/0.csv", "u/1.csv", "u/2.csv", "u/3.csv", "u/4.csv"]);
  assert.deepEqual(readdirSync(join(n, TEMP_DIR_NAME)), [], "the stale inbox of the earlier run is gone too");
});

test("deposed before the record: history and data/rejoin are not written, the former primary stays pending", async () => {
  const { f, coordinator, deps, run } = setup("deposed");
  put(f, "x.csv", "x");
  coordinator.leader = { node: "n3", term: 13, lease: "2", acquiredAt: "" };
  const r = await runRejoin(run, deps);
  assert.equal(r.done, false);
  assert.equal(coordinator.dataRejoins.size, 0);
  assert.equal(coordinator.historyEvents.length, 0);
});

test("a failed pull rejects with US_E_DATA_REJOIN and moves nothing", async () => {
  const { n, deps, run } = setup("fail");
  await assert.rejects(
    runRejoin({ ...run, source: () => ({ kind: "local", path: join(BASE, "no-such-dir") }) }, deps),
    (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_REJOIN" && /pull exited 23/.test(e.message),
  );
  assert.deepEqual(tree(n), {});
});

test("the former primary's read-only module: the new primary pulls, another host and another term get 'Unknown module', the temp dir stays out", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("the daemon chroots, which needs root");
  const { f, n } = setup("daemon");
  put(f, "alice/a.csv", "from F");
  put(f, `${TEMP_DIR_NAME}/leftover`, "rsync temp of an old receive");
  const conf = join(BASE, "daemon", "rsyncd.conf");
  const roots = [{ name: "uploads", path: f }];
  const serve = (term: number, address: string) => writeFileSync(conf, renderReceiveConf(roots, null) + renderRejoinModules(roots, { term, address }));
  const text = renderRejoinModules(roots, { term: 12, address: "198.18.0.12" });
  assert.match(text, /^\[r12-uploads\]\n {4}path = .*\/f\n {4}read only = yes\n {4}exclude = \/\.understudy-tmp\/\n {4}hosts allow = 198\.18\.0\.12\n/);
  assert.equal(renderRejoinModules(roots, null), "");
  const rsh = join(BASE, "daemon", "rsh");
  writeFileSync(rsh, `#!/bin/sh\nexport SSH_CONNECTION="$FAKE_FROM 40000 198.18.0.11 22"\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  const ssh = validateSshTransport({ user: "root", key: "/etc/understudy/sync_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" });
  const pull = (term: number, from: string) => {
    const inbox = inboxPath(n, term, "n1");
    rmSync(inbox, { recursive: true, force: true });
    mkdirSync(inbox, { recursive: true });
    const argv = pullCommand({ source: { kind: "module", user: "root", host: "198.18.0.11", term, root: "uploads", ssh }, liveRoot: n, inbox });
    argv[argv.indexOf("-e") + 1] = rsh;
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 30_000, env: { ...process.env, FAKE_FROM: from } });
    return { code: r.status, stderr: r.stderr, inbox };
  };
  serve(12, "198.18.0.12");
  const ok = pull(12, "198.18.0.12");
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readFileSync(join(ok.inbox, "alice", "a.csv"), "utf8"), "from F");
  assert.equal(existsSync(join(ok.inbox, TEMP_DIR_NAME)), false, "the former primary's temp dir is not pulled");
  assert.equal(pull(12, "198.18.0.13").code, 5, "only the new primary's address may read");
  assert.equal(pull(11, "198.18.0.12").code, 5, "an older term's primary finds no module");
});

test("metric: understudy_data_rejoin_files_total{kind} starts at 0 for both kinds and counts each file event", async () => {
  const view: NodeView = {
    node: "n2",
    acting: "primary",
    term: 12,
    leaseRemainingMs: 3000,
    etcdReachable: true,
    decision: "",
    sinceLastCycleMs: 1,
    vipHeld: true,
    daemonRunning: true,
    probes: [],
    healthy: true,
    notReady: null,
  };
  const m = new AgentMetrics(() => view, { cluster: "c", node: "n2" }).withDataRejoin();
  const line = async (kind: string) => (await m.registry.metrics()).split("\n").find((l) => l.startsWith("understudy_data_rejoin_files_total{") && l.includes(`kind="${kind}"`));
  assert.match((await line("moved"))!, / 0$/);
  const file = { type: "data_rejoin_file", from: "n1", root: "uploads", path: "a.csv", target: "a.csv", restored: false } as const;
  m.observeDataRejoin({ ...file, kind: "moved" });
  m.observeDataRejoin({ ...file, kind: "moved" });
  m.observeDataRejoin({ ...file, kind: "conflict" });
  m.observeDataRejoin({ type: "data_rejoin", from: "n1", term: 12, moved: 2, restored: 0, conflicts: 1, bytes: 3, done: true });
  assert.match((await line("moved"))!, / 2$/);
  assert.match((await line("conflict"))!, / 1$/);
});
