#!/usr/bin/env node
/**
 * Client-side SSH banner prober for the failover and switchover benchmarks.
 * Runs INSIDE the
 * lab's client namespace (spawned with lab.spawn) and, every --interval-ms,
 * opens a TCP connection to HOST:PORT and waits for the SSH identification
 * line ("SSH-2.0-…"). Each attempt is bounded by --timeout-ms (connect + banner).
 *
 * Scheduling: while the last finished attempt succeeded, attempts run one at a
 * time (a new one starts on the first tick after the previous one finished, so
 * the steady-state load on sshd stays at one connection per ~20-40 ms). Once an
 * attempt fails, or the newest one in flight is older than --slow-ms, a new one
 * starts on EVERY tick, up to --max-inflight in flight, so a connect that hangs
 * (SYN into a MAC that no longer has the address) does not blind the prober for
 * the whole timeout. --slow-ms defaults to max(2 intervals, 50 ms) as in the
 * failover prober; there, during the first --timeout-ms of a silent outage
 * (no attempt has failed yet), attempts start only every 60 ms (the first tick
 * after 50 ms). The switchover benchmark passes --slow-ms 15 (< one 20 ms
 * interval): a new attempt on every tick from the first hang on, so both ends
 * of a ~100 ms gap are resolved to ~20 ms.
 *
 * Output: one line per finished attempt appended to --out:
 *   S <start_ms> <end_ms>            banner received
 *   F <start_ms> <end_ms> <reason>   refused / timeout / unreachable / bad banner
 * Times are epoch milliseconds with 0.1 ms resolution (performance.timeOrigin
 * + performance.now(), the same scale as Date.now()).
 *
 * Bounded: exits on stdin EOF, on SIGTERM/SIGINT, or after --max-seconds.
 * Traffic: only to HOST, which the caller must pass as a lab address.
 */
import { openSync, writeSync, closeSync } from "node:fs";
import { connect } from "node:net";

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const host = arg("host");
const port = Number(arg("port", "22"));
const intervalMs = Number(arg("interval-ms", "20"));
const timeoutMs = Number(arg("timeout-ms", "200"));
const maxInflight = Number(arg("max-inflight", "10"));
const maxSeconds = Number(arg("max-seconds", "900"));
const slowArg = arg("slow-ms");
const out = arg("out");
if (!host || !out || !/^198\.(18|19)\.\d+\.\d+$/.test(host) || (slowArg !== undefined && !(Number(slowArg) >= 0))) {
  process.stderr.write("usage: prober.mjs --host 198.18.X.Y --out FILE [--port 22 --interval-ms 20 --timeout-ms 200 --max-inflight 10 --max-seconds 900 --slow-ms 50]\n");
  process.exit(2);
}

const now = () => Math.round((performance.timeOrigin + performance.now()) * 10) / 10;
const fd = openSync(out, "a");
let inflight = 0;
let lastOk = true;
let stopping = false;
let attempts = 0;
let newestStart = 0;

function record(line) {
  try {
    writeSync(fd, `${line}\n`);
  } catch {
    /* disk full or closed: nothing useful to do */
  }
}

function attempt() {
  inflight++;
  attempts++;
  const start = now();
  newestStart = start;
  let done = false;
  let buf = "";
  const sock = connect({ host, port, noDelay: true });
  const finish = (ok, reason) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.destroy();
    inflight--;
    lastOk = ok;
    const end = now();
    record(ok ? `S ${start} ${end}` : `F ${start} ${end} ${reason}`);
  };
  const timer = setTimeout(() => finish(false, buf ? "banner-timeout" : "timeout"), timeoutMs);
  sock.setEncoding("latin1");
  sock.on("data", (d) => {
    buf += d;
    const nl = buf.indexOf("\n");
    if (nl >= 0) finish(buf.startsWith("SSH-"), "bad-banner");
    else if (buf.length > 512) finish(false, "bad-banner");
  });
  sock.on("error", (e) => finish(false, e.code ?? "error"));
  sock.on("close", () => finish(false, buf ? "closed-early" : "closed"));
}

// Start times of the attempts in flight: one that hangs longer than a healthy
// banner exchange (~10-30 ms here) is treated like a failure for scheduling, so
// the first moments of an outage are probed at full rate too.
const slowMs = slowArg !== undefined ? Number(slowArg) : Math.max(2 * intervalMs, 50);
const tick = setInterval(() => {
  if (stopping) return;
  if (inflight === 0) return attempt();
  if (inflight >= maxInflight) return;
  if (!lastOk || now() - newestStart > slowMs) attempt();
}, intervalMs);

function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  // Let attempts in flight finish (bounded by their own timeout), then exit.
  setTimeout(() => {
    try {
      closeSync(fd);
    } catch {
      /* ignore */
    }
    process.exit(0);
  }, timeoutMs + 20);
}

process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, maxSeconds * 1000).unref();
record(`# prober host=${host} port=${port} interval=${intervalMs} timeout=${timeoutMs} max_inflight=${maxInflight} slow=${slowMs} started=${now()}`);
