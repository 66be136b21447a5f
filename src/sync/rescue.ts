// Before a returning node pulls, local files that differ from what it last
// published or received are moved aside into a dated rescue folder, so no edit
// is lost silently (DESIGN §1.3). Also the state-dir record of that manifest.
import { constants } from "node:fs";
import { lstat, mkdir, open, readFile, readlink, rename, stat, symlink, lchown, unlink, utimes } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { DurableFs } from "../platform/durable-fs.js";
import type { TreeReader } from "./hasher.js";
import { buildManifest, compare, diffManifests, manifestOf, type HashCache, type Manifest, type ManifestEntry } from "./manifest.js";
import { checkRelativePath, checkSyncRoot, type SyncRoot } from "./paths.js";

export interface RescueOptions {
  readonly root: SyncRoot;
  /** The manifest this node last published (as primary) or applied (as standby); undefined when it never did. */
  readonly lastKnown: Manifest | undefined;
  /** Folder holding the dated rescue folders, e.g. <state_dir>/rescue. */
  readonly rescueBase: string;
  readonly clock: Clock;
  /** The record's write and the directory fsyncs. */
  readonly fs: DurableFs;
  /** Reuse file hashes (manifest.ts HashCache) and hash off-thread (hasher.ts). */
  readonly cache?: HashCache;
  readonly hasher?: TreeReader;
  /** The live tree's manifest when the caller has just built it (saves a second walk of the root). */
  readonly live?: Manifest;
}

export interface RescueResult {
  /** <rescueBase>/<timestamp>/<root name>; a record of the rescue sits beside it as <root name>.json. Empty when no file had to be moved. */
  readonly dir: string;
  /** Relative paths moved into `dir`: files and links added or changed since lastKnown. */
  readonly files: string[];
  /** Relative paths in lastKnown that are gone locally: nothing to save, but worth reporting. */
  readonly removedSinceKnown: string[];
}

/**
 * Move every live file or link that differs from `lastKnown` (content, type,
 * mode, owner or target) into a fresh rescue folder, preserving mode, owner and
 * mtime; folders are created 0700. With no lastKnown, every live file counts as
 * diverged. Directories are not moved: their files are. Returns null when
 * nothing diverged. Throws US_E_SYNC_RESCUE_FAILED (the caller must not pull
 * over the root then); files already moved are in `dir`.
 */
export async function rescueDivergent(opts: RescueOptions): Promise<RescueResult | null> {
  const { root, clock } = opts;
  checkSyncRoot(root);
  // Any other stat error resurfaces from buildManifest as US_E_SYNC_UNREADABLE.
  const live = opts.live ?? (await liveManifest(root, opts));
  const diff = diffManifests(opts.lastKnown ?? manifestOf(root.name, []), live);
  const liveByPath = new Map(live.entries.map((e) => [e.path, e]));
  const files = [...diff.added, ...diff.changed].filter((p) => liveByPath.get(p)!.type !== "dir").sort(compare);
  const removedSinceKnown = diff.removed;
  if (files.length === 0 && removedSinceKnown.length === 0) return null;
  // Nothing to keep: report the removals, but make no folder (a standby that cannot pull yet verifies again and again).
  if (files.length === 0) return { dir: "", files, removedSinceKnown };

  const at = new Date(clock.wallMs()).toISOString();
  const stamp = at.replaceAll(":", "-"); // ':' is awkward in file names (scp, Windows shares, some tools)
  let dir = "";
  let current = ".";
  try {
    dir = await claimRescueDir(opts.rescueBase, stamp, root.name);
    const touched = new Set<string>([path.dirname(dir), dir]);
    for (const rel of files) {
      current = rel;
      checkRelativePath(root.name, rel);
      const dst = path.join(dir, rel);
      await mkdir(path.dirname(dst), { recursive: true, mode: 0o700 });
      await move(path.join(root.path, rel), dst, liveByPath.get(rel)!);
      touched.add(path.dirname(dst)).add(path.dirname(path.join(root.path, rel)));
    }
    current = `${root.name}.json`;
    const record = { root: root.name, path: root.path, at, lastKnownDigest: opts.lastKnown?.digest ?? null, files, removedSinceKnown };
    await opts.fs.writeFileAtomic(`${dir}.json`, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    for (const d of [...touched].sort(compare).reverse()) await opts.fs.fsyncDir(d);
  } catch (e) {
    if (isUnderstudyError(e) && e.code !== "US_E_SYNC_RESCUE_FAILED") throw e;
    throw new UnderstudyError("US_E_SYNC_RESCUE_FAILED", { root: root.name, path: current, dir: dir || opts.rescueBase, cause: describeError(e) }, { cause: e });
  }
  return { dir, files, removedSinceKnown };
}

async function liveManifest(root: SyncRoot, opts: RescueOptions): Promise<Manifest> {
  const liveExists = await stat(root.path).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== "ENOENT",
  );
  return liveExists ? buildManifest(root, root.path, opts.cache, opts.hasher) : manifestOf(root.name, []);
}

