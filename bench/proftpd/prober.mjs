#!/usr/bin/env node
/**
 * Client-side login prober for bench/proftpd. Runs INSIDE the lab's client namespace (spawned
 * with lab.spawn) and, every --interval-ms, starts a real login per protocol through HOST:
 *
 *   ftps: TCP to :21, 220 greeting, AUTH TLS -> 234, TLS handshake verified against --ca and
 *         the address (the certificate carries IP:HOST), USER/PASS -> 230 over TLS, QUIT;
 *   sftp: ssh2 to :2022, host key pinned to the keys in --known-hosts (any other key fails),
 *         publickey login with --key, the sftp subsystem opened and `.` listed.
 *
 * While a protocol's last attempt succeeded, a new login starts every --steady-ms (250; a login
 * takes 0.1-1 s on a busy 2-core box); once one failed, a new one starts on every tick. At most
 * --max-inflight per protocol, so a connect that hangs on a dead MAC does not blind the prober
 * and a login storm does not become the outage.
 *
 * Output: one line per finished attempt appended to --out:
 *   S <proto> <start_ms> <end_ms>
 *   F <proto> <start_ms> <end_ms> <reason>
 * Times are epoch milliseconds (performance.timeOrigin + performance.now()).
 *
 * Bounded: exits on stdin EOF, on SIGTERM/SIGINT, or after --max-seconds.
 * Traffic: only to HOST, which must be a lab address (198.18.0.0/15).
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import ssh2 from "ssh2";

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const host = arg("host");
const out = arg("out");
const intervalMs = Number(arg("interval-ms", "50"));
const timeoutMs = Number(arg("timeout-ms", "2000"));
const maxInflight = Number(arg("max-inflight", "8"));
const maxSeconds = Number(arg("max-seconds", "900"));
const user = arg("user");
const protos = arg("protocols", "ftps,sftp").split(",");
// A login takes 100-500 ms (TLS or SSH key exchange, a forked session): only one that has been in
// flight this long counts as hanging (a SYN into a MAC that no longer has the address).
const slowMs = Number(arg("slow-ms", "1000"));
// While healthy, a new login also starts this long after the newest one (in flight or not), so
// the start of an outage is seen within this long even when a login takes a second.
const steadyMs = Number(arg("steady-ms", "250"));
if (!host || !out || !user || !/^198\.(18|19)\.\d+\.\d+$/.test(host)) {
  process.stderr.write("usage: prober.mjs --host 198.18.X.Y --out FILE --user U --password-file F --ca CA --key KEY --known-hosts KH [--interval-ms 50 --timeout-ms 2000]\n");
  process.exit(2);
}
const password = protos.includes("ftps") ? readFileSync(arg("password-file"), "utf8").trim() : "";
const ca = protos.includes("ftps") ? readFileSync(arg("ca")) : undefined;
const privateKey = protos.includes("sftp") ? readFileSync(arg("key")) : undefined;
// known_hosts lines "[host]:port type base64": the pinned key blobs.
const pinned = protos.includes("sftp")
  ? readFileSync(arg("known-hosts"), "utf8")
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => Buffer.from(l.trim().split(/\s+/)[2], "base64"))
  : [];

const now = () => Math.round((performance.timeOrigin + performance.now()) * 10) / 10;
const fd = openSync(out, "a");
const record = (line) => {
  try {
    writeSync(fd, `${line}\n`);
  } catch {
    /* nothing useful to do */
  }
};

