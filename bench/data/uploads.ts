/**
 * The upload stream of the data benchmark and its latency measure.
 *
 * Uploads are real OpenSSH `sftp` puts through the VIP from the lab's client
 * namespace: `sessions` long-lived `sftp -b -` processes, each fed
 * `put LOCAL REMOTE` followed by `pwd` on its stdin. sftp runs one command at
 * a time and answers `pwd` only after the put's CLOSE was answered by the
 * server, so each "Remote working directory" line is the acknowledgement of
 * the put before it (what a partner's client sees as "upload done"). The
 * schedule is open-loop: upload i is handed to session i % sessions at
 * t0 + i / rate, whether or not earlier ones were acknowledged; a backlog
 * shows as a longer put time, and the achieved rate is reported.
 *
 * `mode: "write"` (fallback, no sshd involved) writes each file straight into
 * the primary's root (open, write, close = acknowledged).
 *
 * Presence: an inotify watch on each standby's upload directory (the lab
 * namespaces share the filesystem) names each copy as it lands, and that file
 * is stat'ed until it is there under its final name with its full size on
 * every standby (a 250 ms scan catches what a watch missed). rsync (every contender
 * uses it) writes a temporary name and renames, so the final name appears
 * complete. Content is compared byte for byte after the stream (`verify`).
 */
import type { ChildProcess } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, type FSWatcher, mkdirSync, openSync, readFileSync, statSync, watch, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type Lab, sleep } from "../../test/lab/harness/index.js";
import { killGroup } from "../../test/lab/harness/exec.js";
import { sshClientOptions } from "../../test/chaos/workload.js";
import { quantile } from "../failover/lib.js";

export const MiB = 1024 * 1024;
/** The presence safety-net scan's period, and the poller's tick (stream end, late watches). */
const SCAN_MS = 250;
const POLL_MS = 20;

export interface Upload {
  i: number;
  /** Path relative to the root. */
  name: string;
  /** Index of the pool file it carries. */
  src: number;
  session: number;
  /** performance.now() ms. */
  scheduled: number;
  written: number | null;
  acked: number | null;
  /** Per standby: first time seen complete, performance.now() ms. */
  present: (number | null)[];
}

export interface StreamOptions {
  lab: Lab;
  /** "sftp": through the VIP; "write": into `primaryRoot` directly. */
  mode: "sftp" | "write";
  /** The root on the node behind the VIP (absolute; sftp puts use this path too). */
  primaryRoot: string;
  /**
   * sftp: put to this absolute directory (the peers' own directories on n1);
   * unset: put to relative names, i.e. into the sftp start directory of
   * whichever node holds the VIP (understudy's data root is that directory).
   */
  remoteRoot?: string;
  standbyRoots: string[];
  /** Uploads per second. */
  rate: number;
  seconds: number;
  fileBytes: number;
  sessions: number;
  /** After the last upload was handed out, how long to wait for stragglers. */
  drainMs: number;
  label: string;
  log: (msg: string) => void;
  /** Stop handing out uploads when this returns true (fault runs). */
  stop?: () => boolean;
  /** Uploads are recorded here as they are handed out (a live view for fault runs). */
  sink?: Upload[];
}

/** A pool of random files in the client's directory; uploads cycle through them (unique remote names). */
export function makePool(lab: Lab, count: number, bytes: number): string[] {
  const dir = join(lab.dir, "client", "data-pool");
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.allocUnsafe(bytes);
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    randomFillSync(buf);
    const p = join(dir, `pool-${k}.bin`);
    writeFileSync(p, buf);
    out.push(p);
  }
  return out;
}

/** One long-lived `sftp -b -` in the client namespace; acks arrive in order. */
class SftpSession {
  private readonly fifo: Upload[] = [];
  private buf = "";
  ready = false;
  exited = false;
  stderr = "";
  constructor(
    readonly child: ChildProcess,
    private readonly onAck: (u: Upload, t: number) => void,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (d: string) => this.feed(d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.stderr = (this.stderr + d).slice(-2000)));
    child.once("exit", () => (this.exited = true));
    child.stdin?.on("error", () => undefined);
  }

  private feed(d: string): void {
    const t = performance.now();
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!line.startsWith("Remote working directory")) continue;
      if (!this.ready) this.ready = true;
      else {
        const u = this.fifo.shift();
        if (u) this.onAck(u, t);
      }
    }
  }

  put(u: Upload, local: string, remote: string): void {
    this.fifo.push(u);
    this.child.stdin?.write(`put ${local} ${remote}\npwd\n`);
  }

  get backlog(): number {
    return this.fifo.length;
  }

  close(): void {
    this.child.stdin?.end();
  }

  kill(): void {
    if (!this.exited) killGroup(this.child.pid);
  }
}

