// Webhook (src/hooks/webhook.ts) against a real HTTP server on 127.0.0.1:
// the JSON it posts, retries with Clock backoff on 5xx/429 and network errors,
// giving up, the bounded queue, close(), and no secret in the logs.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as wait } from "node:timers/promises";
import { pino } from "pino";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { Webhook, type WebhookOptions } from "../../../src/hooks/webhook.js";
import { FakeClock } from "../../fakes/clock.js";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Record<string, unknown>;
}

type Reply = (res: ServerResponse, n: number) => void;

/** A receiver that records each request and answers with `reply` (the request's 1-based number). */
async function receiver(t: TestContext, reply: Reply = (res) => res.end("ok")) {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8").on("data", (d: string) => (text += d));
    req.on("end", () => {
      got.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: JSON.parse(text) as Record<string, unknown> });
      reply(res, got.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { got, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function capture() {
  const lines: string[] = [];
  const log = pino({ level: "trace" }, { write: (s: string) => void lines.push(s) });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => lines.join("") };
}

function webhook(options: Partial<WebhookOptions> & { url: string }, extra: { queueLimit?: number } = {}) {
  const clock = new FakeClock();
  const logs = capture();
  const hook = new Webhook({ timeoutMs: 2000, retries: 3, ...options }, { clock, log: logs.log, cluster: "sftp-prod", node: "n1", ...extra });
  return { hook, clock, logs };
}

/** Wait (in real time: the network is real) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await wait(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("an event is POSTed as JSON with cluster, node and the time, and the configured headers", async (t) => {
  const srv = await receiver(t);
  const { hook, clock } = webhook({ url: `${srv.origin}/hooks/understudy?token=abc`, headers: { Authorization: "Bearer xyz", "X-Env": "prod" } });
  hook.notify({ type: "promoted", kind: "failover", term: 7 });
  await until(() => srv.got.length === 1, "the request");
  const r = srv.got[0]!;
  assert.equal(r.method, "POST");
  assert.equal(r.url, "/hooks/understudy?token=abc");
  assert.equal(r.headers["content-type"], "application/json");
  assert.equal(r.headers.authorization, "Bearer xyz");
  assert.equal(r.headers["x-env"], "prod");
  assert.deepEqual(r.body, { type: "promoted", kind: "failover", term: 7, cluster: "sftp-prod", node: "n1", at: new Date(clock.wallMs()).toISOString() });
  await hook.close();
});

test("503 is retried after 200 ms, then 400 ms (on the Clock), until it succeeds", async (t) => {
  const srv = await receiver(t, (res, n) => {
    res.statusCode = n <= 2 ? 503 : 204;
    res.end();
  });
  const { hook, clock, logs } = webhook({ url: `${srv.origin}/x` });
  hook.notify({ type: "demoted" });
  await until(() => srv.got.length === 1 && clock.pendingTimers() === 1, "the first attempt and its backoff");
  await clock.advance(199);
  assert.equal(srv.got.length, 1, "no retry before 200 ms");
  await clock.advance(1);
  await until(() => srv.got.length === 2 && clock.pendingTimers() === 1, "the second attempt and its backoff");
  await clock.advance(399);
  assert.equal(srv.got.length, 2, "no retry before another 400 ms");
  await clock.advance(1);
  await until(() => logs.entries().some((e) => e.msg === "webhook event delivered"), "the delivery");
  assert.equal(srv.got.length, 3);
  assert.equal(logs.entries().find((e) => e.msg === "webhook event delivered")!.attempts, 3);
  assert.equal(
    logs.entries().some((e) => e.level === 40),
    false,
    "a delivery that succeeds in the end is not a warning",
  );
  await hook.close();
});

/** Advance the clock through each backoff as soon as it is armed, until `done`. */
async function driveBackoffs(clock: FakeClock, done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) {
    if (clock.pendingTimers() > 0) await clock.advance(10_000);
    else await wait(5);
  }
  assert.ok(done(), "finished");
}

test("gives up after 1 + retries attempts on 5xx and 429, with US_E_WEBHOOK_FAILED", async (t) => {
  for (const status of [500, 503, 429]) {
    const srv = await receiver(t, (res) => {
      res.statusCode = status;
      res.end();
    });
    const { hook, clock, logs } = webhook({ url: `${srv.origin}/x`, retries: 2 });
    hook.notify({ type: "fenced" });
    const failed = () => logs.entries().find((e) => String(e.msg).startsWith("US_E_WEBHOOK_FAILED"));
    await driveBackoffs(clock, () => failed() !== undefined);
    assert.equal(srv.got.length, 3, `HTTP ${status}`);
    assert.equal(failed()!.msg, `US_E_WEBHOOK_FAILED: webhook event fenced to ${srv.origin} not delivered after 3 attempt(s): HTTP ${status}`);
    assert.equal(clock.pendingTimers(), 0);
    await hook.close();
  }
});

test("other refusals (400, 401, a redirect) are not retried", async (t) => {
  for (const status of [400, 401, 302]) {
    const srv = await receiver(t, (res) => {
      res.statusCode = status;
      if (status === 302) res.setHeader("location", "http://127.0.0.1:1/elsewhere");
      res.end();
    });
    const { hook, clock, logs } = webhook({ url: `${srv.origin}/x` });
    hook.notify({ type: "demoted" });
    await until(() => logs.entries().some((e) => String(e.msg).startsWith("US_E_WEBHOOK_FAILED")), `giving up on ${status}`);
    assert.equal(srv.got.length, 1);
    assert.equal(clock.pendingTimers(), 0, "no backoff armed");
    assert.match(logs.text(), new RegExp(`after 1 attempt\\(s\\): HTTP ${status}`));
    await hook.close();
  }
});

test("network errors are retried, then given up; neither the URL's path and query nor a header value is logged", async (t) => {
  const srv = await receiver(t);
  const closedPort = await (async () => {
    const s = createServer();
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    const port = (s.address() as AddressInfo).port;
    await new Promise((resolve) => s.close(resolve));
    return port;
  })();
  const secret = { url: `http://127.0.0.1:${closedPort}/path-s3cret/in?token=s3cret-query`, headers: { Authorization: "Bearer s3cret-header" } };
  const { hook, clock, logs } = webhook({ ...secret, retries: 1 }, { queueLimit: 1 });
  hook.notify({ type: "promoted" });
  hook.notify({ type: "demoted" });
  hook.notify({ type: "fenced" }); // queue of 1: "demoted" is dropped
  await driveBackoffs(clock, () => logs.entries().filter((e) => String(e.msg).startsWith("US_E_WEBHOOK_FAILED")).length === 2);
  const text = logs.text();
  assert.match(text, /US_E_WEBHOOK_DROPPED: webhook queue full \(1 events\): dropped the oldest event demoted/);
  assert.match(text, new RegExp(`webhook event promoted to http://127.0.0.1:${closedPort} not delivered after 2 attempt\\(s\\): ECONNREFUSED`));
  assert.equal(text.includes("s3cret"), false, `a secret reached the log:\n${text}`);
  assert.equal(srv.got.length, 0);
  await hook.close();
});

test("the queue holds at most queueLimit events and drops the oldest, in order", async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const srv = await receiver(t, (res, n) => void (n === 1 ? gate.then(() => res.end()) : res.end()));
  const { hook, logs } = webhook({ url: `${srv.origin}/x` }, { queueLimit: 100 });
  hook.notify({ type: "e", seq: 0 });
  await until(() => srv.got.length === 1, "the first request, held by the server");
  for (let seq = 1; seq <= 105; seq++) hook.notify({ type: "e", seq });
  assert.equal(hook.pending(), 100);
  assert.equal(logs.entries().filter((e) => String(e.msg).startsWith("US_E_WEBHOOK_DROPPED")).length, 5);
  release();
  await until(() => srv.got.length === 101, "the rest");
  assert.deepEqual(
    srv.got.map((r) => r.body.seq),
    [0, ...Array.from({ length: 100 }, (_, i) => i + 6)],
  );
  await hook.close();
});

