import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, readFile, readlink, rename, stat, unlink, writeFile, chmod } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SpawnCommandRunner, type CommandRunner } from "../../../src/platform/command.js";
import { applyStaged, prepareStagingDir } from "../../../src/sync/apply.js";
import { buildManifest, type Manifest } from "../../../src/sync/manifest.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { copyTree, makeTree, snapshot, tempDir, type TreeSpec } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { applySetups } from "./apply-setup.js";

const setup = applySetups("apply");

const modeOf = async (p: string) => (await lstat(p)).mode & 0o7777;
const code = (c: string, re?: RegExp) => (e: unknown) => isUnderstudyError(e) && e.code === c && (re === undefined || re.test(e.message));

const PRIMARY: TreeSpec = {
  ssh_host_ed25519_key: { content: "PRIVATE", mode: 0o600 },
  "ssh_host_ed25519_key.pub": "PUBLIC",
  sshd_config: "Port 22\n",
  hooks: { dir: true, mode: 0o750 },
  "hooks/post.sh": { content: "#!/bin/sh\n", mode: 0o755 },
  current: { link: "hooks/post.sh" },
};

describe("applyStaged", () => {
  it("applies a tree into an existing root: files, modes, dirs, links, deletions, and reports it", async () => {
    const s = await setup(PRIMARY, { sshd_config: "Port 2222\n", "stale.conf": "old", "olddir/x": "x", ssh_host_ed25519_key: { content: "OLD", mode: 0o600 } });
    const expected = await s.restage();
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.deepEqual(r.added, ["current", "hooks", "hooks/post.sh", "ssh_host_ed25519_key.pub"]);
    assert.deepEqual(r.changed, ["ssh_host_ed25519_key", "sshd_config"]);
    assert.deepEqual(r.removed, ["olddir", "olddir/x", "stale.conf"]);
    assert.equal(r.bytes, "PRIVATE".length + "PUBLIC".length + "Port 22\n".length + "#!/bin/sh\n".length);
    const live = await buildManifest(s.root);
    assert.equal(live.digest, expected.digest, "the live tree is now exactly the primary's");
    assert.equal(r.manifest.digest, expected.digest);
    assert.equal(await modeOf(path.join(s.root.path, "ssh_host_ed25519_key")), 0o600);
    assert.equal(await modeOf(path.join(s.root.path, "hooks")), 0o750);
    assert.equal(await readlink(path.join(s.root.path, "current")), "hooks/post.sh");
    assert.equal(await readFile(path.join(s.root.path, "sshd_config"), "utf8"), "Port 22\n");
  });

  it("a file written while a rescue runs is offered to the next rescue round, not deleted (chaos finding D)", async () => {
    const s = await setup(PRIMARY, { sshd_config: "Port 2222\n", "local.conf": "mine" });
    const expected = await s.restage();
    const kept = path.join(s.root.path, "..", "kept");
    const seen: string[][] = [];
    const beforeApply = async (_target: Manifest, live: Manifest): Promise<boolean> => {
      seen.push(live.entries.map((e) => e.path));
      if (seen.length === 1) {
        // The rescue moves local.conf out; meanwhile an operator writes late.conf into the root.
        await rename(path.join(s.root.path, "local.conf"), `${kept}-local.conf`);
        await writeFile(path.join(s.root.path, "late.conf"), "written during the rescue");
        return true;
      }
      if (live.entries.some((e) => e.path === "late.conf")) {
        await rename(path.join(s.root.path, "late.conf"), `${kept}-late.conf`);
        return true;
      }
      return false;
    };
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, beforeApply });
    assert.equal(seen.length, 3, "a second round saw late.conf, a third found nothing more");
    assert.ok(seen[1]!.includes("late.conf"), 'seen[1]!.includes("late.conf")');
    assert.equal(await readFile(`${kept}-late.conf`, "utf8"), "written during the rescue", "the late edit was rescued, not deleted");
    assert.equal((await buildManifest(s.root)).digest, expected.digest);
  });

  it("a root that keeps changing through every rescue round: US_E_SYNC_LIVE_BUSY, nothing applied", async () => {
    const s = await setup(PRIMARY, { sshd_config: "Port 2222\n" });
    const expected = await s.restage();
    let rounds = 0;
    // A local process re-creates app.pid whenever a rescue moves it away.
    const beforeApply = async () => {
      rounds++;
      await writeFile(path.join(s.root.path, "app.pid"), String(rounds));
      return true;
    };
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, beforeApply }),
      code("US_E_SYNC_LIVE_BUSY", /5 rounds, last: app\.pid/),
    );
    assert.equal(rounds, 5);
    assert.equal(await readFile(path.join(s.root.path, "sshd_config"), "utf8"), "Port 2222\n", "nothing went live");
  });

  it("creates a missing root with the staged root's mode", async () => {
    const s = await setup(PRIMARY, undefined);
    const expected = await s.restage();
    await chmod(s.stage, 0o711);
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.equal(r.added.length, expected.entries.length);
    assert.equal(await modeOf(s.root.path), 0o711);
    assert.equal((await buildManifest(s.root)).digest, expected.digest);
  });

  it("on a digest mismatch throws US_E_SYNC_DIGEST_MISMATCH naming the first difference and changes nothing live", async () => {
    const s = await setup(PRIMARY, { sshd_config: "Port 2222\n", keep: "k" });
    const expected = await s.restage();
    await writeFile(path.join(s.stage, "hooks/post.sh"), "tampered"); // a torn or racing pull
    const before = await snapshot(s.root.path);
    await assert.rejects(applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected }), (e) => {
      assert.ok(isUnderstudyError(e, "US_E_SYNC_DIGEST_MISMATCH"), 'isUnderstudyError(e, "US_E_SYNC_DIGEST_MISMATCH")');
      assert.equal(e.details.expected, expected.digest);
      assert.equal(e.details.path, "hooks/post.sh");
      assert.equal(e.transient, true);
      return true;
    });
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected: { digest: expected.digest } }),
      code("US_E_SYNC_DIGEST_MISMATCH", /first difference at unknown/),
    );
    assert.deepEqual(await snapshot(s.root.path), before);
  });

  it("runs the validator on the staged dir; when it fails nothing live changes", async () => {
    const s = await setup(PRIMARY, { sshd_config: "Port 2222\n" });
    const expected = await s.restage();
    const before = await snapshot(s.root.path);
    const argv = ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"];
    const failing = new StrictCommandRunner().expect(["/usr/sbin/sshd", "-t", "-f", `${s.stage}/sshd_config`], { code: 255, stderr: "Bad configuration option\n" });
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, root: s.root, stagedDir: s.stage, expected, validate: argv, runner: failing }),
      code("US_E_SYNC_VALIDATOR_FAILED", /Bad configuration option/),
    );
    failing.done();
    assert.deepEqual(await snapshot(s.root.path), before);
    const passing = new StrictCommandRunner().expect(["/usr/sbin/sshd", "-t", "-f", `${s.stage}/sshd_config`]);
    await applyStaged({ fs: NODE_DURABLE_FS, root: s.root, stagedDir: s.stage, expected, validate: argv, runner: passing, validateTimeoutMs: 1234 });
    passing.done();
    assert.equal(passing.calls[0]!.options?.timeoutMs, 1234);
    assert.equal(await readFile(path.join(s.root.path, "sshd_config"), "utf8"), "Port 22\n");
  });

  it("refuses the whole tree with US_E_SYNC_MODE when a file is wider than requiredMode, changing nothing", async () => {
    const s = await setup({ ssh_host_rsa_key: { content: "K", mode: 0o644 }, ssh_host_ed_key: { content: "K", mode: 0o600 } }, { old: "x" }, { include: ["ssh_host_*"] });
    const expected = await s.restage();
    const before = await snapshot(s.root.path);
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, requiredMode: 0o600 }),
      code("US_E_SYNC_MODE", /ssh_host_rsa_key has mode 0644, wider than the required 0600/),
    );
    assert.deepEqual(await snapshot(s.root.path), before);
  });

  it("applies 0600 host keys with a forced owner, and keeps setuid bits that chown would clear", async () => {
    const s = await setup({ ssh_host_ed25519_key: { content: "PRIVATE", mode: 0o600 }, helper: { content: "x", mode: 0o4750 }, d: { dir: true, mode: 0o2750 } }, {});
    const expected = await s.restage();
    const owner = { uid: 1234, gid: 2345 };
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, requiredMode: 0o7777, owner });
    for (const [rel, mode] of [
      ["ssh_host_ed25519_key", 0o600],
      ["helper", 0o4750],
      ["d", 0o2750],
    ] as const) {
      const st = await lstat(path.join(s.root.path, rel));
      assert.deepEqual({ rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }, { rel, mode, ...owner });
    }
    assert.notEqual(r.manifest.digest, expected.digest, "the live tree differs from the primary's by owner");
    assert.equal(r.manifest.digest, (await buildManifest(s.root)).digest, "the summary's manifest is what is live");
  });

  it("replaces links and changes of type: link target, file -> link, dir -> file, link -> dir", async () => {
    const s = await setup(
      { a: "A", b: "B", cur: { link: "b" }, "was-file": { link: "a" }, "was-dir": "now a file", "was-link": { dir: true }, "was-link/x": "x" },
      { a: "A", b: "B", cur: { link: "a" }, "was-file": "plain", "was-dir/inner/deep": "d", "was-link": { link: "a" } },
    );
    const expected = await s.restage();
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.deepEqual(r.changed, ["cur", "was-dir", "was-file", "was-link"]);
    assert.deepEqual(r.removed, ["was-dir/inner", "was-dir/inner/deep"]);
    assert.equal(await readlink(path.join(s.root.path, "cur")), "b");
    assert.equal(await readlink(path.join(s.root.path, "was-file")), "a");
    assert.equal(await readFile(path.join(s.root.path, "was-dir"), "utf8"), "now a file");
    assert.ok((await lstat(path.join(s.root.path, "was-link"))).isDirectory(), '(await lstat(path.join(s.root.path, "was-link"))).isDirectory()');
    assert.equal((await buildManifest(s.root)).digest, expected.digest);
  });

  it("leaves excluded files alone, and keeps a removed directory that still holds them", async () => {
    const s = await setup({ "sftpgo.json": "{}" }, { "sftpgo.json": "{}", "sftpgo.db": "live data", "backups/x.db": "db", "backups/old.json": "o" }, { exclude: ["*.db"] });
    const expected = await s.restage();
    const r = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.deepEqual(r.removed, ["backups/old.json"]);
    assert.equal(await readFile(path.join(s.root.path, "sftpgo.db"), "utf8"), "live data");
    assert.equal(await readFile(path.join(s.root.path, "backups/x.db"), "utf8"), "db");
    assert.match(r.notes.join("\n"), /kept directory backups/);
    assert.equal(r.manifest.digest, (await buildManifest(s.root)).digest);
  });

  it("is idempotent: applying the same tree again changes nothing, not even inodes", async () => {
    const s = await setup(PRIMARY, { x: "y" });
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected: await s.restage() });
    const before = await snapshot(s.root.path);
    const again = await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected: await s.restage() });
    assert.deepEqual({ added: again.added, changed: again.changed, removed: again.removed, bytes: again.bytes }, { added: [], changed: [], removed: [], bytes: 0 });
    assert.deepEqual(await snapshot(s.root.path), before);
  });

  it("a staged file that vanishes after the checks fails the apply before anything goes live", async () => {
    const s = await setup({ "a.conf": "new a", "z.conf": "new z" }, { "a.conf": "old a", "z.conf": "old z" });
    const expected = await s.restage();
    // The validator runs after every pre-check; this one also pulls a staged file away, as a racing transport would.
    const racing: CommandRunner = {
      run: async () => {
        await unlink(path.join(s.stage, "z.conf"));
        return { code: 0, signal: null, stdout: "", stderr: "" };
      },
    };
    await assert.rejects(applyStaged({ fs: NODE_DURABLE_FS, root: s.root, stagedDir: s.stage, expected, validate: ["check"], runner: racing }), (e) => {
      assert.ok(isUnderstudyError(e, "US_E_SYNC_APPLY_FAILED"), 'isUnderstudyError(e, "US_E_SYNC_APPLY_FAILED")');
      assert.deepEqual([e.details.path, e.details.applied_count, e.details.applied], ["z.conf", 0, ""]);
      assert.match(e.message, /ENOENT/);
      return true;
    });
    assert.equal(await readFile(path.join(s.root.path, "a.conf"), "utf8"), "old a", "owners and modes are set on every staged file before the first rename");
    assert.equal(await readFile(path.join(s.root.path, "z.conf"), "utf8"), "old z");
  });

  it("refuses a staging dir inside the root, missing, or on another file system", async () => {
    const s = await setup(PRIMARY, { x: "y" });
    const expected = await s.restage();
    const before = await snapshot(s.root.path);
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: path.join(s.root.path, "stage"), expected }),
      code("US_E_SYNC_STAGING_FS", /inside the root/),
    );
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: path.join(path.dirname(s.primary), "missing"), expected }),
      code("US_E_SYNC_STAGING_FS", /ENOENT/),
    );
    const shm = await stat("/dev/shm").catch(() => undefined);
    if (shm && shm.dev !== (await stat(s.primary)).dev) {
      const other = await tempDir("apply-xfs", "/dev/shm");
      try {
        copyTree(s.primary, other.dir);
        await assert.rejects(
          applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: other.dir, expected }),
          code("US_E_SYNC_STAGING_FS", /different file system/),
        );
      } finally {
        await other.cleanup();
      }
    }
    assert.deepEqual(await snapshot(s.root.path), before);
  });

  it("a directory new to the live tree goes live whole: one rename, contents, modes and links exact, fsync'ed", async () => {
    const tree: TreeSpec = {
      home: { dir: true, mode: 0o755 },
      "home/carol/old": "kept",
      "home/alice": { dir: true, mode: 0o2750 },
      "home/alice/.ssh": { dir: true, mode: 0o700 },
      "home/alice/.ssh/authorized_keys": { content: "ssh-ed25519 AAAA", mode: 0o600 },
      "home/alice/in": { dir: true, mode: 0o770 },
      "home/alice/in/a.csv": "1,2",
      "home/alice/latest": { link: "in/a.csv" },
      "home/bob/x": "x",
    };
    const s = await setup(tree, { home: { dir: true, mode: 0o755 }, "home/carol/old": "kept" });
    const expected = await s.restage();
    const synced: string[] = [];
    const fs = { ...NODE_DURABLE_FS, fsyncDir: async (d: string) => void (synced.push(path.relative(s.root.path, d) || "."), await NODE_DURABLE_FS.fsyncDir(d)) };
    const r = await applyStaged({ fs, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.deepEqual(r.added, ["home/alice", "home/alice/.ssh", "home/alice/.ssh/authorized_keys", "home/alice/in", "home/alice/in/a.csv", "home/alice/latest", "home/bob", "home/bob/x"]);
    assert.equal((await buildManifest(s.root)).digest, expected.digest);
    assert.equal(await modeOf(path.join(s.root.path, "home/alice")), 0o2750);
    assert.equal(await modeOf(path.join(s.root.path, "home/alice/.ssh/authorized_keys")), 0o600);
    assert.equal(await readlink(path.join(s.root.path, "home/alice/latest")), "in/a.csv");
    // Moved, not copied entry by entry: staging no longer holds the two new directories.
    for (const d of ["home/alice", "home/bob"]) await assert.rejects(lstat(path.join(s.stage, d)), /ENOENT/, d);
    assert.ok((await lstat(path.join(s.stage, "home/carol"))).isDirectory(), "an existing directory is placed into, not moved");
    for (const d of ["home", "home/alice", "home/alice/.ssh", "home/alice/in", "home/bob"]) assert.ok(synced.includes(d), `${d} fsync'ed: ${synced.join(" ")}`);
  });

  it("with a filter, a new directory is placed entry by entry (what the filter leaves out stays staged)", async () => {
    const s = await setup({ "new/a.conf": "a", "new/b.db": "b" }, {}, { exclude: ["*.db"] });
    const expected = await s.restage();
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.equal(await readFile(path.join(s.root.path, "new/a.conf"), "utf8"), "a");
    await assert.rejects(lstat(path.join(s.root.path, "new/b.db")), /ENOENT/, "the excluded file never goes live");
    assert.equal(await readFile(path.join(s.stage, "new/b.db"), "utf8"), "b");
  });

  it("a new directory made in the live tree after it was read is merged into, entry by entry, losing nothing", async () => {
    const s = await setup({ "d/one": "1", "d/sub/two": "2" }, {});
    const expected = await s.restage();
    const beforeApply = async (): Promise<boolean> => {
      await makeTree(path.join(s.root.path, "d"), { "local.txt": "mine" });
      return false; // not reported as a change: the apply goes on with the live tree it read
    };
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, beforeApply });
    assert.equal(await readFile(path.join(s.root.path, "d/one"), "utf8"), "1");
    assert.equal(await readFile(path.join(s.root.path, "d/sub/two"), "utf8"), "2");
    assert.equal(await readFile(path.join(s.root.path, "d/local.txt"), "utf8"), "mine");
  });

  it("a staged new directory that changed since the check is placed entry by entry: an added file stays staged, a gone one fails the apply", async () => {
    const s = await setup({ "new/a": "a", "new/sub/b": "b" }, {});
    const expected = await s.restage();
    const addInStaging = async (): Promise<boolean> => {
      await writeFile(path.join(s.stage, "new/sub/validator.log"), "written after the check");
      return false;
    };
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, beforeApply: addInStaging });
    assert.equal((await buildManifest(s.root)).digest, expected.digest, "only the checked entries went live");
    assert.equal(await readFile(path.join(s.stage, "new/sub/validator.log"), "utf8"), "written after the check");

    const t = await setup({ "new/a": "a", "new/sub/b": "b" }, {});
    const exp2 = await t.restage();
    const removeInStaging = async (): Promise<boolean> => {
      await unlink(path.join(t.stage, "new/sub/b"));
      return false;
    };
    await assert.rejects(
      applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: t.root, stagedDir: t.stage, expected: exp2, beforeApply: removeInStaging }),
      code("US_E_SYNC_APPLY_FAILED", /new\/sub\/b/),
    );
  });

  it("a FIFO in a staged new directory keeps the directory from going live whole; the FIFO never goes live", async () => {
    const s = await setup({ "new/a": "a" }, {});
    const expected = await s.restage();
    execFileSync("mkfifo", [path.join(s.stage, "new", "pipe")]);
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected });
    assert.equal(await readFile(path.join(s.root.path, "new/a"), "utf8"), "a");
    await assert.rejects(lstat(path.join(s.root.path, "new/pipe")), /ENOENT/);
    assert.ok((await lstat(path.join(s.stage, "new/pipe"))).isFIFO(), '(await lstat(path.join(s.stage, "new/pipe"))).isFIFO()');
  });

  it("nested directories going live whole get the forced owner, their modes (setgid too) kept", async () => {
    const s = await setup({ a: { dir: true, mode: 0o755 }, "a/b": { dir: true, mode: 0o2750 }, "a/b/c": { dir: true, mode: 0o700 }, "a/b/c/k": { content: "K", mode: 0o600 } }, {});
    const expected = await s.restage();
    const owner = { uid: 1234, gid: 2345 };
    await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, requiredMode: 0o7777, owner });
    for (const [rel, mode] of [
      ["a", 0o755],
      ["a/b", 0o2750],
      ["a/b/c", 0o700],
      ["a/b/c/k", 0o600],
    ] as const) {
      const st = await lstat(path.join(s.root.path, rel));
      assert.deepEqual({ rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }, { rel, mode, ...owner });
    }
    await assert.rejects(lstat(path.join(s.stage, "a")), /ENOENT/, "moved whole");
  });

  it("stages beside the root, in a private holder", async () => {
    const s = await setup({}, {});
    await prepareStagingDir(s.root);
    assert.equal(await modeOf(path.dirname(s.stage)), 0o700);
    assert.equal(path.basename(path.dirname(s.stage)), ".understudy-stage-ssh");
    assert.equal(path.dirname(path.dirname(s.stage)), path.dirname(s.root.path));
  });
});
