// POST /failsafe/grant (docs/failsafe-design.md, "Messages" and S1–S6): authenticated by
// req_mac (keyed with k = failsafeKey(token); never by the bearer token), the answer is the
// planner's decision, signed with k over the requester's nonce, and a grant binds this node
// (FailsafePromise) not to campaign for L + m.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { createHmac } from "node:crypto";
import { failsafeKey, grantMac, grantMacMatches, requestMac, requestMacMatches, type GrantAnswerBody } from "../../../src/api/failsafe.js";
import { grantMacInput } from "../../../src/ha/failsafe.js";
import { FailsafePromise, type GrantContext } from "../../../src/ha/failsafe-promise.js";
import { standbyView } from "../../fakes/node-view.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const K = failsafeKey(TOKEN);
const NONCE = "0123456789abcdef0123456789abcdef";
const BODY = { node: "n1", to: "n2", term: 42, lease_ms: 5000, nonce: NONCE, seq: 1 };
type Fields = typeof BODY;

/** The body as the failsafe client sends it: the fields and req_mac keyed with `key`. */
function signed(b: Fields, key: Buffer = K) {
  return { ...b, req_mac: requestMac(key, { node: b.node, to: b.to, term: b.term, leaseMs: b.lease_ms, nonce: b.nonce, seq: b.seq }) };
}

const etcdLostView = standbyView({ leaseRemainingMs: 3000, etcdReachable: false, decision: "no action: etcd unreachable" });

function setup(opts: { enabled?: boolean; token?: string | null; wired?: boolean; tokenSource?: { get(): Promise<string> } } = {}) {
  const clock = new FakeClock();
  const promise = new FailsafePromise(clock, { enabled: opts.enabled ?? true, self: "n2", leaseMs: 5000, fenceMarginMs: 1000 });
  let ctx: GrantContext = { acting: "standby", lastLeader: { node: "n1", term: 42 } };
  const metrics = new AgentMetrics(() => etcdLostView, { cluster: "c", node: "n2" });
  const calls = { answer: 0 };
  const app = buildApi({
    view: () => etcdLostView,
    coordinator: new FakeCoordinator(clock),
    metrics,
    clock,
    log: silentLogger(),
    token: opts.token === undefined ? TOKEN : opts.token,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(opts.tokenSource ? { tokenSource: opts.tokenSource } : {}),
    ...(opts.wired === false
      ? {}
      : {
          failsafe: {
            answer: (r) => {
              calls.answer++;
              return promise.answer(r, ctx);
            },
          },
        }),
  });
  /** As is: no req_mac unless the body has one. */
  const grantRaw = (body: unknown, headers: Record<string, string> = {}) => app.inject({ method: "POST", url: "/failsafe/grant", headers, payload: body as object });
  /** As the failsafe client sends it: signed with k, no authorization header, each with a seq above the last (S7). */
  let seq = 0;
  const grant = (fields: Fields = BODY) => grantRaw(signed({ ...fields, seq: ++seq }));
  return { app, clock, promise, calls, grant, grantRaw, setCtx: (c: Partial<GrantContext>) => (ctx = { ...ctx, ...c }) };
}

/** Past the start-up hold (S6), so a hold seen afterwards is a grant's. */
async function pastStartHold(s: ReturnType<typeof setup>) {
  await s.clock.advance(6000);
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null);
}

function macOk(b: GrantAnswerBody): boolean {
  return grantMacMatches(K, { node: b.node, granted: b.granted, leaseMs: b.lease_ms, nonce: b.nonce }, b.mac);
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
  assert.ok(macOk(b), "the MAC verifies with k");
  const oldScheme = createHmac("sha256", TOKEN)
    .update(grantMacInput({ node: b.node, granted: b.granted, leaseMs: b.lease_ms, nonce: b.nonce }))
    .digest("hex");
  assert.notEqual(b.mac, oldScheme, "not keyed with the raw token");
  assert.equal(s.promise.hold(s.clock.monotonicMs()), "not campaigning: I promised n1 (failsafe) not to campaign within 6000ms of its last grant request");
  assert.equal(s.promise.beginCampaign(), false, "S5: no campaign while promised");
  await s.clock.advance(5999);
  assert.equal(s.promise.beginCampaign(), false);
  await s.clock.advance(1);
  assert.equal(s.promise.beginCampaign(), true, "free once L + m has passed since receipt");
});

