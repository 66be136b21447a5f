// Route validation with zod (src/api/validate.ts): fastify's ajv and
// fast-json-stringify are never loaded, a 400 names the field and the rule,
// and a route left with a JSON schema fails the API's start, not a request.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import Fastify from "fastify";
import { ZOD_SCHEMAS } from "../../../src/api/validate.js";
import { TOKEN, realApi } from "../cli/cli-helpers.js";

const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

async function post(url: string, route: string, body?: string, headers: Record<string, string> = AUTH) {
  const r = await fetch(`${url}${route}`, { method: "POST", headers, ...(body !== undefined ? { body } : {}) });
  return { statusCode: r.status, json: (await r.json()) as { error?: string; message?: string } };
}

test("the API validates with zod: ajv, ajv-formats and fast-json-stringify are never loaded", async (t) => {
  const api = await realApi();
  t.after(() => api.close()); // also when an assertion fails: an open server would keep the file running
  const loaded = Object.keys(createRequire(import.meta.url).cache);
  assert.ok(
    loaded.some((f) => f.includes("/node_modules/fastify/")),
    "fastify itself is in require.cache (the check looks in the right place)",
  );
  // (fastify's own error serializer is precompiled and needs only fast-json-stringify/lib/serializer.js.)
  const heavy = loaded.filter((f) => /\/node_modules\/(ajv|ajv-formats|@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler)\/|\/fast-json-stringify\/index\.js$/.test(f));
  assert.deepEqual(heavy, []);
});

test("a refused body names the field and the rule", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const cases: readonly [route: string, body: string, message: RegExp][] = [
    ["/switchover", JSON.stringify({ to: "N2!" }), /^to: must be a node name/],
    ["/switchover", JSON.stringify({ to: "n2", colour: "red" }), /^colour: unknown field$/],
    ["/switchover", JSON.stringify({ to: "n2", at: "tomorrow" }), /^at: must be an RFC 3339 date-time/],
    ["/switchover", JSON.stringify({ to: "n2", at: "2030-02-30T00:00:00Z" }), /^at: must be an RFC 3339 date-time/],
    ["/switchover", JSON.stringify({ to: "n2", drain: "x".repeat(21) }), /^drain: must be at most 20 characters/],
    ["/switchover", JSON.stringify({ to: "n2", reason: "r".repeat(501) }), /^reason: must be at most 500 characters/],
    ["/switchover", "[]", /^body: must be a JSON object/],
    ["/switchover", '"n2"', /^body: must be a JSON object/],
    ["/failover", JSON.stringify({}), /^to: /],
    ["/failover", JSON.stringify({ to: "n2", force: "true" }), /^force: /],
    ["/ban", JSON.stringify({ node: "n2" }), /^duration: /],
    ["/unban", "null", /^body: must be a JSON object/],
  ];
  for (const [route, payload, message] of cases) {
    const r = await post(api.url, route, payload);
    assert.equal(r.statusCode, 400, `${route} ${payload.slice(0, 60)}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error, "US_E_API_BAD_REQUEST");
    assert.match(r.json.message ?? "", message, `${route} ${payload.slice(0, 60)}`);
  }
  const get = async (q: string) => {
    const r = await fetch(`${api.url}/history${q}`);
    return { statusCode: r.status, json: (await r.json()) as { message?: string } };
  };
  const q = await get("?limit=1001");
  assert.equal(q.statusCode, 400);
  assert.match(q.json.message ?? "", /^limit: must be a whole number from 1 to 1000/);
  assert.match((await get("?limit=5&x=1")).json.message ?? "", /^x: unknown field/);
  assert.equal((await get("?limit=5")).statusCode, 200);
  // Optional-only bodies may be left out (no payload at all): fastify hands those over as null.
  assert.equal((await post(api.url, "/pause", undefined, { authorization: AUTH.authorization })).statusCode, 202);
});

test("a route left with a JSON schema fails the API's start, naming the route", async () => {
  const app = Fastify({ logger: false, schemaController: ZOD_SCHEMAS });
  app.post("/x", { schema: { body: { type: "object" } } }, async () => ({}));
  await assert.rejects(async () => {
    await app.ready();
  }, /POST \/x: the body schema is not a zod schema/);
});
