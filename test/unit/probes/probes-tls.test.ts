// Certificate expiry: the ftps probe (src/probes/ftps.ts) against a tiny explicit-FTPS
// server on 127.0.0.1, https URLs of the http probe, and the tls_file probe
// (src/probes/tlsfile.ts). Certificates are made at test time with openssl; "expired"
// is tested by moving the probe's wall clock forward, since openssl 3.0 cannot backdate.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { SystemClock } from "../../../src/platform/clock.js";
import { createProbe, type ProbeConfig } from "../../../src/probes/index.js";

const HOST = "127.0.0.1";
const DAY = 86_400_000;
const TIMEOUT = 2000;

/** The real clock, with the wall clock moved `shiftMs` ahead. */
class ShiftedClock extends SystemClock {
  constructor(private readonly shiftMs: number) {
    super();
  }
  override wallMs(): number {
    return super.wallMs() + this.shiftMs;
  }
}
const clock = new SystemClock();

interface Cert {
  readonly key: string;
  readonly cert: string;
  readonly certFile: string;
  readonly notAfterS: number;
}

/** A self-signed certificate for localhost and 127.0.0.1, valid for `days`. */
function makeCert(dir: string, name: string, days: number): Cert {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  const out = spawnSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      String(days),
      "-subj",
      `/CN=${name}`,
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    { encoding: "utf8" },
  );
  assert.equal(out.status, 0, out.stderr);
  const cert = readFileSync(certFile, "utf8");
  return { key: readFileSync(keyFile, "utf8"), cert, certFile, notAfterS: Math.floor(Date.parse(new X509Certificate(cert).validTo) / 1000) };
}

interface FtpsBehaviour {
  readonly greeting?: string;
  readonly authReply?: string;
  /** Answer 234 but never start TLS. */
  readonly stall?: boolean;
}

/** Explicit FTPS, just enough of it: greet, answer AUTH TLS, then speak TLS with `cert`. */
async function ftpsServer(cert: Cert | undefined, b: FtpsBehaviour = {}) {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.write(b.greeting ?? "220-understudy test\r\n220 FTP ready\r\n");
    let buffer = "";
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      if (!buffer.includes("\r\n")) return;
      if (buffer !== "AUTH TLS\r\n") return void socket.end("500 unexpected\r\n");
      socket.off("data", onData);
      socket.write(b.authReply ?? "234 AUTH TLS successful\r\n");
      if (b.authReply || b.stall || !cert) return;
      const secure = new TLSSocket(socket, { isServer: true, key: cert.key, cert: cert.cert });
      secure.on("error", () => undefined);
      secure.resume();
    };
    socket.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return { server, port: (server.address() as AddressInfo).port, open: () => sockets.size };
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

const base = { host: HOST, expect_status: 200, interval: 5000, timeout: TIMEOUT, rise: 1, fall: 1, critical: true };