export interface StreamResult {
  label: string;
  mode: "sftp" | "write";
  uploads: Upload[];
  /** Acknowledged uploads per second between the first and last acknowledgement. */
  achievedRate: number | null;
  /** Written (handed to sftp) -> acknowledged. */
  putMs: LatencySummary | null;
  /** Acknowledged -> present on every standby. */
  latency: LatencySummary | null;
  acked: number;
  /** Acknowledged but not on every standby when the drain ended. */
  missing: number;
  /** Seen on every standby before its acknowledgement arrived (counted as 0 ms). */
  beforeAck: number;
  /** The presence scan's period: an upload seen by the scan, not by its watch event, is late by at most this. */
  pollMsMax: number;
  /** Standby copies first seen by the safety-net scan rather than by an inotify event. */
  seenByScan: number;
  wallMs: number;
  errors: string[];
}

export interface LatencySummary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(v: readonly number[]): LatencySummary | null {
  if (v.length === 0) return null;
  return { n: v.length, p50: quantile(v, 0.5), p95: quantile(v, 0.95), p99: quantile(v, 0.99), max: Math.max(...v), mean: v.reduce((a, b) => a + b, 0) / v.length };
}

/** Ack -> on every standby, ms (never negative); null when not acked or not everywhere. */
export function replicationMs(u: Upload): number | null {
  if (u.acked === null || u.present.some((p) => p === null)) return null;
  return Math.max(0, Math.max(...(u.present as number[])) - u.acked);
}

function complete(path: string, size: number): boolean {
  try {
    return statSync(path).size === size;
  } catch {
    return false;
  }
}

/**
 * Run one upload stream and measure it. Bounded: rate × seconds uploads, then
 * at most `drainMs` for the standbys; the sftp sessions are killed at the end.
 */
