// The standby's receiving config (src/data/receive.ts): rendered, then served by
// the real rsync daemon over a local pipe, with a "remote shell" script that
// sets SSH_CONNECTION the way sshd does for the data key's forced command. No
// ssh, no network: the batches are src/data/rsync-argv.ts's with `-e` swapped.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { mountsBelow, moduleLayout, receiveModules, renderReceiveConf, TEMP_DIR_NAME, type ReceiveFrom } from "../../../src/data/receive.js";
import { barrierCommand, batchCommand } from "../../../src/data/rsync-argv.js";
import { unknownModule } from "../../../src/data/ship-plan.js";
import { classifyShipFailure } from "../../../src/data/ship-plan.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";

const BASE = mkdtempSync(join(tmpdir(), "us-data-recv-"));
after(() => rmSync(BASE, { recursive: true, force: true }));
const LEADER = "198.18.0.11";

test("render: one write-only module per root for the followed term, only the leader may write; none when receiving nothing", () => {
  const roots = [{ name: "uploads", path: "/srv/sftp/home" }];
  const conf = renderReceiveConf(roots, { term: 7, leaderAddress: LEADER });
  assert.match(
    conf,
    /\n\[d7-uploads\]\n {4}path = \/srv\/sftp\/home\n {4}use chroot = yes\n {4}read only = no\n {4}write only = yes\n {4}temp dir = \/\.understudy-tmp\n {4}hosts allow = 198\.18\.0\.11\n/,
  );
  assert.match(renderReceiveConf(roots, { term: 7, leaderAddress: LEADER, vipAddress: "198.18.0.100" }), /hosts allow = 198\.18\.0\.11 198\.18\.0\.100\n/);
  assert.match(conf, /^use chroot = yes$/m);
  assert.doesNotMatch(renderReceiveConf(roots, null), /\[/, "no module while primary or following no one");
  assert.deepEqual(moduleLayout(roots[0]!), { path: "/srv/sftp/home", tempDir: "/srv/sftp/home/.understudy-tmp" });
  const refused = (f: () => unknown, code: string) => assert.throws(f, (e: unknown) => isUnderstudyError(e) && e.code === code);
  refused(() => renderReceiveConf([{ name: "uploads", path: "/" }], { term: 7, leaderAddress: LEADER }), "US_E_DATA_CONFIG");
  refused(() => renderReceiveConf([{ name: "uploads", path: "/srv/a b" }], { term: 7, leaderAddress: LEADER }), "US_E_SYNC_CONFIG");
  refused(() => renderReceiveConf(roots, { term: 7, leaderAddress: "-oProxyCommand=x" }), "US_E_SYNC_CONFIG");
  refused(() => renderReceiveConf([roots[0]!, roots[0]!], { term: 7, leaderAddress: LEADER }), "US_E_DATA_CONFIG");
});

test("the real daemon: the leader's batch lands, another host or another term is fenced, temp files stay outside the root", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("the receiving daemon chroots, which needs root (the data key's account)");
  const src = join(BASE, "primary");
  const root = join(BASE, "standby", "sftp");
  const temp = join(root, TEMP_DIR_NAME);
  for (const d of [src, root, temp]) mkdirSync(d, { recursive: true });
  mkdirSync(join(src, "alice"));
  chmodSync(join(src, "alice"), 0o700);
  writeFileSync(join(src, "alice", "a.csv"), "a");
  chmodSync(join(src, "alice", "a.csv"), 0o640);
  const conf = join(BASE, "rsyncd.conf");
  const serve = (from: ReceiveFrom) => writeFileSync(conf, renderReceiveConf([{ name: "uploads", path: root }], from));
  const rsh = join(BASE, "rsh");
  writeFileSync(rsh, `#!/bin/sh\nexport SSH_CONNECTION="$FAKE_FROM 40000 198.18.0.12 22"\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  const ssh = validateSshTransport({ user: "root", key: "/etc/understudy/data_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" });
  const command = (term: number, path: string, bwlimitKiB?: number) => {
    const c = batchCommand([{ path, recursive: false }], {
      source: src,
      destination: { kind: "module", user: "root", host: "198.18.0.12", term, root: "uploads", ssh },
      ...(bwlimitKiB !== undefined ? { bwlimitKiB } : {}),
    });
    const argv = [...c.argv];
    argv[argv.indexOf("-e") + 1] = rsh;
    return { argv, stdin: c.stdin };
  };
  const ship = (term: number, path: string, fromAddress: string) => {
    const c = command(term, path);
    const r = spawnSync(c.argv[0]!, c.argv.slice(1), { input: c.stdin, encoding: "utf8", timeout: 30_000, env: { ...process.env, FAKE_FROM: fromAddress } });
    return { code: r.status ?? -1, stderr: r.stderr };
  };

  serve({ term: 7, leaderAddress: LEADER });
  const ok = ship(7, "alice/a.csv", LEADER);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readFileSync(join(root, "alice", "a.csv"), "utf8"), "a");
  assert.equal(statSync(join(root, "alice")).mode & 0o7777, 0o700);
  assert.deepEqual(readdirSync(root).sort(), [TEMP_DIR_NAME, "alice"].sort());

  const other = ship(7, "alice/a.csv", "198.18.0.13");
  assert.deepEqual([other.code, classifyShipFailure(other.code, other.stderr)], [5, "fenced"], other.stderr);

  serve({ term: 8, leaderAddress: "198.18.0.12" });
  const deposed = ship(7, "alice/a.csv", LEADER);
  assert.deepEqual([deposed.code, classifyShipFailure(deposed.code, deposed.stderr)], [5, "fenced"], deposed.stderr);
  serve(null);
  assert.equal(ship(7, "alice/a.csv", LEADER).code, 5);

  // A copy in flight (8 MiB at 1 MiB/s): its temporary file is in <root>/.understudy-tmp, never under a final name.
  serve({ term: 7, leaderAddress: LEADER });
  writeFileSync(join(src, "alice", "big.bin"), randomBytes(8 << 20));
  const c = command(7, "alice/big.bin", 1024);
  const child = spawn(c.argv[0]!, c.argv.slice(1), { detached: true, stdio: ["pipe", "ignore", "ignore"], env: { ...process.env, FAKE_FROM: LEADER } });
  child.stdin.end(c.stdin);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    let seen = 0;
    for (let i = 0; i < 600 && seen < 10; i++) {
      if (readdirSync(temp).length > 0) seen += 1;
      assert.deepEqual(readdirSync(join(root, "alice")), ["a.csv"], "nothing of big.bin inside the root while it is copied");
      await sleep(25);
    }
    assert.ok(seen > 0, "the temporary file appeared in the temp dir beside the root");
  } finally {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      /* already gone */
    }
    await exited;
  }
  assert.deepEqual(readdirSync(join(root, "alice")), ["a.csv"], "killed mid-file: no partial big.bin in the root");
});

test("the real daemon's barrier module: the leader's listing runs sync --file-system and shows nothing; a failing sync fails the listing with its message", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("the receiving daemon chroots, which needs root (the data key's account)");
  const root = join(BASE, "barrier", "sftp");
  mkdirSync(join(root, "alice"), { recursive: true });
  writeFileSync(join(root, "alice", "a.csv"), "a");
  const conf = join(BASE, "barrier.conf");
  const rendered = renderReceiveConf([{ name: "uploads", path: root }], { term: 7, leaderAddress: LEADER });
  assert.match(
    rendered,
    /\n\[s7-uploads\]\n {4}path = .*\n {4}use chroot = yes\n {4}read only = yes\n {4}write only = no\n {4}exclude = \*\n {4}pre-xfer exec = \/usr\/bin\/sync --file-system "\$RSYNC_MODULE_PATH" 2>&1\n {4}hosts allow = 198\.18\.0\.11\n/,
  );
  const rsh = join(BASE, "barrier-rsh");
  writeFileSync(rsh, `#!/bin/sh\nexport SSH_CONNECTION="$FAKE_FROM 40000 198.18.0.12 22"\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  const ssh = validateSshTransport({ user: "root", key: "/etc/understudy/data_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" });
  const argv = barrierCommand({ destination: { kind: "module", user: "root", host: "198.18.0.12", term: 7, root: "uploads", ssh } });
  argv[argv.indexOf("-e") + 1] = rsh;
  const list = (from: string) => {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 30_000, env: { ...process.env, FAKE_FROM: from } });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  writeFileSync(conf, rendered);
  const ok = list(LEADER);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stdout, /alice|a\.csv/, "the barrier shows no name of the standby's tree");
  // Another host is refused as the write module refuses it (rsync names it "Unknown module" to it); the
  // probe then plans a per-file pass, which that host's write module refuses the same way.
  const other = list("198.18.0.13");
  assert.equal(unknownModule(other.code, other.stderr), true, other.stderr);
  // A sync that fails (here: a stand-in that exits 1 with sync's message): the client sees both.
  const failing = join(BASE, "failing-sync");
  writeFileSync(failing, "#!/bin/sh\necho \"sync: error syncing '$RSYNC_MODULE_PATH': Input/output error\"\nexit 1\n");
  chmodSync(failing, 0o755);
  writeFileSync(conf, rendered.replace("/usr/bin/sync --file-system", failing));
  const bad = list(LEADER);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /sync: error syncing '.*sftp': Input\/output error/);
  assert.match(bad.stderr, /pre-xfer exec returned failure/);
  // An agent from before the barrier renders no such module: the probe's answer that means "per-file".
  writeFileSync(conf, rendered.replace(/\[s7-uploads\][^[]*/, ""));
  const old = list(LEADER);
  assert.equal(unknownModule(old.code, old.stderr), true, old.stderr);
});

test("mountsBelow: mount points strictly below the root, octal escapes undone; receiveModules leaves those roots without a barrier", () => {
  const info = [
    "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "40 22 253:2 / /srv/sftp rw,relatime shared:2 - ext4 /dev/vdb rw",
    "41 40 253:3 / /srv/sftp/big\\040volume rw,relatime shared:3 - xfs /dev/vdc rw",
    "42 22 0:5 / /srv/sftpother rw - tmpfs tmpfs rw",
    "",
  ].join("\n");
  assert.deepEqual(mountsBelow(info, "/srv/sftp"), ["/srv/sftp/big volume"]);
  assert.deepEqual(mountsBelow(info, "/srv/sftp/"), ["/srv/sftp/big volume"]);
  assert.deepEqual(mountsBelow(info, "/srv/sftp/big volume"), [], "its own mount point is not below it");
  const roots = [
    { name: "up", path: "/srv/sftp" },
    { name: "out", path: "/srv/out" },
  ];
  const mods = receiveModules(roots, { term: 3, leaderAddress: LEADER }, new Set(["up"]));
  assert.deepEqual(
    mods.map((m) => [m.name, m.barrier ?? null]),
    [
      ["d3-up", null],
      ["d3-out", "s3-out"],
    ],
  );
});
