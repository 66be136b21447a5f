// FailsafePeerClient (src/api/failsafe-peers.ts) against real HTTP servers on loopback: the real
// API for honest answers, a hand-written server for forged, replayed and silent ones, a raw TCP
// server to read the request's bytes. A verdict is granted only for a 200 answer signed with
// k = failsafeKey(token) from the member asked, for this lease and this nonce; the request
// carries no bearer token and no byte of the token or of k.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, request as httpRequest, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { FailsafePeerClient } from "../../../src/api/failsafe-peers.js";
import { failsafeKey, grantMac, grantMacMatches, requestMacMatches, type GrantAnswerBody } from "../../../src/api/failsafe.js";
import { grantMacInput } from "../../../src/ha/failsafe.js";
import { FailsafePromise } from "../../../src/ha/failsafe-promise.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const K = failsafeKey(TOKEN);
const REQUEST = { node: "n1", term: 42, leaseMs: 5000 };
/** A wall clock that moves on at each read, as real time does between rounds and restarts. */
let wallNow = 1_700_000_000_000;
const wallMs = () => (wallNow += 10);

const view = { node: "n2", acting: "standby" } as NodeView;

async function realMember(token: string | (() => string)) {
  const clock = new FakeClock();
  const promise = new FailsafePromise(clock, { enabled: true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 });
  await clock.advance(6000); // past the start-up hold
  const app = buildApi({
    view: () => view,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n2" }),
    clock,
    log: silentLogger(),
    token: typeof token === "string" ? token : null,
    ...(typeof token === "string" ? {} : { tokenSource: { get: async () => token() } }),
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    failsafe: { answer: (r) => promise.answer(r, { acting: "standby", lastLeader: { node: "n1", term: 42 } }) },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, promise, clock, close: () => app.close() };
}

/** A member that answers whatever `respond` says, given the request body. */
async function scriptedMember(respond: (body: { nonce: string }) => { status: number; body: unknown } | null): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      const r = respond(JSON.parse(text) as { nonce: string });
      if (r === null) return; // silent: never answers
      res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const client = (token: string | null = TOKEN) => new FailsafePeerClient({ token: async () => token, wallMs });

test("an honest standby's grant verifies: granted, and the standby is bound by it", async () => {
  const m = await realMember(TOKEN);
  try {
    const v = await client().ask([{ node: "n2", api: m.url }], REQUEST, 2000);
    assert.deepEqual(v.get("n2"), { granted: true });
    assert.match(m.promise.hold(m.clock.monotonicMs())!, /promised n1/);
  } finally {
    await m.close();
  }
});

test("a member with another token refuses (401): not granted, and it promised nothing", async () => {
  const m = await realMember("another-token-0123456789");
  try {
    const v = await client().ask([{ node: "n2", api: m.url }], REQUEST, 2000);
    assert.equal(v.get("n2")?.granted, false);
    assert.match((v.get("n2") as { why: string }).why, /^HTTP 401/);
    assert.equal(m.promise.hold(m.clock.monotonicMs()), null);
  } finally {
    await m.close();
  }
});

test("forged, replayed or mismatched answers are not grants", async () => {
  type A = { node: string; granted: boolean; leaseMs: number; nonce: string };
  const signed = (a: A, key: Buffer = K) => ({
    node: a.node,
    granted: a.granted,
    lease_ms: a.leaseMs,
    nonce: a.nonce,
    promised_for_ms: 6000,
    reason: "granted",
    mac: grantMac(key, a),
  });
  const oldScheme = (a: A) => ({ ...signed(a), mac: createHmac("sha256", TOKEN).update(grantMacInput(a)).digest("hex") });
  const cases: { name: string; respond: (b: { nonce: string }) => { status: number; body: unknown }; why: RegExp }[] = [
    {
      name: "signed with another key",
      respond: (b) => ({ status: 200, body: signed({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }, failsafeKey("forger-key-0123456789")) }),
      why: /MAC does not verify/,
    },
    {
      name: "signed with the raw token (the old scheme)",
      respond: (b) => ({ status: 200, body: oldScheme({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }) }),
      why: /MAC does not verify/,
    },
    {
      name: "signed with the token's bytes as the key",
      respond: (b) => ({ status: 200, body: signed({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }, Buffer.from(TOKEN)) }),
      why: /MAC does not verify/,
    },
    {
      name: "the request's own req_mac echoed as the answer's MAC",
      respond: (b) => ({ status: 200, body: { ...signed({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }), mac: (b as { req_mac?: string }).req_mac } }),
      why: /MAC does not verify/,
    },
    { name: "no MAC", respond: (b) => ({ status: 200, body: { ...signed({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }), mac: null } }), why: /MAC does not verify/ },
    {
      name: "a replayed answer (an old nonce)",
      respond: () => ({ status: 200, body: signed({ node: "n2", granted: true, leaseMs: 5000, nonce: "f".repeat(32) }) }),
      why: /does not match the request/,
    },
    { name: "another node's answer", respond: (b) => ({ status: 200, body: signed({ node: "n3", granted: true, leaseMs: 5000, nonce: b.nonce }) }), why: /does not match/ },
    { name: "another lease", respond: (b) => ({ status: 200, body: signed({ node: "n2", granted: true, leaseMs: 9000, nonce: b.nonce }) }), why: /does not match/ },
    { name: "a signed refusal with status 200", respond: (b) => ({ status: 200, body: signed({ node: "n2", granted: false, leaseMs: 5000, nonce: b.nonce }) }), why: /does not match/ },
    {
      name: "a 409 refusal",
      respond: (b) => ({ status: 409, body: { ...signed({ node: "n2", granted: false, leaseMs: 5000, nonce: b.nonce }), reason: "refused: n2 acts as primary" } }),
      why: /^HTTP 409: refused: n2 acts as primary/,
    },
    { name: "not JSON", respond: () => ({ status: 200, body: undefined }), why: /not a JSON answer|does not match/ },
  ];
  for (const c of cases) {
    const m = await scriptedMember(c.respond);
    try {
      const v = await client().ask([{ node: "n2", api: m.url }], REQUEST, 2000);
      assert.equal(v.get("n2")?.granted, false, c.name);
      assert.match((v.get("n2") as { why: string }).why, c.why, c.name);
    } finally {
      m.server.close();
    }
  }
});

test("a silent member and an unreachable one: not granted within the timeout; the others still count", async () => {
  const silent = await scriptedMember(() => null);
  const honest = await realMember(TOKEN);
  try {
    const started = performance.now();
    const v = await client().ask(
      [
        { node: "n2", api: honest.url },
        { node: "n3", api: silent.url },
        { node: "n4", api: "http://127.0.0.1:1" },
      ],
      REQUEST,
      300,
    );
    const took = performance.now() - started;
    assert.deepEqual(v.get("n2"), { granted: true });
    assert.match((v.get("n3") as { why: string }).why, /did not answer within 300 ms/);
    assert.equal(v.get("n4")?.granted, false);
    assert.ok(took < 2000, `bounded by the timeout (${Math.round(took)}ms)`);
  } finally {
    silent.server.closeAllConnections();
    silent.server.close();
    await honest.close();
  }
});

test("a fractional timeout (deadline - now in monotonic ms, as a late round computes it) still asks: granted", async () => {
  // AbortSignal.timeout takes whole ms only: 239.649 made every member "did not grant" in the lab.
  const m = await realMember(TOKEN);
  try {
    const v = await client().ask([{ node: "n2", api: m.url }], REQUEST, 1999.649401);
    assert.deepEqual(v.get("n2"), { granted: true });
  } finally {
    await m.close();
  }
});

test("no token on the asking node: nothing is sent, nothing granted", async () => {
  const v = await client(null).ask([{ node: "n2", api: "http://127.0.0.1:1" }], REQUEST, 300);
  assert.match((v.get("n2") as { why: string }).why, /no API token/);
});

/** One HTTP exchange on a raw TCP socket: records the request's exact bytes, answers with `answer(body)`. */
async function rawMember(answer: (body: { node: string; term: number; lease_ms: number; nonce: string; req_mac: string }) => object) {
  const seen: Buffer[] = [];
  const server = createTcpServer((sock) => {
    const chunks: Buffer[] = [];
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(raw.subarray(0, end).toString("latin1"))?.[1] ?? 0);
      if (raw.length < end + 4 + length) return;
      seen.push(raw);
      const text = JSON.stringify(answer(JSON.parse(raw.subarray(end + 4, end + 4 + length).toString("utf8"))));
      sock.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test("the request carries no Authorization header and no byte of the token or of k; its req_mac verifies with k", async () => {
  const m = await rawMember((b) => {
    const a = { node: "n2", granted: true, leaseMs: b.lease_ms, nonce: b.nonce };
    return { node: "n2", granted: true, lease_ms: b.lease_ms, nonce: b.nonce, promised_for_ms: 6000, reason: "granted", mac: grantMac(K, a) };
  });
  try {
    const v = await client().ask([{ node: "n2", api: m.url }], REQUEST, 2000);
    assert.deepEqual(v.get("n2"), { granted: true }, "round trip: the k-signed answer is a grant");
    assert.equal(m.seen.length, 1);
    const raw = m.seen[0]!;
    const text = raw.toString("latin1");
    assert.doesNotMatch(text, /^authorization:/im, "no Authorization header");
    assert.doesNotMatch(text, /bearer/i);
    for (const secret of [Buffer.from(TOKEN), Buffer.from(TOKEN.slice(0, 8)), Buffer.from(TOKEN).toString("base64"), K, K.toString("hex"), K.toString("base64")])
      assert.equal(raw.includes(secret), false, `the request holds ${typeof secret === "string" ? "an encoding of" : "bytes of"} a secret`);
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as { node: string; to: string; term: number; lease_ms: number; nonce: string; seq: number; req_mac: string };
    assert.deepEqual(Object.keys(body).sort(), ["lease_ms", "node", "nonce", "req_mac", "seq", "term", "to"]);
    assert.equal(body.to, "n2", "names the member asked");
    assert.ok(requestMacMatches(K, { node: body.node, to: body.to, term: body.term, leaseMs: body.lease_ms, nonce: body.nonce, seq: body.seq }, body.req_mac), "req_mac is keyed with k");
  } finally {
    await m.close();
  }
});

test("the client derives k from the current token each round: after a rotation on both sides it is granted again", async () => {
  let current = TOKEN;
  const m = await realMember(() => current);
  const rotating = new FailsafePeerClient({ token: async () => current, wallMs });
  try {
    assert.deepEqual((await rotating.ask([{ node: "n2", api: m.url }], REQUEST, 2000)).get("n2"), { granted: true });
    current = "rotated-token-0123456789";
    assert.deepEqual((await rotating.ask([{ node: "n2", api: m.url }], REQUEST, 2000)).get("n2"), { granted: true });
    const stale = await client(TOKEN).ask([{ node: "n2", api: m.url }], REQUEST, 2000);
    assert.match((stale.get("n2") as { why: string }).why, /^HTTP 401: .*wrong req_mac/, "a client still on the old token is refused");
  } finally {
    await m.close();
  }
});

test("S7: each request's seq is above the last, from the wall clock on; a captured request replayed to the member is refused", async () => {
  const m = await realMember(TOKEN);
  const sent: { seq: number; body: string }[] = [];
  // A relay in front of the member that keeps what it forwards, as an eavesdropper on plain http would.
  const relay = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      sent.push({ seq: (JSON.parse(text) as { seq: number }).seq, body: text });
      const fwd = httpRequest(m.url + "/failsafe/grant", { method: "POST", headers: { "content-type": "application/json" } }, (r) => {
        res.writeHead(r.statusCode ?? 502, { "content-type": "application/json" });
        r.pipe(res);
      });
      fwd.end(text);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
  try {
    const c = client();
    for (let i = 0; i < 3; i++) assert.deepEqual((await c.ask([{ node: "n2", api: relayUrl }], REQUEST, 2000)).get("n2"), { granted: true });
    const restarted = client(); // a new process: its seq starts at its wall clock, above the last run's
    assert.deepEqual((await restarted.ask([{ node: "n2", api: relayUrl }], REQUEST, 2000)).get("n2"), { granted: true });
    assert.equal(sent.length, 4);
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i]!.seq > sent[i - 1]!.seq, `seq ${sent[i]!.seq} after ${sent[i - 1]!.seq}`);
    for (const captured of [sent[0]!, sent[3]!]) {
      const replay = await new Promise<{ status: number; reason: string }>((resolve, reject) => {
        const r = httpRequest(m.url + "/failsafe/grant", { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
          let out = "";
          res.on("data", (c: Buffer) => (out += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, reason: (JSON.parse(out) as { reason: string }).reason }));
        });
        r.on("error", reject);
        r.end(captured.body);
      });
      assert.equal(replay.status, 409, `seq ${captured.seq} replayed`);
      assert.match(replay.reason, /is not newer than request \d+ already answered in term 42 \(a replay\?\)$/);
    }
  } finally {
    await new Promise<void>((r) => relay.close(() => r()));
    await m.close();
  }
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate it signed, plus a self-signed rogue one. */
function makePki(dir: string) {
  const openssl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"]);
  for (const name of ["server", "client", "rogue"]) openssl(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"]);
  openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.pem", "-days", "2"]);
  openssl(["x509", "-req", "-in", "rogue.csr", "-signkey", "rogue.key", "-out", "rogue.pem", "-days", "2"]);
  return (name: string) => readFileSync(join(dir, name));
}

test("https with api.tls.client_ca: the client's round trip works; a CA-signed client certificate authenticates without req_mac, a bearer token does not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "understudy-fssig-"));
  const clock = new FakeClock();
  let app: ReturnType<typeof buildApi> | undefined;
  try {
    const pem = makePki(dir);
    const promise = new FailsafePromise(clock, { enabled: true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 });
    await clock.advance(6000);
    app = buildApi({
      view: () => view,
      coordinator: new FakeCoordinator(clock),
      metrics: new AgentMetrics(() => view, { cluster: "c", node: "n2" }),
      clock,
      log: silentLogger(),
      token: TOKEN,
      authReads: false,
      livenessMaxMs: 5000,
      failbackPreferred: null,
      tls: { key: pem("server.key"), cert: pem("server.pem"), clientCa: pem("ca.pem") },
      failsafe: { answer: (r) => promise.answer(r, { acting: "standby", lastLeader: { node: "n1", term: 42 } }) },
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const url = `https://127.0.0.1:${port}`;
    // As agent.ts builds it: the API's CA verifies the peer, the node's own certificate is the client certificate.
    const tlsClient = new FailsafePeerClient({ token: async () => TOKEN, wallMs, tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") } });
    assert.deepEqual((await tlsClient.ask([{ node: "n2", api: url }], REQUEST, 5000)).get("n2"), { granted: true });

    const nonce = "0123456789abcdef0123456789abcdef";
    const bare = { node: "n1", to: "n2", term: 42, lease_ms: 5000, nonce, seq: wallMs() };
    const send = (body: object, opts: { cert?: string; key?: string; headers?: Record<string, string> } = {}) =>
      new Promise<{ status: number; json: Partial<GrantAnswerBody> & { message?: string } }>((resolve, reject) => {
        const text = JSON.stringify(body);
        const req = httpsRequest(
          url + "/failsafe/grant",
          {
            method: "POST",
            ca: pem("ca.pem"),
            ...(opts.cert ? { cert: pem(opts.cert), key: pem(opts.key!) } : {}),
            headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...(opts.headers ?? {}) },
          },
          (res) => {
            let out = "";
            res.on("data", (c: Buffer) => (out += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(out) as Partial<GrantAnswerBody> & { message?: string } }));
          },
        );
        req.on("error", reject);
        req.end(text);
      });
    const viaCert = await send(bare, { cert: "client.pem", key: "client.key" });
    assert.equal(viaCert.status, 200, "a CA-signed client certificate authenticates the request");
    const a = viaCert.json;
    assert.ok(grantMacMatches(K, { node: a.node!, granted: a.granted!, leaseMs: a.lease_ms!, nonce: a.nonce! }, a.mac), "the answer is signed with k");
    const wrongMac = await send({ ...bare, req_mac: "0".repeat(64) }, { cert: "client.pem", key: "client.key" });
    assert.equal(wrongMac.status, 401, "a req_mac that is sent must verify, certificate or not");
    for (const [name, opts] of [
      ["no certificate", {}],
      ["a self-signed certificate", { cert: "rogue.pem", key: "rogue.key" }],
      ["the bearer token", { headers: { authorization: `Bearer ${TOKEN}` } }],
    ] as const) {
      const r = await send(bare, opts);
      assert.equal(r.status, 401, name);
      assert.match(r.json.message ?? "", /missing req_mac/, name);
    }
  } finally {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
