// Issue 12, failure 2: trust files renewed while the agent runs are re-read
// (src/platform/reloading-file.ts): a probe's ca_file, tls_file targets, the API
// token and TLS pair, the sync key. Real temp files, replaced by atomic rename
// and by in-place write; a bad new file keeps the last good content.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, connect as tlsConnect, createSecureContext } from "node:tls";
import { after, before, describe, it } from "node:test";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { reloadingApiTls, reloadingToken } from "../../../src/api/token.js";
import type { NodeView } from "../../../src/ha/events.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { ReloadingFile, type ReloadReporter } from "../../../src/platform/reloading-file.js";
import { createProbe, createProbeHealth, type ProbeConfig } from "../../../src/probes/index.js";
import { RsyncPuller } from "../../../src/sync/transport.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { StrictCommandRunner } from "../../fakes/command.js";

let dir: string;
const clock = new SystemClock();

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}
/** A self-signed certificate for 127.0.0.1: `<name>.pem`, `<name>.key`. */
function selfSigned(name: string): { cert: string; key: string } {
  openssl([
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
    "30",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
}
/** Replace `file` the way a renewal tool does: write beside it, rename over it. */
function renameInto(file: string, content: string, mode = 0o644): void {
  writeFileSync(`${file}.new`, content, { mode });
  renameSync(`${file}.new`, file);
}
function recorder(): ReloadReporter & { ok: string[]; refused: string[] } {
  const ok: string[] = [];
  const refused: string[] = [];
  return { ok, refused, reloaded: (what) => ok.push(what), rejected: (what, _f, problem) => refused.push(`${what}: ${problem}`) };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(fn: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

let A: { cert: string; key: string };
let B: { cert: string; key: string };
before(() => {
  dir = mkdtempSync(join(tmpdir(), "understudy-trust-"));
  A = selfSigned("a");
  B = selfSigned("b");
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("ReloadingFile", () => {
  it("re-reads after an atomic rename and after an in-place write; a refused file keeps the last good content", async () => {
    const file = join(dir, "value.txt");
    writeFileSync(file, "one");
    const rep = recorder();
    const f = new ReloadingFile(
      "test value",
      [file],
      async () => {
        const text = readFileSync(file, "utf8");
        if (!/^[a-z]+$/.test(text)) throw new Error(`bad content ${JSON.stringify(text)}`);
        return text;
      },
      rep,
    );
    assert.equal(await f.init(), "one");
    assert.equal(await f.get(), "one", "unchanged: not re-read");
    assert.deepEqual(rep.ok, []);
    renameInto(file, "two");
    assert.equal(await f.get(), "two", "atomic rename (new inode)");
    writeFileSync(file, "three");
    assert.equal(await f.get(), "three", "in-place write (same inode, new size/mtime)");
    writeFileSync(file, "fours");
    writeFileSync(file, "fives");
    assert.equal(await f.get(), "fives", "two same-size writes in a row: the stamp still differs (ctime/mtime in ns)");
    writeFileSync(file, "BROKEN 1");
    assert.equal(await f.get(), "fives", "a refused file keeps the last good content");
    assert.equal(await f.get(), "fives");
    assert.equal(rep.refused.length, 1, "refused once per change, not on every use");
    assert.match(rep.refused[0]!, /test value: bad content "BROKEN 1"/);
    rmSync(file);
    assert.equal(await f.get(), "fives", "a deleted file keeps the last good content");
    renameInto(file, "six");
    assert.equal(await f.get(), "six", "and a good file afterwards is taken");
    assert.equal(rep.ok.length, 4);
  });
});

/** A tiny explicit-FTPS server (220, AUTH TLS, 234, handshake) that reads its pair from `pemFile` per connection, like a daemon after a reload. */
async function ftpsServer(pemFile: string): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => {
    sock.write("220 stand-in ready\r\n");
    sock.once("data", () => {
      sock.write("234 AUTH TLS ok\r\n");
      const pem = readFileSync(pemFile, "utf8");
      const secure = new TLSSocket(sock, { isServer: true, secureContext: createSecureContext({ cert: pem, key: pem }) });
      secure.on("error", () => sock.destroy());
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

const base = { host: "127.0.0.1", expect_status: 200, interval: 1000, timeout: 3000, rise: 1, fall: 1, critical: true } as const;

describe("ftps probe: ca_file renewal", () => {
  it("goes green on the renewed certificate without a restart; a broken ca_file keeps the previous CA", async () => {
    const served = join(dir, "served.pem");
    const caFile = join(dir, "ca-file.pem");
    renameInto(served, A.cert + A.key);
    renameInto(caFile, A.cert);
    const { server, port } = await ftpsServer(served);
    const rep = recorder();
    try {
      const probe = createProbe({ ...base, name: "ftps", type: "ftps", port, ca_file: caFile } as ProbeConfig, clock, rep);
      const check = () => probe.check(new AbortController().signal);
      const first = await check();
      assert.ok(first.ok, first.detail);
      // The renewal: a new self-signed pair served, the CA file replaced (atomic rename).
      renameInto(served, B.cert + B.key);
      const stale = await check();
      assert.equal(stale.ok, false, "the new certificate is not trusted by the old CA");
      assert.equal(stale.data?.shared, true, "an untrusted certificate is a failure the standby shares (synced files)");
      renameInto(caFile, B.cert);
      const renewed = await check();
      assert.ok(renewed.ok, `re-read ca_file: ${renewed.detail}`);
      assert.deepEqual(rep.ok, ["probe ftps ca_file"]);
      // A half-written CA (in-place write) is refused: the probe keeps trusting B.
      writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\ntruncated");
      const kept = await check();
      assert.ok(kept.ok, kept.detail);
      assert.equal(rep.refused.length, 1);
      assert.match(rep.refused[0]!, /^probe ftps ca_file: /);
    } finally {
      server.close();
    }
  });

  it("https probe: a renewed ca_file is used by the next check", async () => {
    const caFile = join(dir, "https-ca.pem");
    renameInto(caFile, A.cert);
    const { createServer: createHttps } = await import("node:https");
    const srv = createHttps({ key: B.key, cert: B.cert }, (_q, res) => res.end("ok"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    try {
      const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
      const probe = createProbe({ ...base, name: "admin", type: "http", url, ca_file: caFile } as ProbeConfig, clock);
      const bad = await probe.check(new AbortController().signal);
      assert.equal(bad.ok, false);
      assert.equal(bad.data?.shared, true, bad.detail);
      writeFileSync(caFile, B.cert);
      const good = await probe.check(new AbortController().signal);
      assert.ok(good.ok, good.detail);
    } finally {
      srv.close();
    }
  });
});

describe("tls_file probe: targets", () => {
  it("a changed file is checked within the change poll, not the hourly interval; a broken one is a shared failure", async () => {
    const file = join(dir, "served-cert.pem");
    renameInto(file, A.cert);
    const health = createProbeHealth([{ ...base, name: "certs", type: "tls_file", files: [file], interval: 3_600_000, fall: 1 } as ProbeConfig], { clock, logger: silentLogger() });
    (health as unknown as { deps: { changePollMs: number } }).deps.changePollMs = 50;
    health.start();
    try {
      await until(async () => (health.criticalUp() ? true : undefined));
      assert.equal(health.sharedFailure(), null);
      writeFileSync(file, "not a certificate");
      await until(async () => (health.criticalUp() ? undefined : true), 3000);
      assert.match(health.sharedFailure() ?? "", /^certs: no PEM certificate in /, "tls_file failures are shared");
      renameInto(file, B.cert);
      await until(async () => (health.criticalUp() ? true : undefined), 3000);
      assert.equal(health.sharedFailure(), null);
    } finally {
      await health.stop();
    }
  });
});

const view: NodeView = {
  node: "n1",
  acting: "primary",
  term: 7,
  leaseRemainingMs: 3000,
  etcdReachable: true,
  decision: "",
  sinceLastCycleMs: 1,
  vipHeld: true,
  daemonRunning: true,
  probes: [],
  healthy: true,
  notReady: null,
};

describe("API: token file and TLS pair", () => {
  it("a rotated token is accepted and the old one refused; a too-short token keeps the current one", async () => {
    const file = join(dir, "api-token");
    const t1 = "a".repeat(32);
    const t2 = "b".repeat(32);
    renameInto(file, t1, 0o600);
    const rep = recorder();
    const tokenSource = await reloadingToken(file, rep);
    const fc = new FakeClock();
    const app = buildApi({
      view: () => view,
      coordinator: new FakeCoordinator(fc),
      metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
      clock: fc,
      log: silentLogger(),
      token: tokenSource.peek(),
      tokenSource,
      authReads: false,
      livenessMaxMs: 5000,
      failbackPreferred: null,
    });
    const pause = async (token: string) => (await app.inject({ method: "POST", url: "/flap/clear", headers: { authorization: `Bearer ${token}` }, payload: {} })).statusCode;
    try {
      assert.equal(await pause(t1), 202);
      renameInto(file, `${t2}\n`, 0o600);
      assert.equal(await pause(t1), 401, "the old token is refused at once");
      assert.equal(await pause(t2), 202, "the new token works without a restart");
      writeFileSync(file, "short\n");
      assert.equal(await pause(t2), 202, "a refused token file keeps the last good token");
      assert.match(rep.refused[0] ?? "", /api token_file: .*shorter than 16/);
    } finally {
      await app.close();
    }
  });

  it("a renewed certificate is served to new connections without a restart (setSecureContext); a mismatched pair is refused", async () => {
    const key = join(dir, "api.key");
    const cert = join(dir, "api.pem");
    renameInto(key, A.key, 0o600);
    renameInto(cert, A.cert);
    const rep = recorder();
    const tlsSource = await reloadingApiTls({ key, cert }, rep);
    const app = buildApi({
      view: () => view,
      coordinator: new FakeCoordinator(new FakeClock()),
      metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
      clock,
      log: silentLogger(),
      token: null,
      authReads: false,
      livenessMaxMs: 5000,
      failbackPreferred: null,
      tls: tlsSource.peek(),
      tlsSource,
      tlsCheckMs: 50,
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const servedCn = () =>
      new Promise<string>((resolve, reject) => {
        const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
          resolve(String(s.getPeerCertificate().subject.CN));
          s.destroy();
        });
        s.on("error", reject);
      });
    try {
      assert.equal(await servedCn(), "a");
      // Key first, then certificate: in between the pair does not match and is refused, A stays.
      renameInto(key, B.key, 0o600);
      await sleep(200);
      assert.equal(await servedCn(), "a", "a key that does not match the certificate is not used");
      assert.ok(
        rep.refused.some((r) => /^api tls: /.test(r)),
        rep.refused.join("; "),
      );
      renameInto(cert, B.cert);
      assert.equal(await until(async () => ((await servedCn()) === "b" ? "b" : undefined), 3000), "b");
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/primary", ca: B.cert, checkServerIdentity: () => undefined }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(status, 200, "verified against the new certificate");
    } finally {
      await app.close();
    }
  });
});

describe("sync transport: key and known_hosts", () => {
  it("a changed key or known_hosts (rename, in-place write) closes the SSH master connection before the next pull", async () => {
    const runner = new StrictCommandRunner();
    const key = join(dir, "sync_ed25519");
    const knownHosts = join(dir, "known_hosts");
    renameInto(key, "key one\n", 0o600);
    renameInto(knownHosts, "198.18.0.11 ssh-ed25519 AAAA-one\n");
    const ssh = { user: "understudy-sync", key, knownHosts, stateDir: "/run/understudy/ssh" };
    const rep = recorder();
    const puller = new RsyncPuller({ runner, clock: new FakeClock(), ssh, reloads: rep });
    const req = { primary: "198.18.0.11", root: "ssh", staging: "/var/lib/understudy/staging/ssh" };
    const exitMaster = ["/usr/bin/ssh", "-F", "/dev/null", "-o", "ControlPath=/run/understudy/ssh/ssh-%C", "-o", "LogLevel=ERROR", "-p", "22", "-l", "understudy-sync", "-O", "exit", "198.18.0.11"];
    runner.expect(puller.argv(req));
    await puller.pull(req);
    runner.expect(puller.argv(req));
    await puller.pull(req);
    assert.equal(runner.calls.length, 2, "unchanged: the master connection is reused");
    renameInto(key, "key two\n", 0o600);
    runner.expect(exitMaster).expect(puller.argv(req));
    await puller.pull(req);
    writeFileSync(knownHosts, "198.18.0.11 ssh-ed25519 AAAA-two\n");
    runner.expect(exitMaster).expect(puller.argv(req));
    await puller.pull(req);
    runner.done();
    assert.deepEqual(rep.ok, ["sync ssh key/known_hosts", "sync ssh key/known_hosts"]);
  });
});
