/**
 * The real sync transport end to end: n1 is the "primary" (lab sshd, the sync
 * key forced to rsync's daemon with the rendered read-only config); the real
 * RsyncPuller runs inside n2's namespace and pulls n1's roots. Checks content,
 * modes, owners, symlinks, chmod-only and same-size edits, deletions, the
 * forced command's refusals, host key pinning, and measures pull latency with
 * and without ControlMaster. Needs root (ip netns).
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { isUnderstudyError } from "../../src/errors/catalogue.js";
import { SystemClock } from "../../src/platform/clock.js";
import { SpawnCommandRunner } from "../../src/platform/command.js";
import { authorizedKeysLine, renderRsyncdConf } from "../../src/sync/rsyncd.js";
import { RsyncPuller, checkControlDir, type RsyncPullerOptions, type SshTransportSettings } from "../../src/sync/transport.js";
import { Lab, runOk } from "./harness/index.js";
import { NetnsCommandRunner, percentile, setupSyncLab, snapshotTree, writeFixtureTree, type SyncLab } from "./harness/sync.js";

test("sync transport: rsync over ssh to the forced read-only rsync daemon, modes, deletions, refusals, pinning, latency", { timeout: 170_000 }, async (t) => {
  const lab = await Lab.create({ nodes: 2, startEtcd: false });
  const [n1, n2] = lab.nodes;
  assert.ok(n1 && n2, "n1 && n2");
  const pullers: RsyncPuller[] = [];
  let sync: SyncLab | undefined;
  try {
    sync = await setupSyncLab(lab, n1, n2, { authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }), rsyncdConf: renderRsyncdConf });
    const [root, root2] = sync.roots as [string, string];
    const [mod, mod2] = sync.names as [string, string];
    const [staging, staging2] = sync.staging as [string, string];
    const stateDir = sync.stateDir;
    await checkControlDir(stateDir);
    const runner = new NetnsCommandRunner(n2.ns, new SpawnCommandRunner());
    const clock = new SystemClock();
    const ssh: SshTransportSettings = { user: "root", key: sync.key, knownHosts: lab.knownHosts, stateDir };
    const make = (over: Partial<RsyncPullerOptions> = {}) => {
      const p = new RsyncPuller({ runner, clock, ssh, timeoutMs: 15_000, ...over });
      pullers.push(p);
      return p;
    };
    const puller = make();
    const sshE = (p: RsyncPuller) => {
      const argv = p.argv({ primary: n1.address, root: mod, staging });
      return argv[argv.indexOf("-e") + 1]!;
    };
    const pull = (p = puller, r = mod, s = staging) => p.pull({ primary: n1.address, root: r, staging: s });
    t.diagnostic(`prefix ${lab.prefix}; authorized_keys: ${sync.authorizedKeysLine.replace(/ ssh-ed25519 .*/, " ssh-ed25519 ...")}`);
    // SHLVL=1 makes the session's bash a nested shell, so it skips ~/.bashrc: root's
    // (pyenv init) costs ~200 ms per session here, which a production sync user
    // with /bin/sh never pays.
    await lab.startSshd(n1, { extraConfig: ["SetEnv SHLVL=1"] });
    writeFixtureTree(root);
    writeFileSync(join(root2, "sftpgo.json"), '{"common":{}}\n');
    writeFileSync(join(root2, "sftpgo.db"), "SQLite format 3\0");

    await t.test("a pull copies bytes, modes (0600 stays 0600), numeric owners and symlinks exactly", async () => {
      await pull();
      assert.deepEqual(snapshotTree(staging), snapshotTree(root));
      assert.equal(statSync(join(staging, "ssh_host_ed25519_key")).mode & 0o777, 0o600);
      assert.equal(statSync(join(staging, "hooks", "post-sync.sh")).mode & 0o777, 0o755);
      // A second root through the same master connection, with an exclude.
      await puller.pull({ primary: n1.address, root: mod2, staging: staging2, exclude: ["*.db"] });
      const want = snapshotTree(root2);
      delete want["sftpgo.db"];
      assert.deepEqual(snapshotTree(staging2), want);
    });

    await t.test("a chmod-only change propagates", async () => {
      chmodSync(join(root, "sshd_config"), 0o600);
      chmodSync(join(root, "tls"), 0o700);
      await pull();
      assert.equal(statSync(join(staging, "sshd_config")).mode & 0o777, 0o600);
      assert.equal(statSync(join(staging, "tls")).mode & 0o777, 0o700);
      assert.deepEqual(snapshotTree(staging), snapshotTree(root));
    });

    await t.test("a same-size edit with its old mtime kept: missed by the size+mtime quick check, caught by --checksum", async () => {
      const p = join(root, "nested", "deeper", "data.json");
      const ref = join(lab.dir, "sync", "mtime-ref");
      await runOk(["cp", "--preserve=timestamps", p, ref]);
      writeFileSync(p, '{"a":2}\n');
      await runOk(["touch", "-r", ref, p]); // the old mtime to the nanosecond, like cp -p or a restore
      const quick = make({ checksum: false });
      await pull(quick);
      assert.notDeepEqual(snapshotTree(staging), snapshotTree(root), "size+mtime quick check skips the edit");
      await pull();
      assert.deepEqual(snapshotTree(staging), snapshotTree(root), "--checksum transfers it");
    });

    await t.test("deletions propagate (--delete), files and directories", async () => {
      rmSync(join(root, "nested"), { recursive: true });
      rmSync(join(root, "current.crt"));
      await pull();
      assert.equal(existsSync(join(staging, "nested")), false);
      assert.equal(existsSync(join(staging, "current.crt")), false);
      assert.deepEqual(snapshotTree(staging), snapshotTree(root));
    });

    await t.test("the rsync daemon refuses an unknown module, a push, link-following, and runs no other command", async () => {
      await assert.rejects(pull(puller, "etc"), (e: unknown) => {
        assert.ok(isUnderstudyError(e, "US_E_SYNC_PULL_FAILED"), String(e));
        assert.match(String(e.details.stderr), /Unknown module 'etc'/);
        return true;
      });
      const e = sshE(puller);
      const local = join(n2.dir, "push-src");
      mkdirSync(local, { recursive: true });
      writeFileSync(join(local, "planted"), "x");
      const push = await lab.exec(n2, ["rsync", "-a", "-e", e, "--", `${local}/`, `root@${n1.address}::${mod}/`], { timeoutMs: 10_000 });
      assert.notEqual(push.code, 0);
      assert.match(push.stderr, /read only/);
      assert.equal(existsSync(join(root, "planted")), false, "nothing was written on the primary");
      // A link pointing out of the root: sent as a link; following it (-L) is refused.
      symlinkSync("/etc/hostname", join(root, "outside"));
      try {
        const follow = await lab.exec(n2, ["rsync", "-aL", "-e", e, "--", `root@${n1.address}::${mod}/outside`, join(n2.dir, "followed")], { timeoutMs: 10_000 });
        assert.notEqual(follow.code, 0, "copy-links is refused");
        assert.equal(existsSync(join(n2.dir, "followed")), false);
        const climb = await lab.exec(n2, ["rsync", "-a", "-e", e, "--", `root@${n1.address}::${mod}/../../`, join(n2.dir, "climbed/")], { timeoutMs: 10_000 });
        assert.equal(existsSync(join(n2.dir, "climbed", "roots")), false, "no path climbs out of the module");
        assert.ok(climb.code !== 0 || !existsSync(join(n2.dir, "climbed", "root2")), climb.stderr);
      } finally {
        rmSync(join(root, "outside"));
      }
      const shell = await lab.exec(n2, [...e.split(" "), "-l", "root", n1.address, "cat", "/etc/hostname"], { timeoutMs: 10_000 });
      assert.doesNotMatch(shell.stdout, new RegExp(readFileSync("/etc/hostname", "utf8").trim() || "no-hostname"));
      assert.match(shell.stdout, /^@RSYNCD:/, "the forced command answered, not a shell");
    });

    await t.test("host key pinning: a wrong or empty known_hosts is refused", async () => {
      const otherKey = join(lab.dir, "sync", "other_host_key");
      await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
      const wrong = join(lab.dir, "sync", "known_hosts_wrong");
      const pub = (await runOk(["cat", `${otherKey}.pub`])).stdout.trim().split(" ").slice(0, 2).join(" ");
      writeFileSync(wrong, `${n1.address} ${pub}\n`);
      const empty = join(lab.dir, "sync", "known_hosts_empty");
      writeFileSync(empty, "");
      for (const [name, file, msg] of [
        ["wrong", wrong, /IDENTIFICATION HAS CHANGED|verification failed/],
        ["empty", empty, /No ED25519 host key is known|verification failed/],
      ] as const) {
        const p = make({ ssh: { ...ssh, knownHosts: file, controlMaster: false } });
        await assert.rejects(pull(p), (err: unknown) => {
          assert.ok(isUnderstudyError(err, "US_E_SYNC_PULL_FAILED"), `${name}: ${String(err)}`);
          // 5 in daemon mode: rsync reports the ssh failure as "error starting client-server protocol".
          assert.ok(err.details.code === 5 || err.details.code === 255, `${name}: exit ${String(err.details.code)}`);
          assert.match(String(err.details.stderr), msg, name);
          return true;
        });
      }
    });

    await t.test("latency of 20 small pulls, with and without ControlMaster", async () => {
      const hook = join(root, "hooks", "post-sync.sh");
      const off = make({ ssh: { ...ssh, controlMaster: false } });
      const onQuick = make({ checksum: false });
      const variants: [string, RsyncPuller][] = [
        ["ControlMaster, --checksum", puller],
        ["no ControlMaster, --checksum", off],
        ["ControlMaster, size+mtime(ns) quick check", onQuick],
      ];
      const results: Record<string, number[]> = Object.fromEntries(variants.map(([k]) => [k, []]));
      // Interleaved, so load from anything else on the machine hits every variant alike.
      for (let i = 0; i < 21; i++) {
        for (const [k, p] of variants) {
          writeFileSync(hook, `#!/bin/sh\n# edit ${i} ${k.length}\nexit 0\n`);
          const r = await pull(p);
          if (i > 0) results[k]!.push(r.durationMs); // round 0 opens the ControlMaster connection
        }
      }
      assert.deepEqual(snapshotTree(staging), snapshotTree(root));
      // What one pull pays before rsync even starts: a session on the master connection, the shell, the daemon's greeting.
      const e = sshE(puller);
      const refusedMs: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await lab.exec(n2, [...e.split(" "), "-l", "root", n1.address, "x"], { timeoutMs: 10_000 });
        refusedMs.push(r.ms);
      }
      results["ControlMaster, forced daemon with no input (ssh channel + shell + rsync daemon start)"] = refusedMs;
      // The same without the forced command: the lab client key running `true`.
      const plain = [...e.split(" ").map((w) => (w === sync!.key ? lab.clientKey : w.startsWith("ControlPath=") ? `ControlPath=${stateDir}/plain-%C` : w)), "-l", "root", n1.address, "true"];
      const plainMs: number[] = [];
      for (let i = 0; i < 11; i++) {
        const r = await lab.exec(n2, plain, { timeoutMs: 10_000 });
        assert.equal(r.code, 0, r.stderr);
        if (i > 0) plainMs.push(r.ms);
      }
      await lab.exec(n2, ["ssh", "-F", "/dev/null", "-o", `ControlPath=${stateDir}/plain-%C`, "-p", "22", "-l", "root", "-O", "exit", n1.address]);
      results["ControlMaster, `true` without forced command (ssh channel + shell)"] = plainMs;
      const summary = Object.entries(results).map(([k, v]) => `${k}: p50 ${percentile(v, 50).toFixed(1)} ms, p95 ${percentile(v, 95).toFixed(1)} ms`);
      for (const s of summary) t.diagnostic(s);
      writeFileSync(join(lab.logDir, "sync-latency.json"), JSON.stringify(results, null, 2));
      assert.ok(percentile(results["ControlMaster, --checksum"]!, 50) < percentile(results["no ControlMaster, --checksum"]!, 50), "ControlMaster is faster");
    });

    await t.test("close() ends the ControlMaster connection", async () => {
      const check = () => lab.exec(n2, ["ssh", "-F", "/dev/null", "-o", `ControlPath=${stateDir}/ssh-%C`, "-p", "22", "-l", "root", "-O", "check", n1.address]);
      await pull();
      assert.equal((await check()).code, 0, "master running after a pull");
      await puller.close();
      assert.notEqual((await check()).code, 0, "master gone after close()");
    });
  } finally {
    for (const p of pullers) await p.close();
    await lab.teardown();
    sync?.cleanup();
  }
});
