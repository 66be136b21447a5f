/**
 * `understudy status` (the built CLI, its shebang flags) against a real etcd on
 * 127.0.0.1 written by the agent's own EtcdCoordinator.
 *
 * On the lab's secure etcd (client TLS with client certificates, auth with a
 * least-privilege role; bench/cli/etcd.ts `secure`): `status --config` (gRPC,
 * the node's own TLS material and etcd user) equals EtcdCoordinator.snapshot(),
 * a cluster outside the role is a coded US_E_ETCD_AUTH, a cluster without a
 * leader exits 6, and with the etcd down `--config` falls back to a real REST
 * API (buildApi) on loopback.
 *
 * Plain http on purpose, the second test: `status --etcd URL --cluster NAME`
 * reads etcd's HTTP/JSON gateway, which etcd 3.4 cannot serve once it wants
 * client certificates and auth (src/cli/etcd-grpc-read.ts), and listing the
 * other clusters ("did you mean") needs a key range a least-privilege role
 * does not reach. That decoder is proven on a plain etcd.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { startEtcd } from "../../bench/cli/etcd.js";
import { buildApi } from "../../src/api/server.js";
import { AgentMetrics } from "../../src/api/metrics.js";
import { readEtcdSecurity } from "../../src/config/etcd-security.js";
import { EtcdCoordinator } from "../../src/coordinator/etcd.js";
import type { MemberRecord } from "../../src/coordinator/port.js";
import type { NodeView } from "../../src/ha/events.js";
import { SystemClock } from "../../src/platform/clock.js";
import { silentLogger } from "../../src/platform/logger.js";
import { CLI, NODE_FLAGS } from "./harness/index.js";

const cli = (...args: string[]) => spawnSync(process.execPath, [...NODE_FLAGS, CLI, ...args], { encoding: "utf8", timeout: 20_000 });

/** The CLI without blocking this process's event loop (needed while this process serves the API it asks). */
function cliAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}

function member(node: string, role: "primary" | "standby"): MemberRecord {
  return {
    node,
    role,
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 2,
    address: "127.0.0.1",
    version: "lab",
    decision: `no action (${node})`,
    probes: {},
    vipHeld: role === "primary",
    daemonRunning: role === "primary",
    updatedAt: new Date().toISOString(),
  };
}

