/**
 * etcd over TLS with client certificates and authentication, on loopback
 * (real etcd 3.4): the agent's coordinator is refused without a certificate,
 * with a wrong CA, with a user lacking the role and with the right user on
 * another cluster's prefix, and each refusal is a coded error naming the
 * cause (US_E_ETCD_TLS / US_E_ETCD_AUTH), not a raw gRPC string.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readEtcdSecurity, type EtcdSecuritySettings } from "../../src/config/etcd-security.js";
import { EtcdCoordinator } from "../../src/coordinator/etcd.js";
import { UnderstudyError } from "../../src/errors/catalogue.js";
import { SystemClock } from "../../src/platform/clock.js";
import { silentLogger } from "../../src/platform/logger.js";
import { freePort, pollUntil, runOk } from "./harness/index.js";
import { LabPki, type CertFiles } from "./harness/pki.js";

let etcd: ChildProcess | undefined;
let dir: string;
let endpoint: string;
let pki: LabPki;
let otherPki: LabPki;
let client: CertFiles;
let strangerClient: CertFiles;
const coordinators: EtcdCoordinator[] = [];
const PREFIX = "/understudy";

function secretFile(name: string, content: string): string {
  const f = join(dir, name);
  writeFileSync(f, `${content}\n`, { mode: 0o600 });
  return f;
}

async function coordinator(cluster: string, settings: EtcdSecuritySettings): Promise<EtcdCoordinator> {
  const security = await readEtcdSecurity("/etc/understudy/understudy.yaml", settings);
  const c = new EtcdCoordinator({
    endpoints: [endpoint],
    prefix: PREFIX,
    cluster,
    requestTimeoutMs: 3000,
    dialTimeoutMs: 3000,
    clock: new SystemClock(),
    log: silentLogger(),
    security,
  });
  coordinators.push(c);
  return c;
}

const etcdctl = (args: string[], user = "root:rootpw") =>
  runOk(["etcdctl", `--endpoints=${endpoint}`, `--cacert=${pki.ca.cert}`, `--cert=${client.cert}`, `--key=${client.key}`, `--user=${user}`, ...args], {
    timeoutMs: 15_000,
    env: { ETCDCTL_API: "3" },
  });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "understudy-etcd-tls-"));
  pki = await LabPki.create(dir, "lab");
  otherPki = await LabPki.create(dir, "other");
  const server = await pki.issue("etcd", { sans: ["IP:127.0.0.1", "DNS:localhost"], usage: "both" });
  client = await pki.issue("understudy-node", { usage: "client" });
  strangerClient = await otherPki.issue("stranger", { usage: "client" });
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  endpoint = `https://127.0.0.1:${clientPort}`;
  etcd = spawn(
    "/usr/bin/etcd",
    [
      "--data-dir",
      join(dir, "data"),
      "--name",
      "secure",
      "--listen-client-urls",
      endpoint,
      "--advertise-client-urls",
      endpoint,
      "--listen-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-cluster",
      `secure=http://127.0.0.1:${peerPort}`,
      "--client-cert-auth",
      "--trusted-ca-file",
      pki.ca.cert,
      "--cert-file",
      server.cert,
      "--key-file",
      server.key,
    ],
    { stdio: "ignore" },
  );
  const up = await pollUntil(
    async () =>
      await etcdctl(["endpoint", "health"], "ignored:ignored").then(
        () => true,
        () => undefined,
      ),
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  assert.ok(up, "etcd with TLS came up");
  // The setup docs/security.md describes: root, then a least-privilege role per cluster.
  await etcdctl(["user", "add", "root", "--new-user-password=rootpw"]);
  await etcdctl(["role", "add", "root"]).catch(() => undefined);
  await etcdctl(["user", "grant-role", "root", "root"]);
  await etcdctl(["auth", "enable"]);
  await etcdctl(["role", "add", "understudy-c1"]);
  await etcdctl(["role", "grant-permission", "understudy-c1", "readwrite", `${PREFIX}/c1/`, "--prefix=true"]);
  await etcdctl(["user", "add", "understudy-c1", "--new-user-password=c1-secret-password"]);
  await etcdctl(["user", "grant-role", "understudy-c1", "understudy-c1"]);
  await etcdctl(["user", "add", "norole", "--new-user-password=norole-password"]);
});

after(async () => {
  for (const c of coordinators) await c.close().catch(() => undefined);
  etcd?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const tlsOk = () => ({ ca: pki.ca.cert, cert: client.cert, key: client.key });

async function refusedWith(c: EtcdCoordinator, code: string, cause: RegExp): Promise<void> {
  await assert.rejects(c.snapshot(), (e) => {
    assert.ok(e instanceof UnderstudyError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, cause);
    return true;
  });
}

test("the right certificate, user and prefix: the coordinator works (snapshot, lease, campaign)", { timeout: 60_000 }, async () => {
  const c = await coordinator("c1", { tls: tlsOk(), auth: { user: "understudy-c1", password_file: secretFile("c1-pw", "c1-secret-password") } });
  const snap = await c.snapshot();
  assert.equal(snap.leader, null);
  const lease = await c.grantLease(5000);
  const won = await c.campaign("n1", lease.id, new Date().toISOString());
  assert.equal(won.won, true);
});

test("no client certificate: refused by etcd, reported as US_E_ETCD_TLS naming the client certificate", { timeout: 60_000 }, async () => {
  const c = await coordinator("c1", { tls: { ca: pki.ca.cert }, auth: { user: "understudy-c1", password_file: secretFile("c1-pw2", "c1-secret-password") } });
  await refusedWith(c, "US_E_ETCD_TLS", /client certificate|TLS handshake/);
});

test("a CA that did not sign etcd's certificate: US_E_ETCD_TLS naming etcd.tls.ca", { timeout: 60_000 }, async () => {
  const c = await coordinator("c1", { tls: { ca: otherPki.ca.cert, cert: strangerClient.cert, key: strangerClient.key } });
  await refusedWith(c, "US_E_ETCD_TLS", /not signed by the CA in etcd\.tls\.ca/);
});

test("a wrong password, and a user without the role: US_E_ETCD_AUTH", { timeout: 60_000 }, async () => {
  const wrong = await coordinator("c1", { tls: tlsOk(), auth: { user: "understudy-c1", password_file: secretFile("bad-pw", "not-the-password") } });
  await refusedWith(wrong, "US_E_ETCD_AUTH", /refused the user or password/);
  const norole = await coordinator("c1", { tls: tlsOk(), auth: { user: "norole", password_file: secretFile("norole-pw", "norole-password") } });
  await refusedWith(norole, "US_E_ETCD_AUTH", /role does not allow this key range/);
});

test("the right user on another cluster's prefix: US_E_ETCD_AUTH, and nothing written there", { timeout: 60_000 }, async () => {
  const c = await coordinator("c2", { tls: tlsOk(), auth: { user: "understudy-c1", password_file: secretFile("c1-pw3", "c1-secret-password") } });
  await refusedWith(c, "US_E_ETCD_AUTH", /role does not allow/);
  const lease = await c.grantLease(5000).catch(() => null);
  if (lease) await assert.rejects(c.campaign("n1", lease.id, ""), (e) => e instanceof UnderstudyError && e.code === "US_E_ETCD_AUTH");
  const keys = await etcdctl(["get", `${PREFIX}/c2/`, "--prefix", "--keys-only"]);
  assert.equal(keys.stdout.trim(), "", "no key under the other cluster");
});

test("`understudy etcd setup --apply` creates the least-privilege role and user; the agent then works on that cluster only", { timeout: 90_000 }, async (t) => {
  const cli = join(process.cwd(), "dist", "cli", "main.js");
  const pw = secretFile("c3-pw", "c3-password-0123456789");
  const config = join(dir, "c3.yaml");
  writeFileSync(
    config,
    [
      "cluster: c3",
      "node: { name: n1, address: 198.18.0.11 }",
      `etcd: { endpoints: ["${endpoint}"], tls: { ca: ${pki.ca.cert}, cert: ${client.cert}, key: ${client.key} }, auth: { user: understudy-c3, password_file: ${pw} } }`,
      "daemon: { backend: systemd, unit: ssh.service }",
      "",
    ].join("\n"),
  );
  const printed = await runOk([process.execPath, cli, "etcd", "setup", "--config", config], { timeoutMs: 30_000 });
  assert.match(printed.stdout, /role grant-permission understudy-c3 readwrite \/understudy\/c3\/ --prefix=true/);
  assert.doesNotMatch(printed.stdout, /c3-password/, "the password is never printed");
  const applied = await runOk([process.execPath, cli, "etcd", "setup", "--config", config, "--apply", "--root-password-file", secretFile("root-pw", "rootpw")], { timeoutMs: 60_000 });
  assert.match(applied.stdout, /done: etcdctl user grant-role understudy-c3 understudy-c3/);
  const c3 = await coordinator("c3", { tls: tlsOk(), auth: { user: "understudy-c3", password_file: pw } });
  assert.equal((await c3.snapshot()).leader, null);
  const elsewhere = await coordinator("c1", { tls: tlsOk(), auth: { user: "understudy-c3", password_file: pw } });
  await refusedWith(elsewhere, "US_E_ETCD_AUTH", /role does not allow/);
  // `understudy status` with the same config speaks TLS + auth too: nothing written under c3 yet, so exit 5.
  const { run } = await import("./harness/index.js");
  const status = await run([process.execPath, cli, "status", "--config", config], { timeoutMs: 30_000 });
  assert.equal(status.code, 5, `${status.stdout}${status.stderr}`);
  assert.match(status.stderr, /US_E_CLUSTER_UNKNOWN/);
  t.diagnostic(`status --config over TLS + client certificate + auth (gRPC): ${Math.round(status.ms)} ms wall`);
  // Applying twice changes nothing and does not fail.
  await runOk([process.execPath, cli, "etcd", "setup", "--config", config, "--apply", "--root-password-file", join(dir, "root-pw")], { timeoutMs: 60_000 });
});
