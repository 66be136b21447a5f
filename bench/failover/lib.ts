/**
 * Helpers for the failover benchmark: the client-side banner prober, an etcd
 * watch on the leader key (timestamps of lease expiry / new leader), /proc
 * sampling, agent-log parsing and statistics. Everything is bounded in time.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Lab, type LabCluster, pollUntil, sleep } from "../../test/lab/harness/index.js";
import { killGroup } from "../../test/lab/harness/exec.js";

export const PROBER_SCRIPT = fileURLToPath(new URL("./prober.mjs", import.meta.url));

/** Epoch ms with sub-ms resolution, same scale as the prober's and Date.now(). */
export const now = (): number => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------ prober

export interface Attempt {
  ok: boolean;
  start: number;
  end: number;
  reason?: string;
}

export function parseAttempts(text: string): Attempt[] {
  const out: Attempt[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const [kind, s, e, reason] = line.split(" ");
    const start = Number(s);
    const end = Number(e);
    if ((kind !== "S" && kind !== "F") || !Number.isFinite(start) || !Number.isFinite(end)) continue;
    out.push(kind === "S" ? { ok: true, start, end } : { ok: false, start, end, reason: reason ?? "?" });
  }
  return out.sort((a, b) => a.end - b.end);
}

export class Prober {
  private constructor(
    readonly file: string,
    readonly child: ChildProcess,
  ) {}

  /**
   * Start the banner prober in the client namespace against host:port (default
   * the VIP:22). Resolves once it has written its header line (bounded).
   */
  /** slowMs: start a new attempt on every tick once the newest in flight is older than this (the prober's --slow-ms). */
  static async start(lab: Lab, tag: string, opts: { host?: string; intervalMs?: number; timeoutMs?: number; maxSeconds?: number; slowMs?: number } = {}): Promise<Prober> {
    const file = join(lab.logDir, `prober-${tag}.log`);
    const argv = [
      process.execPath,
      PROBER_SCRIPT,
      "--host",
      opts.host ?? lab.vipAddress,
      "--port",
      "22",
      "--interval-ms",
      String(opts.intervalMs ?? 20),
      "--timeout-ms",
      String(opts.timeoutMs ?? 200),
      "--max-inflight",
      "10",
      "--max-seconds",
      String(opts.maxSeconds ?? 120),
      ...(opts.slowMs !== undefined ? ["--slow-ms", String(opts.slowMs)] : []),
      "--out",
      file,
    ];
    const child = lab.spawn(lab.client, argv, { stdin: "pipe", logFile: join(lab.logDir, `prober-${tag}.stderr.log`) });
    child.stdin?.on("error", () => undefined);
    const p = new Prober(file, child);
    const up = await pollUntil(() => (existsSync(file) ? true : undefined), { timeoutMs: 5000, intervalMs: 10 });
    if (!up) {
      await p.stop();
      throw new Error("prober did not start");
    }
    return p;
  }

  attempts(): Attempt[] {
    return existsSync(this.file) ? parseAttempts(readFileSync(this.file, "utf8")) : [];
  }

  /** First successful attempt that STARTED at/after `since` (epoch ms); bounded wait. */
  async waitSuccess(since: number, timeoutMs: number): Promise<Attempt | undefined> {
    return pollUntil(() => this.attempts().find((a) => a.ok && a.start >= since), { timeoutMs, intervalMs: 15 });
  }

