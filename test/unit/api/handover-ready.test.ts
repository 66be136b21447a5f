// POST /handover/ready (src/api/handover-ready.ts) and its client (src/api/handover-ready-client.ts)
// over real HTTP on loopback: the real API for honest answers, a hand-written server for forged,
// silent and older agents. An answer counts only when signed with k = failsafeKey(token) over the
// asker's nonce by the member asked; the request carries no bearer token and no byte of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { failsafeKey } from "../../../src/api/failsafe.js";
import { readyAnswerMac, readyRequestMac } from "../../../src/api/handover-ready.js";
import { HandoverReadyClient } from "../../../src/api/handover-ready-client.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const K = failsafeKey(TOKEN);
const FROM = { node: "n1", term: 42 };

async function realMember(token: string | null, view: Partial<NodeView> = {}, https?: { cert: Buffer; key: Buffer }) {
  const clock = new FakeClock();
  const v = { node: "n2", acting: "standby", healthy: true, etcdReachable: true, sinceLastCycleMs: 200, ...view } as NodeView;
  const app = buildApi({
    view: () => v,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => v, { cluster: "c", node: "n2" }),
    clock,
    log: silentLogger(),
    token,
    authReads: true,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(https ? { tls: https } : {}),
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

/** A server that answers whatever `respond` says (null: never answers), recording each request. */
async function scripted(respond: (body: { nonce: string; req_mac?: string }) => { status: number; body: unknown } | null) {
  const seen: { headers: IncomingHttpHeaders; text: string }[] = [];
  const server: Server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      seen.push({ headers: req.headers, text });
      const r = respond(JSON.parse(text) as { nonce: string });
      if (r !== null) res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close };
}

const client = (token: string | null = TOKEN) => new HandoverReadyClient({ token: async () => token });
const facts = { acting: "standby" as const, healthy: true, etcd_reachable: true, loop_alive: true };

test("an honest standby's answer verifies: its facts, judged by GET /standby's and /liveness's rules", async () => {
  for (const [view, expected] of [
    [{}, { kind: "answer", acting: "standby", healthy: true, etcdReachable: true, loopAlive: true }],
    [
      { healthy: false, sinceLastCycleMs: 9000 },
      { kind: "answer", acting: "standby", healthy: false, etcdReachable: true, loopAlive: false },
    ],
    [
      { acting: "primary", etcdReachable: false },
      { kind: "answer", acting: "primary", healthy: true, etcdReachable: false, loopAlive: true },
    ],
  ] as const) {
    const m = await realMember(TOKEN, view);
    try {
      assert.deepEqual(await client().ask({ node: "n2", api: m.url }, FROM, 2000), expected);
    } finally {
      await m.close();
    }
  }
});

test("refused by the target: another token (401), asked under another name (409); never an answer", async () => {
  const other = await realMember("another-token-0123456789");
  const renamed = await realMember(TOKEN, { node: "n3" });
  try {
    const a = await client().ask({ node: "n2", api: other.url }, FROM, 2000);
    assert.equal(a.kind, "no answer");
    assert.match((a as { why: string }).why, /^HTTP 401: wrong req_mac/);
    const b = await client().ask({ node: "n2", api: renamed.url }, FROM, 2000);
    assert.equal(b.kind, "no answer");
    assert.match((b as { why: string }).why, /^HTTP 409: asked n2, but this is n3/);
  } finally {
    await other.close();
    await renamed.close();
  }
});

test("the request carries no bearer token and no byte of the token; its req_mac is k's over the asked fields", async () => {
  const s = await scripted(() => ({ status: 503, body: {} }));
  try {
    await client().ask({ node: "n2", api: s.url }, FROM, 2000);
    const [r] = s.seen;
    assert.ok(r, "one request");
    assert.equal(r.headers.authorization, undefined, "no bearer token");
    assert.ok(!r.text.includes(TOKEN) && !r.text.includes(K.toString("hex")), r.text);
    const body = JSON.parse(r.text) as { node: string; to: string; term: number; nonce: string; req_mac: string };
    assert.equal(body.req_mac, readyRequestMac(K, body));
    assert.deepEqual([body.node, body.to, body.term], ["n1", "n2", 42]);
  } finally {
    await s.close();
  }
});

test("forged, mismatched, silent or older targets: never a ready answer", async () => {
  const signed = (nonce: string, key: Buffer = K, node = "n2") => ({ node, nonce, ...facts, mac: readyAnswerMac(key, { node, nonce, ...facts }) });
  const cases: { name: string; respond: (b: { nonce: string; req_mac?: string }) => { status: number; body: unknown } | null; kind: string; why: RegExp }[] = [
    { name: "signed with another key", respond: (b) => ({ status: 200, body: signed(b.nonce, failsafeKey("forger-0123456789")) }), kind: "no answer", why: /MAC does not verify/ },
    { name: "unsigned", respond: (b) => ({ status: 200, body: { ...signed(b.nonce), mac: null } }), kind: "no answer", why: /MAC does not verify/ },
    { name: "the request's req_mac echoed", respond: (b) => ({ status: 200, body: { ...signed(b.nonce), mac: b.req_mac } }), kind: "no answer", why: /MAC does not verify/ },
    { name: "another nonce (a replay)", respond: () => ({ status: 200, body: signed("0".repeat(32)) }), kind: "no answer", why: /does not match the request/ },
    { name: "another node", respond: (b) => ({ status: 200, body: signed(b.nonce, K, "n3") }), kind: "no answer", why: /does not match the request/ },
    { name: "a field missing", respond: (b) => ({ status: 200, body: { ...signed(b.nonce), loop_alive: undefined } }), kind: "no answer", why: /does not match the request/ },
    { name: "not JSON", respond: () => ({ status: 200, body: undefined }), kind: "no answer", why: /not a JSON answer/ },
    { name: "silent", respond: () => null, kind: "no answer", why: /US_E_HTTP_TIMEOUT/ },
    // Asked only when its member key says it answers (answersReady): a 404 or a bearer refusal there is no answer, not "older".
    { name: "404", respond: () => ({ status: 404, body: { message: "Route POST:/handover/ready not found" } }), kind: "no answer", why: /^HTTP 404/ },
    { name: "a bearer refusal", respond: () => ({ status: 401, body: { error: "US_E_API_UNAUTHORIZED", message: "missing or wrong bearer token" } }), kind: "no answer", why: /^HTTP 401/ },
  ];
  for (const c of cases) {
    const s = await scripted(c.respond);
    try {
      const t0 = Date.now();
      const a = await client().ask({ node: "n2", api: s.url }, FROM, 300);
      assert.equal(a.kind, c.kind, c.name);
      assert.match((a as { why: string }).why, c.why, c.name);
      assert.ok(Date.now() - t0 < 2000, `${c.name}: settled within the timeout (${Date.now() - t0} ms)`);
    } finally {
      await s.close();
    }
  }
});

test("no token, and plain http (no mutual TLS to vouch for an answer): this node cannot ask (the move goes on unasked), nothing is sent", async () => {
  const s = await scripted(() => ({ status: 500, body: {} }));
  try {
    const a = await client(null).ask({ node: "n2", api: s.url }, FROM, 2000);
    assert.deepEqual(a, { kind: "cannot ask", why: "no API token on this node, and no mutual TLS to the target, to ask it with" });
    assert.equal(s.seen.length, 0);
  } finally {
    await s.close();
  }
});

test("a target that says it has no API token while this node has one: no answer (misconfigured, or not the target), not a move unasked", async () => {
  const m = await realMember(null);
  try {
    const a = await client().ask({ node: "n2", api: m.url }, FROM, 2000);
    assert.equal(a.kind, "no answer");
    assert.match(
      (a as { why: string }).why,
      /^HTTP 401: the target says it has no API token \(no API token is configured on this node \(api\.token_file\)\) while this node has one; set api\.token_file on every node$/,
    );
  } finally {
    await m.close();
  }
  // The same 401 forged by anything that answers on the target's address: judged the same way.
  const s = await scripted(() => ({ status: 401, body: { message: "no API token is configured on this node (api.token_file)" } }));
  try {
    assert.equal((await client().ask({ node: "n2", api: s.url }, FROM, 2000)).kind, "no answer");
  } finally {
    await s.close();
  }
});

test("https with the token: the answer's MAC vouches for it, so a server certificate this node cannot verify does not block the ask", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-ready-tls-"));
  try {
    const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "2", "-subj", "/CN=elsewhere"];
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const m = await realMember(TOKEN, {}, { cert: readFileSync(join(dir, "c.pem")), key: readFileSync(join(dir, "k.pem")) });
    try {
      const a = await client().ask({ node: "n2", api: m.url.replace("http:", "https:") }, FROM, 2000);
      assert.equal(a.kind, "answer", JSON.stringify(a));
    } finally {
      await m.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
