// Every API mutation route with bad input (issue 11, item 3, "nothing changed"):
// wrong types, unknown fields, names outside the node pattern, unknown nodes,
// bad durations and times, oversized fields, broken JSON, wrong tokens. Each is
// refused with its status and code, and the coordinator (FakeCoordinator: the
// same port the agent's etcd adapter implements) holds exactly what it held
// before: snapshot and history deep-equal, no write reached it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { buildApi } from "../../../src/api/server.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { member } from "../cli/cli-helpers.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
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

async function setup() {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(60_000);
  await etcd.campaign("n1", lease.id, "");
  await etcd.putMember(member("n1", { role: "primary" }), lease.id);
  await etcd.putMember(member("n2"), lease.id);
  await etcd.putMember(member("n3", { healthy: false }), lease.id);
  const app = buildApi({
    view: () => view,
    coordinator: etcd,
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
    clock,
    log: silentLogger(),
    token: TOKEN,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
  });
  const state = async () => JSON.stringify({ snap: await etcd.snapshot(), history: await etcd.history(1000) });
  return { app, state };
}

type Case = readonly [route: string, body: unknown, status: number, code: string];
const NAMES_BAD: readonly unknown[] = [7, 0, -1, 1.5, null, true, [], ["n2"], {}, { n: "n2" }, "", "N2", "n2;rm", "-n2", "n2-", "n_2", "n 2", "n2\n", "n2\u001b[2J", "../n2", "x".repeat(64), "ñ2"];
const LONG = "x".repeat(501);

const CASES: Case[] = [
  // Node names: every route that takes one, every bad name (400: the schema refuses before anything is read).
  ...NAMES_BAD.flatMap((to): Case[] => [
    ["/switchover", { to }, 400, "US_E_API_BAD_REQUEST"],
    ["/failover", { to, force: true }, 400, "US_E_API_BAD_REQUEST"],
    ["/failback", { to }, 400, "US_E_API_BAD_REQUEST"],
    ["/ban", { node: to, duration: "5m" }, 400, "US_E_API_BAD_REQUEST"],
    ["/unban", { node: to }, 400, "US_E_API_BAD_REQUEST"],
  ]),
  // Unknown, ineligible or primary nodes: a precondition, nothing written.
  ["/switchover", { to: "n9" }, 412, "US_E_API_PRECONDITION"],
  ["/failover", { to: "n9", force: true }, 412, "US_E_API_PRECONDITION"],
  ["/failback", { to: "n9" }, 412, "US_E_API_PRECONDITION"],
  ["/switchover", { to: "n1" }, 412, "US_E_API_PRECONDITION"],
  ["/switchover", { to: "n3" }, 412, "US_E_API_PRECONDITION"],
  ["/failover", { to: "n3" }, 412, "US_E_API_PRECONDITION"],
  ["/ban", { node: "n1", duration: "5m" }, 412, "US_E_API_PRECONDITION"],
  ["/failback", {}, 412, "US_E_API_PRECONDITION"],
  ["/resume", {}, 412, "US_E_API_PRECONDITION"],
  ["/resync", {}, 412, "US_E_API_PRECONDITION"],
  // Wrong types and missing or unknown fields.
  ["/failover", {}, 400, "US_E_API_BAD_REQUEST"],
  ["/failover", { to: "n2", force: "true" }, 400, "US_E_API_BAD_REQUEST"],
  ["/failover", { to: "n2", force: 1 }, 400, "US_E_API_BAD_REQUEST"],
  ["/switchover", { to: "n2", at: "tomorrow" }, 400, "US_E_API_BAD_REQUEST"],
  ["/switchover", { to: "n2", at: 1893456000 }, 400, "US_E_API_BAD_REQUEST"],
  ["/switchover", { to: "n2", at: "2001-01-01T00:00:00Z" }, 400, "US_E_API_BAD_REQUEST"],
  ["/switchover", { to: "n2", force: true }, 400, "US_E_API_BAD_REQUEST"],
  ["/failback", { to: "n2", at: "2030-01-01T00:00:00Z" }, 400, "US_E_API_BAD_REQUEST"],
  ["/ban", { node: "n2" }, 400, "US_E_API_BAD_REQUEST"],
  ["/ban", { duration: "5m" }, 400, "US_E_API_BAD_REQUEST"],
  ["/unban", {}, 400, "US_E_API_BAD_REQUEST"],
  ...["5", "0s", "999ms", "169h", "-1m", "5 m", "1m30s", "5d", ""].map((duration): Case => ["/ban", { node: "n2", duration }, 400, "US_E_API_BAD_REQUEST"]),
  ["/ban", { node: "n2", duration: 300 }, 400, "US_E_API_BAD_REQUEST"],
  ...["/switchover", "/failover", "/failback", "/pause", "/resume", "/ban", "/unban", "/flap/clear", "/resync"].flatMap((route): Case[] => {
    const base: Record<string, unknown> = route === "/ban" ? { node: "n2", duration: "5m" } : route === "/unban" ? { node: "n2" } : route === "/failover" ? { to: "n2" } : {};
    return [
      [route, { ...base, extra: 1 }, 400, "US_E_API_BAD_REQUEST"],
      [route, { ...base, reason: LONG }, 400, "US_E_API_BAD_REQUEST"],
      [route, { ...base, reason: 7 }, 400, "US_E_API_BAD_REQUEST"],
      [route, { ...base, requested_by: "y".repeat(101) }, 400, "US_E_API_BAD_REQUEST"],
      [route, { ...base, requested_by: ["ops"] }, 400, "US_E_API_BAD_REQUEST"],
      [route, "[]", 400, "US_E_API_BAD_REQUEST"],
      [route, '"n2"', 400, "US_E_API_BAD_REQUEST"],
      [route, '{"to": ', 400, "US_E_API_BAD_REQUEST"],
      [route, { ...base, reason: "z".repeat(5000) }, 413, "US_E_API_BAD_REQUEST"],
    ];
  }),
];