test(
  "status --config on TLS + client certificates + auth etcd equals the agent's snapshot; coded refusal outside the role; exit 6 no primary; API fallback",
  { timeout: 120_000, skip: existsSync(CLI) ? false : "run `npm run build` first" },
  async (t) => {
    const etcd = await startEtcd({ secure: true, rolePrefixes: ["/understudy/lab/", "/understudy/quiet/"], startTimeoutMs: 30_000 });
    t.after(() => etcd.stop());
    assert.match(etcd.endpoint, /^https:/);
    const clock = new SystemClock();
    const security = await readEtcdSecurity("/etc/understudy/understudy.yaml", etcd.securitySettings!);
    const coord = (cluster: string) =>
      new EtcdCoordinator({ endpoints: [etcd.endpoint], prefix: "/understudy", cluster, requestTimeoutMs: 3000, dialTimeoutMs: 3000, clock, log: silentLogger(), security });
    const lab = coord("lab");
    t.after(() => lab.close());
    const lease = await lab.grantLease(30_000);
    assert.equal((await lab.campaign("n1", lease.id, new Date().toISOString())).won, true);
    for (const m of [member("n1", "primary"), member("n2", "standby")]) await lab.putMember(m, lease.id);
    await lab.setPaused(true);
    await lab.ban({ node: "n2", until: new Date(Date.now() + 60_000).toISOString(), reason: "lab", requestedBy: "test" }, 60_000);

    const dir = mkdtempSync(join(tmpdir(), "cli-status-lab-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = (name: string, endpoint: string, api?: string) => {
      const file = join(dir, name);
      writeFileSync(
        file,
        `cluster: lab\nnode: { name: n1, address: 127.0.0.1 }\netcd: { endpoints: ["${endpoint}"]${etcd.securityYaml} }\ndaemon: { backend: systemd, unit: ssh.service }\n${api ? `api: { listen: "${api}" }\n` : ""}`,
      );
      return file;
    };
    const file = config("n1.yaml", etcd.endpoint);
    const r = await cliAsync("status", "--config", file, "--json");
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const want = await lab.snapshot();
    assert.deepEqual(
      { ...got, cluster: undefined, source: undefined, vipProblems: undefined },
      { ...want, cluster: undefined, source: undefined, vipProblems: undefined },
      "the CLI over TLS + auth reads exactly what the agent reads",
    );
    assert.equal(got.source, "etcd");
    assert.deepEqual(got.vipProblems, [], "the primary holds the VIP: no VIP finding (src/ha/vip-truth.ts)");
    const table = await cliAsync("status", "--config", file);
    assert.match(table.stdout, /\+ Cluster: lab \(revision \d+\) \[PAUSED/);

    // The role reaches /understudy/lab/ and /understudy/quiet/ only: another cluster is refused by etcd, a coded error.
    const outside = await cliAsync("status", "--config", file, "--cluster", "lba");
    assert.notEqual(outside.status, 0, outside.stdout);
    assert.match(outside.stderr, /^understudy: US_E_ETCD_AUTH: .*role does not allow this key range/m, "a coded error naming the cause");

    const other = coord("quiet");
    t.after(() => other.close());
    const l2 = await other.grantLease(30_000);
    await other.putMember(member("q1", "standby"), l2.id);
    const none = await cliAsync("status", "--config", file, "--cluster", "quiet");
    assert.equal(none.status, 6, none.stderr);
    assert.match(none.stdout, /\| q1 +\|/);

    // The config's etcd is unreachable from here (a closed port); its API (a real buildApi over this etcd) answers.
    const view: NodeView = {
      node: "n1",
      acting: "primary",
      term: 1,
      leaseRemainingMs: 3000,
      etcdReachable: true,
      decision: "",
      sinceLastCycleMs: 0,
      vipHeld: true,
      daemonRunning: true,
      probes: [],
      healthy: true,
      notReady: null,
    };
    const app = buildApi({
      view: () => view,
      coordinator: lab,
      metrics: new AgentMetrics(() => view, { cluster: "lab", node: "n1" }),
      clock,
      log: silentLogger(),
      token: null,
      authReads: false,
      livenessMaxMs: 5000,
      failbackPreferred: null,
    });
    const apiUrl = await app.listen({ host: "127.0.0.1", port: 0 });
    t.after(() => app.close());
    const closed = await closedPort();
    const fb = await cliAsync("status", "--config", config("down.yaml", `https://127.0.0.1:${closed}`, new URL(apiUrl).host), "--json");
    assert.equal(fb.status, 0, fb.stderr);
    assert.match(fb.stderr, new RegExp(`US_E_ETCD_UNREACHABLE: etcd is unreachable at https://127\\.0\\.0\\.1:${closed}: .*; asking this node's API at http://127\\.0\\.0\\.1:\\d+ instead`));
    const viaApi = JSON.parse(fb.stdout) as Record<string, unknown>;
    assert.equal(viaApi.source, "api");
    assert.deepEqual((viaApi.members as MemberRecord[]).map((m) => m.node).sort(), ["n1", "n2"]);
  },
);

function closedPort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// Plain http on purpose (see the header): the JSON gateway reader behind `status --etcd URL --cluster NAME`.
test(
  "plain etcd: status over etcd's JSON gateway equals the agent's snapshot; exit 5 unknown, 6 no primary; API fallback",
  { timeout: 120_000, skip: existsSync(CLI) ? false : "run `npm run build` first" },
  async (t) => {
    const etcd = await startEtcd();
    t.after(() => etcd.stop());
    const clock = new SystemClock();
    const coord = (cluster: string) => new EtcdCoordinator({ endpoints: [etcd.endpoint], prefix: "/understudy", cluster, requestTimeoutMs: 3000, dialTimeoutMs: 3000, clock, log: silentLogger() });
    const lab = coord("lab");
    t.after(() => lab.close());
    const lease = await lab.grantLease(30_000);
    assert.equal((await lab.campaign("n1", lease.id, new Date().toISOString())).won, true);
    for (const m of [member("n1", "primary"), member("n2", "standby")]) await lab.putMember(m, lease.id);
    await lab.setPaused(true);
    await lab.ban({ node: "n2", until: new Date(Date.now() + 60_000).toISOString(), reason: "lab", requestedBy: "test" }, 60_000);

    const r = cli("status", "--etcd", etcd.endpoint, "--cluster", "lab", "--json");
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const want = await lab.snapshot();
    assert.deepEqual(
      { ...got, cluster: undefined, source: undefined, vipProblems: undefined },
      { ...want, cluster: undefined, source: undefined, vipProblems: undefined },
      "the gateway read decodes exactly what etcd3 decodes",
    );
    assert.equal(got.source, "etcd");
    assert.deepEqual(got.vipProblems, [], "the primary holds the VIP: no VIP finding (src/ha/vip-truth.ts)");
    const table = cli("status", "--etcd", etcd.endpoint, "--cluster", "lab");
    assert.match(table.stdout, /\+ Cluster: lab \(revision \d+\) \[PAUSED/);

    const unknown = cli("status", "--etcd", etcd.endpoint, "--cluster", "lba");
    assert.equal(unknown.status, 5, unknown.stderr);
    assert.match(unknown.stderr, /US_E_CLUSTER_UNKNOWN: no cluster lba .*clusters under \/understudy\/: lab; did you mean lab\?/);

    const other = coord("quiet");
    t.after(() => other.close());
    const l2 = await other.grantLease(30_000);
    await other.putMember(member("q1", "standby"), l2.id);
    const none = cli("status", "--etcd", etcd.endpoint, "--cluster", "quiet");
    assert.equal(none.status, 6, none.stderr);
    assert.match(none.stdout, /\| q1 +\|/);

    // The config's etcd is unreachable from here (a closed port); its API (a real buildApi over this etcd) answers.
    const view: NodeView = {
      node: "n1",
      acting: "primary",
      term: 1,
      leaseRemainingMs: 3000,
      etcdReachable: true,
      decision: "",
      sinceLastCycleMs: 0,
      vipHeld: true,
      daemonRunning: true,
      probes: [],
      healthy: true,
      notReady: null,
    };
    const app = buildApi({
      view: () => view,
      coordinator: lab,
      metrics: new AgentMetrics(() => view, { cluster: "lab", node: "n1" }),
      clock,
      log: silentLogger(),
      token: null,
      authReads: false,
      livenessMaxMs: 5000,
      failbackPreferred: null,
    });
    const apiUrl = await app.listen({ host: "127.0.0.1", port: 0 });
    t.after(() => app.close());
    const dir = mkdtempSync(join(tmpdir(), "cli-status-lab-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "n1.yaml");
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    writeFileSync(
      file,
      `cluster: lab\nnode: { name: n1, address: 127.0.0.1 }\netcd: { endpoints: ["http://127.0.0.1:${closed}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${new URL(apiUrl).host}" }\n`,
    );
    const fb = await cliAsync("status", "--config", file, "--json");
    assert.equal(fb.status, 0, fb.stderr);
    assert.match(
      fb.stderr,
      new RegExp(`US_E_ETCD_UNREACHABLE: etcd is unreachable at http://127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED.*; asking this node's API at http://127\\.0\\.0\\.1:\\d+ instead`),
    );
    const viaApi = JSON.parse(fb.stdout) as Record<string, unknown>;
    assert.equal(viaApi.source, "api");
    assert.deepEqual((viaApi.members as MemberRecord[]).map((m) => m.node).sort(), ["n1", "n2"]);
  },
);