function ftps(finish) {
  let buf = "";
  let stage = "greeting";
  let tls;
  const sock = connect({ host, port: 21, noDelay: true });
  const send = (s, line) => s.write(`${line}\r\n`);
  const reply = () => {
    // A complete (possibly multi-line) reply: its last line is "NNN text".
    const lines = buf.split("\r\n");
    for (const l of lines.slice(0, -1))
      if (/^\d{3} /.test(l)) {
        buf = "";
        return l.slice(0, 3);
      }
    return undefined;
  };
  const onData = (d) => {
    buf += d.toString("latin1");
    const code = reply();
    if (code === undefined) return;
    if (stage === "greeting") {
      if (code !== "220") return finish(false, `greeting-${code}`, sock);
      stage = "auth";
      send(sock, "AUTH TLS");
    } else if (stage === "auth") {
      if (code !== "234") return finish(false, `auth-${code}`, sock);
      stage = "tls";
      sock.removeListener("data", onData);
      tls = tlsConnect({ socket: sock, ca, host, minVersion: "TLSv1.2" });
      tls.on("error", (e) => finish(false, `tls-${e.code ?? "error"}`, tls));
      tls.on("data", onData);
      tls.on("secureConnect", () => {
        stage = "user";
        send(tls, `USER ${user}`);
      });
    } else if (stage === "user") {
      if (code !== "331") return finish(false, `user-${code}`, tls);
      stage = "pass";
      send(tls, `PASS ${password}`);
    } else if (stage === "pass") {
      if (code !== "230") return finish(false, `login-${code}`, tls);
      try {
        send(tls, "QUIT");
      } catch {
        /* closing anyway */
      }
      finish(true, "", tls);
    }
  };
  sock.on("data", onData);
  sock.on("error", (e) => finish(false, e.code ?? "error", sock));
  sock.on("close", () => finish(false, `closed-${stage}`, sock));
  return () => (tls ?? sock).destroy();
}

function sftp(finish) {
  const c = new ssh2.Client();
  c.on("ready", () => {
    c.sftp((err, s) => {
      if (err) return finish(false, "subsystem", c);
      s.readdir(".", (e) => finish(!e, e ? "readdir" : "", c));
    });
  });
  c.on("error", (e) => finish(false, /verification/i.test(e.message) ? "hostkey-mismatch" : (e.code ?? e.level ?? "error"), c));
  c.on("close", () => finish(false, "closed", c));
  c.connect({
    host,
    port: 2022,
    username: user,
    privateKey,
    readyTimeout: timeoutMs,
    hostVerifier: (key) => pinned.some((k) => k.equals(key)),
  });
  return () => c.end();
}

const state = Object.fromEntries(protos.map((p) => [p, { inflight: 0, lastOk: true, newestStart: 0 }]));
let stopping = false;

function attempt(proto) {
  const st = state[proto];
  st.inflight++;
  const start = now();
  st.newestStart = start;
  let done = false;
  let abort;
  const finish = (ok, reason, handle) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    try {
      if (proto === "sftp") handle?.end?.();
      else handle?.destroy?.();
    } catch {
      /* already gone */
    }
    st.inflight--;
    st.lastOk = ok;
    record(ok ? `S ${proto} ${start} ${now()}` : `F ${proto} ${start} ${now()} ${reason || "unknown"}`);
  };
  const timer = setTimeout(() => {
    finish(false, "timeout");
    try {
      abort?.();
    } catch {
      /* gone */
    }
  }, timeoutMs);
  try {
    abort = proto === "ftps" ? ftps(finish) : sftp(finish);
  } catch (e) {
    finish(false, `throw-${e.code ?? "error"}`);
  }
}

record(`# prober host=${host} interval=${intervalMs} timeout=${timeoutMs} protocols=${protos.join(",")}`);
const tick = setInterval(() => {
  if (stopping) return;
  for (const p of protos) {
    const st = state[p];
    const age = now() - st.newestStart;
    const due = st.lastOk ? age >= steadyMs || (st.inflight === 0 && age >= intervalMs) : true;
    if (st.inflight < maxInflight && (st.inflight === 0 ? due : due || age > slowMs)) attempt(p);
  }
}, intervalMs);

function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  // Let attempts in flight finish (bounded by their own timeout).
  setTimeout(
    () => {
      closeSync(fd);
      process.exit(0);
    },
    Math.min(timeoutMs + 100, 3000),
  ).unref();
}
setTimeout(stop, maxSeconds * 1000).unref();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
