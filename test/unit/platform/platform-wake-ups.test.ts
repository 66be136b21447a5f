import { test } from "node:test";
import assert from "node:assert/strict";
import { WakeUps } from "../../../src/platform/wake-ups.js";
import { ReloadReporters } from "../../../src/platform/reloading-file.js";
import { formatListenAddress, hostForUrl, isListenPort, isLoopbackHost, isWildcardHost, LISTEN_ADDRESS, parseListenAddress } from "../../../src/platform/listen-address.js";

test("a wake reaches every subscriber in order, and none before it subscribed", () => {
  const seen: string[] = [];
  const w = new WakeUps(() => assert.fail("no listener error expected"));
  w.wake("early");
  w.onWake((why) => seen.push(`a:${why}`));
  w.onWake((why) => seen.push(`b:${why}`));
  w.wake("sync");
  w.notifier("tools")();
  assert.deepEqual(seen, ["a:sync", "b:sync", "a:tools", "b:tools"]);
});

test("a throwing listener goes to the error sink and the others still run", () => {
  const errors: unknown[] = [];
  const seen: string[] = [];
  const w = new WakeUps((e) => errors.push(e));
  w.onWake(() => {
    throw new Error("boom");
  });
  w.onWake((why) => seen.push(why));
  assert.doesNotThrow(() => w.wake("watchdog"));
  assert.deepEqual(seen, ["watchdog"]);
  assert.equal(errors.length, 1);
});

test("reload reporters: each reload reaches every reporter added, in order", () => {
  const seen: string[] = [];
  const r = new ReloadReporters().add({ reloaded: (w) => seen.push(`log ok ${w}`), rejected: (w, _f, p) => seen.push(`log rejected ${w} ${p}`) });
  r.reloaded("api token", ["/t"]);
  r.add({ reloaded: (w) => seen.push(`metric ok ${w}`), rejected: (w) => seen.push(`metric rejected ${w}`) });
  r.rejected("etcd ca", ["/ca"], "not PEM");
  assert.deepEqual(seen, ["log ok api token", "log rejected etcd ca not PEM", "metric rejected etcd ca"]);
});

test("listen addresses: parsed, printed and checked in one place", () => {
  const cases: [string, string, number][] = [
    ["0.0.0.0:8470", "0.0.0.0", 8470],
    ["[::1]:8470", "::1", 8470],
    ["[::]:80", "::", 80],
    ["node1.example:443", "node1.example", 443],
  ];
  for (const [text, host, port] of cases) {
    assert.equal(LISTEN_ADDRESS.test(text), true, text);
    assert.deepEqual(parseListenAddress(text), { host, port });
    assert.equal(formatListenAddress(host, port), text);
  }
  for (const bad of ["8470", "::1:8470", "host:", "a b:1", "[::1]"]) assert.equal(LISTEN_ADDRESS.test(bad), false, bad);
  assert.equal(isListenPort(0), false);
  assert.equal(isListenPort(65536), false);
  assert.equal(isListenPort(1), true);
  assert.equal(hostForUrl("198.18.0.11"), "198.18.0.11");
  assert.equal(hostForUrl("fd00::11"), "[fd00::11]");
  assert.equal(isWildcardHost("::"), true);
  assert.equal(isWildcardHost("0.0.0.0"), true);
  assert.equal(isWildcardHost("127.0.0.1"), false);
});

test("loopback hosts: other agents cannot reach an API bound there", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["0.0.0.0", "::", "198.18.0.1", "fe80::1", "128.0.0.1", "127.example.com"]) assert.equal(isLoopbackHost(h), false, h);
});