test("requests without req_mac, or with a wrong one, are 401: the planner is not asked and nothing is promised", async () => {
  const s = setup();
  await pastStartHold(s);
  const rawTokenMac = createHmac("sha256", TOKEN).update(`understudy-failsafe-req-v1|n1|42|5000|${NONCE}`).digest("hex");
  const cases: { name: string; body: object; headers?: Record<string, string>; why: RegExp }[] = [
    { name: "no req_mac", body: BODY, why: /missing req_mac/ },
    { name: "no req_mac, the bearer token instead", body: BODY, headers: AUTH, why: /missing req_mac/ },
    { name: "a wrong req_mac with the bearer token", body: signed(BODY, failsafeKey("another-token-0123456789")), headers: AUTH, why: /wrong req_mac/ },
    { name: "keyed with another token's k", body: signed(BODY, failsafeKey("another-token-0123456789")), why: /wrong req_mac/ },
    { name: "keyed with the raw token", body: { ...BODY, req_mac: rawTokenMac }, why: /wrong req_mac/ },
    { name: "a MAC over another term", body: { ...signed({ ...BODY, term: 41 }), term: 42 }, why: /wrong req_mac/ },
    { name: "a MAC over another lease", body: { ...signed({ ...BODY, lease_ms: 6000 }), lease_ms: 5000 }, why: /wrong req_mac/ },
    { name: "a MAC over another requester", body: { ...signed({ ...BODY, node: "n3" }), node: "n1" }, why: /wrong req_mac/ },
    { name: "a MAC over another member asked", body: { ...signed({ ...BODY, to: "n3" }), to: "n2" }, why: /wrong req_mac/ },
    { name: "a MAC over another seq", body: { ...signed({ ...BODY, seq: 7 }), seq: 8 }, why: /wrong req_mac/ },
    { name: "a MAC over another nonce", body: { ...signed({ ...BODY, nonce: "f".repeat(32) }), nonce: NONCE }, why: /wrong req_mac/ },
    { name: "upper-case hex", body: { ...BODY, req_mac: signed(BODY).req_mac.toUpperCase() }, why: /wrong req_mac/ },
    { name: "empty", body: { ...BODY, req_mac: "" }, why: /wrong req_mac/ },
  ];
  for (const c of cases) {
    const r = await s.grantRaw(c.body, c.headers);
    assert.equal(r.statusCode, 401, c.name);
    assert.equal(r.json().error, "US_E_API_UNAUTHORIZED", c.name);
    assert.match(r.json().message, c.why, c.name);
  }
  assert.equal(s.calls.answer, 0, "the planner was never asked");
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null, "nothing promised");
  assert.equal((await s.grant()).statusCode, 200, "the same request signed with k is granted");
  assert.equal(s.calls.answer, 1);
});

test("a node without a token refuses every request (401), whatever it carries", async () => {
  const s = setup({ token: null });
  await pastStartHold(s);
  for (const [body, headers] of [
    [BODY, {}],
    [signed(BODY), {}],
    [signed(BODY), AUTH],
  ] as const) {
    const r = await s.grantRaw(body, headers);
    assert.equal(r.statusCode, 401);
    assert.match(r.json().message, /no API token is configured/);
  }
  assert.equal(s.calls.answer, 0);
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null);
});

test("the endpoint derives k from the current token (api.token_file re-read): after a rotation the old k is refused", async () => {
  let current = TOKEN;
  const s = setup({ tokenSource: { get: async () => current } });
  await pastStartHold(s);
  assert.equal((await s.grant()).statusCode, 200);
  current = "rotated-token-0123456789";
  const stale = await s.grant();
  assert.equal(stale.statusCode, 401, "req_mac keyed with the old token's k");
  const kNew = failsafeKey(current);
  const fresh = await s.grantRaw(signed({ ...BODY, seq: 100 }, kNew));
  assert.equal(fresh.statusCode, 200);
  const b = fresh.json<GrantAnswerBody>();
  assert.ok(grantMacMatches(kNew, { node: b.node, granted: b.granted, leaseMs: b.lease_ms, nonce: b.nonce }, b.mac), "the answer is signed with the new k");
  assert.equal(macOk(b), false, "not with the old one");
});

test("other mutations still need the bearer token: the exemption is this route's only", async () => {
  const s = setup();
  const r = await s.app.inject({ method: "POST", url: "/pause", payload: {} });
  assert.equal(r.statusCode, 401);
  assert.match(r.json().message, /bearer token/);
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
    { ...BODY, seq: 0 },
    { ...BODY, seq: 1.5 },
    { ...BODY, seq: "2" },
    { ...BODY, to: "N2" },
    { node: "n1", term: 42, lease_ms: 5000, nonce: NONCE, seq: 1 },
    { node: "n1", term: 42, lease_ms: 5000, nonce: NONCE },
    { node: "n1", term: 42, lease_ms: 5000 },
  ];
  for (const body of bad) assert.equal((await s.grantRaw(body)).statusCode, 400, JSON.stringify(body));
  assert.equal(s.promise.hold(s.clock.monotonicMs()), null);
});

