// Warm batches against the real rsync daemon (src/data/warm-rsync.ts, the real
// SpawnCommandRunner with a deferred stdin): the run opens the standby's module
// before it reads its list, so a fenced module ends it while it waits; a list sent
// later lands like a cold batch; an empty list (retiring it) writes nothing and exits 0.
// As in data-receive.test.ts, a "remote shell" script stands in for ssh.
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { moduleLayout, renderReceiveConf } from "../../../src/data/receive.js";
import { batchArgv } from "../../../src/data/rsync-argv.js";
import { WarmRsyncs } from "../../../src/data/warm-rsync.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { SpawnCommandRunner, type CommandResult, type CommandRunner } from "../../../src/platform/command.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";

const BASE = mkdtempSync(join(tmpdir(), "us-data-warm-"));
after(() => rmSync(BASE, { recursive: true, force: true }));
const LEADER = "198.18.0.11";

test("the real daemon: a warm run is fenced while it waits, lands its list when sent, and retires cleanly", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("the receiving daemon chroots, which needs root (the data key's account)");
  const src = join(BASE, "primary");
  const root = join(BASE, "standby", "sftp");
  for (const d of [src, root, moduleLayout({ name: "uploads", path: root }).tempDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(src, "a.csv"), "a");
  const conf = join(BASE, "rsyncd.conf");
  writeFileSync(conf, renderReceiveConf([{ name: "uploads", path: root }], { term: 7, leaderAddress: LEADER }));
  const started = join(BASE, "started");
  const rsh = join(BASE, "rsh");
  writeFileSync(rsh, `#!/bin/sh\necho x >> ${started}\nexport SSH_CONNECTION="${LEADER} 40000 198.18.0.12 22"\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  const ssh = validateSshTransport({ user: "root", key: "/etc/understudy/data_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" });
  const argvFor = (term: number) => {
    const argv = batchArgv(false, { source: src, destination: { kind: "module", user: "root", host: "198.18.0.12", term, root: "uploads", ssh } });
    argv[argv.indexOf("-e") + 1] = rsh;
    return argv;
  };
  const clock = new SystemClock();
  const results: CommandResult[] = [];
  const real = new SpawnCommandRunner();
  const runner: CommandRunner = { run: (argv, o) => real.run(argv, o).then((r) => (results.push(r), r)) };
  const warm = new WarmRsyncs({ runner, clock, idleMs: 60_000, shipTimeoutMs: 30_000 });
  const abort = new AbortController();
  t.after(() => abort.abort());
  const waitFor = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await sleep(25);
    assert.ok(ok(), what);
  };

  // Another term's module: the daemon refuses it at connection, before any list; the run is dropped.
  warm.start("old", argvFor(6), abort.signal);
  await waitFor("the fenced run exited while waiting for its list", () => results.length === 1);
  assert.equal(results[0]!.code, 5, results[0]!.stderr);
  assert.match(results[0]!.stderr, /Unknown module 'd6-uploads'/);
  assert.equal(warm.take("old", argvFor(6)), null, "dropped: a batch would start its own");

  // This term's module: connected and waiting; the file lands only once its list is sent.
  rmSync(started, { force: true });
  warm.start("uploads", argvFor(7), abort.signal);
  await waitFor("the remote side started before any list", () => existsSync(started));
  await sleep(200);
  assert.deepEqual(readdirSync(root), [".understudy-tmp"], "nothing written while it waits");
  const run = warm.take("uploads", argvFor(7));
  assert.ok(run, "still waiting, connected");
  run.send(Buffer.from("a.csv\0"));
  const r = await run.result;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(root, "a.csv"), "utf8"), "a");

  // Retired: an empty list, nothing sent, exit 0.
  writeFileSync(join(src, "b.csv"), "b");
  const retired = new WarmRsyncs({ runner, clock, idleMs: 300, shipTimeoutMs: 30_000 });
  retired.start("uploads", argvFor(7), abort.signal);
  await waitFor("retired after idleMs, and exited", () => results.length === 3);
  assert.equal(results[2]!.code, 0, results[2]!.stderr);
  assert.equal(retired.take("uploads", argvFor(7)), null);
  assert.equal(existsSync(join(root, "b.csv")), false, "an empty list sends nothing");
});
