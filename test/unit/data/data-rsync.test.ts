// The data batch and full-pass command lines (src/data/rsync-argv.ts), run with
// the real rsync between two temporary directories: no ssh, no network. Checks
// what a standby may never show (a half-copied file under its final name, or a
// temporary file inside the served tree), and that deletions, modes, owners
// and new directories arrive exactly.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { batchCommand, fullPassCommand, moduleName, type DataRsyncOptions } from "../../../src/data/rsync-argv.js";
import { validateSshTransport } from "../../../src/sync/transport-ssh.js";

const BASE = mkdtempSync(join(tmpdir(), "us-data-rsync-"));
after(() => rmSync(BASE, { recursive: true, force: true }));
const ROOT = process.getuid?.() === 0;

let n = 0;
/** A fresh source root, standby root and temp dir (same filesystem, temp outside the standby's tree). */
function dirs() {
  const d = join(BASE, `case${++n}`);
  const src = join(d, "primary");
  const dst = join(d, "standby");
  const tmp = join(d, "standby-tmp");
  for (const p of [src, dst, tmp]) mkdirSync(p, { recursive: true });
  const opts: DataRsyncOptions = { source: src, destination: { kind: "local", path: dst }, tempDir: tmp, timeoutS: 20 };
  return { src, dst, tmp, opts };
}

function run(cmd: { argv: string[]; stdin?: Buffer }): { code: number | null; stderr: string } {
  const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), { input: cmd.stdin ?? Buffer.alloc(0), encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stderr: r.stderr };
}

function put(path: string, content: string | Buffer, mode = 0o644): void {
  writeFileSync(path, content);
  chmodSync(path, mode);
}

