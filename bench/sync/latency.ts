/**
 * Small-file latency: write on the primary's root, then poll the standbys'
 * copies directly on the shared filesystem (the lab's namespaces share it)
 * until content and mode are identical on every standby. Every `chmodEvery`
 * iteration also chmods another existing file to 0600, which must arrive too.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../test/lab/harness/index.js";
import { quantile } from "../failover/lib.js";
import { chmodFile, contentFile } from "./tree.js";

export interface LatencyOptions {
  /** Label for progress lines. */
  label: string;
  primaryRoot: string;
  standbyRoots: string[];
  iterations: number;
  /** Every Nth iteration (1-based) also chmods a fresh file to 0600. Default 5. */
  chmodEvery?: number;
  /** Bound for one iteration, from the write. */
  timeoutMs: number;
  /**
   * Once the content is everywhere, how much longer to wait for the chmod
   * (still within timeoutMs). Default: all of timeoutMs.
   */
  modeGraceMs?: number;
  /** Pause after an iteration converged (or gave up). Default 300 ms. */
  spacingMs?: number;
  /** Poll interval. Default 3 ms. */
  pollMs?: number;
  /** Progress line every N iterations (default 10; 1 = every one). */
  progressEvery?: number;
  log: (msg: string) => void;
}

export interface Iteration {
  i: number;
  file: string;
  chmod: string | null;
  /** Write -> the new content (and that file's mode) identical on every standby, ms; null = not within the bound. */
  contentMs: number | null;
  /** chmod iterations: write -> the 0600 mode on every standby, ms; null = never seen within the bound. */
  modeMs: number | null;
  /** Write -> everything this iteration changed identical on every standby (max of the above); null = a miss. */
  identicalMs: number | null;
  /** Per standby: when it first held everything (ms), null = never. */
  perStandbyMs: (number | null)[];
  /** Wall clock (epoch ms) just before the write, to line iterations up with agent logs. */
  writtenAtMs: number;
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(values: readonly (number | null)[]): Summary | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return null;
  return {
    n: v.length,
    p50: quantile(v, 0.5),
    p95: quantile(v, 0.95),
    p99: quantile(v, 0.99),
    min: Math.min(...v),
    max: Math.max(...v),
    mean: v.reduce((a, b) => a + b, 0) / v.length,
  };
}

export interface LatencyResult {
  label: string;
  iterations: Iteration[];
  /** Over every iteration that converged: write -> identical (content + mode, chmod included). */
  identical: Summary | null;
  /** Content only (the rewritten file, with its mode), every iteration. */
  content: Summary | null;
  misses: number;
  chmods: number;
  chmodsPropagated: number;
  modeLatency: Summary | null;
  wallMs: number;
}

const now = (): number => performance.now();

function sameContent(path: string, want: Buffer, mode: number): boolean {
  try {
    return (statSync(path).mode & 0o7777) === mode && readFileSync(path).equals(want);
  } catch {
    return false;
  }
}

function sameMode(path: string, mode: number): boolean {
  try {
    return (statSync(path).mode & 0o7777) === mode;
  } catch {
    return false;
  }
}

export async function measureLatency(o: LatencyOptions): Promise<LatencyResult> {
  const chmodEvery = o.chmodEvery ?? 5;
  const pollMs = o.pollMs ?? 3;
  const spacing = o.spacingMs ?? 300;
  const every = o.progressEvery ?? 10;
  const started = now();
  const out: Iteration[] = [];
  let chmodSeq = 0;
  for (let i = 1; i <= o.iterations; i++) {
    const file = contentFile(i);
    const chmod = i % chmodEvery === 0 ? chmodFile(chmodSeq++) : null;
    const body = Buffer.from(`# ${file}: iteration ${i} (${o.label}) ${new Date().toISOString()}\n${randomBytes(480).toString("hex")}\n`);
    const src = join(o.primaryRoot, file);
    const writtenAtMs = Date.now();
    const t0 = now();
    writeFileSync(src, body);
    if (chmod) chmodSync(join(o.primaryRoot, chmod), 0o600);
    const fileMode = statSync(src).mode & 0o7777;
    const n = o.standbyRoots.length;
    const contentAt: (number | null)[] = new Array<number | null>(n).fill(null);
    const modeAt: (number | null)[] = new Array<number | null>(n).fill(chmod ? null : 0);
    const deadline = t0 + o.timeoutMs;
    let modeDeadline = deadline;
    for (;;) {
      const t = now();
      for (let s = 0; s < n; s++) {
        const root = o.standbyRoots[s]!;
        if (contentAt[s] === null && sameContent(join(root, file), body, fileMode)) contentAt[s] = t - t0;
        if (modeAt[s] === null && chmod && sameMode(join(root, chmod), 0o600)) modeAt[s] = t - t0;
      }
      const contentDone = contentAt.every((x) => x !== null);
      const modeDone = modeAt.every((x) => x !== null);
      if (contentDone && modeDone) break;
      if (contentDone && o.modeGraceMs !== undefined && modeDeadline === deadline) modeDeadline = Math.min(deadline, t + o.modeGraceMs);
      if (t >= deadline || (contentDone && t >= modeDeadline)) break;
      await sleep(pollMs);
    }
    const maxOf = (xs: (number | null)[]): number | null => (xs.every((x) => x !== null) ? Math.max(...(xs as number[])) : null);
    const contentMs = maxOf(contentAt);
    const modeMs = chmod ? maxOf(modeAt) : null;
    const perStandbyMs = contentAt.map((c, s) => (c !== null && modeAt[s] !== null ? Math.max(c, modeAt[s]!) : null));
    const identicalMs = contentMs !== null && (!chmod || modeMs !== null) ? Math.max(contentMs, modeMs ?? 0) : null;
    out.push({ i, file, chmod, contentMs, modeMs, identicalMs, perStandbyMs, writtenAtMs });
    if (i % every === 0 || i === o.iterations || identicalMs === null) {
      const f = (x: number | null) => (x === null ? "MISS" : `${x.toFixed(0)} ms`);
      o.log(`  ${o.label} ${i}/${o.iterations}: ${file} ${f(contentMs)}${chmod ? `, chmod 0600 ${chmod} ${chmod && modeMs === null ? "NOT PROPAGATED" : f(modeMs)}` : ""}`);
    }
    await sleep(spacing);
  }
  const chmods = out.filter((x) => x.chmod);
  return {
    label: o.label,
    iterations: out,
    identical: summarize(out.map((x) => x.identicalMs)),
    content: summarize(out.map((x) => x.contentMs)),
    misses: out.filter((x) => x.identicalMs === null).length,
    chmods: chmods.length,
    chmodsPropagated: chmods.filter((x) => x.modeMs !== null).length,
    modeLatency: summarize(chmods.map((x) => x.modeMs)),
    wallMs: now() - started,
  };
}
