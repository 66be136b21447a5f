// RsyncPuller: the exact rsync/ssh argv, refusal of unsafe values, how rsync
// failures become US_E_SYNC_PULL_FAILED, and ending ControlMaster connections.
import { test } from "node:test";
import assert from "node:assert/strict";
import { UnderstudyError, isUnderstudyError } from "../../../src/errors/catalogue.js";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RsyncPuller, checkControlDir, firstStderrLine, rsyncExitMeaning, type RsyncPullerOptions } from "../../../src/sync/transport.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const SSH = {
  user: "understudy-sync",
  key: "/etc/understudy/sync_ed25519",
  knownHosts: "/etc/understudy/known_hosts",
  stateDir: "/var/lib/understudy",
};
const REQ = { primary: "198.18.0.11", root: "ssh", staging: "/var/lib/understudy/staging/etc/ssh" };

const SSH_E =
  "/usr/bin/ssh -F /dev/null -i /etc/understudy/sync_ed25519 -o BatchMode=yes -o IdentitiesOnly=yes " +
  "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/understudy/known_hosts -o GlobalKnownHostsFile=/dev/null " +
  "-o UpdateHostKeys=no -o CheckHostIP=no -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o LogLevel=ERROR";
const CM = "-o ControlMaster=auto -o ControlPath=/var/lib/understudy/ssh-%C -o ControlPersist=60s";
const PULL_ARGV = [
  "/usr/bin/rsync",
  "-a",
  "--checksum",
  "--modify-window=-1",
  "--delete",
  "--numeric-ids",
  "--timeout=30",
  "-e",
  `${SSH_E} ${CM} -p 22`,
  "--",
  "understudy-sync@198.18.0.11::ssh/",
  "/var/lib/understudy/staging/etc/ssh/",
];
const exitArgv = (host: string) => ["/usr/bin/ssh", "-F", "/dev/null", "-o", "ControlPath=/var/lib/understudy/ssh-%C", "-o", "LogLevel=ERROR", "-p", "22", "-l", "understudy-sync", "-O", "exit", host];

function puller(over: Partial<RsyncPullerOptions> = {}, runner = new StrictCommandRunner()) {
  const clock = new FakeClock();
  return { runner, clock, puller: new RsyncPuller({ runner, clock, ssh: SSH, ...over }) };
}

test("argv: rsync -a --checksum --delete --numeric-ids, ssh with pinned host keys and ControlMaster, trailing slashes", () => {
  assert.deepEqual(puller().puller.argv(REQ), PULL_ARGV);
});

test("argv: ControlMaster off, no --checksum, another port and timeout", () => {
  const { puller: p } = puller({ ssh: { ...SSH, controlMaster: false, port: 2222 }, checksum: false, timeoutMs: 4500 });
  const argv = p.argv(REQ);
  assert.deepEqual(argv.slice(0, 6), ["/usr/bin/rsync", "-a", "--modify-window=-1", "--delete", "--numeric-ids", "--timeout=5"]);
  assert.equal(argv[argv.indexOf("-e") + 1], `${SSH_E} -o ControlMaster=no -o ControlPath=none -p 2222`);
});