export async function runStream(o: StreamOptions, pool: string[]): Promise<StreamResult> {
  const { lab } = o;
  const total = Math.round(o.rate * o.seconds);
  const uploads: Upload[] = o.sink ?? [];
  const errors: string[] = [];
  const sessions: SftpSession[] = [];
  const onAck = (u: Upload, t: number): void => void (u.acked = t);
  const dir = `u${Date.now().toString(36)}`;
  mkdirSync(join(o.primaryRoot, dir), { recursive: true, mode: 0o755 });
  const watchers: FSWatcher[] = [];
  try {
    if (o.mode === "sftp") {
      for (let s = 0; s < o.sessions; s++) {
        const argv = ["sftp", ...sshClientOptions(lab, 2), "-b", "-", `root@${lab.vipAddress}`];
        const child = lab.spawn(lab.client, argv, { stdio: ["pipe", "pipe", "pipe"] });
        const sess = new SftpSession(child, onAck);
        child.stdin?.write("pwd\n");
        sessions.push(sess);
      }
      const t = performance.now();
      while (!sessions.every((s) => s.ready || s.exited) && performance.now() - t < 15_000) await sleep(20);
      const bad = sessions.filter((s) => !s.ready);
      if (bad.length) throw new Error(`${bad.length} sftp session(s) did not start: ${bad[0]!.stderr.trim().slice(-300)}`);
    }
    const t0 = performance.now() + 50;
    let handed = 0;
    let stopped = false;
    // Presence is event-driven: an inotify watch (fs.watch) on each standby's
    // upload directory names each file as rsync renames it into place, and only
    // that file is stat'ed. A full scan every SCAN_MS catches what a watch set up
    // late (or an overflow) missed; those are counted (`seenByScan`), as their
    // time is only known to within SCAN_MS. Polling every open upload every few
    // ms instead cost ~0.2 of a core at 50/s, taken from the system measured.
    const byName = new Map<string, Upload>();
    let seenByScan = 0;
    const look = (u: Upload, s: number, byScan: boolean): void => {
      if (u.present[s] !== null || u.written === null) return;
      if (complete(join(o.standbyRoots[s]!, u.name), o.fileBytes)) {
        u.present[s] = performance.now();
        if (byScan) seenByScan++;
      }
    };
    const watchStandby = (s: number): boolean => {
      try {
        const w = watch(join(o.standbyRoots[s]!, dir), (_event, file) => {
          if (file === null) return;
          const u = byName.get(`${dir}/${String(file)}`);
          if (u) look(u, s, false);
        });
        w.on("error", () => undefined);
        watchers.push(w);
        return true;
      } catch {
        return false;
      }
    };
    const poller = (async () => {
      let lastNew = performance.now();
      const watching = o.standbyRoots.map(() => false);
      let lastScan = 0;
      for (;;) {
        const now = performance.now();
        for (let s = 0; s < watching.length; s++) if (!watching[s]) watching[s] = watchStandby(s);
        let open = 0;
        const scan = now - lastScan >= SCAN_MS;
        if (scan) lastScan = now;
        for (const u of uploads) {
          if (u.written === null || u.present.every((p) => p !== null)) continue;
          if (scan) for (let s = 0; s < o.standbyRoots.length; s++) look(u, s, true);
          if (!u.present.every((p) => p !== null)) open++;
        }
        if (handed >= total || stopped) {
          if (open === 0) break;
          if (now - lastNew > o.drainMs) break;
        } else lastNew = now;
        await sleep(POLL_MS);
      }
    })();
    for (let i = 0; i < total; i++) {
      if (o.stop?.()) {
        stopped = true;
        break;
      }
      const at = t0 + (i * 1000) / o.rate;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      const src = i % pool.length;
      const u: Upload = {
        i,
        name: `${dir}/up-${String(i).padStart(6, "0")}.bin`,
        src,
        session: i % Math.max(1, o.sessions),
        scheduled: at,
        written: null,
        acked: null,
        present: o.standbyRoots.map(() => null),
      };
      uploads.push(u);
      byName.set(u.name, u);
      if (o.mode === "sftp") {
        const sess = sessions[u.session]!;
        if (sess.exited) {
          if (errors.length < 5) errors.push(`sftp session ${u.session} exited: ${sess.stderr.trim().slice(-200)}`);
          continue;
        }
        u.written = performance.now();
        sess.put(u, pool[src]!, o.remoteRoot ? join(o.remoteRoot, u.name) : u.name);
      } else {
        u.written = performance.now();
        const fd = openSync(join(o.primaryRoot, u.name), "w", 0o644);
        try {
          writeSync(fd, readPool(pool[src]!));
        } finally {
          closeSync(fd);
        }
        u.acked = performance.now();
      }
      handed = i + 1;
      if ((i + 1) % Math.max(1, Math.round(o.rate * 10)) === 0) {
        const acked = uploads.filter((x) => x.acked !== null).length;
        const there = uploads.filter((x) => x.present.every((p) => p !== null)).length;
        o.log(`  ${o.label}: ${i + 1}/${total} handed out, ${acked} acknowledged, ${there} on both standbys; sftp backlog ${sessions.map((s) => s.backlog).join("/") || "-"}`);
      }
    }
    handed = total;
    // Let the last acks arrive (bounded by the drain), then the poller finishes.
    for (const s of sessions) s.close();
    const tEnd = performance.now();
    while (!sessions.every((s) => s.exited) && performance.now() - tEnd < o.drainMs) await sleep(20);
    await poller;
    const acked = uploads.filter((u) => u.acked !== null);
    const lat = acked.map(replicationMs).filter((x): x is number => x !== null);
    const ackTimes = acked.map((u) => u.acked!).sort((a, b) => a - b);
    const span = ackTimes.length > 1 ? (ackTimes.at(-1)! - ackTimes[0]!) / 1000 : 0;
    return {
      label: o.label,
      mode: o.mode,
      uploads,
      achievedRate: span > 0 ? (ackTimes.length - 1) / span : null,
      putMs: summarize(acked.map((u) => u.acked! - u.written!)),
      latency: summarize(lat),
      acked: acked.length,
      missing: acked.length - lat.length,
      beforeAck: acked.filter((u) => u.present.every((p) => p !== null && p < u.acked!)).length,
      pollMsMax: SCAN_MS,
      seenByScan,
      wallMs: performance.now() - t0,
      errors,
    };
  } finally {
    for (const w of watchers) w.close();
    for (const s of sessions) s.kill();
  }
}

const poolCache = new Map<string, Buffer>();
function readPool(p: string): Buffer {
  let b = poolCache.get(p);
  if (!b) poolCache.set(p, (b = readFileSync(p)));
  return b;
}

/** Byte-for-byte check of every acknowledged upload on every standby (after the stream; not timed). */
export function verifyUploads(r: StreamResult, standbyRoots: string[], pool: string[]): { checked: number; wrong: number; absent: number; examples: string[] } {
  const out = { checked: 0, wrong: 0, absent: 0, examples: [] as string[] };
  for (const u of r.uploads) {
    if (u.acked === null) continue;
    const want = readPool(pool[u.src]!);
    for (const root of standbyRoots) {
      out.checked++;
      let got: Buffer;
      try {
        got = readFileSync(join(root, u.name));
      } catch {
        out.absent++;
        if (out.examples.length < 5) out.examples.push(`absent ${join(root, u.name)}`);
        continue;
      }
      if (!got.equals(want)) {
        out.wrong++;
        if (out.examples.length < 5) out.examples.push(`content ${join(root, u.name)}`);
      }
    }
  }
  return out;
}