/** A new <base>/<stamp>/<name> (suffixing the stamp if a rescue in the same millisecond took it). */
async function claimRescueDir(base: string, stamp: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const stampDir = path.join(base, n === 0 ? stamp : `${stamp}-${n}`);
    await mkdir(stampDir, { recursive: true, mode: 0o700 });
    const dir = path.join(stampDir, name);
    try {
      await mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || n >= 100) throw e;
    }
  }
}

/** rename(), or across file systems a copy that keeps mode, owner and mtime, then unlink. */
async function move(src: string, dst: string, e: ManifestEntry): Promise<void> {
  try {
    await rename(src, dst);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
  }
  const st = await lstat(src);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dst);
    await lchown(dst, st.uid, st.gid);
  } else {
    // Created 0600 and only then given the original owner and mode: never wider than the original.
    const fh = await open(dst, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(await readFile(src));
      await fh.chown(st.uid, st.gid);
      await fh.chmod(e.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await utimes(dst, st.atimeMs / 1000, st.mtimeMs / 1000); // seconds as numbers keep sub-millisecond precision that Date drops
  }
  await unlink(src);
}

/** Record a root's last known manifest: JSON, mode 0600, replaced atomically. */
export async function saveManifest(file: string, manifest: Manifest, fs: DurableFs): Promise<void> {
  await fs.writeFileAtomic(file, `${JSON.stringify(manifest)}\n`, 0o600);
}

/** Read a record written by saveManifest; undefined when there is none. Throws US_E_SYNC_STATE when it cannot be trusted. */
export async function loadManifest(file: string): Promise<Manifest | undefined> {
  const bad = (cause: string, e?: unknown) => new UnderstudyError("US_E_SYNC_STATE", { file, cause }, e === undefined ? undefined : { cause: e });
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw bad(describeError(e), e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON: ${describeError(e)}`, e);
  }
  const m = raw as Partial<Manifest> | null;
  if (typeof m !== "object" || m === null || typeof m.root !== "string" || typeof m.digest !== "string" || !Array.isArray(m.entries)) {
    throw bad("not a manifest (needs root, digest and entries)");
  }
  for (const e of m.entries as unknown[]) {
    if (!isEntry(e)) throw bad(`malformed entry ${JSON.stringify(e).slice(0, 200)}`);
    try {
      checkRelativePath(m.root, e.path);
    } catch (err) {
      throw bad(describeError(err), err);
    }
  }
  const rebuilt = manifestOf(m.root, m.entries, Array.isArray(m.skipped) ? m.skipped : []);
  if (rebuilt.digest !== m.digest) throw bad("its digest does not match its entries (edited or truncated)");
  return rebuilt;
}

function isEntry(v: unknown): v is ManifestEntry {
  const e = v as Record<string, unknown> | null;
  if (typeof e !== "object" || e === null) return false;
  const nums = ["size", "mode", "uid", "gid", "mtimeMs"].every((k) => typeof e[k] === "number" && Number.isFinite(e[k]));
  const typed = e.type === "dir" || (e.type === "file" && typeof e.sha256 === "string") || (e.type === "symlink" && typeof e.target === "string");
  return typeof e.path === "string" && nums && typed;
}
