// FailsafePeerClient (src/api/failsafe-peers.ts) against real HTTP servers on loopback: the real
// API for honest answers, a hand-written server for forged, replayed and silent ones. A verdict is
// granted only for a signed 200 answer from the member asked, for this lease and this nonce.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { FailsafePeerClient } from "../../../src/api/failsafe-peers.js";
import { grantMac } from "../../../src/api/failsafe.js";
import { FailsafePromise } from "../../../src/ha/failsafe-promise.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const REQUEST = { node: "n1", term: 42, leaseMs: 5000 };

const view = { node: "n2", acting: "standby" } as NodeView;

async function realMember(token: string) {
  const clock = new FakeClock();
  const promise = new FailsafePromise(clock, { enabled: true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 });
  await clock.advance(6000); // past the start-up hold
  const app = buildApi({
    view: () => view,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n2" }),
    clock,
    log: silentLogger(),
    token,
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

const client = (token: string | null = TOKEN) => new FailsafePeerClient({ token: async () => token });

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
  const signed = (a: { node: string; granted: boolean; leaseMs: number; nonce: string }, key = TOKEN) => ({
    node: a.node,
    granted: a.granted,
    lease_ms: a.leaseMs,
    nonce: a.nonce,
    promised_for_ms: 6000,
    reason: "granted",
    mac: grantMac(key, a),
  });
  const cases: { name: string; respond: (b: { nonce: string }) => { status: number; body: unknown }; why: RegExp }[] = [
    {
      name: "signed with another key",
      respond: (b) => ({ status: 200, body: signed({ node: "n2", granted: true, leaseMs: 5000, nonce: b.nonce }, "forger-key-0123456789") }),
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
