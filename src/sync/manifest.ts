// What a sync root's tree is: every entry with type, mode, owner and content
// hash, plus one digest the primary publishes and standbys verify against.
import { createHash } from "node:crypto";
import { constants, type BigIntStats } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError, isUnderstudyError, describeError } from "../errors/catalogue.js";
import { InFlight } from "../platform/in-flight.js";
import { compileGlobs } from "./glob.js";
import { isTooLarge, type BatchHasher, type FileHasher, type FileHashResult, type TreeReader } from "./hasher.js";
import { entryStatOf, statKey, workerError, type DirLister, type EntryStat } from "./listing.js";
import { checkRelativePath, checkSymlinkInside, checkSyncRoot, type SyncRoot } from "./paths.js";

export { statKey } from "./listing.js";

export type { SyncRoot } from "./paths.js";

export type EntryType = "file" | "dir" | "symlink";

export interface ManifestEntry {
  /** Relative to the root, POSIX separators, no leading "./". */
  readonly path: string;
  readonly type: EntryType;
  /** Bytes for files, target length for symlinks, 0 for directories (their size is file-system noise). */
  readonly size: number;
  /** Permission bits including setuid, setgid and sticky (st_mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Whole milliseconds. Recorded for people, left out of the digest. */
  readonly mtimeMs: number;
  /** Hex SHA-256 of the content; files only. */
  readonly sha256?: string;
  /** Link text as stored; symlinks only. */
  readonly target?: string;
}

export interface SkippedEntry {
  readonly path: string;
  readonly kind: "socket" | "fifo" | "block-device" | "char-device" | "unknown";
}

export interface Manifest {
  /** The root's name. */
  readonly root: string;
  /** Sorted by path (code-unit order, so a directory always precedes its contents). */
  readonly entries: readonly ManifestEntry[];
  /** See manifestDigest. */
  readonly digest: string;
  /** Sockets, FIFOs and devices found and not synced: they are runtime objects, not configuration. */
  readonly skipped: readonly SkippedEntry[];
}

export interface ManifestDiff {
  /** In b, not in a. */
  readonly added: string[];
  /** In both, different type, content, mode, uid, gid or link target. */
  readonly changed: string[];
  /** In a, not in b. */
  readonly removed: string[];
}

const DIGEST_VERSION = "understudy-manifest/1";

/**
 * SHA-256 over path, type, mode, uid, gid, and size + sha256 (files) or target
 * (links), one JSON line per entry. Modification times are left out on purpose:
 * the transport may not carry them at full precision and a touched-but-equal
 * file is not a change worth a sync generation. Owners are in: a standby must
 * end up with the same uids/gids, so nodes need identical numeric ids (or a
 * forced `owner` on apply).
 */
export function manifestDigest(entries: readonly ManifestEntry[]): string {
  const h = createHash("sha256").update(DIGEST_VERSION);
  for (const e of entries) {
    const content = e.type === "file" ? [e.size, e.sha256 ?? ""] : e.type === "symlink" ? [e.target ?? ""] : [];
    h.update("\n").update(JSON.stringify([e.path, e.type, e.mode, e.uid, e.gid, ...content]));
  }
  return h.digest("hex");
}

/** Entries compared as the digest sees them (mtime and directory size ignored). */
export function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  return manifestDigest([a]) === manifestDigest([b]);
}

export function manifestOf(root: string, entries: readonly ManifestEntry[], skipped: readonly SkippedEntry[] = []): Manifest {
  const sorted = [...entries].sort((x, y) => compare(x.path, y.path));
  return { root, entries: sorted, digest: manifestDigest(sorted), skipped };
}

export function diffManifests(a: Manifest, b: Manifest): ManifestDiff {
  const before = new Map(a.entries.map((e) => [e.path, e]));
  const after = new Map(b.entries.map((e) => [e.path, e]));
  const added: string[] = [];
  const changed: string[] = [];
  for (const e of b.entries) {
    const old = before.get(e.path);
    if (!old) added.push(e.path);
    else if (!sameEntry(old, e)) changed.push(e.path);
  }
  const removed = a.entries.filter((e) => !after.has(e.path)).map((e) => e.path);
  return { added, changed, removed };
}

