// Free space on the data volume(s): what a standby reports in its member key
// (MemberDataSummary.freeBytes) so the primary's shipper pauses before rsync
// hits ENOSPC and resumes once space is back (ship-plan.ts `pause`), and what
// GET /data shows per root.
import { statfs } from "node:fs/promises";

/**
 * Bytes an unprivileged writer may still use on the filesystem holding `path`
 * (statfs f_bavail × f_bsize: `df`'s "Avail" column; root's reserved blocks
 * are not counted, so the figure errs towards "full"). null when statfs fails
 * (a missing root, EACCES, EIO): unknown, never 0.
 */
export async function freeBytesOf(path: string): Promise<number | null> {
  try {
    const s = await statfs(path);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/**
 * The smallest free space over the data roots (the first volume to fill is the
 * one that stops a batch). null when there is no root or any root's statfs
 * failed: a root whose volume cannot be read must not look roomy.
 */
export async function freeBytes(paths: readonly string[]): Promise<number | null> {
  if (paths.length === 0) return null;
  const each = await Promise.all(paths.map(freeBytesOf));
  let min: number | null = null;
  for (const b of each) {
    if (b === null) return null;
    if (min === null || b < min) min = b;
  }
  return min;
}

/**
 * The figure a standby publishes: rounded down to about 1/64 of its own size
 * (at least 1 MiB), so the member key is not rewritten for every file that
 * arrives (100 GiB free moves in 1 GiB steps, 100 MiB in 1 MiB steps), while
 * near a reserve of tens of MiB it is exact to the MiB. Rounding down errs
 * towards "full".
 */
export function quantizeFree(bytes: number | null): number | null {
  if (bytes === null || !Number.isFinite(bytes) || bytes < 0) return null;
  const MiB = 1024 * 1024;
  const step = Math.max(MiB, 2 ** Math.floor(Math.log2(Math.max(bytes, 1)) - 6));
  return Math.floor(bytes / step) * step;
}

/** What the engine reads: the last sampled figures (memory only, answers at once). */
export interface FreeSpaceReader {
  /** The smallest over the roots, quantized (quantizeFree); null: unknown. */
  min(): number | null;
  /** One root's last figure, exact; null: unknown (never sampled, or statfs failed). */
  of(path: string): number | null;
  start(): void;
  stop(): void;
}

/**
 * Samples the roots' free space every `everyMs` (statfs is a cheap system
 * call) and calls `onChange` when the published (quantized) minimum changes,
 * so the member key carries it and the primary's shipper can pause before
 * rsync hits ENOSPC, and resume as soon as space is back. One sample at a
 * time; a failed sample makes the figure unknown (null), never stale.
 */
export class FreeSpaceSampler implements FreeSpaceReader {
  private readonly last = new Map<string, number | null>();
  private published: number | null = null;
  private timer: { cancel(): void } | undefined;
  private running = false;

  constructor(
    private readonly paths: readonly string[],
    private readonly clock: { setTimer(ms: number, fn: () => void): { cancel(): void } },
    private readonly opts: { readonly everyMs?: number; readonly onChange?: () => void; readonly measure?: (path: string) => Promise<number | null> } = {},
  ) {}

  min(): number | null {
    return this.published;
  }

  of(path: string): number | null {
    return this.last.get(path) ?? null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      void this.sample().finally(() => {
        if (this.running) this.timer = this.clock.setTimer(this.opts.everyMs ?? 2000, loop);
      });
    };
    loop();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One round: measure every root, publish a changed minimum (start() runs one at once, then every everyMs). */
  async sample(): Promise<void> {
    const measure = this.opts.measure ?? freeBytesOf;
    const each = await Promise.all(this.paths.map(async (p) => [p, await measure(p).catch(() => null)] as const));
    for (const [p, b] of each) this.last.set(p, b);
    const all = each.map(([, b]) => b);
    const min = all.length === 0 || all.some((b) => b === null) ? null : Math.min(...(all as number[]));
    const q = quantizeFree(min);
    if (q !== this.published) {
      this.published = q;
      this.opts.onChange?.();
    }
  }
}
