// The live-changing half of one apply (apply.ts applyStaged): owners and modes
// on the staged copies, one flush, the renames into place, removals, the
// directory fsyncs; it keeps what went live, so an error can list it.
import { constants } from "node:fs";
import { chmod, chown, lchown, lstat, mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { CommandRunner } from "../platform/command.js";
import type { DurableFs } from "../platform/durable-fs.js";
import { InFlight } from "../platform/in-flight.js";
import type { Owner } from "./apply.js";
import { compare, type HashCache, type ManifestEntry } from "./manifest.js";
import { checkRelativePath, type SyncRoot } from "./paths.js";

/** Up to this many changed files an apply fsyncs each one; beyond, one syncfs. */
const FSYNC_EACH_UP_TO = 64;
/** Staged files prepared, renamed into place or remembered at once (in chunks: InFlight.map). */
const PLACE_IN_FLIGHT = 64;

/** What is at `p` now, or undefined when nothing is (other errors throw). */
async function lstatIfAny(p: string) {
  return lstat(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
}

/** The parent of a relative path ("a/b" -> "a"); null for one at the top. */
export function parentOf(rel: string): string | null {
  const i = rel.lastIndexOf("/");
  return i < 0 ? null : rel.slice(0, i);
}

/** One apply's live changes: keeps what went live, for error reports and fsync. */
export class ApplyRun {
  readonly applied: string[] = [];
  readonly notes: string[] = [];
  readonly kept = new Set<string>();
  private readonly touched = new Set<string>();
  private readonly live: string;

  constructor(
    private readonly root: SyncRoot,
    private readonly staged: string,
    private readonly fs: DurableFs,
    private readonly runner: CommandRunner,
  ) {
    this.live = path.resolve(root.path);
  }

  /** Run one change; `live` steps are listed in `applied` (what went live) once they succeed. */
  async step(rel: string, fn: () => Promise<void>, live = true): Promise<void> {
    try {
      if (rel !== ".") checkRelativePath(this.root.name, rel);
      await fn();
      if (live) this.applied.push(rel);
    } catch (e) {
      throw this.failure(rel, e);
    }
  }

  /**
   * step() for many entries, several at once (InFlight chunks; no chunk
   * starts after a failure). The error, built once every started entry has
   * settled, names the first failed entry in `entries` order and everything
   * that went live, including what finished beside it.
   */
  async steps(entries: readonly ManifestEntry[], fn: (e: ManifestEntry) => Promise<void>, live = true): Promise<void> {
    const failed = new Map<string, unknown>();
    await InFlight.each(entries, PLACE_IN_FLIGHT, async (e) => {
      if (failed.size > 0) return;
      try {
        checkRelativePath(this.root.name, e.path);
        await fn(e);
        if (live) this.applied.push(e.path);
      } catch (err) {
        failed.set(e.path, err);
      }
    });
    const first = entries.find((e) => failed.has(e.path));
    if (first) throw this.failure(first.path, failed.get(first.path));
  }

  private failure(rel: string, e: unknown): Error {
    if (isUnderstudyError(e)) return e;
    return new UnderstudyError(
      "US_E_SYNC_APPLY_FAILED",
      { root: this.root.name, path: rel, applied_count: this.applied.length, applied: this.applied.join(", ").slice(0, 2000), cause: describeError(e) },
      { cause: e },
    );
  }

  async createRoot(owner: Owner | undefined): Promise<void> {
    const st = await stat(this.staged);
    await mkdir(this.live, { mode: 0o700 });
    await chown(this.live, owner?.uid ?? st.uid, owner?.gid ?? st.gid);
    await chmod(this.live, st.mode & 0o7777);
    this.touched.add(path.dirname(this.live)).add(this.live);
  }

  /** Give a staged file or link its final owner and mode (before it is flushed and renamed). */
  async prepare(e: ManifestEntry): Promise<void> {
    const src = path.join(this.staged, e.path);
    if (e.type === "file") {
      const fh = await open(src, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        await fh.chown(e.uid, e.gid); // chown first: it clears setuid/setgid, which chmod then sets
        await fh.chmod(e.mode);
      } finally {
        await fh.close();
      }
    } else {
      await lchown(src, e.uid, e.gid); // a link's own mode is always 0777 on Linux
    }
  }

  /**
   * Make the prepared files durable before any rename: an fsync per file for
   * a few files; for many, one syncfs of the staging file system (`sync -f`),
   * falling back to per-file fsync if that cannot run. (syncfs also waits for
   * everything else dirty on that file system: cheap per file only in bulk.)
   * `movedDirs` go live whole (moveDir): without a syncfs, each is fsync'ed
   * too (the entries rsync made in it, the owner and mode prepareDir gave it).
   */
  async flushStaged(placed: readonly ManifestEntry[], movedDirs: readonly ManifestEntry[] = []): Promise<void> {
    const files = placed.filter((e) => e.type === "file");
    if (files.length + movedDirs.length === 0) return;
    if (files.length + movedDirs.length > FSYNC_EACH_UP_TO) {
      // coreutils `sync -f DIR` is syncfs(2) on DIR's file system (Node has no binding for it).
      const r = await this.runner.run(["sync", "-f", this.staged], { timeoutMs: 120_000 }).catch(() => null);
      if (r?.code === 0) return;
    }
    for (const e of files) {
      await this.step(
        e.path,
        async () => {
          const fh = await open(path.join(this.staged, e.path), constants.O_RDONLY | constants.O_NOFOLLOW);
          try {
            await fh.sync();
          } finally {
            await fh.close();
          }
        },
        false,
      );
    }
    for (const d of [...movedDirs].sort((a, b) => compare(b.path, a.path))) {
      await this.step(d.path, () => this.fs.fsyncDir(path.join(this.staged, d.path)), false);
    }
  }

  /**
   * Whether staging still holds exactly these entries under `top`, no more, no
   * fewer: what was checked may have changed since (a validator writing into
   * the staged tree, a file gone). Only then may `top` go live whole.
   */
  async holdsExactly(top: ManifestEntry, below: readonly ManifestEntry[]): Promise<boolean> {
    const children = new Map<string, Set<string>>([[top.path, new Set()]]);
    for (const e of below) {
      if (e.type === "dir") children.set(e.path, children.get(e.path) ?? new Set());
      const parent = parentOf(e.path)!; // below `top`: never at the top
      children.set(parent, (children.get(parent) ?? new Set<string>()).add(path.posix.basename(e.path)));
    }
    for (const [dir, want] of children) {
      const names = await readdir(path.join(this.staged, dir)).catch(() => null);
      if (names === null || names.length !== want.size || !names.every((n) => want.has(n))) return false;
    }
    return true;
  }

  /**
   * Seed the hash cache with the live paths just placed, so the next verify of
   * the root reads nothing again. A file in `carried` (it went live inside a
   * directory moved whole, untouched since the checks' walk) keeps the key that
   * walk cached under its staged path: renaming a directory leaves the files
   * below it as they were, and a first sync of 10,000 files needs no lstat here.
   */
  async remember(cache: HashCache, placed: readonly ManifestEntry[], carried: (e: ManifestEntry) => boolean = () => false): Promise<void> {
    await InFlight.each(
      placed.filter((e) => e.type === "file" && e.sha256 !== undefined),
      PLACE_IN_FLIGHT,
      async (e) => {
        const abs = path.join(this.live, e.path);
        if (carried(e) && cache.carry(path.join(this.staged, e.path), abs)) return;
        const st = await lstat(abs, { bigint: true }).catch(() => undefined);
        if (st?.isFile()) cache.remember(abs, st, e.sha256!);
      },
    );
  }

  async place(e: ManifestEntry): Promise<void> {
    const dst = path.join(this.live, e.path);
    const src = path.join(this.staged, e.path);
    const cur = await lstatIfAny(dst);
    this.touched.add(path.dirname(dst));
    if (e.type === "dir") {
      if (cur && !cur.isDirectory()) await unlink(dst);
      // Created owner-only, then given its owner, then its mode: never wider than intended.
      if (!cur?.isDirectory()) await mkdir(dst, { mode: 0o700 });
      await chown(dst, e.uid, e.gid); // chown first: it clears setgid, which chmod then sets
      await chmod(dst, e.mode);
      return;
    }
    if (cur?.isDirectory()) await rm(dst, { recursive: true }); // the primary replaced this directory by a file or link
    // ORDER MATTERS: owner and mode were fixed on the staged file (prepare) and
    // flushed (flushStaged) BEFORE this rename, so a 0600 host key is never
    // visible at its live path with a wider mode or the wrong owner.
    await rename(src, dst);
  }

  /** Give a staged directory its final owner and mode before it goes live whole (moveDir). */
  async prepareDir(e: ManifestEntry): Promise<void> {
    const src = path.join(this.staged, e.path);
    await chown(src, e.uid, e.gid); // chown first: it clears setgid, which chmod then sets
    await chmod(src, e.mode);
  }

  /**
   * A directory new to the live tree goes live with everything below it in one
   * rename: its contents, owners and modes are final in staging, checked and
   * flushed. `below` (every entry under it) is listed as gone live. Returns
   * false, changing nothing, when the live path is a directory after all (made
   * since the live tree was read): the caller then places entry by entry.
   */
  async moveDir(e: ManifestEntry, below: readonly ManifestEntry[]): Promise<boolean> {
    const dst = path.join(this.live, e.path);
    const cur = await lstatIfAny(dst);
    if (cur?.isDirectory()) return false;
    this.touched.add(path.dirname(dst));
    if (cur) await unlink(dst);
    await rename(path.join(this.staged, e.path), dst);
    // Their entries were made in staging: each directory is fsync'ed like one that went live here.
    for (const d of below) {
      if (d.type === "dir") this.touched.add(path.join(this.live, d.path));
      this.applied.push(d.path);
    }
    this.touched.add(dst);
    return true;
  }

  async remove(e: ManifestEntry): Promise<void> {
    const dst = path.join(this.live, e.path);
    this.touched.add(path.dirname(dst));
    try {
      if (e.type === "dir") await rmdir(dst);
      else await unlink(dst);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return; // already gone with a directory the primary replaced by a file or link
      if (e.type === "dir" && (code === "ENOTEMPTY" || code === "EEXIST")) {
        this.kept.add(e.path);
        this.notes.push(`kept directory ${e.path}: it still holds files outside the sync filters`);
        return;
      }
      throw err;
    }
  }

  /** fsync every directory whose entries changed, deepest first. */
  async syncTouched(): Promise<void> {
    for (const dir of [...this.touched].sort(compare).reverse()) {
      try {
        await this.fs.fsyncDir(dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") continue; // removed or replaced later in this apply
        const rel = path.relative(this.live, dir) || ".";
        throw new UnderstudyError("US_E_SYNC_APPLY_FAILED", { root: this.root.name, path: rel, applied_count: this.applied.length, cause: `fsync: ${describeError(e)}` }, { cause: e });
      }
    }
  }
}