/**
 * Remembers file hashes by absolute path and stat identity (inode, size,
 * mtime and ctime to the nanosecond), so a manifest rebuilt after a one-file
 * change reads one file instead of the whole tree. ctime cannot be set back by
 * user tools (unlike mtime), so an edit that restores the old mtime still
 * misses the cache. Entries not seen in the latest build of their tree go.
 */
export class HashCache {
  private readonly byPath = new Map<string, { key: string; sha256: string }>();

  get(abs: string, key: string): string | undefined {
    const hit = this.byPath.get(abs);
    return hit && hit.key === key ? hit.sha256 : undefined;
  }

  set(abs: string, key: string, sha256: string): void {
    this.byPath.set(abs, { key, sha256 });
  }

  /** Record a hash known from elsewhere (a file just renamed into place) under its current stat identity. */
  remember(abs: string, st: BigIntStats, sha256: string): void {
    this.set(abs, statKey(st), sha256);
  }

  /**
   * Move what is known of `from` to `to`: the same file, renamed with a
   * directory above it (its inode, size, mtime and ctime are unchanged, so the
   * key still holds). Returns false when nothing was known of `from`. A file
   * changed in between only misses the cache at its next lookup.
   */
  carry(from: string, to: string): boolean {
    const hit = this.byPath.get(from);
    if (!hit) return false;
    this.byPath.delete(from);
    this.byPath.set(to, hit);
    return true;
  }

  /** Drop entries under `dir` that are not in `seen` (files deleted since). */
  prune(dir: string, seen: ReadonlySet<string>): void {
    const prefix = dir.endsWith("/") ? dir : `${dir}/`;
    for (const abs of this.byPath.keys()) if (abs.startsWith(prefix) && !seen.has(abs)) this.byPath.delete(abs);
  }

  get size(): number {
    return this.byPath.size;
  }
}

export interface WalkOptions {
  /** Stops the walk between entries by throwing its reason. */
  readonly signal?: AbortSignal;
  /** Awaited before each directory: a background walk (sweep.ts) lets more urgent work run first. */
  readonly pace?: () => Promise<void>;
  /** Files hashed at once (default 32). A background walk keeps it low: the hash worker serves requests in order. */
  readonly hashesInFlight?: number;
  /** Drop cache entries of files not seen (default true). A background walk does not: an apply may be adding entries meanwhile. */
  readonly prune?: boolean;
}

/**
 * A path deleted between its readdir or lstat and its use (ENOENT): not in
 * this tree. Anything else, a path replaced by another kind (ENOTDIR,
 * EINVAL), fails the build, which is retried: what is there now is read then.
 */
const vanished = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === "ENOENT";

/**
 * Walk `dir` (the live root, or a staged copy of it) and describe it. Links
 * are recorded, never followed, and must resolve inside the root. Throws
 * US_E_SYNC_UNSAFE_PATH, US_E_SYNC_FILE_TOO_LARGE or US_E_SYNC_UNREADABLE.
 */
