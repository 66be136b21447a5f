/**
 * The .deb for real (scripts/build-deb.sh): two builds of this tree, `V~prev`
 * and `V` (dpkg orders V~prev before V, so installing V over it is a real
 * upgrade: prerm upgrade, unpack, postinst configure V~prev). The previous one
 * is installed with dpkg, a 3-node lab cluster runs its agents with the
 * installed /usr/bin/understudy, the current one is installed under them, and
 * the agents are restarted as docs/operations.md says ("Upgrading the agent
 * without a failover"). Asserted: the upgrade itself moves nothing (same
 * leader, same term, same agent processes, still on the old binary), standby
 * restarts move nothing, the one move is the operator's switchover (kind
 * "switchover", one new term), the VIP is never on two nodes on the wire, and
 * the admin's edit of the conffile survives. Then remove keeps the user and
 * the config, purge removes them.
 *
 * The machine is left as found: an understudy package installed before the
 * test is purged first (its /etc/understudy and /var/lib/understudy saved),
 * and afterwards the same .deb is installed again and those restored. When
 * that .deb cannot be found, the test is skipped rather than lose it.
 * UNDERSTUDY_TEST_DEB_PREV / UNDERSTUDY_TEST_DEB: prebuilt .debs to use. A .deb of this
 * same tree that ansible.lab built earlier in the run (test/lab/deb-state.ts cachedDeb) is
 * used rather than built again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LabCluster, pollUntil, REPO } from "./harness/index.js";
import { cachedDeb, installedVersion, saveDebState, sh as run } from "./deb-state.js";

const T = { timeout: 1_200_000 };
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
const NODE = "/usr/lib/understudy/node/bin/node";
const CONF = "/etc/understudy/understudy.yaml";

function build(version: string, out: string, env: string | undefined): string {
  if (env) return env;
  // This tree's .deb at `version`, built by scripts/build-deb.sh earlier in this run (ansible.lab).
  const cached = cachedDeb(version);
  if (cached) return cached;
  const r = run(["bash", join(REPO, "scripts", "build-deb.sh"), "--version", version, "--out", out], { timeoutMs: 900_000 });
  const deb = r.stdout.trim().split("\n").at(-1)!;
  assert.equal(deb, join(out, `understudy_${version}_amd64.deb`), "build-deb prints the .deb path last");
  return deb;
}

const dpkgInstall = (deb: string) => run(["dpkg", "-i", "--force-confdef", "--force-confold", deb]);
const userEntry = () => run(["getent", "passwd", "understudy"], { ok: false }).stdout.trim();
const exeOf = (pid: number | undefined) => {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
};

/** Wait until a restarted standby answers /standby (healthy standby) through its API. */
async function standbyHealthy(c: LabCluster, node: string): Promise<boolean> {
  const url = `${c.apiUrl(node)}/standby`;
  const probe = [process.execPath, "-e", "fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))", url];
  const ok = await pollUntil(async () => ((await c.lab.exec(c.lab.client, probe, { timeoutMs: 5000 })).code === 0 ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  return Boolean(ok);
}

/** SIGTERM one agent and start it again with the installed program (systemctl restart understudy, in the lab). */
async function restart(c: LabCluster, node: string): Promise<void> {
  await c.signalAgent(node, "SIGTERM", 30_000);
  c.startAgent(node);
}

test("the .deb: upgrade under a running cluster moves nothing by itself, the documented restarts fail nothing over, conffile edits survive; remove keeps the user, purge removes it", T, async (t) => {
  const state = saveDebState();
  if (state.skip) {
    t.skip(state.skip);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), "understudy-pkg-"));
  try {
    assert.equal(userEntry(), "", "no understudy user before the first install");
    const prevDeb = build(`${VERSION}~prev`, work, process.env.UNDERSTUDY_TEST_DEB_PREV);
    const curDeb = build(VERSION, work, process.env.UNDERSTUDY_TEST_DEB);
    const prev = run(["dpkg-deb", "-f", prevDeb, "Version"]).stdout.trim();
    const cur = run(["dpkg-deb", "-f", curDeb, "Version"]).stdout.trim();
    assert.equal(run(["dpkg", "--compare-versions", prev, "lt", cur], { ok: false }).code, 0, `${prev} < ${cur}`);

    // First install: the user, the config's statoverride, a working command.
    dpkgInstall(prevDeb);
    assert.equal(installedVersion(), prev);
    const user = userEntry().split(":");
    assert.equal(user[0], "understudy", "postinst created the user");
    assert.ok(Number(user[2]) < 1000, `a system user (uid ${user[2]})`);
    assert.deepEqual([user[5], user[6]], ["/var/lib/understudy", "/usr/sbin/nologin"]);
    const gid = Number(run(["getent", "group", "understudy"]).stdout.split(":")[2]);
    const confStat = () => statSync(CONF);
    assert.equal(confStat().mode & 0o777, 0o640);
    assert.deepEqual([confStat().uid, confStat().gid], [0, gid], "root:understudy");
    assert.match(run(["/usr/bin/understudy", "--version"]).stdout, new RegExp(VERSION.replace(/\./g, "\\.")));
    assert.equal(run([NODE, "-p", "process.versions.node"]).stdout.trim(), readFileSync(join(REPO, "packaging", "node-version"), "utf8").trim());
    assert.equal(statSync("/var/lib/understudy").mode & 0o777, 0o700);

    // The admin edits the conffile.
    const edit = `# edited by the admin ${Date.now()}\n`;
    appendFileSync(CONF, edit);

    const c = await LabCluster.create({ agentCommand: ["/usr/bin/understudy"], ttl: "5s", fenceMargin: "1s" });
    const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 400 });
    try {
      const first = (await c.leader())!;
      const standbys = c.lab.nodes.map((n) => n.name).filter((n) => n !== first.node);
      const pids = new Map(await Promise.all(c.lab.nodes.map(async (n) => [n.name, await c.agentPid(n.name)] as const)));
      for (const [node, pid] of pids) assert.equal(exeOf(pid), NODE, `${node}'s agent runs the installed node`);

      // 1. The upgrade itself: nothing restarts, nothing moves.
      dpkgInstall(curDeb);
      assert.equal(installedVersion(), cur);
      assert.ok(readFileSync(CONF, "utf8").endsWith(edit), "the admin's edit of the conffile survived the upgrade");
      assert.equal(confStat().mode & 0o777, 0o640);
      assert.deepEqual([confStat().uid, confStat().gid], [0, gid]);
      await new Promise((r) => setTimeout(r, 3000));
      assert.deepEqual(await c.leader(), first, "the upgrade moved nothing: same leader, same term");
      for (const [node, pid] of pids) {
        assert.equal(await c.agentPid(node), pid, `${node}'s agent was not restarted`);
        assert.equal(exeOf(pid), `${NODE} (deleted)`, `${node}'s agent still runs the previous node binary`);
      }
      assert.deepEqual(await c.lab.vipConfiguredOn(), [first.node]);

      // 2. Standbys restart one at a time: the primary does not move.
      for (const node of standbys) {
        await restart(c, node);
        assert.ok(await standbyHealthy(c, node), `${node} is a healthy standby again`);
        assert.equal(exeOf(await c.agentPid(node)), NODE, `${node} runs the upgraded node`);
        assert.deepEqual(await c.leader(), first, `restarting standby ${node} moved nothing`);
      }

      // 3. The one move: a switchover to an upgraded standby (planned, not a failover).
      const target = standbys[0]!;
      const sw = await c.cli(["switchover", "--to", target, "--reason", "package upgrade"], { timeoutMs: 60_000 });
      assert.equal(sw.code, 0, sw.stdout + sw.stderr);
      const second = (await c.leader())!;
      assert.equal(second.node, target);
      assert.ok(second.term > first.term, "second.term > first.term");
      assert.ok(await c.waitServing(target, 10_000), "await c.waitServing(target, 10_000)");

      // 4. The old primary, now a standby, restarts: nothing moves.
      await restart(c, first.node);
      assert.ok(await standbyHealthy(c, first.node), `${first.node} is a healthy standby again`);
      assert.equal(exeOf(await c.agentPid(first.node)), NODE);
      assert.deepEqual(await c.leader(), second, "restarting the old primary moved nothing");
      assert.deepEqual(await c.lab.vipConfiguredOn(), [target]);

      const h = JSON.parse((await c.cli(["history", "--json"], { via: target })).stdout) as { kind: string; from?: string | null; to: string | null }[];
      const moves = h.filter((e) => ["failover", "handover", "switchover", "failback", "failover_forced"].includes(e.kind));
      assert.deepEqual(
        moves.map((e) => [e.kind, e.to]),
        [["switchover", target]],
        `one move, the switchover: ${JSON.stringify(h)}`,
      );

      const samples = await obs.stop();
      assert.ok(samples.length > 20, `observer took samples (${samples.length})`);
      assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
    } finally {
      await obs.stop().catch(() => undefined);
      await c.teardown();
    }

    // remove: the program goes, the user, config and state stay.
    run(["dpkg", "--remove", "understudy"]);
    assert.equal(existsSync("/usr/bin/understudy"), false);
    assert.ok(userEntry().startsWith("understudy:"), "remove keeps the user");
    assert.ok(readFileSync(CONF, "utf8").endsWith(edit), "remove keeps the edited conffile");
    assert.ok(existsSync("/var/lib/understudy"), "remove keeps the state");

    // purge: all of it goes.
    run(["dpkg", "--purge", "understudy"]);
    assert.equal(installedVersion(), null);
    assert.equal(userEntry(), "", "purge removed the user");
    assert.equal(run(["getent", "group", "understudy"], { ok: false }).stdout, "", "purge removed the group");
    assert.equal(existsSync("/etc/understudy"), false);
    assert.equal(existsSync("/var/lib/understudy"), false);
    assert.equal(run(["dpkg-statoverride", "--list", CONF], { ok: false }).stdout, "");
  } finally {
    state.restore();
    rmSync(work, { recursive: true, force: true });
  }
});
