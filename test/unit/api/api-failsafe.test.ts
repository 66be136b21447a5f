// POST /failsafe/grant (docs/failsafe-design.md, "Messages" and S1–S6): authenticated like
// every mutation, the answer is the planner's decision, signed over the requester's nonce,
// and a grant binds this node (FailsafePromise) not to campaign for L + m.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { grantMac, grantMacMatches, type GrantAnswerBody } from "../../../src/api/failsafe.js";
import { FailsafePromise, type GrantContext } from "../../../src/ha/failsafe-promise.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const NONCE = "0123456789abcdef0123456789abcdef";
const BODY = { node: "n1", term: 42, lease_ms: 5000, nonce: NONCE };

const standbyView: NodeView = {
  node: "n2",
  acting: "standby",
  term: null,
  leaseRemainingMs: 3000,
  etcdReachable: false,
  decision: "no action: etcd unreachable",
  sinceLastCycleMs: 100,
  vipHeld: false,
  daemonRunning: false,
  probes: [],
  healthy: true,
  notReady: null,
};

function setup(opts: { enabled?: boolean; token?: string | null; wired?: boolean } = {}) {
  const clock = new FakeClock();
  const promise = new FailsafePromise(clock, { enabled: opts.enabled ?? true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 });
  let ctx: GrantContext = { acting: "standby", lastLeader: { node: "n1", term: 42 } };
  const metrics = new AgentMetrics(() => standbyView, { cluster: "c", node: "n2" });
  const app = buildApi({
    view: () => standbyView,
    coordinator: new FakeCoordinator(clock),
    metrics,
    clock,
    log: silentLogger(),
    token: opts.token === undefined ? TOKEN : opts.token,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(opts.wired === false ? {} : { failsafe: { answer: (r) => promise.answer(r, ctx) } }),
  });
  const grant = (body: unknown = BODY, headers: Record<string, string> = AUTH) => app.inject({ method: "POST", url: "/failsafe/grant", headers, payload: body as object });
  return { app, clock, promise, grant, setCtx: (c: Partial<GrantContext>) => (ctx = { ...ctx, ...c }) };
}

/** Past the start-up hold (S6), so a hold seen afterwards is a grant's. */
async function pastStartHold(s: ReturnType<typeof setup>) {
  await s.clock.advance(6000);
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null);
}

function macOk(b: GrantAnswerBody): boolean {
  return grantMacMatches(TOKEN, { node: b.node, granted: b.granted, leaseMs: b.lease_ms, nonce: b.nonce }, b.mac);
}

test("a standby following the requester grants: 200, signed over the nonce, and it holds its campaign for L + m", async () => {
  const s = setup();
  await pastStartHold(s);
  const r = await s.grant();
  assert.equal(r.statusCode, 200);
  const b = r.json<GrantAnswerBody>();
  assert.equal(b.granted, true);
  assert.equal(b.node, "n2");
  assert.equal(b.nonce, NONCE);
  assert.equal(b.promised_for_ms, 6000);
  assert.match(b.reason, /^granted: I am a standby following n1 \(term 42\)/);
  assert.ok(macOk(b), "the MAC verifies with the cluster token");
  assert.equal(s.promise.hold(s.clock.monotonicMs()), "not campaigning: I promised n1 (failsafe) not to campaign within 6000ms of its last grant request");
  assert.equal(s.promise.beginCampaign(), false, "S5: no campaign while promised");
  await s.clock.advance(5999);
  assert.equal(s.promise.beginCampaign(), false);
  await s.clock.advance(1);
  assert.equal(s.promise.beginCampaign(), true, "free once L + m has passed since receipt");
});

test("requests without the token, or with a wrong one, are 401 and promise nothing", async () => {
  const s = setup();
  await pastStartHold(s);
  for (const headers of [{}, { authorization: "Bearer wrong-token-0123456789" }, { authorization: `Basic ${TOKEN}` }]) {
    const r = await s.grant(BODY, headers);
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error, "US_E_API_UNAUTHORIZED");
  }
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null, "nothing promised");
});