test("close() waits for the delivery in progress", async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const srv = await receiver(t, (res) => void gate.then(() => res.end()));
  const { hook, logs } = webhook({ url: `${srv.origin}/x` });
  hook.notify({ type: "demoted", why: "shutdown" });
  await until(() => srv.got.length === 1, "the request");
  let closed = false;
  const closing = hook.close().then(() => (closed = true));
  await wait(20);
  assert.equal(closed, false);
  release();
  await closing;
  assert.ok(
    logs.entries().some((e) => e.msg === "webhook event delivered"),
    'logs.entries().some((e) => e.msg === "webhook event delivered")',
  );
  hook.notify({ type: "after-close" }); // ignored, never thrown
  assert.equal(hook.pending(), 0);
});

test("close() gives up after its bound (on the Clock) on a receiver that never answers", async (t) => {
  const srv = await receiver(t, () => undefined);
  const { hook, clock, logs } = webhook({ url: `${srv.origin}/x`, timeoutMs: 60_000 });
  hook.notify({ type: "demoted" });
  hook.notify({ type: "fenced" });
  await until(() => srv.got.length === 1, "the request");
  let closed = false;
  void hook.close().then(() => (closed = true));
  await clock.advance(1999);
  assert.equal(closed, false);
  await clock.advance(1);
  await until(() => closed, "close()");
  assert.ok(
    logs.entries().some((e) => e.msg === "webhook: shutting down with events undelivered" && e.undelivered === 2),
    'logs.entries().some((e) => e.msg === "webhook: shutting down with events undelivered" && e.undeli...',
  );
});

