#!/usr/bin/env node
/**
 * Metrics sampler for bench/api. Runs INSIDE the lab's client namespace
 * (spawned with lab.spawn) and, every --interval-ms, GETs --url (an agent's
 * /metrics, a lab address) on its own keep-alive connection, one request at a
 * time, and appends one JSON line per sample to --out:
 *   {"t":<epoch ms>,"ms":<request latency>,"status":200,"m":{"understudy_lease_remaining_seconds":1.2,…}}
 * with the value of every metric named by --metrics (comma-separated; the
 * first series of each name, labels ignored). A failed request is logged with
 * "err" instead.
 *
 * Bounded: exits on stdin EOF, SIGTERM/SIGINT, or after --max-seconds; each
 * request times out after --timeout-ms. Traffic only to 198.18.0.0/15.
 */
import { openSync, writeSync, closeSync } from "node:fs";
import http from "node:http";

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const url = new URL(arg("url", "http://invalid/"));
const intervalMs = Number(arg("interval-ms", "100"));
const timeoutMs = Number(arg("timeout-ms", "2000"));
const maxSeconds = Number(arg("max-seconds", "120"));
const names = (arg("metrics", "") || "").split(",").filter(Boolean);
const out = arg("out");
if (!out || !/^198\.(18|19)\.\d+\.\d+$/.test(url.hostname) || !(intervalMs >= 10) || !(maxSeconds > 0 && maxSeconds <= 3600)) {
  process.stderr.write("usage: sampler.mjs --url http://198.18.X.Y:8470/metrics --out FILE [--metrics a,b --interval-ms 100 --timeout-ms 2000 --max-seconds 120]\n");
  process.exit(2);
}

const now = () => Math.round((performance.timeOrigin + performance.now()) * 10) / 10;
const fd = openSync(out, "a");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let stopping = false;
let timer;

function parse(text) {
  const m = {};
  for (const name of names) {
    // `name{labels} value` or `name value`; first series wins.
    const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^ \\n]+)`, "m");
    const hit = re.exec(text);
    if (hit) m[name] = Number(hit[1]);
  }
  return m;
}

function sample() {
  if (stopping) return;
  const t = now();
  const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d) => (body += d));
    res.on("end", () => {
      writeSync(fd, `${JSON.stringify({ t, ms: Math.round((now() - t) * 10) / 10, status: res.statusCode, m: parse(body) })}\n`);
      next(t);
    });
    res.on("error", (e) => {
      writeSync(fd, `${JSON.stringify({ t, err: e.code ?? String(e) })}\n`);
      next(t);
    });
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", (e) => {
    writeSync(fd, `${JSON.stringify({ t, err: e.code ?? e.message })}\n`);
    next(t);
  });
}

function next(startedAt) {
  if (stopping) return;
  timer = setTimeout(sample, Math.max(0, startedAt + intervalMs - now()));
}

function stop() {
  if (stopping) return;
  stopping = true;
  clearTimeout(timer);
  agent.destroy();
  try {
    closeSync(fd);
  } catch {
    /* ignore */
  }
  process.exit(0);
}

process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, maxSeconds * 1000).unref();
sample();
