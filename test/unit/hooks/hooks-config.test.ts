// The `hooks` config section (src/config/schema.ts) and createHooks() (src/hooks/index.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { stringify } from "yaml";
import { parseConfigText, type Config } from "../../../src/config/load.js";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { HOOK_EVENTS, Webhook, createHooks } from "../../../src/hooks/index.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const MINIMAL = {
  cluster: "sftp-prod",
  node: { name: "n1", address: "198.18.0.11" },
  etcd: { endpoints: ["http://198.18.0.2:2379"] },
  daemon: { backend: "systemd", unit: "ssh.service" },
};

function parse(hooks: unknown): Config {
  return parseConfigText(stringify({ ...MINIMAL, ...(hooks === undefined ? {} : { hooks }) }), "/etc/understudy/understudy.yaml");
}

function refused(hooks: unknown): UnderstudyError {
  try {
    parse(hooks);
  } catch (e) {
    assert.ok(e instanceof UnderstudyError, "e instanceof UnderstudyError");
    return e;
  }
  assert.fail(`expected ${JSON.stringify(hooks)} to be refused`);
}

const deps = () => ({ runner: new StrictCommandRunner(), clock: new FakeClock(), log: pino({ level: "silent" }) });

test("hooks is optional; an empty section gets the 10s timeout and no webhook", () => {
  assert.equal(parse(undefined).hooks, undefined);
  assert.deepEqual(parse({}).hooks, { timeout: 10_000 });
});

test("every hook is an argv list; webhook defaults are 2s and 3 retries", () => {
  const c = parse({
    pre_promote: ["/opt/check", "--strict"],
    post_sync: ["/opt/reload"],
    timeout: "3s",
    webhook: { url: "https://hooks.example.com/u?token=abc", headers: { Authorization: "Bearer x", "X-Env": "prod" } },
  });
  assert.deepEqual(c.hooks, {
    pre_promote: ["/opt/check", "--strict"],
    post_sync: ["/opt/reload"],
    timeout: 3000,
    webhook: { url: "https://hooks.example.com/u?token=abc", timeout: 2000, retries: 3, headers: { Authorization: "Bearer x", "X-Env": "prod" } },
  });
});

test("bad hooks settings are refused with US_E_CONFIG_INVALID naming the key", () => {
  const cases: { hooks: unknown; path: string; problem: RegExp }[] = [
    { hooks: { pre_promote: [] }, path: "hooks.pre_promote", problem: /must name a program/ },
    { hooks: { pre_promote: "/opt/check --strict" }, path: "hooks.pre_promote", problem: /expected array/ },
    { hooks: { timeout: "0s" }, path: "hooks.timeout", problem: /greater than 0/ },
    { hooks: { on_promote: ["/opt/x"] }, path: "hooks.on_promote", problem: /unknown key/ },
    { hooks: { webhook: {} }, path: "hooks.webhook.url", problem: /http or https/ },
    { hooks: { webhook: { url: "ftp://example.com/x" } }, path: "hooks.webhook.url", problem: /http or https/ },
    { hooks: { webhook: { url: "https://h/", retries: -1 } }, path: "hooks.webhook.retries", problem: /./ },
    { hooks: { webhook: { url: "https://h/", retries: 11 } }, path: "hooks.webhook.retries", problem: /./ },
    { hooks: { webhook: { url: "https://h/", timeout: "0ms" } }, path: "hooks.webhook.timeout", problem: /greater than 0/ },
    { hooks: { webhook: { url: "https://h/", headers: { "Bad Name": "x" } } }, path: "hooks.webhook.headers.Bad Name", problem: /./ },
    { hooks: { webhook: { url: "https://h/", headers: { "X-A": "a\nb" } } }, path: "hooks.webhook.headers.X-A", problem: /line breaks/ },
  ];
  for (const c of cases) {
    const e = refused(c.hooks);
    assert.equal(e.code, "US_E_CONFIG_INVALID", JSON.stringify(c.hooks));
    assert.equal(e.details.path, c.path, JSON.stringify(c.hooks));
    assert.match(String(e.details.problem), c.problem, JSON.stringify(c.hooks));
  }
});

test("createHooks without a hooks section: every hook a no-op, no webhook", async () => {
  const bundle = createHooks(parse(undefined), deps());
  assert.equal(bundle.webhook, null);
  for (const event of HOOK_EVENTS) {
    assert.equal(bundle.hooks.configured(event), false);
    assert.deepEqual(await bundle.hooks.run(event, { role: "primary", term: 1, node: "n1", cluster: "sftp-prod", reason: "election" }), {
      ran: false,
      ok: true,
      code: null,
      timedOut: false,
      ms: 0,
      stderrTail: "",
      problem: null,
    });
  }
  await bundle.close();
});

test("createHooks builds the configured commands and the webhook, which hears of failed hooks", async (t) => {
  const bodies: unknown[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8").on("data", (d: string) => (text += d));
    req.on("end", () => {
      bodies.push(JSON.parse(text));
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const d = deps();
  d.runner.expect(["/opt/check"], { code: 1 });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  const bundle = createHooks(parse({ pre_promote: ["/opt/check"], timeout: "1s", webhook: { url } }), d);
  assert.ok(bundle.webhook instanceof Webhook, "bundle.webhook instanceof Webhook");
  assert.equal(bundle.hooks.configured("pre_promote"), true);
  assert.equal(bundle.hooks.configured("post_promote"), false);
  const o = await bundle.hooks.run("pre_promote", { role: "primary", previousRole: "standby", term: 4, node: "n1", cluster: "sftp-prod", reason: "election" });
  assert.equal(o.ok, false);
  d.runner.done();
  assert.equal(d.runner.calls[0]!.options?.timeoutMs, 1000);
  await bundle.close();
  assert.deepEqual(bodies, [{ type: "hook_failed", hook: "pre_promote", code: 1, timed_out: false, cluster: "sftp-prod", node: "n1", at: new Date(d.clock.wallMs()).toISOString() }]);
});

test("a bad webhook setting is reported without echoing its value (it may hold a token)", async () => {
  const { parseConfigText } = await import("../../../src/config/load.js");
  const text = `cluster: c
node: { name: n1, address: 198.18.0.11 }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
daemon: { backend: process, command: [/bin/true] }
hooks: { webhook: { url: "https://hooks.example/T0KEN-abcdef", retries: 99 } }
`;
  try {
    parseConfigText(text, "x.yaml");
    assert.fail("should have thrown");
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /hooks\.webhook\.retries/);
    assert.match(msg, /\[hidden\]/);
    assert.doesNotMatch(msg, /T0KEN/);
  }
});
