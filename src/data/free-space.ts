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
