/**
 * Issue 12, failure 2 (certificate renewal -> failover loop) and flap damping, in
 * the namespace lab: real agents (dist/cli/main.js), real etcd with TLS and auth,
 * OpenSSH as the cold daemon, an explicit-FTPS listener per node
 * (harness/ftps-standin.mjs, reading its pair at each connection like a daemon
 * after its reload) probed by a critical `ftps` probe with `ca_file`, and an ARP
 * observer. Needs root and `npm run build`.
 *
 * Both nodes' FTPS listeners and probes use the same files, as file sync would
 * make them: a renewal changes what every node serves and trusts at once.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LabCluster, pollUntil, type Observer } from "./harness/index.js";

const T = { timeout: 300_000 };
const FTPS_PORT = 2121;
const STANDIN = new URL("./harness/ftps-standin.mjs", import.meta.url).pathname;

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}
/** A self-signed pair for 127.0.0.1 in `dir`: { cert, key } PEM text. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "90",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
}
/** Replace a file as certbot or a deploy tool does: write beside it, rename over it. */
function renameInto(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}

/** The agent's JSON log lines. */
function agentLog(c: LabCluster, node: string): { time: number; msg: string; [k: string]: unknown }[] {
  let text = "";
  try {
    text = readFileSync(join(c.lab.logDir, `${node}-agent.log`), "utf8");
  } catch {
    return [];
  }
  return text.split("\n").flatMap((l) => {
    try {
      const j = JSON.parse(l) as { time: number | string; msg: string };
      // The agent logs ISO times (platform/logger.ts).
      return typeof j.msg === "string" ? [{ ...j, time: typeof j.time === "string" ? Date.parse(j.time) : j.time }] : [];
    } catch {
      return [];
    }
  });
}

async function member(c: LabCluster, node: string): Promise<{ role: string; healthy: boolean; probes: Record<string, boolean>; decision: string } | null> {
  const r = await c.lab.etcdctl(["get", `${c.prefix}/lab/members/${node}`, "--print-value-only"], { timeoutMs: 3000 });
  try {
    return JSON.parse(r.stdout.trim());
  } catch {
    return null;
  }
}