test("notify() never throws, even for an event JSON cannot encode", async (t) => {
  const srv = await receiver(t);
  const { hook, logs } = webhook({ url: `${srv.origin}/x` });
  assert.doesNotThrow(() => hook.notify({ type: "weird", n: 1n }));
  hook.notify({ type: "fine" });
  await until(() => srv.got.length === 1, "the next event");
  assert.equal(srv.got[0]!.body.type, "fine");
  assert.ok(
    logs.entries().some((e) => e.msg === "webhook event cannot be encoded as JSON; dropped"),
    'logs.entries().some((e) => e.msg === "webhook event cannot be encoded as JSON; dropped")',
  );
  await hook.close();
});

test("bad settings are refused at construction with US_E_HOOK_CONFIG, without showing the value", () => {
  const deps = { clock: new FakeClock(), log: capture().log, cluster: "c", node: "n" };
  const cases: { options: WebhookOptions; setting: string }[] = [
    { options: { url: "ftp://h/x?token=s3cret", timeoutMs: 1, retries: 0 }, setting: "hooks.webhook.url" },
    { options: { url: "not a url s3cret", timeoutMs: 1, retries: 0 }, setting: "hooks.webhook.url" },
    { options: { url: "http://h/", timeoutMs: 0, retries: 0 }, setting: "hooks.webhook.timeout" },
    { options: { url: "http://h/", timeoutMs: 1, retries: -1 }, setting: "hooks.webhook.retries" },
    { options: { url: "http://h/", timeoutMs: 1, retries: 0, headers: { "X-Token": "s3cret\r\nX-Evil: 1" } }, setting: "hooks.webhook.headers.X-Token" },
  ];
  for (const c of cases) {
    assert.throws(
      () => new Webhook(c.options, deps),
      (e: unknown) => e instanceof UnderstudyError && e.code === "US_E_HOOK_CONFIG" && e.details.setting === c.setting && !e.message.includes("s3cret"),
      c.setting,
    );
  }
});
