// The sync key's forced command: which SSH_ORIGINAL_COMMANDs run (a read-only
// rsync pull of exactly one configured root) and which are refused, and the
// authorized_keys line that installs it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isUnderstudyError } from "../../src/errors/catalogue.js";
import { authorizedKeysLine, checkServeCommand, primarySideCommand } from "../../src/sync/serve.js";
import { runSyncServe } from "../../src/sync/serve-main.js";

const ROOTS = ["/etc/ssh", "/etc/sftpgo/"];
/** What RsyncPuller's client actually sends (rsync 3.5.0, -a --checksum --numeric-ids --timeout=30). */
const OURS = "rsync --server --sender -logDtprce.iLsfxCIvu --timeout=30 --numeric-ids . /etc/ssh/";

test("our own pull is allowed and becomes an exec argv with --confine-root and --", () => {
  assert.deepEqual(checkServeCommand(OURS, ROOTS), {
    ok: true,
    root: "/etc/ssh",
    argv: ["/usr/bin/rsync", "--server", "--sender", "-logDtprce.iLsfxCIvu", "--timeout=30", "--numeric-ids", "--confine-root=/etc/ssh", "--", ".", "/etc/ssh/"],
  });
});

const ALLOWED: [string, string][] = [
  ["the root without a trailing slash", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/sftpgo"],
  ["verbose and compressed", "rsync --server --sender -vzlogDtpre.iLsfxCIvu --numeric-ids . /etc/sftpgo/"],
  ["a checksum choice", "rsync --server --sender -logDtpre.iLsfxCIvu --checksum-choice=xxh128 . /etc/ssh/"],
];
for (const [name, cmd] of ALLOWED) {
  test(`allowed: ${name}`, () => assert.equal(checkServeCommand(cmd, ROOTS).ok, true));
}

const REFUSED: [string, string | undefined, RegExp][] = [
  ["no command (interactive login)", undefined, /no command/],
  ["an empty command", "", /no command/],
  ["a shell command", "cat /etc/shadow", /not an rsync server command/],
  ["a push (write)", "rsync --server -logDtpre.iLsfxCIvu --delete --numeric-ids . /etc/ssh/", /read-only/],
  ["secluded args (paths hidden in the protocol)", "rsync --server --sender -slogDtpre.iLsfxCIvu", /not allowed/],
  ["secluded args in a second cluster", "rsync --server --sender -logDtpre.iLsfxCIvu -s . /etc/ssh/", /not allowed/],
  ["-L (follow symlinks out of the root)", "rsync --server --sender -lLogDtpre.iLsfxCIvu . /etc/ssh/", /not allowed/],
  ["-k (follow dir symlinks)", "rsync --server --sender -lkogDtpre.iLsfxCIvu . /etc/ssh/", /not allowed/],
  ["--copy-links", "rsync --server --sender --copy-links -logDtpre.iLsfxCIvu . /etc/ssh/", /--copy-links is not allowed/],
  ["--files-from a server file", "rsync --server --sender --files-from=/etc/shadow -logDtpre.iLsfxCIvu . /etc/ssh/", /--files-from/],
  ["--remove-source-files", "rsync --server --sender --remove-source-files -logDtpre.iLsfxCIvu . /etc/ssh/", /--remove-source-files/],
  ["--log-file (a write)", "rsync --server --sender --log-file=/etc/x -logDtpre.iLsfxCIvu . /etc/ssh/", /--log-file/],
  ["a path outside the roots", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/", /not one of the sync roots/],
  ["a subpath of a root", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/moduli", /not one of the sync roots/],
  ["a sibling sharing the prefix", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/sshx/", /not one of the sync roots/],
  ["a root plus ..", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/../shadow", /not one of the sync roots/],
  ["two paths", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/ /etc/sftpgo/", /exactly one path/],
  ["a path before the dot", "rsync --server --sender -logDtpre.iLsfxCIvu /etc/ssh/", /comes before the '\.'/],
  ["no dot argument", "rsync --server --sender -logDtpre.iLsfxCIvu", /no '\.' argument/],
  ["an escaped space", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/\\ x", /characters outside/],
  ["a glob", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ss*", /characters outside/],
  ["a shell separator", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/;id", /characters outside/],
  ["a newline", "rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/\nid", /characters outside/],
  ["doubled spaces", "rsync --server --sender  -logDtpre.iLsfxCIvu . /etc/ssh/", /empty arguments/],
  ["another program named rsync-ish", "/tmp/rsync --server --sender -logDtpre.iLsfxCIvu . /etc/ssh/", /not an rsync server/],
  ["a bare dash cluster", "rsync --server --sender - . /etc/ssh/", /not allowed/],
  ["an overlong command", `rsync --server --sender ${"-l ".repeat(2000)}. /etc/ssh/`, /too long/],
];
for (const [name, cmd, why] of REFUSED) {
  test(`refused: ${name}`, () => {
    const d = checkServeCommand(cmd, ROOTS);
    assert.equal(d.ok, false);
    if (!d.ok) assert.match(d.why, why);
  });
}

test("confineRoot: false (rsync < 3.5.0) leaves --confine-root out; rsyncPath is used", () => {
  const d = checkServeCommand(OURS, ROOTS, { confineRoot: false, rsyncPath: "/usr/local/bin/rsync" });
  assert.ok(d.ok);
  assert.deepEqual(d.argv, ["/usr/local/bin/rsync", "--server", "--sender", "-logDtprce.iLsfxCIvu", "--timeout=30", "--numeric-ids", "--", ".", "/etc/ssh/"]);
});

test("bad roots are the operator's mistake: US_E_SYNC_CONFIG, not a refusal", () => {
  for (const roots of [[], ["/"], ["etc/ssh"], ["/etc/my ssh"], ["/etc/ssh/.."]]) {
    assert.throws(() => checkServeCommand(OURS, roots), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"), JSON.stringify(roots));
  }
});

test("primarySideCommand: program words then the normalised roots", () => {
  assert.equal(primarySideCommand(ROOTS), "/usr/bin/understudy sync-serve /etc/ssh /etc/sftpgo");
  assert.equal(primarySideCommand(["/etc/ssh"], ["/usr/bin/node", "/usr/lib/understudy/dist/sync/serve-main.js"]), "/usr/bin/node /usr/lib/understudy/dist/sync/serve-main.js /etc/ssh");
  for (const program of [[], ["node"], ["/usr/bin/node", "a;b"], ["/usr/bin/node", "$(id)"]]) {
    assert.throws(() => primarySideCommand(ROOTS, program), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"), JSON.stringify(program));
  }
});

const PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH1c0xZ2p3w8S1p2ZqG0xq3Q3bQwXn3gq2b5xq8mY4mN";
test("authorizedKeysLine: restrict, optional from=, forced command, key, sanitised comment", () => {
  assert.equal(
    authorizedKeysLine(`${PUB} root@n2 "x"\n`, { roots: ROOTS }),
    `restrict,command="/usr/bin/understudy sync-serve /etc/ssh /etc/sftpgo" ${PUB} root_n2__x_`.replace("root_n2", "root@n2"),
  );
  assert.equal(
    authorizedKeysLine(PUB, { roots: ["/etc/ssh"], from: ["198.18.0.11", "198.18.0.12"] }),
    `restrict,from="198.18.0.11,198.18.0.12",command="/usr/bin/understudy sync-serve /etc/ssh" ${PUB} understudy-sync`,
  );
  assert.throws(() => authorizedKeysLine("not a key", { roots: ROOTS }), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"));
  assert.throws(() => authorizedKeysLine(`command="sh" ${PUB}`, { roots: ROOTS }), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"));
  assert.throws(() => authorizedKeysLine(PUB, { roots: ROOTS, from: ['1.2.3.4",command="sh'] }), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"));
});

function io(cmd: string | undefined) {
  let err = "";
  return { io: { env: cmd === undefined ? {} : { SSH_ORIGINAL_COMMAND: cmd }, stderr: { write: (s: string) => (err += s) } }, err: () => err };
}

test("runSyncServe: a refusal prints US_E_SYNC_SERVE_REFUSED on stderr and exits 1 without running rsync", async () => {
  const t = io("rsync --server -logDtpre.iLsfxCIvu . /etc/ssh/");
  assert.equal(await runSyncServe(ROOTS, t.io, { rsyncPath: "/nonexistent/rsync" }), 1);
  assert.match(t.err(), /^understudy sync-serve: US_E_SYNC_SERVE_REFUSED: .*read-only\n$/);
});

test("runSyncServe: bad roots exit 2; an allowed command runs the program and returns its exit code", async () => {
  const bad = io(OURS);
  assert.equal(await runSyncServe(["/"], bad.io), 2);
  assert.match(bad.err(), /US_E_SYNC_CONFIG/);
  assert.equal(await runSyncServe(ROOTS, io(OURS).io, { rsyncPath: "/usr/bin/true" }), 0);
  assert.equal(await runSyncServe(ROOTS, io(OURS).io, { rsyncPath: "/usr/bin/false" }), 1);
  const missing = io(OURS);
  assert.equal(await runSyncServe(ROOTS, missing.io, { rsyncPath: "/nonexistent/rsync" }), 1);
  assert.match(missing.err(), /cannot run \/nonexistent\/rsync/);
});

test("runSyncServe adds --confine-root when `rsync --help` lists it, and runs rsync with the checked argv", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-serve-"));
  try {
    for (const [help, confined] of [["  --confine-root=DIR  refuse operator paths", true], ["  --munge-links", false]] as const) {
      const fake = join(dir, "rsync");
      writeFileSync(fake, `#!/bin/sh\nif [ "$1" = --help ]; then echo '${help}'; exit 0; fi\nprintf '%s\\n' "$@" > ${dir}/args\nexit 7\n`);
      chmodSync(fake, 0o755);
      assert.equal(await runSyncServe(ROOTS, io(OURS).io, { rsyncPath: fake }), 7);
      const args = readFileSync(join(dir, "args"), "utf8").trim().split("\n");
      assert.deepEqual(args, ["--server", "--sender", "-logDtprce.iLsfxCIvu", "--timeout=30", "--numeric-ids", ...(confined ? ["--confine-root=/etc/ssh"] : []), "--", ".", "/etc/ssh/"]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
