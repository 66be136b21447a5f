import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { judgeFtpGreeting } from "../../../src/probes/ftp.js";
import { createProbe, type ProbeConfig } from "../../../src/probes/index.js";
import { judgeSshBanner } from "../../../src/probes/ssh.js";

const clock = new SystemClock();
const HOST = "127.0.0.1";
const TIMEOUT = 300;

/** A server on 127.0.0.1 that greets each connection with `greeting` (nothing if undefined). */
async function greeter(greeting: string | undefined): Promise<{ port: number; server: Server; open: () => number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.resume(); // read (and drop) what clients send, so their hang-up is seen
    if (greeting !== undefined) socket.write(greeting);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return { port: (server.address() as AddressInfo).port, server, open: () => sockets.size };
}

async function closedPort(): Promise<number> {
  const { server, port } = await greeter(undefined);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function probe(type: ProbeConfig["type"], port: number, extra: Partial<ProbeConfig> = {}) {
  const config: ProbeConfig = { name: `${type}-test`, type, host: HOST, port, expect_status: 200, interval: 1000, timeout: TIMEOUT, rise: 1, fall: 1, critical: true, ...extra };
  return createProbe(config, clock);
}

const check = (p: ReturnType<typeof probe>, signal = new AbortController().signal) => p.check(signal);

describe("probes against real sockets on 127.0.0.1", () => {
  const servers: Server[] = [];
  let ssh: number, sshV1: number, ftpMulti: number, ftpSingle: number, ftpBusy: number, silent: Awaited<ReturnType<typeof greeter>>, closed: number;
  let http: HttpServer, httpPort: number;

  before(async () => {
    const made = await Promise.all([
      greeter("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
      greeter("SSH-1.5-ancient\r\n"),
      greeter("220-hello\r\n220 ready\r\n"),
      greeter("220 ProFTPD Server (Debian) [127.0.0.1]\r\n"),
      greeter("421 Too many connections\r\n"),
      greeter(undefined),
    ]);
    servers.push(...made.map((m) => m.server));
    [ssh, sshV1, ftpMulti, ftpSingle, ftpBusy] = made.map((m) => m.port) as [number, number, number, number, number];
    silent = made[5]!;
    closed = await closedPort();
    http = createHttpServer((req, res) => {
      res.statusCode = req.url === "/healthz" ? 200 : 503;
      res.end("body");
    });
    await new Promise<void>((resolve) => http.listen(0, HOST, resolve));
    httpPort = (http.address() as AddressInfo).port;
  });

  after(async () => {
    for (const s of servers) s.close();
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  it("tcp: up when the port accepts, down with the error on a closed port", async () => {
    const up = await check(probe("tcp", silent.port));
    assert.equal(up.ok, true);
    assert.equal(up.detail, `connected to ${HOST}:${silent.port}`);
    const down = await check(probe("tcp", closed));
    assert.deepEqual([down.ok, down.detail], [false, `connect ECONNREFUSED ${HOST}:${closed}`]);
  });

  it("ssh: up on an SSH-2.0 banner, which becomes the detail", async () => {
    const r = await check(probe("ssh", ssh));
    assert.deepEqual([r.ok, r.detail], [true, "SSH-2.0-OpenSSH_9.2p1 Debian-2"]);
    assert.ok(r.latencyMs >= 0 && r.latencyMs < TIMEOUT, "r.latencyMs >= 0 && r.latencyMs < TIMEOUT");
  });

  it("ssh: down on an SSH-1 banner, a closed port, and silence", async () => {
    assert.deepEqual(await check(probe("ssh", sshV1)).then((r) => [r.ok, r.detail]), [false, "SSH-1.5-ancient"]);
    assert.deepEqual(await check(probe("ssh", closed)).then((r) => [r.ok, r.detail]), [false, `connect ECONNREFUSED ${HOST}:${closed}`]);
    const started = performance.now();
    const r = await check(probe("ssh", silent.port));
    assert.deepEqual([r.ok, r.detail], [false, `timeout after ${TIMEOUT}ms`]);
    assert.ok(performance.now() - started < TIMEOUT + 200, "resolved within its timeout");
  });

  it("ftp: up on a 220 greeting, single or multi-line", async () => {
    assert.deepEqual(await check(probe("ftp", ftpMulti)).then((r) => [r.ok, r.detail]), [true, "220 ready"]);
    assert.deepEqual(await check(probe("ftp", ftpSingle)).then((r) => [r.ok, r.detail]), [true, "220 ProFTPD Server (Debian) [127.0.0.1]"]);
  });

  it("ftp: down on another reply, on silence, and on an SSH server", async () => {
    assert.deepEqual(await check(probe("ftp", ftpBusy)).then((r) => [r.ok, r.detail]), [false, "421 Too many connections"]);
    assert.deepEqual(await check(probe("ftp", silent.port)).then((r) => [r.ok, r.detail]), [false, `timeout after ${TIMEOUT}ms`]);
    assert.deepEqual(await check(probe("ftp", ssh)).then((r) => [r.ok, r.detail]), [false, "not an FTP reply: SSH-2.0-OpenSSH_9.2p1 Debian-2"]);
  });

  it("http: up on the expected status, down on another, on a closed port, and on silence", async () => {
    const http200 = await check(probe("http", 0, { url: `http://${HOST}:${httpPort}/healthz` }));
    assert.deepEqual([http200.ok, http200.detail], [true, "HTTP 200"]);
    const http503 = await check(probe("http", 0, { url: `http://${HOST}:${httpPort}/other` }));
    assert.deepEqual([http503.ok, http503.detail], [false, "HTTP 503"]);
    const expected503 = await check(probe("http", 0, { url: `http://${HOST}:${httpPort}/other`, expect_status: 503 }));
    assert.equal(expected503.ok, true);
    const refused = await check(probe("http", 0, { url: `http://${HOST}:${closed}/` }));
    assert.deepEqual([refused.ok, refused.detail], [false, `connect ECONNREFUSED ${HOST}:${closed}`]);
    const silence = await check(probe("http", 0, { url: `http://${HOST}:${silent.port}/` }));
    assert.deepEqual([silence.ok, silence.detail], [false, `timeout after ${TIMEOUT}ms`]);
  });

  it("every probe resolves promptly when aborted, and closes its socket", async () => {
    for (const type of ["tcp", "ssh", "ftp", "http"] as const) {
      const controller = new AbortController();
      const p = probe(type, silent.port, { url: `http://${HOST}:${silent.port}/`, timeout: 5000 });
      const pending = check(p, controller.signal);
      // tcp is connected within a tick on loopback, so abort before any I/O completes.
      if (type !== "tcp") await new Promise((r) => setImmediate(r));
      controller.abort();
      const r = await pending;
      assert.deepEqual([r.ok, r.detail], [false, "aborted"], type);
    }
    const already = new AbortController();
    already.abort();
    assert.equal((await check(probe("ssh", ssh), already.signal)).detail, "aborted");
    for (let i = 0; i < 50 && silent.open() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(silent.open(), 0, "a probe left its connection open");
  });
});

describe("greeting parsers", () => {
  const ssh: [string, boolean | undefined][] = [
    ["SSH-2.0-OpenSSH_9.2p1\r\n", true],
    ["SSH-1.99-Cisco-1.25\r\n", true],
    ["SSH-2.0-partial", undefined],
    ["banner from a chatty server\r\nSSH-2.0-x\r\n", true],
    ["HTTP/1.1 400 Bad Request\r\n", undefined],
  ];
  for (const [text, ok] of ssh) {
    it(`ssh ${JSON.stringify(text)} -> ${ok}`, () => assert.equal(judgeSshBanner(text)?.ok, ok));
  }

  const ftp: [string, boolean | undefined, string?][] = [
    ["220 ready\r\n", true, "220 ready"],
    ["220-hello\r\n", undefined],
    ["220-hello\r\n 220 indented is not the end\r\n220 done\r\n", true, "220 done"],
    ["220-hello\r\n221 other code does not end it\r\n", undefined],
    ["120 ready in 5 minutes\r\n", false, "120 ready in 5 minutes"],
    ["220 no newline yet", undefined],
    ["220 lf only\n", true, "220 lf only"],
  ];
  for (const [text, ok, detail] of ftp) {
    it(`ftp ${JSON.stringify(text)} -> ${ok}`, () => {
      const v = judgeFtpGreeting(text);
      assert.equal(v?.ok, ok);
      if (detail) assert.equal(v?.detail, detail);
    });
  }
});

describe("createProbe", () => {
  it("rejects a socket probe without a port and an http probe without a url", () => {
    const base = { name: "p", host: HOST, expect_status: 200, interval: 1000, timeout: 1000, rise: 1, fall: 1, critical: true };
    assert.throws(
      () => createProbe({ ...base, type: "ssh" }, clock),
      (e) => isUnderstudyError(e, "US_E_PROBE_CONFIG"),
    );
    assert.throws(
      () => createProbe({ ...base, type: "http", port: 80 }, clock),
      (e) => isUnderstudyError(e, "US_E_PROBE_CONFIG"),
    );
    assert.throws(
      () => createProbe({ ...base, type: "tcp", port: 22, timeout: 0 }, clock),
      (e) => isUnderstudyError(e, "US_E_PROBE_CONFIG"),
    );
  });
});