export async function buildManifest(root: SyncRoot, dir: string = root.path, cache?: HashCache, reader?: TreeReader, opts: WalkOptions = {}): Promise<Manifest> {
  const { signal, pace } = opts;
  checkSyncRoot(root);
  const excluded = compileGlobs(root.exclude);
  const included = compileGlobs(root.include);
  const includeAll = root.include.length === 0;
  const entries: ManifestEntry[] = [];
  const skipped: SkippedEntry[] = [];
  const service = typeof reader === "function" ? { hash: reader } : reader;
  const hasher: FileHasher | undefined = service?.hash;
  const hashMany: BatchHasher | undefined = service?.hashMany;
  const lister: DirLister | undefined = service?.list;
  // The worker lists once it is up or the tree proves large: a cached walk of a small root
  // (a few ms here) must not start a thread (~60 ms of CPU) every sweep period.
  const workerUp = service?.running ?? (() => true);
  let listedHere = 0;

  const fail = (rel: string, e: unknown): never => {
    if (isUnderstudyError(e)) throw e;
    throw new UnderstudyError("US_E_SYNC_UNREADABLE", { root: root.name, path: rel || ".", cause: describeError(e) }, { cause: e });
  };
  // Names in code-unit order, each checked and matched against the excludes before it is used.
  const keep = (relDir: string, names: string[]): string[] =>
    names
      .sort(compare)
      .map((name) => (relDir === "" ? name : `${relDir}/${name}`))
      .filter((rel) => (checkRelativePath(root.name, rel), !excluded(rel)));

  // The entries of relDir kept by the excludes, each with its lstat (undefined: deleted since
  // the readdir); null when relDir itself was deleted after its parent listed it.
  async function list(relDir: string): Promise<{ rel: string; st: EntryStat | undefined }[] | null> {
    const gone = (e: unknown): null => (relDir !== "" && vanished(e) ? null : fail(relDir, e));
    if (lister && (listedHere >= LIST_HERE_MAX || workerUp())) {
      // One request to the hash worker: readdir and every lstat there, synchronously, off this thread.
      const listed = await lister(path.join(dir, relDir)).catch(gone);
      if (listed === null) return null;
      const byName = new Map(listed.map((l) => [l.name, l]));
      return keep(relDir, [...byName.keys()]).map((rel) => {
        const l = byName.get(rel.slice(rel.lastIndexOf("/") + 1))!;
        return { rel, st: "stat" in l ? l.stat : vanished(l.error) ? undefined : fail(rel, l.error) };
      });
    }
    const names = await readdir(path.join(dir, relDir)).catch(gone);
    if (names === null) return null;
    listedHere += names.length;
    const rels = keep(relDir, names);
    // One directory's entries are stat'ed several at once (the walk's cost on a warm cache is these calls).
    const stats = await InFlight.map(rels, STATS_IN_FLIGHT, (rel) =>
      lstat(path.join(dir, rel), { bigint: true }).then(entryStatOf, (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : fail(rel, e))),
    );
    return rels.map((rel, i) => ({ rel, st: stats[i] }));
  }

  // Returns how many entries were recorded below relDir, so include-filtered
  // trees keep only the directories that lead to something included; null
  // when relDir was deleted after its lstat (not in this tree).
  async function walk(relDir: string, inheritedInclude: boolean): Promise<number | null> {
    if (pace) await pace();
    const listed = await list(relDir);
    if (listed === null) return null;
    let recorded = 0;
    for (const { rel, st } of listed) {
      signal?.throwIfAborted();
      const abs = path.join(dir, rel);
      if (!st) continue; // deleted while we walked: it is simply not in this tree
      const inc = includeAll || inheritedInclude || included(rel);
      const base = { path: rel, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs };
      if (st.kind === "dir") {
        const below = await walk(rel, inc);
        if (below === null) continue;
        if (inc || below > 0) {
          entries.push({ ...base, type: "dir", size: 0 });
          recorded += below + 1;
        }
      } else if (!inc) {
        continue;
      } else if (st.kind === "symlink") {
        const target = await readlink(abs).catch((e: unknown) => (vanished(e) ? null : fail(rel, e)));
        if (target === null) continue; // deleted while we walked
        await checkSymlinkInside(root.name, root.path, dir, rel, target).catch((e) => fail(rel, e));
        entries.push({ ...base, type: "symlink", size: Buffer.byteLength(target), target });
        recorded++;
      } else if (st.kind === "file") {
        const key = st.key;
        const hit = cache?.get(abs, key);
        const statSize = st.size;
        if (statSize > root.maxFileBytes) fail(rel, new UnderstudyError("US_E_SYNC_FILE_TOO_LARGE", { root: root.name, path: rel, size: statSize, limit: root.maxFileBytes }));
        if (cache) seen.add(abs);
        recorded++;
        if (hit !== undefined) {
          entries.push({ ...base, type: "file", size: statSize, sha256: hit });
          continue;
        }
        const q: Queued = { abs, rel, key, base };
        if (hashMany) {
          batch.push(q);
          if (batch.length >= batchSize) await flush();
          continue;
        }
        // Hashed while the walk goes on (up to HASHES_IN_FLIGHT at once): the hash worker
        // always has the next file queued instead of waiting for our next lstat.
        await hashes.add(
          () => (hasher ? hasher(abs, root.maxFileBytes) : hashFile(root, abs, rel)).catch((e: unknown): FileHashResult => (e instanceof Error ? e : workerError(String(e)))),
          (h) => record(q, h),
        );
      } else {
        skipped.push({ path: rel, kind: st.kind });
      }
    }
    return recorded;
  }

  // With a batch hasher, the files queued at once go as two requests of half as many each: one
  // message each way per batch instead of per file (10,000 files: ~0.3 s less CPU here).
  const inFlight = opts.hashesInFlight ?? HASHES_IN_FLIGHT;
  const batchSize = Math.max(1, Math.ceil(inFlight / 2));
  let batch: Queued[] = [];
  // One file's outcome, hashed alone or in a batch, in the worker or here.
  const record = (q: Queued, h: FileHashResult): void => {
    if (h instanceof Error) {
      if (vanished(h)) return; // deleted while we walked
      if (isTooLarge(h)) throw new UnderstudyError("US_E_SYNC_FILE_TOO_LARGE", { root: root.name, path: q.rel, size: h.tooLarge, limit: root.maxFileBytes });
      return fail(q.rel, h);
    }
    cache?.set(q.abs, q.key, h.sha256);
    entries.push({ ...q.base, type: "file", size: h.size, sha256: h.sha256 });
  };
  async function flush(): Promise<void> {
    const items = batch;
    batch = [];
    if (items.length === 0) return;
    await hashes.add(
      () =>
        hashMany!(
          items.map((q) => q.abs),
          root.maxFileBytes,
        ),
      (results) => results.forEach((h, i) => record(items[i]!, h)),
    );
  }

  const seen = new Set<string>();
  const hashes = new InFlight(hashMany ? Math.min(2, inFlight) : inFlight);
  try {
    await walk("", false);
    await flush();
  } finally {
    await hashes.drain(); // no hash outlives the walk, even when it failed
  }
  hashes.throwFirst();
  if (opts.prune !== false) cache?.prune(path.resolve(dir), seen);
  return manifestOf(root.name, entries, skipped);
}