  /** `consecutive` successes in a row, all ending at/after `since`. */
  async waitSteady(since: number, timeoutMs: number, consecutive = 3): Promise<boolean> {
    const r = await pollUntil(
      () => {
        const a = this.attempts().filter((x) => x.end >= since);
        return a.length >= consecutive && a.slice(-consecutive).every((x) => x.ok) ? true : undefined;
      },
      { timeoutMs, intervalMs: 20 },
    );
    return r === true;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<Attempt[]> {
    if (this.running) {
      const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
      this.child.stdin?.end();
      const done = await Promise.race([exited.then(() => true), sleep(1500).then(() => false)]);
      if (!done) {
        killGroup(this.child.pid);
        await Promise.race([exited, sleep(500)]);
      }
    }
    return this.attempts();
  }
}

/**
 * The longest interval without a banner, between consecutive successful
 * attempts (by banner time), whose end lies after `after`. Also the failure
 * reasons seen inside it.
 */
export function longestGap(attempts: readonly Attempt[], after: number): { from: number; to: number; gapMs: number; reasons: Record<string, number> } | undefined {
  const ok = attempts.filter((a) => a.ok).sort((a, b) => a.end - b.end);
  let best: { from: number; to: number; gapMs: number } | undefined;
  for (let i = 1; i < ok.length; i++) {
    const prev = ok[i - 1]!;
    const cur = ok[i]!;
    if (cur.end < after) continue;
    const g = cur.end - prev.end;
    if (!best || g > best.gapMs) best = { from: prev.end, to: cur.end, gapMs: g };
  }
  if (!best) return undefined;
  const reasons: Record<string, number> = {};
  for (const a of attempts) if (!a.ok && a.end > best.from && a.end <= best.to) reasons[a.reason ?? "?"] = (reasons[a.reason ?? "?"] ?? 0) + 1;
  return { ...best, reasons };
}

/** Median interval between successive banner successes before `before`: the prober's steady-state resolution. */
export function steadyResolution(attempts: readonly Attempt[], before: number): number | undefined {
  const ok = attempts.filter((a) => a.ok && a.end < before).map((a) => a.end);
  const d: number[] = [];
  for (let i = 1; i < ok.length; i++) d.push(ok[i]! - ok[i - 1]!);
  return d.length ? quantile(d, 0.5) : undefined;
}

export function failureReasons(attempts: readonly Attempt[], from: number, to: number): Record<string, number> {
  const r: Record<string, number> = {};
  for (const a of attempts) if (!a.ok && a.end >= from && a.end <= to) r[a.reason ?? "?"] = (r[a.reason ?? "?"] ?? 0) + 1;
  return r;
}

// ------------------------------------------------------------ leader watch

export interface WatchEvent {
  t: number;
  type: "PUT" | "DELETE";
  key: string;
  value?: string;
}

/** `etcdctl watch --prefix` on the cluster's leader key, run in the etcd namespace; every event timestamped on arrival. */
export class LeaderWatch {
  readonly events: WatchEvent[] = [];
  private buf = "";
  private pending: Partial<WatchEvent> | undefined;

  private constructor(readonly child: ChildProcess) {}

  static start(lab: Lab, key: string): LeaderWatch {
    const child = lab.spawn(lab.etcd, [...lab.etcdctlArgv(), "watch", key], {
      env: { ETCDCTL_API: "3" },
      stdio: ["ignore", "pipe", "ignore"],
    });
    const w = new LeaderWatch(child);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => w.feed(d));
    return w;
  }

  private feed(d: string): void {
    const t = now();
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line === "PUT" || line === "DELETE") {
        if (this.pending?.type === "DELETE" && this.pending.key) this.events.push(this.pending as WatchEvent);
        this.pending = { t, type: line };
      } else if (this.pending && this.pending.key === undefined) {
        this.pending.key = line;
        if (this.pending.type === "DELETE") {
          this.events.push(this.pending as WatchEvent);
          this.pending = undefined;
        }
      } else if (this.pending && this.pending.type === "PUT") {
        this.pending.value = line;
        this.events.push(this.pending as WatchEvent);
        this.pending = undefined;
      }
    }
  }

  first(type: "PUT" | "DELETE", after: number): WatchEvent | undefined {
    return this.events.find((e) => e.type === type && e.t >= after);
  }

  stop(): void {
    killGroup(this.child.pid);
  }
}

// ------------------------------------------------------------ cluster state

export interface Member {
  node: string;
  role: string;
  healthy: boolean;
  daemonRunning?: boolean;
  vipHeld?: boolean;
}

export async function members(c: LabCluster): Promise<Member[]> {
  const r = await c.lab.etcdctl(["get", "--prefix", "/understudy/lab/members/", "--print-value-only"], { timeoutMs: 3000 });
  if (r.code !== 0) return [];
  const out: Member[] = [];
  for (const line of r.stdout.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Member);
    } catch {
      /* ignore */
    }
  }
  return out;
}

/**
 * Wait (bounded) until every node publishes itself healthy, the leader as
 * primary and the rest as standbys, and the VIP is configured on the leader
 * only; with `warm`, every node's daemon must run too.
 */