test("argv: excludes become rsync --exclude rules (anchored when they hold a /) plus --delete-excluded", () => {
  const argv = puller().puller.argv({ ...REQ, exclude: ["*.db", "cache/", "logs/*.log", "/top.tmp", "**/x"] });
  assert.deepEqual(argv.slice(4, 11), ["--delete", "--delete-excluded", "--exclude=*.db", "--exclude=cache", "--exclude=/logs/*.log", "--exclude=/top.tmp", "--exclude=/**/x"]);
  assert.equal(argv[11], "--numeric-ids");
  for (const bad of ["", "/", "a\nb"]) {
    assert.throws(
      () => puller().puller.argv({ ...REQ, exclude: [bad] }),
      (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"),
      JSON.stringify(bad),
    );
  }
});

test("argv: an IPv6 primary is bracketed for rsync", () => {
  const argv = puller().puller.argv({ ...REQ, primary: "fd00::11" });
  assert.equal(argv.at(-2), "understudy-sync@[fd00::11]::ssh/");
});

test("argv: the -e string splits on spaces into exactly the ssh argv (no token holds whitespace)", () => {
  const argv = puller().puller.argv(REQ);
  const e = argv[argv.indexOf("-e") + 1]!;
  assert.ok(
    e.split(" ").every((t) => t.length > 0 && !/["'\\\t]/.test(t)),
    'e.split(" ").every((t) => t.length > 0 && !/["\'\\\\\\t]/.test(t))',
  );
});

const UNSAFE: [string, Partial<RsyncPullerOptions>, string][] = [
  ["key with a space", { ssh: { ...SSH, key: "/etc/understudy/my key" } }, "sync.ssh.key"],
  ["known_hosts with a quote", { ssh: { ...SSH, knownHosts: "/etc/'kh" } }, "sync.ssh.known_hosts"],
  ["relative key", { ssh: { ...SSH, key: "sync_ed25519" } }, "sync.ssh.key"],
  ["user with a space", { ssh: { ...SSH, user: "sync user" } }, "sync.ssh.user"],
  ["user starting with -", { ssh: { ...SSH, user: "-oProxyCommand=x" } }, "sync.ssh.user"],
  ["port 0", { ssh: { ...SSH, port: 0 } }, "sync.ssh.port"],
  ["state dir with % (ssh token)", { ssh: { ...SSH, stateDir: "/var/lib/%u" } }, "sync.ssh.state_dir"],
  ["state dir too long for a socket", { ssh: { ...SSH, stateDir: `/var/lib/${"x".repeat(40)}` } }, "sync.ssh.state_dir"],
  ["state dir with ..", { ssh: { ...SSH, stateDir: "/var/lib/../tmp" } }, "sync.ssh.state_dir"],
  ["tiny timeout", { timeoutMs: 5 }, "sync.pull_timeout"],
];
for (const [name, over, setting] of UNSAFE) {
  test(`constructor refuses ${name} with US_E_SYNC_CONFIG`, () => {
    assert.throws(
      () => puller(over),
      (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG") && e.details.setting === setting,
    );
  });
}

const UNSAFE_REQ: [string, Partial<typeof REQ>][] = [
  ["a primary that would be an ssh option", { primary: "-oProxyCommand=touch" }],
  ["a primary with a space", { primary: "n1 n2" }],
  ["a module that is a path", { root: "/etc/ssh" }],
  ["a module with ..", { root: "ssh/../x" }],
  ["a module with a glob", { root: "ssh*" }],
  ["a module that would be an option", { root: "-ssh" }],
  ["a relative staging dir", { staging: "staging" }],
];
for (const [name, over] of UNSAFE_REQ) {
  test(`argv() and pull() refuse ${name} without running anything`, async () => {
    const { puller: p, runner } = puller();
    assert.throws(
      () => p.argv({ ...REQ, ...over }),
      (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"),
    );
    await assert.rejects(p.pull({ ...REQ, ...over }), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"));
    runner.done();
  });
}

test("pull runs rsync once with the timeout, and reports the root", async () => {
  const { puller: p, runner } = puller();
  runner.expect(PULL_ARGV);
  const r = await p.pull(REQ);
  assert.deepEqual(r, { ...REQ, durationMs: 0 });
  assert.deepEqual(runner.calls[0]!.options, { timeoutMs: 30_000 });
  runner.done();
});

const FAILURES: [string, { code: number | null; signal?: NodeJS.Signals; stderr: string }, { code: string | number; meaning: RegExp; stderr: string }][] = [
  [
    "ssh host key changed (255): skips the @@@ banner line",
    { code: 255, stderr: "@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@\nHost key verification failed.\n" },
    { code: 255, meaning: /ssh failed/, stderr: "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" },
  ],
  [
    "refused by the primary's rsync daemon (5)",
    { code: 5, stderr: "@ERROR: Unknown module 'ssh'\nrsync error: error starting client-server protocol (code 5) at main.c(1863) [Receiver=3.5.0]\n" },
    { code: 5, meaning: /client-server protocol/, stderr: "@ERROR: Unknown module 'ssh'" },
  ],
  [
    "partial transfer (23)",
    { code: 23, stderr: 'rsync: [sender] send_files failed to open "/etc/ssh/x": Permission denied (13)\n' },
    { code: 23, meaning: /partial transfer/, stderr: 'rsync: [sender] send_files failed to open "/etc/ssh/x": Permission denied (13)' },
  ],
  ["vanished files (24)", { code: 24, stderr: 'file has vanished: "/etc/ssh/tmp"\n' }, { code: 24, meaning: /vanished/, stderr: 'file has vanished: "/etc/ssh/tmp"' }],
  ["killed by a signal", { code: null, signal: "SIGKILL", stderr: "" }, { code: "signal SIGKILL", meaning: /killed/, stderr: "" }],
];
for (const [name, result, want] of FAILURES) {
  test(`pull failure: ${name} -> US_E_SYNC_PULL_FAILED with the exit meaning and first stderr line`, async () => {
    const { puller: p, runner } = puller();
    runner.expect(PULL_ARGV, { code: result.code, signal: result.signal ?? null, stderr: result.stderr });
    await assert.rejects(p.pull(REQ), (e: unknown) => {
      assert.ok(isUnderstudyError(e, "US_E_SYNC_PULL_FAILED"), 'isUnderstudyError(e, "US_E_SYNC_PULL_FAILED")');
      assert.equal(e.transient, true);
      assert.equal(e.details.code, want.code);
      assert.match(String(e.details.meaning), want.meaning);
      assert.equal(e.details.stderr, want.stderr);
      assert.equal(e.details.root, "ssh");
      assert.equal(e.details.primary, "198.18.0.11");
      return true;
    });
  });
}

test("pulls from one primary run one at a time (one ControlMaster connection), in call order", async () => {
  const order: string[] = [];
  let release: () => void = () => undefined;
  const runner = {
    async run(argv: readonly string[]) {
      const root = argv.at(-2)!;
      order.push(`start ${root}`);
      if (root.endsWith("::ssh/")) await new Promise<void>((r) => (release = r));
      order.push(`end ${root}`);
      return { code: 0, signal: null, stdout: "", stderr: "" };
    },
  };
  const p = new RsyncPuller({ runner, clock: new FakeClock(), ssh: SSH });
  const a = p.pull(REQ);
  const b = p.pull({ ...REQ, root: "sftpgo" });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["start understudy-sync@198.18.0.11::ssh/"]);
  release();
  await Promise.all([a, b]);
  assert.deepEqual(order, [
    "start understudy-sync@198.18.0.11::ssh/",
    "end understudy-sync@198.18.0.11::ssh/",
    "start understudy-sync@198.18.0.11::sftpgo/",
    "end understudy-sync@198.18.0.11::sftpgo/",
  ]);
});

test("a failed pull does not block the next one", async () => {
  const { puller: p, runner } = puller();
  runner.expect(PULL_ARGV, { code: 23, stderr: "partial\n" }).expect(PULL_ARGV);
  const a = p.pull(REQ);
  const b = p.pull(REQ);
  await assert.rejects(a, (e: unknown) => isUnderstudyError(e, "US_E_SYNC_PULL_FAILED"));
  assert.equal((await b).root, "ssh");
  runner.done();
});

test("pull timeout (the runner's US_E_COMMAND_TIMEOUT) -> US_E_SYNC_PULL_FAILED code timeout", async () => {
  const { puller: p, runner } = puller();
  runner.expectError(PULL_ARGV, new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: "/usr/bin/rsync", timeout_ms: 30_000 }));
  await assert.rejects(p.pull(REQ), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_PULL_FAILED") && e.details.code === "timeout");
});

test("pull spawn failure (rsync missing) -> US_E_SYNC_PULL_FAILED code spawn, with the cause", async () => {
  const { puller: p, runner } = puller();
  const enoent = Object.assign(new Error("spawn /usr/bin/rsync ENOENT"), { code: "ENOENT" });
  runner.expectError(PULL_ARGV, enoent);
  await assert.rejects(p.pull(REQ), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_PULL_FAILED") && e.details.code === "spawn" && e.cause === enoent);
});

test("close() ends the master of every primary pulled from, once; close(primary) only that one", async () => {
  const { puller: p, runner } = puller();
  runner.expect(PULL_ARGV).expect([...PULL_ARGV.slice(0, -2), "understudy-sync@198.18.0.12::ssh/", PULL_ARGV.at(-1)!]);
  runner.expect(PULL_ARGV);
  await p.pull(REQ);
  await p.pull({ ...REQ, primary: "198.18.0.12" });
  await p.pull(REQ);
  runner.expect(exitArgv("198.18.0.12"));
  await p.close("198.18.0.12");
  await p.close("198.18.0.99"); // never contacted: nothing to end
  runner.expect(exitArgv("198.18.0.11"));
  await p.close();
  await p.close(); // already closed: nothing left
  runner.done();
});

test("close() never throws: a master already gone (exit 255) or a failing ssh is fine", async () => {
  const { puller: p, runner } = puller();
  runner.expect(PULL_ARGV).expect([...PULL_ARGV.slice(0, -2), "understudy-sync@198.18.0.12::ssh/", PULL_ARGV.at(-1)!]);
  await p.pull(REQ);
  await p.pull({ ...REQ, primary: "198.18.0.12" });
  runner.expect(exitArgv("198.18.0.11"), { code: 255, stderr: "Control socket connect: No such file or directory" });
  runner.expectError(exitArgv("198.18.0.12"), new Error("spawn ENOENT"));
  await p.close();
  runner.done();
});

test("close() runs nothing when ControlMaster is off", async () => {
  const { puller: p, runner } = puller({ ssh: { ...SSH, controlMaster: false } });
  runner.expect(p.argv(REQ));
  await p.pull(REQ);
  await p.close();
  runner.done();
});

test("rsyncExitMeaning and firstStderrLine", () => {
  assert.match(rsyncExitMeaning(23), /partial/);
  assert.match(rsyncExitMeaning(255), /ssh/);
  assert.equal(rsyncExitMeaning(99), "unknown rsync exit code");
  assert.equal(firstStderrLine("\n  \n@@@@\nreal line  \nnext"), "real line");
  assert.equal(firstStderrLine(""), "");
  assert.equal(firstStderrLine("x".repeat(400)).length, 300);
});

test("checkControlDir: only a 0700 directory of our own passes", async () => {
  const base = mkdtempSync(join(tmpdir(), "us-cm-test-"));
  try {
    const ok = join(base, "ok");
    const open = join(base, "open");
    const file = join(base, "file");
    const link = join(base, "link");
    mkdirSync(ok, { mode: 0o700 });
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    writeFileSync(file, "");
    symlinkSync(ok, link);
    await checkControlDir(ok);
    for (const [d, why] of [
      [open, /group or others/],
      [file, /directory/],
      [link, /directory/],
      [join(base, "missing"), /ENOENT/],
    ] as const) {
      await assert.rejects(checkControlDir(d), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG") && why.test(e.message), d);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