const HASHES_IN_FLIGHT = 32;
const STATS_IN_FLIGHT = 256;
/** Entries a walk lists in the calling thread before it hands listing to a hash worker that is not up yet. */
const LIST_HERE_MAX = 500;

/** A file waiting in a batch for its hash. */
interface Queued {
  readonly abs: string;
  readonly rel: string;
  readonly key: string;
  readonly base: { readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly mtimeMs: number };
}

const CHUNK = 64 * 1024;

async function hashFile(root: SyncRoot, abs: string, rel: string): Promise<{ size: number; sha256: string }> {
  // O_NOFOLLOW/O_NONBLOCK: if the file was swapped for a link or FIFO after lstat, fail instead of following or hanging.
  const fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UnderstudyError("US_E_SYNC_UNREADABLE", { root: root.name, path: rel, cause: "no longer a regular file (replaced while it was read)" });
    const tooLarge = (size: number) => new UnderstudyError("US_E_SYNC_FILE_TOO_LARGE", { root: root.name, path: rel, size, limit: root.maxFileBytes });
    if (st.size > root.maxFileBytes) throw tooLarge(st.size);
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size > root.maxFileBytes) throw tooLarge(size); // grew while we read it
      h.update(buf.subarray(0, bytesRead));
    }
    return { size, sha256: h.digest("hex") };
  } finally {
    await fh.close();
  }
}

/** Plain code-unit order: stable across locales, and "a" < "a-b" < "a/b" keeps parents first. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
