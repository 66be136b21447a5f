/**
 * File sync end to end (issue 3): three real agents with `sync:` roots, a
 * sync sshd in every node namespace whose sync key is forced to rsync's
 * daemon with the agent's read-only config, real rsync over real SSH, real
 * etcd.
 *
 * One cluster, in order: first sync (a standby's differing files rescued, not
 * lost); host keys, a daemon config, a TLS key pair and a hook script
 * converge with identical bytes, modes and owners; edits, chmods and deletes
 * propagate; a failing validator keeps the old files live; the primary dies
 * and a client with the old known_hosts and StrictHostKeyChecking yes logs in
 * through the VIP; the old primary's unpublished edit is rescued when it
 * rejoins, not pushed; a stale standby loses the race to an in-sync one.
 * Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { LabCluster, pollUntil, runOk, type LabNode } from "./harness/index.js";
import { snapshotTree } from "./harness/sync.js";

const ssh = (n: LabNode) => join(n.dir, "etc-ssh");
const app = (n: LabNode) => join(n.dir, "app");
/** On a 1 MiB tmpfs for n2 (root and staging share it): the disk-full case. */
const small = (n: LabNode) => join(n.dir, "small");
const spool = (n: LabNode) => join(small(n), "spool");

function writeApp(root: string, flavour: string): void {
  mkdirSync(join(root, "tls"), { recursive: true });
  mkdirSync(join(root, "hooks"), { recursive: true });
  writeFileSync(join(root, "sftpgo.json"), JSON.stringify({ common: { idle_timeout: 15 }, flavour }, null, 2));
  writeFileSync(join(root, "tls", "server.crt"), `-----BEGIN CERTIFICATE-----\n${flavour}\n-----END CERTIFICATE-----\n`);
  writeFileSync(join(root, "tls", "server.key"), `-----BEGIN PRIVATE KEY-----\n${flavour}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
  chmodSync(join(root, "tls", "server.key"), 0o600);
  writeFileSync(join(root, "hooks", "on-upload.sh"), `#!/bin/sh\necho ${flavour}\n`);
  chmodSync(join(root, "hooks", "on-upload.sh"), 0o755);
}

test("file sync: converge, validate, fail over with the same host key, rescue, stale standby loses", { timeout: 240_000 }, async (t) => {
  const c = await LabCluster.create({
    start: false,
    priorities: [300, 100, 200],
    sshd: (n) => ({ hostKeyDir: ssh(n), installHostKey: false }),
    sync: {
      rootPaths: (n) => [ssh(n), app(n), spool(n)],
      authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
      rootsYaml: (n) =>
        [
          `    - { name: ssh, path: ${ssh(n)}, include: ["ssh_host_*"], max_mode: "0644" }`,
          `    - name: app`,
          `      path: ${app(n)}`,
          `      validate: [/usr/bin/python3, -c, "import json,sys; json.load(open(sys.argv[1]))", "{staged}/sftpgo.json"]`,
          `      post_sync: [/usr/bin/touch, ${join(n.dir, "post-sync-ran")}]`,
          `    - { name: spool, path: ${spool(n)} }`,
        ].join("\n"),
      extraYaml: "  reconcile_interval: 5s\n  retry_max: 1s\n  maximum_lag_on_failover: 10m",
    },
  });
  const [n1, n2, n3] = c.lab.nodes as [LabNode, LabNode, LabNode];
  const nodes = [n1, n2, n3];
  let mounted = false;
  try {
    await runOk(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", small(n2)]);
    mounted = true;
    mkdirSync(spool(n2));
    // Every node starts with its own host key and its own (different) app files.
    for (const n of nodes) {
      await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `host-${n.name}`, "-f", join(ssh(n), "ssh_host_ed25519_key")]);
      writeApp(app(n), `from-${n.name}`);
    }
    const n1Key = readFileSync(join(ssh(n1), "ssh_host_ed25519_key.pub"), "utf8");
    const n2KeyBefore = readFileSync(join(ssh(n2), "ssh_host_ed25519_key"), "utf8");
    assert.notEqual(readFileSync(join(ssh(n2), "ssh_host_ed25519_key.pub"), "utf8"), n1Key, "the nodes start with different host keys");
    // n1 first, so its files are the cluster's first generation.
    c.startAgent(n1.name);
    const first = await c.waitForLeader({ timeoutMs: 20_000 });
    assert.equal(first?.node, n1.name, "n1 is the first primary");
    c.startAgent(n2.name);
    c.startAgent(n3.name);

    const same = (a: LabNode, b: LabNode) => {
      try {
        assert.deepEqual(snapshotTree(ssh(b)), snapshotTree(ssh(a)));
        assert.deepEqual(snapshotTree(app(b)), snapshotTree(app(a)));
        assert.deepEqual(snapshotTree(spool(b)), snapshotTree(spool(a)));
        return true;
      } catch {
        return undefined;
      }
    };
    const converge = async (from: LabNode, to: LabNode[], timeoutMs = 15_000) => {
      const t0 = performance.now();
      const ok = await pollUntil(() => (to.every((n) => same(from, n)) ? true : undefined), { timeoutMs, intervalMs: 10 });
      if (!ok) for (const n of to) assert.deepEqual(snapshotTree(app(n)), snapshotTree(app(from)), `${n.name} converged on ${from.name}'s files`);
      return performance.now() - t0;
    };
    const syncStatus = async () =>
      JSON.parse((await c.cli(["sync", "status", "--json"])).stdout) as {
        published: { generation: number; source: string } | null;
        members: { node: string; generation: number; lastError: string | null; rescues: number }[];
      };

    await t.test("first sync: standbys take the primary files, and their own differing files are rescued", async () => {
      await converge(n1, [n2, n3], 20_000);
      for (const n of nodes) {
        assert.equal(statSync(join(ssh(n), "ssh_host_ed25519_key")).mode & 0o777, 0o600, `${n.name}: host key stays 0600`);
        assert.equal(statSync(join(app(n), "tls", "server.key")).mode & 0o777, 0o600, `${n.name}: TLS key stays 0600`);
        assert.equal(statSync(join(app(n), "hooks", "on-upload.sh")).mode & 0o777, 0o755, `${n.name}: hook stays executable`);
      }
      const rescueBase = join(n2.dir, "state", "rescue");
      const stamps = readdirSync(rescueBase);
      assert.ok(stamps.length >= 1, "n2 made a rescue folder");
      const rescuedKey = stamps.map((s) => join(rescueBase, s, "ssh", "ssh_host_ed25519_key")).find((p) => existsSync(p));
      assert.ok(rescuedKey, "n2 rescued its own host key");
      assert.equal(readFileSync(rescuedKey, "utf8"), n2KeyBefore, "with its original content");
      assert.equal(statSync(rescuedKey).mode & 0o777, 0o600, "and its 0600 mode");
      const s = await syncStatus();
      assert.equal(s.published?.source, n1.name);
      for (const m of s.members) assert.equal(m.generation, s.published!.generation, `${m.node} holds the published generation`);
    });

    await t.test("edits, a chmod to 0600, a new file and a delete propagate", async () => {
      rmSync(join(n2.dir, "post-sync-ran"), { force: true });
      writeApp(app(n1), "renewed-cert");
      chmodSync(join(app(n1), "sftpgo.json"), 0o600);
      writeFileSync(join(app(n1), "hooks", "on-download.sh"), "#!/bin/sh\nexit 0\n", { mode: 0o750 });
      rmSync(join(ssh(n1), "ssh_host_ed25519_key.pub"));
      const ms = await converge(n1, [n2, n3]);
      t.diagnostic(`edit burst converged on both standbys in ${Math.round(ms)} ms`);
      assert.equal(existsSync(join(ssh(n2), "ssh_host_ed25519_key.pub")), false, "the deleted file is gone on n2");
      assert.equal(statSync(join(app(n3), "sftpgo.json")).mode & 0o777, 0o600, "the chmod reached n3");
      // post_sync runs once the root's files are live, so just after they converge.
      assert.ok(await pollUntil(() => (existsSync(join(n2.dir, "post-sync-ran")) ? true : undefined), { timeoutMs: 5000, intervalMs: 20 }), "the root post_sync ran on n2");
      // Put the public key back for the SFTP client check later.
      writeFileSync(join(ssh(n1), "ssh_host_ed25519_key.pub"), n1Key);
      await converge(n1, [n2, n3]);
    });

    await t.test("a hand edit on a standby is found by the periodic verify (beside the passes), rescued, and the primary's file restored", async () => {
      const target = join(app(n3), "sftpgo.json");
      const primaryCopy = readFileSync(join(app(n1), "sftpgo.json"), "utf8");
      const rescueBase = join(n3.dir, "state", "rescue");
      writeFileSync(target, '{ "edited": "by hand on n3" }'); // no new generation: only the sweep can notice
      // reconcile_interval is 5 s: within two periods, the sweep hands the root to a pass, which rescues and pulls.
      // (Between the rescue moving the edit out and the apply renaming the primary's copy in, the path is briefly absent.)
      const back = await pollUntil(() => (existsSync(target) && readFileSync(target, "utf8") === primaryCopy ? true : undefined), { timeoutMs: 15_000, intervalMs: 50 });
      assert.ok(back, "n3 serves the primary's file again");
      const kept = readdirSync(rescueBase)
        .map((stamp) => join(rescueBase, stamp, "app", "sftpgo.json"))
        .filter((p) => existsSync(p) && readFileSync(p, "utf8").includes("by hand on n3"));
      assert.equal(kept.length, 1, "the hand edit is in a rescue folder on n3");
      assert.match(readFileSync(join(c.lab.logDir, `${n3.name}-agent.log`), "utf8"), /periodic verify of app: the live files differ from the last synced state/);
    });

    await t.test("a failing validator keeps the old files live and reports the error", async () => {
      const good = readFileSync(join(app(n2), "sftpgo.json"), "utf8");
      writeFileSync(join(app(n1), "sftpgo.json"), '{ "common": broken');
      const failed = await pollUntil(
        async () => {
          const s = await syncStatus();
          const m = s.members.find((x) => x.node === n2.name);
          return m?.lastError?.includes("US_E_SYNC_VALIDATOR_FAILED") ? s : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      assert.ok(failed, "n2 reports US_E_SYNC_VALIDATOR_FAILED");
      assert.equal(readFileSync(join(app(n2), "sftpgo.json"), "utf8"), good, "n2 still serves the old, valid config");
      assert.ok(failed.members.find((x) => x.node === n2.name)!.generation < failed.published!.generation, "n2 reports itself behind");
      writeFileSync(join(app(n1), "sftpgo.json"), JSON.stringify({ common: { idle_timeout: 20 } }));
      await converge(n1, [n2, n3]);
    });

    await t.test("disk full while staging on a standby: coded error, live files untouched, recovers after", async () => {
      writeFileSync(join(spool(n1), "small.txt"), "fits\n");
      await converge(n1, [n2, n3]);
      writeFileSync(join(spool(n1), "big.bin"), Buffer.alloc(2 * 1024 * 1024, 7));
      const full = await pollUntil(
        async () => {
          const m = (await syncStatus()).members.find((x) => x.node === n2.name);
          return m?.lastError?.includes("US_E_SYNC_PULL_FAILED") ? m : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      assert.ok(full, "n2 reports US_E_SYNC_PULL_FAILED");
      t.diagnostic(`n2: ${full.lastError}`);
      assert.deepEqual(readdirSync(spool(n2)), ["small.txt"], "n2 live spool untouched");
      assert.equal(readFileSync(join(spool(n3), "big.bin")).length, 2 * 1024 * 1024, "n3 (no size limit) got the file");
      rmSync(join(spool(n1), "big.bin"));
      await converge(n1, [n2, n3]);
      const after = (await syncStatus()).members.find((x) => x.node === n2.name);
      assert.equal(after?.lastError, null, "n2 recovered");
    });

    const pinned = join(c.lab.dir, "client", "pinned_known_hosts");
    const vipAddr = c.lab.addressOf("vip");
    writeFileSync(pinned, `${vipAddr} ${n1Key.trim().split(" ").slice(0, 2).join(" ")}\n`);
    const strictLogin = () =>
      c.lab.exec(
        c.lab.client,
        [
          "sftp",
          "-F",
          "/dev/null",
          "-i",
          c.lab.clientKey,
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=yes",
          "-o",
          `UserKnownHostsFile=${pinned}`,
          "-o",
          "GlobalKnownHostsFile=/dev/null",
          "-o",
          "UpdateHostKeys=no",
          "-o",
          "CheckHostIP=no",
          "-o",
          "ConnectTimeout=2",
          "-b",
          "/dev/null",
          `root@${vipAddr}`,
        ],
        { timeoutMs: 8000 },
      );

    await t.test("fail over: a client with the old known_hosts and StrictHostKeyChecking yes logs in via the VIP", async () => {
      const before = await strictLogin();
      assert.equal(before.code, 0, `login to n1 through the VIP with the pinned key: ${before.stderr}`);
      await c.signalAgent(n1.name, "SIGKILL");
      // The old primary's unpublished local edit, made while its agent is down.
      writeFileSync(join(app(n1), "sftpgo.json"), JSON.stringify({ common: { idle_timeout: 99 }, local: "edit on the old primary" }));
      const next = await c.waitForLeader({ not: n1.name, timeoutMs: 15_000 });
      assert.equal(next?.node, n3.name, "n3 (priority 200, in sync) took over");
      // (c.waitServing pins the lab's shared host key; this daemon serves the synced one.)
      const onN3 = await pollUntil(async () => ((await c.lab.vipConfiguredOn()).includes(n3.name) ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
      assert.ok(onN3, "n3 holds the VIP");
      let after = await strictLogin();
      for (let i = 0; i < 50 && after.code !== 0 && !after.stderr.includes("IDENTIFICATION HAS CHANGED"); i++) after = await strictLogin(); // daemon still starting
      assert.equal(after.code, 0, `same host key after the failover, no "REMOTE HOST IDENTIFICATION HAS CHANGED": ${after.stderr}`);
    });

    await t.test("the old primary rejoins: its unpublished edit is rescued, not lost and not pushed", async () => {
      c.startAgent(n1.name);
      await converge(n3, [n1, n2], 20_000);
      const base = join(n1.dir, "state", "rescue");
      const rescued = readdirSync(base)
        .map((s) => join(base, s, "app", "sftpgo.json"))
        .filter((p) => existsSync(p));
      assert.ok(
        rescued.some((p) => readFileSync(p, "utf8").includes("edit on the old primary")),
        "the edit is in a rescue folder on n1",
      );
      for (const n of [n2, n3]) assert.ok(!readFileSync(join(app(n), "sftpgo.json"), "utf8").includes("edit on the old primary"), `the edit did not reach ${n.name}`);
    });

    await t.test("a stale standby (higher priority) loses the race to an in-sync one", async () => {
      // n1 (priority 300) cannot reach n3's sync sshd any more; n2 (priority 100) can.
      await c.lab.partition(n1.name, n3.name);
      try {
        writeFileSync(join(app(n3), "hooks", "new-hook.sh"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        await converge(n3, [n2]);
        const stale = await pollUntil(
          async () => {
            const s = await syncStatus();
            const m1 = s.members.find((x) => x.node === n1.name);
            return m1 && s.published && m1.generation < s.published.generation && m1.lastError ? s : undefined;
          },
          { timeoutMs: 10_000, intervalMs: 100 },
        );
        assert.ok(stale, "n1 lags the published generation and reports why");
        await c.signalAgent(n3.name, "SIGKILL");
        const next = await c.waitForLeader({ not: n3.name, timeoutMs: 15_000 });
        assert.equal(next?.node, n2.name, "n2, which holds the published generation, won; n1 did not");
        const history = JSON.parse((await c.cli(["history", "--json"], { via: n2.name })).stdout) as { kind: string }[];
        assert.equal(history.filter((e) => e.kind === "stale_promotion").length, 0, "no stale promotion happened");
      } finally {
        await c.lab.heal(n1.name, n3.name);
      }
    });
  } finally {
    await c.teardown().finally(async () => {
      if (mounted) await runOk(["umount", "-l", small(n2)]).catch(() => undefined);
    });
  }
});
