// One directory entry as the manifest walk reads it: its lstat reduced to what
// a manifest records plus the hash cache's key, from an async lstat in the
// calling thread or from the hash worker's listing (hasher.ts), which reads a
// whole directory in one request.
import type { BigIntStats } from "node:fs";

const ENTRY_KINDS = ["dir", "file", "symlink", "socket", "fifo", "block-device", "char-device", "unknown"] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

export interface EntryStat {
  readonly kind: EntryKind;
  /** st_mode & 0o7777. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  /** The hash cache's key for this stat (statKey below). */
  readonly key: string;
}

/** A listed name: its stat, or why it could not be read (ENOENT: deleted since the readdir). */
export type ListedEntry = { readonly name: string; readonly stat: EntryStat } | { readonly name: string; readonly error: Error & { code?: string } };

/** Lists `dir` (absolute) with each entry's lstat, links not followed; rejects (with the errno code) when the directory cannot be read. */
export type DirLister = (dir: string) => Promise<ListedEntry[]>;

/** The hash worker's rows: [name, kind, mode, uid, gid, size, mtimeMs, key] or [name, null, error, code]. */
export type WorkerListing = readonly (readonly unknown[])[];

const KINDS: ReadonlySet<unknown> = new Set(ENTRY_KINDS);

/** The cache key of a file: its stat identity (see manifest.ts HashCache). The worker builds the same text. */
export function statKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

export function entryStatOf(st: BigIntStats): EntryStat {
  return {
    kind: kindOf(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeMs: Number(st.mtimeMs),
    key: statKey(st),
  };
}

function kindOf(st: BigIntStats): EntryKind {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isSocket()) return "socket";
  if (st.isFIFO()) return "fifo";
  if (st.isBlockDevice()) return "block-device";
  if (st.isCharacterDevice()) return "char-device";
  return "unknown";
}

/**
 * An error the worker reported, re-created on this side as errno-style text and code (the worker runs plain JS and
 * cannot import the catalogue); buildManifest reports it as US_E_SYNC_UNREADABLE with the root and path.
 */
export function workerError(message: string, code?: unknown): Error & { code?: string } {
  return Object.assign(new Error(message), typeof code === "string" ? { code } : {});
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** The worker's rows as entries; a row of any other shape is an entry that failed (never a guessed stat). */
export function listedFromWorker(rows: WorkerListing): ListedEntry[] {
  return rows.map((row): ListedEntry => {
    const [name, kind, mode, uid, gid, size, mtimeMs, key] = row;
    const n = typeof name === "string" ? name : String(name);
    if (KINDS.has(kind) && isCount(mode) && isCount(uid) && isCount(gid) && isCount(size) && typeof mtimeMs === "number" && typeof key === "string") {
      return { name: n, stat: { kind: kind as EntryKind, mode, uid, gid, size, mtimeMs, key } };
    }
    const why = kind === null && typeof mode === "string" ? mode : "the hash worker returned a malformed listing row";
    return { name: n, error: workerError(why, kind === null ? uid : undefined) };
  });
}
