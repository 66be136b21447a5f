/**
 * Issue 12, failures 3 and 4, end to end: two real agents, real etcd (TLS +
 * auth), real rsync over real SSH, the real `proftpd -t` and `sshd -t`.
 *
 * 1. A fresh standby (nothing under its live roots) joins a primary whose
 *    ProFTPD config names its users file and TLS pair in other roots, and whose
 *    SFTP sshd config names its host key: the shipped validators
 *    (deploy/examples/understudy-staged-check, `{staged:NAME}`) pass against
 *    the staged copies. A root whose validator fails, listed FIRST, does not
 *    stop the others; the standby reports that root and stays behind until it
 *    is fixed, then reaches in-sync.
 * 2. A certificate renewal on the primary runs its post_publish hook there
 *    once (root name and changed paths in the environment) and hooks.post_publish
 *    once; the standby's post_sync runs after apply. Figures: time from the
 *    renewal to the primary's hook and to the standby's hook.
 *
 * The config names the files by one fixed path prefix (as a real cluster does
 * with identical live paths on every node); in the lab the nodes' live roots
 * sit under different node dirs, so that prefix is not a real directory and
 * the validators map it to each root (live or staged) with `{staged:NAME}`.
 * Needs root, proftpd-core, openssh-server and `npm run build`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { LabCluster, REPO, pollUntil, run, runOk, sleep, type LabNode } from "./harness/index.js";
import { snapshotTree } from "./harness/sync.js";

const CHECK = join(REPO, "deploy", "examples", "understudy-staged-check");
const root = (n: LabNode, name: string) => join(n.dir, `root-${name}`);
const NAMES = ["app", "proftpd", "users", "tls", "ssh"] as const;

test("sync roots are independent, {staged:NAME} validators pass on a fresh standby, post_publish on the primary", { timeout: 300_000 }, async (t) => {
  if (!existsSync("/usr/sbin/proftpd")) return t.skip("proftpd-core is not installed");
  // The one path prefix the synced configs use for the roots (see the header).
  const L = `/nonexistent-understudy-lab/${randomBytes(4).toString("hex")}`;
  const c = await LabCluster.create({
    nodes: 2,
    start: false,
    priorities: [200, 100],
    sync: {
      rootPaths: (n) => NAMES.map((x) => root(n, x)),
      authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
      rootsYaml: (n) => {
        const hook = join(n.dir, "hook.sh");
        const log = join(n.dir, "hooks.log");
        return [
          // First in the list, and failing at first: it must not hold up the roots after it.
          `    - name: app`,
          `      path: ${root(n, "app")}`,
          `      validate: [/usr/bin/python3, -c, "import json,sys; json.load(open(sys.argv[1]))", "{staged}/app.json"]`,
          `    - name: proftpd`,
          `      path: ${root(n, "proftpd")}`,
          `      max_mode: "0644"`,
          `      validate: [${CHECK}, "{staged}/proftpd.conf", "${L}/proftpd={staged}", "${L}/users={staged:users}", "${L}/tls={staged:tls}", --, /usr/sbin/proftpd, -t, -c, "{config}"]`,
          `      post_publish: [${hook}, ${log}]`,
          `      post_sync: [${hook}, ${log}]`,
          `    - { name: users, path: ${root(n, "users")}, max_mode: "0640" }`,
          `    - name: tls`,
          `      path: ${root(n, "tls")}`,
          `      max_mode: "0644"`,
          `      post_publish: [${hook}, ${log}]`,
          `      post_sync: [${hook}, ${log}]`,
          `    - name: ssh`,
          `      path: ${root(n, "ssh")}`,
          `      max_mode: "0644"`,
          `      validate: [${CHECK}, "{staged}/sshd_config_sftp", "${L}/ssh={staged}", --, /usr/sbin/sshd, -t, -f, "{config}"]`,
        ].join("\n");
      },
      extraYaml: "  reconcile_interval: 5s\n  retry_max: 1s\n  maximum_lag_on_failover: 10m",
    },
    extraYaml: (n) => `hooks: { post_publish: [${join(n.dir, "hook.sh")}, ${join(n.dir, "global.log")}], post_sync: [${join(n.dir, "hook.sh")}, ${join(n.dir, "global.log")}] }`,
  });
  const [n1, n2] = c.lab.nodes as [LabNode, LabNode];
  try {
    for (const n of [n1, n2]) {
      // One line per run: wall ms, event, root(s), generation, changed paths.
      writeFileSync(
        join(n.dir, "hook.sh"),
        ["#!/bin/sh", 'echo "$(date +%s%3N) $UNDERSTUDY_EVENT ${UNDERSTUDY_SYNC_ROOT:-${UNDERSTUDY_SYNC_ROOTS:-}} $UNDERSTUDY_GENERATION $(echo ${UNDERSTUDY_CHANGED_PATHS:-})" >> "$1"', ""].join(
          "\n",
        ),
        { mode: 0o755 },
      );
      chmodSync(join(n.dir, "hook.sh"), 0o755);
    }
    // The primary's files; the standby's live roots stay empty (a fresh node).
    writeFileSync(join(root(n1, "app"), "app.json"), '{ "broken": ');
    writeFileSync(
      join(root(n1, "proftpd"), "proftpd.conf"),
      [
        "ServerType standalone",
        "DefaultServer on",
        "Port 2121",
        "User nobody",
        "Group nogroup",
        // proftpd -t wants the scoreboard's directory to exist and not be world-writable (a real node: /run/proftpd).
        `PidFile /run/understudy-lab-${L.slice(-8)}.pid`,
        `ScoreboardFile /run/understudy-lab-${L.slice(-8)}.scoreboard`,
        "AuthOrder mod_auth_file.c",
        `AuthUserFile ${L}/users/ftpd.passwd`,
        `AuthGroupFile ${L}/users/ftpd.group`,
        "<IfModule !mod_tls.c>",
        "LoadModule mod_tls.c",
        "</IfModule>",
        "TLSEngine on",
        "TLSRequired on",
        `TLSRSACertificateFile ${L}/tls/proftpd.crt`,
        `TLSRSACertificateKeyFile ${L}/tls/proftpd.key`,
        "",
      ].join("\n"),
    );
    writeFileSync(join(root(n1, "users"), "ftpd.passwd"), "alice:$1$abcdefgh$0123456789abcdefghijkl:2001:2001::/srv/ftp:/bin/false\n", { mode: 0o600 });
    writeFileSync(join(root(n1, "users"), "ftpd.group"), "ftp:x:2001:alice\n", { mode: 0o600 });
    // A renewal as certbot's deploy hook does it: the new pair made elsewhere, then moved into place.
    const cert = async (cn: string) => {
      const tmp = join(n1.dir, "newcert");
      mkdirSync(tmp, { recursive: true, mode: 0o700 });
      await runOk(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(tmp, "proftpd.key"), "-out", join(tmp, "proftpd.crt"), "-days", "30", "-subj", `/CN=${cn}`]);
      chmodSync(join(tmp, "proftpd.key"), 0o600);
      renameSync(join(tmp, "proftpd.key"), join(root(n1, "tls"), "proftpd.key"));
      renameSync(join(tmp, "proftpd.crt"), join(root(n1, "tls"), "proftpd.crt"));
    };
    await cert("ftp.example.com");
    await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(root(n1, "ssh"), "sftp_host_ed25519_key")]);
    writeFileSync(join(root(n1, "ssh"), "sshd_config_sftp"), `Port 2022\nHostKey ${L}/ssh/sftp_host_ed25519_key\nPidFile ${L}/run/sshd-sftp.pid\nSubsystem sftp internal-sftp\n`);
    // The validators as they are, without the wrapper, fail here (the fresh-standby deadlock of the issue).
    assert.notEqual((await run(["/usr/sbin/proftpd", "-t", "-c", join(root(n1, "proftpd"), "proftpd.conf")])).code, 0, "bare proftpd -t fails");
    assert.notEqual((await run(["/usr/sbin/sshd", "-t", "-f", join(root(n1, "ssh"), "sshd_config_sftp")])).code, 0, "bare sshd -t fails");

    c.startAgent(n1.name);
    assert.equal((await c.waitForLeader({ timeoutMs: 20_000 }))?.node, n1.name);
    const tJoin = performance.now();
    c.startAgent(n2.name);

    const same = (name: string) => {
      try {
        assert.deepEqual(snapshotTree(root(n2, name)), snapshotTree(root(n1, name)));
        return true;
      } catch {
        return undefined;
      }
    };
    const member = async (node: string) => {
      const s = JSON.parse((await c.cli(["sync", "status", "--json"])).stdout) as {
        published: { generation: number } | null;
        members: { node: string; generation: number; lastError: string | null; failedRoots?: string[] }[];
      };
      return { published: s.published, m: s.members.find((x) => x.node === node) };
    };

    await t.test("a fresh standby: the roots after a failing one sync, validated against the staged copies", async () => {
      const later = ["proftpd", "users", "tls", "ssh"];
      const ok = await pollUntil(() => (later.every((x) => same(x)) ? true : undefined), { timeoutMs: 60_000, intervalMs: 50 });
      for (const x of later) assert.deepEqual(snapshotTree(root(n2, x)), snapshotTree(root(n1, x)), `root ${x} reached the fresh standby`);
      assert.ok(ok, "ok");
      t.diagnostic(`fresh standby: proftpd, users, tls, ssh live ${Math.round(performance.now() - tJoin)} ms after its agent started (incl. agent start)`);
      assert.equal(statSync(join(root(n2, "tls"), "proftpd.key")).mode & 0o777, 0o600);
      const behind = await pollUntil(
        async () => {
          const s = await member(n2.name);
          return s.m?.failedRoots?.includes("app") && s.m.lastError?.includes("US_E_SYNC_VALIDATOR_FAILED") ? s : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      assert.ok(behind, "n2 names the failing root and its error");
      assert.deepEqual(behind.m!.failedRoots, ["app"]);
      assert.ok(behind.m!.generation < behind.published!.generation, "n2 still counts as behind (promotion gate, ranking)");
      assert.equal(existsSync(join(root(n2, "app"), "app.json")), false, "nothing of the failing root went live");
      const table = (await c.cli(["sync", "status"])).stdout;
      assert.match(table, /roots failing: app/);
      // The hooks of a first sync ran on the standby (post_sync, after apply), none on the primary.
      assert.equal(readLog(n1, "hooks.log").length, 0, "no post_publish for the primary's first publication");

      writeFileSync(join(root(n1, "app"), "app.json"), '{ "fixed": true }');
      const inSync = await pollUntil(
        async () => {
          const s = await member(n2.name);
          return s.m && s.published && s.m.generation === s.published.generation && (s.m.failedRoots ?? []).length === 0 ? s : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      assert.ok(inSync, "n2 reaches in-sync once the root is fixed");
      assert.ok(same("app"), 'same("app")');
    });

    await t.test("a certificate renewal on the primary: post_publish there once, post_sync on the standby", async () => {
      await sleep(1500); // let the first-sync hooks settle
      const before1 = readLog(n1, "hooks.log").length;
      const before2 = readLog(n2, "hooks.log").length;
      const g1 = readLog(n1, "global.log").length;
      const t0 = Date.now();
      await cert("ftp.example.com renewed");
      const renewedAt = Date.now(); // the pair is in place
      const primaryRun = await pollUntil(
        () =>
          readLog(n1, "hooks.log")
            .slice(before1)
            .find((l) => l.event === "post_publish" && l.root === "tls"),
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      if (!primaryRun) {
        // Seen once in a clean-clone CI run (never since, 2 of 2 reruns passed): say what the agent did.
        const agentLog = join(c.lab.logDir, `${n1.name}-agent.log`);
        const tail = existsSync(agentLog)
          ? readFileSync(agentLog, "utf8")
              .split("\n")
              .filter((l) => /"component":"(sync|hooks|ha)"/.test(l))
              .slice(-25)
              .join("\n")
          : "(no agent log)";
        const leader = await c.leader().catch(() => undefined);
        assert.fail(
          `the primary ran post_publish for tls: none within 15 s; leader ${JSON.stringify(leader)}; n1's hooks.log since: ${JSON.stringify(readLog(n1, "hooks.log").slice(before1))}\n${tail}`,
        );
      }
      assert.deepEqual(primaryRun.paths.sort(), ["proftpd.crt", "proftpd.key"]);
      const standbyRun = await pollUntil(
        () =>
          readLog(n2, "hooks.log")
            .slice(before2)
            .find((l) => l.event === "post_sync" && l.root === "tls"),
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      assert.ok(standbyRun, "the standby ran post_sync for tls after apply");
      assert.equal(standbyRun.generation, primaryRun.generation, "the same generation");
      assert.ok(same("tls"), 'same("tls")');
      t.diagnostic(`renewal -> primary post_publish: ${primaryRun.at - renewedAt} ms (openssl done at +${renewedAt - t0} ms); -> standby post_sync: ${standbyRun.at - renewedAt} ms`);
      await sleep(2000);
      const runs1 = readLog(n1, "hooks.log").slice(before1);
      assert.deepEqual(
        runs1.map((l) => `${l.event} ${l.root}`),
        ["post_publish tls"],
        "once, only the changed root, nothing else on the primary",
      );
      assert.ok(
        readLog(n2, "hooks.log")
          .slice(before2)
          .every((l) => l.event === "post_sync" && l.root === "tls"),
        "the standby: post_sync of tls only",
      );
      const global1 = readLog(n1, "global.log").slice(g1);
      assert.deepEqual(
        global1.map((l) => `${l.event} ${l.root}`),
        ["post_publish tls"],
        "hooks.post_publish once, naming the root",
      );
      const logText = readFileSync(join(c.lab.logDir, `${n1.name}-agent.log`), "utf8");
      assert.match(logText, /"hook":"post_publish","root":"tls"/);
    });
  } finally {
    await c.teardown();
  }
});

interface HookLine {
  at: number;
  event: string;
  root: string;
  generation: number;
  paths: string[];
}

function readLog(n: LabNode, file: string): HookLine[] {
  const p = join(n.dir, file);
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [at, event, rootName, generation, ...paths] = l.split(" ");
      return { at: Number(at), event: event!, root: rootName!, generation: Number(generation), paths };
    });
}