export async function allReady(c: LabCluster, timeoutMs: number, opts: { warm?: boolean } = {}): Promise<{ leader: string } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const l = await c.leader();
    const ms = await members(c);
    if (
      l &&
      ms.length === c.lab.nodes.length &&
      ms.every((m) => m.healthy && (m.node === l.node ? m.role === "primary" : m.role === "standby") && (!opts.warm || m.daemonRunning !== false)) &&
      (await c.lab.vipConfiguredOn()).join() === l.node
    ) {
      return { leader: l.node };
    }
    await sleep(150);
  }
  return undefined;
}

/** Wait (bounded) until `node` publishes itself as a healthy standby. */
export async function waitStandby(c: LabCluster, node: string, timeoutMs: number): Promise<boolean> {
  const r = await pollUntil(
    async () => {
      const m = (await members(c)).find((x) => x.node === node);
      return m && m.role === "standby" && m.healthy ? true : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
  return r === true;
}

/** The TTL etcd actually granted to the current leader's lease (seconds), via `etcdctl lease timetolive`. */
export async function grantedTtl(c: LabCluster): Promise<number | undefined> {
  const r = await c.lab.etcdctl(["get", "/understudy/lab/leader", "-w", "json"], { timeoutMs: 3000 });
  if (r.code !== 0) return undefined;
  try {
    // Lease ids are int64: JSON.parse would round them, so take the digits as text.
    const lease = /"lease":(\d+)/.exec(r.stdout)?.[1];
    if (lease === undefined) return undefined;
    const hex = BigInt(lease).toString(16);
    const t = await c.lab.etcdctl(["lease", "timetolive", hex], { timeoutMs: 3000 });
    const m = /granted with TTL\((\d+)s\)/.exec(t.stdout);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// -------------------------------------------------------------- agent logs

export interface LogLine {
  time: number;
  msg: string;
  [k: string]: unknown;
}

export function agentLog(lab: Lab, node: string): LogLine[] {
  const f = join(lab.logDir, `${node}-agent.log`);
  if (!existsSync(f)) return [];
  const out: LogLine[] = [];
  for (const line of readFileSync(f, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as Omit<LogLine, "time"> & { time: unknown };
      // pino: isoTime ("2026-…Z", ms resolution) in the agent; epoch ms by default.
      const time = typeof j.time === "number" ? j.time : typeof j.time === "string" ? Date.parse(j.time) : NaN;
      if (Number.isFinite(time) && typeof j.msg === "string") out.push({ ...j, time } as LogLine);
    } catch {
      /* partial line */
    }
  }
  return out;
}

export function firstLog(lines: readonly LogLine[], after: number, re: RegExp): LogLine | undefined {
  return lines.find((l) => l.time >= after && re.test(l.msg));
}

// ------------------------------------------------------------------- /proc

export const CLK_TCK = 100;

export interface ProcSample {
  t: number;
  rssKb: number;
  /** utime + stime of the process itself, in ticks. */
  selfTicks: number;
  /** cutime + cstime: children it has waited for (ip, arping, probes…), in ticks. */
  childTicks: number;
}

export function procSample(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after the comm: [0]=state(3) … utime(14)=f[11], stime=f[12], cutime=f[13], cstime=f[14]
    return {
      t: now(),
      rssKb: rss ? Number(rss[1]) : 0,
      selfTicks: Number(f[11]) + Number(f[12]),
      childTicks: Number(f[13]) + Number(f[14]),
    };
  } catch {
    return undefined;
  }
}

export function procComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

export function procPpid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------- stats

/** Linear-interpolated quantile (q in 0..1) of the values. */
export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export interface Stats {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(values: readonly number[]): Stats | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  return {
    n: v.length,
    median: quantile(v, 0.5),
    p95: quantile(v, 0.95),
    min: Math.min(...v),
    max: Math.max(...v),
    mean: v.reduce((a, b) => a + b, 0) / v.length,
  };
}

export function readJsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  const out: T[] = [];
  for (const l of readFileSync(file, "utf8").split("\n")) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as T);
    } catch {
      /* ignore */
    }
  }
  return out;
}

/** Walk a benchmark's argv: `value()` takes the word after the flag, or throws "<flag> needs a value". */
export function forEachArg(argv: readonly string[], handle: (flag: string, value: () => string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    handle(flag, () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    });
  }
}

/** A plain-text table: first column left-aligned, the others right-aligned, a dashed rule under the header. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  const sep = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}
