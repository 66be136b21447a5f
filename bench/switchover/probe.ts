/**
 * Starts bench/failover/prober.mjs (the banner prober
 * plus --slow-ms) in the client namespace; the same interface as
 * bench/failover/lib.ts's Prober, whose attempt parser and gap helpers it reuses.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Lab, pollUntil, sleep } from '../../test/lab/harness/index.js';
import { killGroup } from '../../test/lab/harness/exec.js';
import { type Attempt, parseAttempts } from '../failover/lib.js';

// One prober for both benchmarks; this one passes --slow-ms for ~20 ms resolution at both ends of a short gap.
export const PROBER_SCRIPT = fileURLToPath(new URL('../failover/prober.mjs', import.meta.url));

export interface ProbeOptions {
  host?: string;
  intervalMs?: number;
  timeoutMs?: number;
  /** A new attempt on every tick once the newest in flight is older than this (default 15: every tick). */
  slowMs?: number;
  maxSeconds?: number;
}

export class FineProber {
  private constructor(
    readonly file: string,
    readonly child: ChildProcess,
  ) {}

  static async start(lab: Lab, tag: string, opts: ProbeOptions = {}): Promise<FineProber> {
    const file = join(lab.logDir, `prober-${tag}.log`);
    const argv = [
      process.execPath, PROBER_SCRIPT,
      '--host', opts.host ?? lab.vipAddress,
      '--port', '22',
      '--interval-ms', String(opts.intervalMs ?? 20),
      '--timeout-ms', String(opts.timeoutMs ?? 200),
      '--slow-ms', String(opts.slowMs ?? 15),
      '--max-inflight', '10',
      '--max-seconds', String(opts.maxSeconds ?? 120),
      '--out', file,
    ];
    const child = lab.spawn(lab.client, argv, { stdin: 'pipe', logFile: join(lab.logDir, `prober-${tag}.stderr.log`) });
    child.stdin?.on('error', () => undefined);
    const p = new FineProber(file, child);
    const up = await pollUntil(() => (existsSync(file) ? true : undefined), { timeoutMs: 5000, intervalMs: 10 });
    if (!up) {
      await p.stop();
      throw new Error('prober did not start');
    }
    return p;
  }

  attempts(): Attempt[] {
    return existsSync(this.file) ? parseAttempts(readFileSync(this.file, 'utf8')) : [];
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
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
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
 * The longest interval without a banner (between consecutive successful
 * attempts, by banner time) that overlaps [from, to]: the gap of a move whose
 * moment is known (from the agent logs or the ARP observer), so an unrelated
 * hiccup elsewhere in the probe window cannot be taken for it. Also the
 * failure reasons seen inside it.
 */
export function gapAround(attempts: readonly Attempt[], from: number, to: number): { from: number; to: number; gapMs: number; reasons: Record<string, number> } | undefined {
  const ok = attempts.filter((a) => a.ok).sort((a, b) => a.end - b.end);
  let best: { from: number; to: number; gapMs: number } | undefined;
  for (let i = 1; i < ok.length; i++) {
    const a = ok[i - 1]!.end;
    const b = ok[i]!.end;
    if (b < from || a > to) continue;
    if (!best || b - a > best.gapMs) best = { from: a, to: b, gapMs: b - a };
  }
  if (!best) return undefined;
  const reasons: Record<string, number> = {};
  for (const x of attempts) if (!x.ok && x.end > best.from && x.end <= best.to) reasons[x.reason ?? '?'] = (reasons[x.reason ?? '?'] ?? 0) + 1;
  return { ...best, reasons };
}