test("bad bodies are 400 and promise nothing", async () => {
  const s = setup();
  await pastStartHold(s);
  const bad = [
    { ...BODY, nonce: "short" },
    { ...BODY, nonce: NONCE.toUpperCase() },
    { ...BODY, lease_ms: 500 },
    { ...BODY, lease_ms: "5000" },
    { ...BODY, term: 0 },
    { ...BODY, node: "N1" },
    { ...BODY, extra: true },
    { node: "n1", term: 42, lease_ms: 5000 },
  ];
  for (const body of bad) assert.equal((await s.grant(body)).statusCode, 400, JSON.stringify(body));
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null);
});

test("refusals are 409, signed too, with the planner's reason; nothing promised", async () => {
  const cases: { name: string; ctx?: Partial<GrantContext>; body?: object; enabled?: boolean; campaigning?: boolean; reason: RegExp }[] = [
    { name: "acting primary", ctx: { acting: "primary" }, reason: /n2 acts as primary/ },
    { name: "another leader seen", ctx: { lastLeader: { node: "n3", term: 50 } }, reason: /last named n3/ },
    { name: "lease period mismatch", body: { ...BODY, lease_ms: 3000 }, reason: /differs from this node's election.ttl/ },
    { name: "failsafe off", enabled: false, reason: /failsafe is off on this node/ },
    { name: "S5: campaign in flight", campaigning: true, reason: /is campaigning/ },
  ];
  for (const c of cases) {
    const s = setup(c.enabled === undefined ? {} : { enabled: c.enabled });
    await pastStartHold(s);
    if (c.ctx) s.setCtx(c.ctx);
    if (c.campaigning) assert.equal(s.promise.beginCampaign(), true);
    const r = await s.grant(c.body ?? BODY);
    assert.equal(r.statusCode, 409, c.name);
    const b = r.json<GrantAnswerBody>();
    assert.equal(b.granted, false);
    assert.match(b.reason, c.reason, c.name);
    assert.ok(macOk(b), `${c.name}: signed`);
    assert.equal(s.promise.hold(s.clock.monotonicMs()), null, `${c.name}: nothing promised`);
  }
});

test("S5: after a lost campaign (endCampaign) the node grants again", async () => {
  const s = setup();
  await pastStartHold(s);
  assert.equal(s.promise.beginCampaign(), true);
  assert.equal((await s.grant()).statusCode, 409);
  s.promise.endCampaign();
  assert.equal((await s.grant()).statusCode, 200);
});

test("S6: with failsafe on an agent holds its first campaign for L + m after its start; off: never", async () => {
  const on = setup();
  assert.match(on.promise.hold(on.clock.monotonicMs())!, /start-up hold, 6000ms from the agent's start/);
  assert.equal(on.promise.beginCampaign(), false);
  const off = setup({ enabled: false });
  assert.equal(off.promise.hold(off.clock.monotonicMs()), null);
  assert.equal(off.promise.beginCampaign(), true);
});

test("a later grant extends the promise, an earlier one never shortens it", async () => {
  const s = setup();
  await pastStartHold(s);
  await s.grant();
  const first = s.promise.promisedUntilMs();
  await s.clock.advance(1000);
  await s.grant();
  assert.equal(s.promise.promisedUntilMs(), first + 1000);
});

test("no failsafe wired on the node: refused with the reason", async () => {
  const s = setup({ wired: false });
  const r = await s.grant();
  assert.equal(r.statusCode, 409);
  assert.match(r.json<GrantAnswerBody>().reason, /not wired/);
});

test("grantMacMatches refuses a changed verdict, node, lease, nonce, a wrong key and malformed MACs", () => {
  const a = { node: "n2", granted: true, leaseMs: 5000, nonce: NONCE };
  const mac = grantMac(TOKEN, a);
  assert.equal(grantMacMatches(TOKEN, a, mac), true);
  for (const changed of [{ granted: false }, { node: "n3" }, { leaseMs: 6000 }, { nonce: NONCE.replace("0", "1") }]) assert.equal(grantMacMatches(TOKEN, { ...a, ...changed }, mac), false);
  assert.equal(grantMacMatches("another-token-0123456789", a, mac), false);
  for (const bad of [null, "", "zz", mac.slice(2), mac.toUpperCase()]) assert.equal(grantMacMatches(TOKEN, a, bad), false);
});