/** A sample of `name` whose labels include all of `labels`, from the node's /metrics. */
async function metric(c: LabCluster, node: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const r = await c.lab.exec(c.lab.client, ["curl", "-s", "--max-time", "3", `${c.apiUrl(node)}/metrics`], { timeoutMs: 5000 });
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

async function history(c: LabCluster): Promise<{ kind: string; reason: string; from: string | null; to: string | null; at: string }[]> {
  const r = await c.cli(["history", "--json", "--limit", "100"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function withObserver(c: LabCluster, fn: (obs: Observer) => Promise<void>): Promise<void> {
  const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 280 });
  try {
    await fn(obs);
    const samples = await obs.stop();
    assert.ok(samples.length > 20, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, "never two VIP holders on the wire");
  } finally {
    await obs.stop().catch(() => undefined);
  }
}

test("certificate renewal on the primary: ca_file re-read, the ftps probe stays green, no failover at all", T, async () => {
  const tls = mkdtempSync(join(tmpdir(), "understudy-trust-lab-"));
  const served = join(tls, "served.pem");
  const caFile = join(tls, "ca.pem");
  const old = selfSigned(tls, "old");
  renameInto(served, old.cert + old.key);
  renameInto(caFile, old.cert);
  const c = await LabCluster.create({
    nodes: 2,
    start: false,
    extraProbesYaml: () => `  - { name: ftps, type: ftps, host: 127.0.0.1, port: ${FTPS_PORT}, ca_file: ${caFile}, interval: 500ms, timeout: 2s, fall: 2 }`,
  });
  try {
    for (const n of c.lab.nodes) c.lab.spawn(n, [process.execPath, STANDIN, "127.0.0.1", String(FTPS_PORT), served], { logFile: join(c.lab.logDir, `${n.name}-ftps.log`) });
    for (const n of c.lab.nodes) c.startAgent(n.name);
    const first = await c.waitForLeader({ timeoutMs: 30_000 });
    assert.ok(first, "a primary was elected");
    assert.ok(await c.waitServing(first.node, 15_000), "it serves through the VIP");
    const other = c.lab.nodes.find((n) => n.name !== first.node)!.name;
    assert.ok(await c.waitForStandbys([other], 30_000), `${other} is a healthy standby`);
    assert.ok(await pollUntil(async () => ((await member(c, first.node))?.probes.ftps ? true : undefined), { timeoutMs: 15_000, intervalMs: 200 }), "the ftps probe is up on the primary");
    // The daemon's pid as its process backend recorded it (pidsIn would also list sshd's per-connection children).
    const pidFile = join(c.lab.node(first.node).dir, "state", "daemon.pid");
    // "PID STARTTIME": the start time tells a restart even if the pid were reused.
    const daemonPid = readFileSync(pidFile, "utf8").trim();
    const pid = Number(daemonPid.split(/\s+/)[0]);
    assert.ok(c.lab.pidsIn(c.lab.node(first.node).ns, "sshd").includes(pid), `daemon pid ${pid} runs`);

    await withObserver(c, async () => {
      // The renewal: a new self-signed pair, the served file and the CA file replaced on the primary (and, as
      // synced files, on the standby). The listener serves the new pair from its next connection on.
      const renewed = selfSigned(tls, "renewed");
      const renewedAt = Date.now();
      renameInto(served, renewed.cert + renewed.key);
      renameInto(caFile, renewed.cert);
      // Hold: on main the probe failed here, the daemon restarted, the role went to the standby, whose
      // probe held the old CA from its start: ping-pong. Watch long enough for all of that (fall 2 x 500 ms,
      // a restart with its grace, a handover) to have happened several times.
      const seen: string[] = [];
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        const l = await c.leader();
        const now = l ? `${l.node}/term ${l.term}` : "none";
        if (seen.at(-1) !== now) seen.push(now);
        await new Promise((r) => setTimeout(r, 250));
      }
      // All of them, so a failure shows the ping-pong (on main: n1 -> none -> n2 -> none -> n1 ...).
      assert.deepEqual(seen, [`${first.node}/term ${first.term}`], `no failover, no handover and back (leaders seen: ${seen.join(" -> ")})`);
      const reload = agentLog(c, first.node).find((l) => l.msg === "probe ftps ca_file changed: re-read" && l.time >= renewedAt - 1000);
      assert.ok(reload, "the primary re-read ca_file");
      console.log(`# renewal -> ca_file re-read, probe check green on the new certificate: ${reload.time - renewedAt} ms (probe interval 500 ms)`);
      const m = await member(c, first.node);
      assert.equal(m?.probes.ftps, true, `the ftps probe is green on the new material (${m?.decision})`);
      assert.equal(readFileSync(pidFile, "utf8").trim(), daemonPid, "the daemon was not restarted");
      assert.ok(c.lab.pidsIn(c.lab.node(first.node).ns, "sshd").includes(pid), "and still runs");
      assert.ok(!agentLog(c, first.node).some((l) => l.time >= renewedAt && /^restarting the daemon/.test(l.msg)), "no restart decision");
      const down = agentLog(c, first.node).filter((l) => l.msg === "probe down" && l.time >= renewedAt);
      assert.deepEqual(
        down.map((l) => l.probe),
        [],
        "no probe went down",
      );
      assert.equal(await metric(c, first.node, "understudy_trust_file_reloads_total", { what: "probe ftps ca_file", result: "ok" }), 1, "one reload counted");
      assert.ok(!(await history(c)).some((e) => ["handover", "failover"].includes(e.kind) && Date.parse(e.at) >= renewedAt), "history: no move");
    });
  } finally {
    await c.teardown();
    rmSync(tls, { recursive: true, force: true });
  }
});

test("flap damping: at most max_moves health-driven handovers, then the cluster holds until `understudy flap clear`", T, async () => {
  const MAX = 2;
  const c = await LabCluster.create({
    nodes: 3,
    // Every daemon failure hands over at once: the fastest way to make the role flap.
    daemonYaml: () => "  restarts_before_handover: 0",
    extraYaml: () => `# flap damping under test\n`,
    start: false,
  });
  // election.flap is inside election: rewrite that one line of each config.
  for (const n of c.lab.nodes) {
    const file = c.configPath(n.name);
    const text = readFileSync(file, "utf8").replace(/^election: \{ (.*) \}$/m, `election: { $1, flap: { max_moves: ${MAX}, window: 10m } }`);
    assert.match(text, /flap: \{ max_moves: 2, window: 10m \}/);
    writeFileSync(file, text);
  }
  try {
    for (const n of c.lab.nodes) c.startAgent(n.name);
    assert.ok(await c.waitForLeader({ timeoutMs: 30_000 }), "a primary was elected");
    const names = c.lab.nodes.map((n) => n.name);
    const killDaemon = async (node: string) => {
      const pids = c.lab.pidsIn(c.lab.node(node).ns, "sshd");
      assert.ok(pids.length > 0, `sshd runs on ${node}`);
      for (const pid of pids) await c.lab.exec(c.lab.node(node).ns, ["kill", "-KILL", String(pid)]);
      return pids;
    };
    /** Kill the primary's daemon once every other node is a healthy standby (cool-downs over): a handover has a target. */
    const failPrimary = async () => {
      const l = (await c.leader())!;
      assert.ok(await c.waitServing(l.node, 20_000), `${l.node} serves`);
      assert.ok(
        await c.waitForStandbys(
          names.filter((n) => n !== l.node),
          60_000,
        ),
        "the others are healthy standbys",
      );
      const pids = await killDaemon(l.node);
      return { leader: l, pids };
    };

    await withObserver(c, async () => {
      const moves: string[] = [];
      for (let i = 0; i < MAX; i++) {
        const { leader } = await failPrimary();
        const next = await c.waitForLeader({ not: leader.node, timeoutMs: 20_000 });
        assert.ok(next, `move ${i + 1}: handed over from ${leader.node}`);
        moves.push(`${leader.node}->${next.node}`);
      }
      // One more failure: the cluster has moved max_moves times within the window. It holds.
      const { leader: held, pids } = await failPrimary();
      const restarted = await pollUntil(async () => (c.lab.sshdListeners(c.lab.node(held.node).ns).some((p) => !pids.includes(p)) ? true : undefined), { timeoutMs: 15_000, intervalMs: 50 });
      assert.ok(restarted, "the daemon was restarted in place");
      const damped = await pollUntil(async () => (await history(c)).find((e) => e.kind === "flap_damped"), { timeoutMs: 15_000, intervalMs: 250 });
      assert.ok(damped, "history records the damping");
      assert.match(damped.reason, /2 health-driven handovers within 10m \(election\.flap\.max_moves 2\)/);
      const until = Date.now() + 8000;
      while (Date.now() < until) {
        assert.equal((await c.leader())?.node, held.node, `no third move (moves: ${moves.join(", ")})`);
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match((await member(c, held.node))?.decision ?? "", /flap damping/, "the decision says why");
      assert.equal(await metric(c, held.node, "understudy_flap_damped"), 1, "the alert metric is set on the primary");
      const standby = names.find((n) => n !== held.node)!;
      assert.equal(
        await pollUntil(async () => ((await metric(c, standby, "understudy_flap_damped")) === 1 ? 1 : undefined), { timeoutMs: 20_000, intervalMs: 500 }),
        1,
        "and on a standby: the count is the cluster's",
      );
      // It stays put through a further failure too.
      await killDaemon(held.node);
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal((await c.leader())?.node, held.node, "still holding after another failure");

      // The operator clears it: the next failure hands over again.
      const cleared = await c.cli(["flap", "clear", "--reason", "lab: cause fixed"]);
      assert.equal(cleared.code, 0, cleared.stderr + cleared.stdout);
      assert.match(cleared.stdout, /flap damping cleared/);
      const unauthorized = await c.cli(["flap", "clear"], { token: false });
      assert.equal(unauthorized.code, 4, "clearing needs the token");
      assert.ok(
        (await history(c)).some((e) => e.kind === "flap_clear"),
        "history records the clear",
      );
      const { leader } = await failPrimary();
      const next = await c.waitForLeader({ not: leader.node, timeoutMs: 20_000 });
      assert.ok(next, "after the clear, a failing primary hands over again");
      assert.equal(await pollUntil(async () => ((await metric(c, next.node, "understudy_flap_damped")) === 0 ? 0 : undefined), { timeoutMs: 15_000, intervalMs: 500 }), 0, "the alert metric is clear");
    });
  } finally {
    await c.teardown();
  }
});