/** "path mode uid:gid" of every entry under dir, sorted. */
function tree(dir: string, rel = ""): string[] {
  return readdirSync(join(dir, rel))
    .sort()
    .flatMap((name) => {
      const p = rel === "" ? name : `${rel}/${name}`;
      const st = lstatSync(join(dir, p));
      const line = `${p} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      return st.isDirectory() ? [line, ...tree(dir, p)] : [line];
    });
}

test("batch: uploads, a new home directory, odd names, modes and owners arrive exactly", () => {
  const { src, dst, opts } = dirs();
  mkdirSync(join(src, "alice"));
  chmodSync(join(src, "alice"), 0o750);
  put(join(src, "alice", "a.csv"), "a", 0o640);
  mkdirSync(join(src, "newhome", "in"), { recursive: true });
  chmodSync(join(src, "newhome"), 0o700);
  chmodSync(join(src, "newhome", "in"), 0o770);
  put(join(src, "newhome", "in", "-rf report\n1.pdf"), "pdf", 0o600);
  if (ROOT) {
    chownSync(join(src, "newhome"), 12345, 23456);
    chownSync(join(src, "newhome", "in", "-rf report\n1.pdf"), 12345, 23456);
  }
  const entries = [
    { path: "alice/a.csv", recursive: false },
    { path: "newhome/in/-rf report\n1.pdf", recursive: false },
  ];
  const r = run(batchCommand(entries, opts));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(tree(dst), tree(src), "every parent directory is created with its own mode and owner");
  assert.equal(readFileSync(join(dst, "newhome", "in", "-rf report\n1.pdf"), "utf8"), "pdf");
  if (ROOT) assert.equal(statSync(join(dst, "newhome")).uid, 12345);
});

test("batch: deletions of a file and of a non-empty directory propagate; nothing unlisted is deleted", () => {
  const { src, dst, opts } = dirs();
  for (const p of ["gone", "kept"]) mkdirSync(join(src, p));
  put(join(src, "gone", "x"), "x");
  put(join(src, "kept", "y"), "y");
  put(join(src, "kept", "z"), "z");
  assert.equal(run({ argv: fullPassCommand({ ...opts, maxDelete: 0 }) }).code, 0);
  rmSync(join(src, "gone"), { recursive: true });
  rmSync(join(src, "kept", "y"));
  rmSync(join(src, "kept", "z"));
  const r = run(
    batchCommand(
      [
        { path: "gone", recursive: false },
        { path: "kept/y", recursive: false },
      ],
      opts,
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    tree(dst).map((l) => l.split(" ")[0]),
    ["kept", "kept/z"],
    "kept/z was not listed: a batch deletes only what it names",
  );
});

test("batch: a tree moved in is shipped recursively; a new directory alone is shipped without contents", () => {
  const { src, dst, opts } = dirs();
  mkdirSync(join(src, "dave", "t"), { recursive: true });
  put(join(src, "dave", "t", "x"), "1");
  mkdirSync(join(src, "erin"));
  put(join(src, "erin", "still-uploading"), "2");
  assert.equal(run(batchCommand([{ path: "erin", recursive: false }], opts)).code, 0);
  assert.deepEqual(readdirSync(join(dst, "erin")), [], "the mkdir arrives, the file in it comes with its own event");
  assert.equal(run(batchCommand([{ path: "dave", recursive: true }], opts)).code, 0);
  assert.equal(readFileSync(join(dst, "dave", "t", "x"), "utf8"), "1");
});

test("batch: a file being copied is never under its final name, nor inside the tree; a copy killed mid-file leaves the old version", async () => {
  const { src, dst, tmp, opts } = dirs();
  mkdirSync(join(src, "bob"));
  put(join(src, "bob", "big.bin"), "OLD");
  assert.equal(run(batchCommand([{ path: "bob/big.bin", recursive: false }], opts)).code, 0);
  const big = randomBytes(8 << 20);
  put(join(src, "bob", "big.bin"), big);
  // 8 MiB at 1 MiB/s: the copy is in flight for seconds while the standby's tree is watched.
  const cmd = batchCommand([{ path: "bob/big.bin", recursive: false }], { ...opts, bwlimitKiB: 1024 });
  const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { detached: true, stdio: ["pipe", "ignore", "pipe"] });
  child.stdin.end(cmd.stdin);
  const killGroup = () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      /* already gone */
    }
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    let sawTemp = false;
    let checks = 0;
    // Bounded: at most 15 s for the receiver to start writing, then 40 checks 25 ms apart.
    for (let i = 0; i < 600 && checks < 40; i++) {
      if (readdirSync(tmp).length > 0) sawTemp = true;
      assert.deepEqual(readdirSync(join(dst, "bob")), ["big.bin"], "no temporary file inside the served tree");
      assert.equal(readFileSync(join(dst, "bob", "big.bin"), "utf8"), "OLD", "the final name holds the old version until the new one is complete");
      if (sawTemp) checks += 1;
      await sleep(25);
    }
    assert.ok(sawTemp, "the receiver wrote into the temp dir while the copy was in flight");
    assert.equal(child.exitCode, null, "the copy was still in flight when the checks ended (bwlimit too high for this machine?)");
  } finally {
    killGroup();
    await exited;
  }
  assert.equal(readFileSync(join(dst, "bob", "big.bin"), "utf8"), "OLD", "killed mid-file: the old version stays");
  assert.deepEqual(readdirSync(join(dst, "bob")), ["big.bin"]);
  // The next run (the same batch, retried) completes it.
  const r = run(batchCommand([{ path: "bob/big.bin", recursive: false }], opts));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readFileSync(join(dst, "bob", "big.bin")).equals(big), 'readFileSync(join(dst, "bob", "big.bin")).equals(big)');
});

test("full pass: mirrors the root with --delete, and max_delete stops an empty (unmounted?) root from emptying a standby", () => {
  const { src, dst, opts } = dirs();
  put(join(src, "a"), "a");
  put(join(dst, "stray"), "s");
  put(join(dst, "stray2"), "s");
  assert.equal(run({ argv: fullPassCommand({ ...opts, maxDelete: 1 }) }).code, 25, "two deletions over a limit of one: rsync exit 25");
  assert.ok(existsSync(join(dst, "a")), 'existsSync(join(dst, "a"))');
  const r = run({ argv: fullPassCommand({ ...opts, maxDelete: 100 }) });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(dst), ["a"]);
});

test("argv: a standby's term-scoped module over the sync transport's ssh; unsafe values refused", () => {
  const ssh = validateSshTransport({ user: "root", key: "/etc/understudy/data_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/run/understudy" });
  const o: DataRsyncOptions = { source: "/srv/sftp", destination: { kind: "module", user: "root", host: "198.18.0.12", term: 7, root: "uploads", ssh } };
  const { argv, stdin } = batchCommand(
    [
      { path: "a", recursive: false },
      { path: "b c", recursive: false },
    ],
    o,
  );
  assert.deepEqual(argv.slice(0, 7), ["/usr/bin/rsync", "-a", "--numeric-ids", "--modify-window=-1", "--fsync", "--timeout=30", "--exclude=/.understudy-tmp"]);
  assert.equal(argv[7], "-e");
  assert.match(argv[8]!, /^\/usr\/bin\/ssh -F \/dev\/null -i \/etc\/understudy\/data_ed25519 /);
  assert.deepEqual(argv.slice(9), ["--no-recursive", "--files-from=-", "--from0", "--delete-missing-args", "--force", "--", "/srv/sftp/", "root@198.18.0.12::d7-uploads/"]);
  assert.equal(stdin.toString("utf8"), "a\0b c\0");
  assert.equal(moduleName(12, "home"), "d12-home");
  const refused = (f: () => unknown, code: string) => assert.throws(f, (e: unknown) => isUnderstudyError(e) && e.code === code);
  refused(() => moduleName(0, "uploads"), "US_E_DATA_CONFIG");
  refused(() => batchCommand([], o), "US_E_DATA_CONFIG");
  refused(() => batchCommand([{ path: "../etc", recursive: false }], o), "US_E_DATA_CONFIG");
  refused(() => batchCommand([{ path: "a", recursive: false }], { ...o, destination: { ...o.destination, host: "-oProxyCommand=x" } as DataRsyncOptions["destination"] }), "US_E_SYNC_CONFIG");
  refused(() => fullPassCommand({ ...o, maxDelete: -1 }), "US_E_DATA_CONFIG");
});
