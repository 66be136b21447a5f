import { statfs } from "node:fs/promises";
import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";
import { runCheck } from "./run.js";

export interface DiskTarget {
  readonly name: string;
  /** Any path on the volume to watch (the daemon's data directory). */
  readonly path: string;
  /** Up while at least this many bytes are free for unprivileged users. */
  readonly minFreeBytes: number;
  readonly timeoutMs: number;
}

const SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Parse "500MiB", "1GiB", "1.5TiB", "4096B" into bytes (binary units only); undefined if malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB|PiB)$/.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * 1024 ** SIZE_UNITS.indexOf(m[2] as (typeof SIZE_UNITS)[number]));
}

/** "12.3 GiB", "40 GiB", "512 B": one decimal at most, in the largest unit that keeps the number at least 1. */
export function formatSize(bytes: number): string {
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
  return `${shown} ${SIZE_UNITS[unit]}`;
}

/**
 * Free space on the data volume (statfs): up while the bytes available to
 * unprivileged users (the daemon's) stay at or above the minimum and the
 * filesystem has a free inode. A full volume makes every upload fail while
 * every listener still answers.
 */
export class DiskProbe implements Probe {
  readonly type = "disk" as const;
  readonly name: string;

  constructor(
    private readonly target: DiskTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    const { path, minFreeBytes, timeoutMs } = this.target;
    return runCheck(this.clock, timeoutMs, signal, async (run) => {
      // statfs cannot be cancelled: on a hung network filesystem it may outlive the check, which still ends at its deadline.
      run.stage = `reading free space of ${path}`;
      let s;
      try {
        s = await statfs(path);
      } catch (e) {
        return run.finish(false, `cannot read free space of ${path}: ${(e as Error).message}`);
      }
      const freeBytes = s.bavail * s.bsize;
      const totalBytes = s.blocks * s.bsize;
      const data = { freeBytes, totalBytes };
      const space = `${formatSize(freeBytes)} free of ${formatSize(totalBytes)}`;
      if (freeBytes < minFreeBytes) return run.finish(false, `${space}, below min_free ${formatSize(minFreeBytes)}`, data);
      // Filesystems without a fixed inode table (btrfs) report 0 inodes in total: nothing to run out of.
      if (s.files > 0 && s.ffree === 0) return run.finish(false, `${space}, but no free inodes (${s.files} in total)`, data);
      run.finish(true, space, data);
    });
  }
}