test("refusals are 409, signed too, with the planner's reason; nothing promised", async () => {
  const cases: { name: string; ctx?: Partial<GrantContext>; body?: Fields; enabled?: boolean; campaigning?: boolean; reason: RegExp }[] = [
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

test("S7: the same signed request twice, or an older one, is refused 409 (signed, nothing promised); a newer one is granted", async () => {
  const s = setup();
  await pastStartHold(s);
  const captured = signed({ ...BODY, seq: 1_700_000_000_000 });
  assert.equal((await s.grantRaw(captured)).statusCode, 200);
  await s.clock.advance(7000); // the promise has ended: only S7 can refuse now
  for (const body of [captured, signed({ ...BODY, seq: 1_699_999_999_000 })]) {
    const r = await s.grantRaw(body);
    assert.equal(r.statusCode, 409, `seq ${body.seq}`);
    const b = r.json<GrantAnswerBody>();
    assert.match(b.reason, /already answered in term 42 \(a replay\?\)$/);
    assert.ok(macOk(b), "signed");
    assert.equal(s.promise.hold(s.clock.monotonicMs()), null, "nothing promised");
  }
  assert.equal((await s.grantRaw(signed({ ...BODY, seq: 1_700_000_001_000 }))).statusCode, 200);
  // A request the primary sent to n3 in the same round (seq one above), captured and replayed here.
  const forN3 = await s.grantRaw(signed({ ...BODY, to: "n3", seq: 1_700_000_001_001 }));
  assert.equal(forN3.statusCode, 409);
  assert.match(forN3.json<GrantAnswerBody>().reason, /the request is for n3, not for this node \(n2\)/);
  assert.equal((await s.grantRaw(signed({ ...BODY, seq: 1_700_000_001_001 }))).statusCode, 200, "it did not move the mark: the request for me with that seq is granted");
});

test("no failsafe wired on the node: refused with the reason", async () => {
  const s = setup({ wired: false });
  const r = await s.grant();
  assert.equal(r.statusCode, 409);
  assert.match(r.json<GrantAnswerBody>().reason, /not wired/);
});

test("grantMacMatches refuses a changed verdict, node, lease, nonce, a wrong key (the raw token too) and malformed MACs", () => {
  const a = { node: "n2", granted: true, leaseMs: 5000, nonce: NONCE };
  const mac = grantMac(K, a);
  assert.equal(grantMacMatches(K, a, mac), true);
  for (const changed of [{ granted: false }, { node: "n3" }, { leaseMs: 6000 }, { nonce: NONCE.replace("0", "1") }]) assert.equal(grantMacMatches(K, { ...a, ...changed }, mac), false);
  assert.equal(grantMacMatches(failsafeKey("another-token-0123456789"), a, mac), false);
  assert.equal(grantMacMatches(Buffer.from(TOKEN), a, mac), false);
  assert.equal(grantMacMatches(K, a, createHmac("sha256", TOKEN).update(grantMacInput(a)).digest("hex")), false, "the old scheme (keyed with the raw token)");
  for (const bad of [null, undefined, "", "zz", mac.slice(2), mac.toUpperCase()]) assert.equal(grantMacMatches(K, a, bad), false);
});

test('k is HMAC-SHA256(token, "understudy-failsafe-key-v1"); a request MAC is never an answer MAC', () => {
  assert.equal(K.toString("hex"), createHmac("sha256", TOKEN).update("understudy-failsafe-key-v1").digest("hex"));
  const r = { node: "n1", to: "n2", term: 42, leaseMs: 5000, nonce: NONCE, seq: 1_700_000_000_000 };
  const mac = requestMac(K, r);
  assert.equal(mac, createHmac("sha256", K).update(`understudy-failsafe-req-v2|n1|n2|42|5000|1700000000000|${NONCE}`).digest("hex"));
  assert.equal(requestMacMatches(K, r, mac), true);
  for (const changed of [{ node: "n3" }, { to: "n3" }, { term: 43 }, { leaseMs: 6000 }, { nonce: NONCE.replace("0", "1") }, { seq: r.seq + 1 }])
    assert.equal(requestMacMatches(K, { ...r, ...changed }, mac), false);
  const v1 = createHmac("sha256", K).update(`understudy-failsafe-req-v1|n1|42|5000|${NONCE}`).digest("hex");
  assert.equal(requestMacMatches(K, r, v1), false, "a v1 request (no seq) does not verify: an older primary is refused, it fences");
  assert.equal(grantMacMatches(K, { node: "n1", granted: true, leaseMs: 5000, nonce: NONCE }, mac), false);
});