describe("certificate expiry: ftps, https and tls_file probes", () => {
  let dir: string;
  let year: Cert, soon: Cert, other: Cert;
  const servers: Server[] = [];
  let ftpsYear: Awaited<ReturnType<typeof ftpsServer>>;
  let ftpsSoon: number, ftpsRefused: number, ftpsBusy: number;
  let ftpsStall: Awaited<ReturnType<typeof ftpsServer>>;
  let httpsPort: number;
  let https: ReturnType<typeof createHttpsServer>;

  const ftps = (port: number, extra: Partial<ProbeConfig> = {}, c = clock) => createProbe({ ...base, name: "ftps", type: "ftps", port, ca_file: year.certFile, ...extra }, c);
  const check = (p: ReturnType<typeof ftps>, signal = new AbortController().signal) => p.check(signal);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-tls-probe-"));
    year = makeCert(dir, "year", 365);
    soon = makeCert(dir, "soon", 3);
    other = makeCert(dir, "other", 30);
    ftpsYear = await ftpsServer(year);
    const s = await ftpsServer(soon);
    const refused = await ftpsServer(year, { authReply: "502 AUTH TLS not available\r\n" });
    const busy = await ftpsServer(year, { greeting: "421 Too many connections\r\n" });
    ftpsStall = await ftpsServer(year, { stall: true });
    servers.push(ftpsYear.server, s.server, refused.server, busy.server, ftpsStall.server);
    [ftpsSoon, ftpsRefused, ftpsBusy] = [s.port, refused.port, busy.port];
    https = createHttpsServer({ key: year.key, cert: year.cert }, (_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => https.listen(0, HOST, resolve));
    httpsPort = (https.address() as AddressInfo).port;
  });

  after(async () => {
    for (const s of servers) s.close();
    https.closeAllConnections();
    https.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ftps: AUTH TLS, a certificate trusted through ca_file, its expiry reported as data", async () => {
    const r = await check(ftps(ftpsYear.port));
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^AUTH TLS ok \(TLSv1\.[23]\), certificate expires in 36[45] days \(\d{4}-\d\d-\d\d\)$/);
    assert.deepEqual(r.data, { certExpiresAt: { [`${HOST}:${ftpsYear.port}`]: year.notAfterS }, warning: false });
    await waitFor(() => ftpsYear.open() === 0, "the probe closed its connection");
  });

  it("ftps: a certificate expiring within cert_warning is up with a warning; an expired one fails", async () => {
    const warned = await check(ftps(ftpsSoon, { ca_file: soon.certFile }));
    assert.equal(warned.ok, true, warned.detail);
    assert.match(warned.detail, /certificate expires in 2 days/);
    assert.equal(warned.data?.warning, true);
    const shorter = await check(ftps(ftpsSoon, { ca_file: soon.certFile, cert_warning: DAY }));
    assert.equal(shorter.data?.warning, false, "cert_warning of 1 day: 2 days left is fine");
    const expired = await check(ftps(ftpsYear.port, {}, new ShiftedClock(400 * DAY)));
    assert.equal(expired.ok, false);
    assert.match(expired.detail, /^AUTH TLS ok \(TLSv1\.[23]\), certificate expired 3[45] days ago/);
    assert.equal(expired.data?.certExpiresAt?.[`${HOST}:${ftpsYear.port}`], year.notAfterS);
  });

  it("ftps: an untrusted certificate fails unless tls_verify is false; the name is checked against servername", async () => {
    const untrusted = await check(ftps(ftpsYear.port, { ca_file: other.certFile }));
    assert.equal(untrusted.ok, false);
    assert.match(untrusted.detail, /certificate not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\), expires in/);
    assert.equal(typeof untrusted.data?.certExpiresAt?.[`${HOST}:${ftpsYear.port}`], "number", "expiry reported all the same");
    const unverified = await check(ftps(ftpsYear.port, { ca_file: undefined, tls_verify: false }));
    assert.equal(unverified.ok, true, unverified.detail);
    const wrongName = await check(ftps(ftpsYear.port, { servername: "ftp.example.com" }));
    assert.equal(wrongName.ok, false);
    assert.match(wrongName.detail, /certificate not issued for ftp\.example\.com \(ERR_TLS_CERT_ALTNAME_INVALID\), expires in/);
    const rightName = await check(ftps(ftpsYear.port, { servername: "localhost" }));
    assert.equal(rightName.ok, true, rightName.detail);
  });

  it("ftps: fails on a refused AUTH TLS, a greeting other than 220, a closed port", async () => {
    assert.deepEqual(await check(ftps(ftpsRefused)).then((r) => [r.ok, r.detail]), [false, "AUTH TLS refused: 502 AUTH TLS not available"]);
    assert.deepEqual(await check(ftps(ftpsBusy)).then((r) => [r.ok, r.detail]), [false, "421 Too many connections"]);
    const closed = await ftpsServer(undefined);
    await new Promise((r) => closed.server.close(r));
    const refused = await check(ftps(closed.port));
    assert.deepEqual([refused.ok, refused.detail], [false, `connect ECONNREFUSED ${HOST}:${closed.port}`]);
  });

  it("ftps: times out in the handshake, naming it; resolves at once when aborted; closes its connections", async () => {
    const started = performance.now();
    const r = await check(ftps(ftpsStall.port, { timeout: 300 }));
    assert.equal(r.ok, false);
    assert.match(r.detail, /^timeout after \d+ms while in the TLS handshake$/);
    assert.ok(performance.now() - started < 300 + 200, "performance.now() - started < 300 + 200");
    const controller = new AbortController();
    const pending = check(ftps(ftpsStall.port, { timeout: 5000 }), controller.signal);
    await waitFor(() => ftpsStall.open() === 1, "connected");
    controller.abort();
    assert.deepEqual(await pending.then((x) => [x.ok, x.detail]), [false, "aborted"]);
    await waitFor(() => ftpsStall.open() === 0, "no connection left open");
  });

  it("http: an https URL reports its certificate's expiry; ca_file makes a self-signed certificate trusted", async () => {
    const url = `https://${HOST}:${httpsPort}/`;
    const http = (extra: Partial<ProbeConfig> = {}, c = clock) => createProbe({ ...base, name: "admin", type: "http", url, ...extra }, c);
    const untrusted = await http().check(new AbortController().signal);
    assert.equal(untrusted.ok, false, "Node.js's CA list does not know a self-signed certificate");
    const r = await http({ ca_file: year.certFile }).check(new AbortController().signal);
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^HTTP 200, certificate expires in 36[45] days/);
    assert.deepEqual(r.data, { certExpiresAt: { [`${HOST}:${httpsPort}`]: year.notAfterS }, warning: false });
    const warned = await http({ ca_file: year.certFile, cert_warning: 400 * DAY }).check(new AbortController().signal);
    assert.deepEqual([warned.ok, warned.data?.warning], [true, true]);
    const expired = await http({ tls_verify: false }, new ShiftedClock(400 * DAY)).check(new AbortController().signal);
    assert.equal(expired.ok, false);
    assert.match(expired.detail, /^HTTP 200, certificate expired/);
  });

  it("tls_file: reports each file's notAfter; warns within cert_warning; fails when one is expired or unreadable", async () => {
    const tlsFile = (files: string[], extra: Partial<ProbeConfig> = {}, c = clock) => createProbe({ ...base, name: "certs", type: "tls_file", files, ...extra }, c).check(new AbortController().signal);
    const ok = await tlsFile([year.certFile, other.certFile]);
    assert.equal(ok.ok, true, ok.detail);
    assert.match(ok.detail, /^2 certificate files ok, earliest expires in (29|30) days \(.*\): .*other\.pem$/);
    assert.deepEqual(ok.data, { certExpiresAt: { [year.certFile]: year.notAfterS, [other.certFile]: other.notAfterS }, warning: false });

    const warned = await tlsFile([year.certFile, soon.certFile]);
    assert.equal(warned.ok, true);
    assert.match(warned.detail, /soon\.pem expires in 2 days/);
    assert.equal(warned.data?.warning, true);

    const expired = await tlsFile([year.certFile, other.certFile], {}, new ShiftedClock(100 * DAY));
    assert.equal(expired.ok, false);
    assert.match(expired.detail, /other\.pem expired (69|70) days ago/);
    assert.ok(!expired.detail.includes("year.pem"), "only the expired file is named");

    const missing = await tlsFile([year.certFile, join(dir, "missing.pem")]);
    assert.equal(missing.ok, false);
    assert.match(missing.detail, /^cannot read .*missing\.pem: ENOENT/);
    assert.deepEqual(missing.data?.certExpiresAt, { [year.certFile]: year.notAfterS }, "the readable files are still reported");

    const notPem = join(dir, "not.pem");
    writeFileSync(notPem, "hello\n");
    assert.match((await tlsFile([notPem])).detail, /^no PEM certificate in .*not\.pem$/);
  });

  it("tls_file: a chain file counts by its earliest-expiring certificate", async () => {
    const chain = join(dir, "fullchain.pem");
    writeFileSync(chain, year.cert + other.cert);
    const r = await createProbe({ ...base, name: "chain", type: "tls_file", files: [chain] }, clock).check(new AbortController().signal);
    assert.deepEqual(r.data?.certExpiresAt, { [chain]: other.notAfterS });
  });
});