const ROUTES = ["/switchover", "/failover", "/failback", "/pause", "/resume", "/ban", "/unban", "/flap/clear", "/resync"];

test("every mutation route refuses bad bodies with the code, and nothing reaches the coordinator", async () => {
  const { app, state } = await setup();
  const before = await state();
  const counts = new Map<number, number>();
  for (const [route, body, status, code] of CASES) {
    const payload = typeof body === "string" ? body : JSON.stringify(body);
    const r = await app.inject({ method: "POST", url: route, headers: AUTH, payload });
    const what = `POST ${route} ${payload.slice(0, 80)}`;
    assert.equal(r.statusCode, status, `${what}: ${r.statusCode} ${r.body}`);
    assert.equal((r.json() as { error: string }).error, code, what);
    assert.equal(await state(), before, `${what}: the coordinator changed`);
    counts.set(status, (counts.get(status) ?? 0) + 1);
  }
  console.log(`${CASES.length} bad mutation bodies: ${[...counts].map(([s, n]) => `${n} x ${s}`).join(", ")}`);
  await app.close();
});

test("every mutation route refuses a missing, wrong or malformed token (401), and nothing changes", async () => {
  const { app, state } = await setup();
  const before = await state();
  // ("Bearer  TOKEN" with two spaces is accepted: RFC 7235 allows 1*SP after the scheme.)
  const tokens: (string | undefined)[] = [
    undefined,
    "",
    "Bearer",
    "Bearer ",
    "Bearer wrong",
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `bearer${TOKEN}`,
    `Basic ${TOKEN}`,
    TOKEN,
    `Bearer ${TOKEN} extra`,
  ];
  let tried = 0;
  for (const route of ROUTES) {
    for (const authorization of tokens) {
      const headers: Record<string, string> = { "content-type": "application/json", ...(authorization !== undefined ? { authorization } : {}) };
      const body = route === "/ban" ? { node: "n2", duration: "5m" } : route === "/unban" ? { node: "n2" } : route === "/failover" ? { to: "n2" } : {};
      const r = await app.inject({ method: "POST", url: route, headers, payload: JSON.stringify(body) });
      assert.equal(r.statusCode, 401, `${route} with ${JSON.stringify(authorization)}: ${r.statusCode}`);
      assert.equal((r.json() as { error: string }).error, "US_E_API_UNAUTHORIZED");
      tried++;
    }
    const del = await app.inject({ method: "DELETE", url: "/switchover", headers: { authorization: "Bearer wrong" } });
    assert.equal(del.statusCode, 401);
  }
  assert.equal(await state(), before, "the coordinator changed");
  assert.equal(tried, ROUTES.length * tokens.length);
  await app.close();
});

test("the good bodies of the same routes are accepted: the refusals above are about the input", async () => {
  const { app, state } = await setup();
  const before = await state();
  const ok = async (route: string, body: unknown) => {
    const r = await app.inject({ method: "POST", url: route, headers: AUTH, payload: JSON.stringify(body) });
    assert.equal(r.statusCode, 202, `${route}: ${r.body}`);
  };
  await ok("/ban", { node: "n2", duration: "5m", reason: "x".repeat(500), requested_by: "y".repeat(100) });
  await ok("/unban", { node: "n2" });
  await ok("/pause", {});
  await ok("/resume", {});
  await ok("/flap/clear", {});
  await ok("/switchover", { to: "n2" });
  assert.notEqual(await state(), before);
  await app.close();
});
