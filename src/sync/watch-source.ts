// The primary's watch source: one inotify watch (node:fs watch) per DIRECTORY
// of each root. A directory's watch reports what happens to the entries in it
// (writes, chmods, creates, deletes, renames), and a hint only has to name the
// root (watch.ts), so files need no watch of their own.
//
// It replaced chokidar 5, which watches every file and stats it on the main
// thread: on a 10,000-file root its first scan took 1.2 s and 1.8 s of CPU and
// stalled the event loop for 0.47-0.60 s at a time on an idle 2-core host; on a
// busy one a new primary missed its lease renewal during that scan and fenced
// itself (bench/sync, 2026-12-06). This source: 21-27 ms, 31-41 ms of CPU,
// longest stall 14-16 ms, and 101 inotify watches instead of 10,201.
//
// Events are hints, never the truth. A directory created and filled before its
// watch exists is hinted again once its watch is up; a path that comes to name
// another directory is watched again. What is still missed is caught by the
// periodic sweep: a kernel queue overflow (node:fs does not report it), a write
// through a hard link outside the root (inotify reports an access by the path
// it came through). Links below a root are not followed (a link is synced as a
// link); a root that is a link is followed. Each root's parent is watched for
// the root's own name: a root deleted and made again, a directory moved into
// its place, or a link root pointed elsewhere (`ln -sfn v2 current`) is
// watched again and hinted. Left to the sweep: a link further up the root's
// path pointed elsewhere (root /srv/app/current/config after `ln -sfn r2
// current`), the target of a link root deleted and made again, and the
// root's parent itself deleted and made again.
import { watch, type BigIntStats, type FSWatcher } from "node:fs";
import { lstat, readdir, stat } from "node:fs/promises";
import { basename, dirname, join, sep } from "node:path";
import type { WatchSink, WatchSource, WatchSourceFactory } from "./watch.js";

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** Vanished between the event and our look at it, or never there: nothing to watch, nothing to report. */
const gone = (e: unknown): boolean => errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR";

interface Watched {
  readonly watcher: FSWatcher;
  /** The directory's identity (idOf) when it was watched: a path that now names another directory is watched again. */
  readonly id: string;
}

/** Device, inode and birth time: ext4 hands a freed inode number to the next mkdir at once. */
const idOf = (st: BigIntStats): string => `${st.dev}:${st.ino}:${st.birthtimeNs}`;

class DirTree implements WatchSource {
  readonly ready: Promise<void>;
  private readonly roots: ReadonlySet<string>;
  private readonly watched = new Map<string, Watched>();
  /** One watch on each root's parent, for the root's own name (watchParent). */
  private readonly parents: FSWatcher[] = [];
  /** Error codes already reported: an inotify limit hit on 5,000 directories is one warning, not 5,000. */
  private readonly reported = new Set<string>();
  private closed = false;

  constructor(
    roots: readonly string[],
    private readonly sink: WatchSink,
  ) {
    this.roots = new Set(roots);
    for (const r of roots) this.watchParent(r);
    this.ready = Promise.all(roots.map((r) => this.add(r))).then(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.parents) w.close();
    for (const w of this.watched.values()) w.watcher.close();
    this.watched.clear();
    await this.ready;
  }

  /** A root is followed through a link (stat), anything below it is not (lstat). */
  private look(path: string) {
    return this.roots.has(path) ? stat(path, { bigint: true }) : lstat(path, { bigint: true });
  }

  /** Watch `dir` and, below it, every directory not yet watched. Never rejects: failures go to the sink. */
  private async add(dir: string): Promise<void> {
    if (this.closed || this.watched.has(dir)) return;
    let id: string;
    let watcher: FSWatcher;
    try {
      // The id is taken before the watch: if the path is replaced in between, the ids differ
      // at the next event and the path is watched again (the other order could miss that).
      const st = await this.look(dir);
      if (!st.isDirectory() || this.closed || this.watched.has(dir)) return;
      id = idOf(st);
      watcher = watch(dir, { persistent: true }, (event, name) => this.onEvent(dir, event, name));
    } catch (e) {
      if (!gone(e)) this.report(e);
      return;
    }
    watcher.on("error", (e) => {
      this.drop(dir);
      if (!gone(e)) this.report(e);
    });
    this.watched.set(dir, { watcher, id });
    let entries: { name: string; isDirectory(): boolean }[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (!gone(e)) this.report(e);
      return;
    }
    await Promise.all(entries.filter((d) => d.isDirectory()).map((d) => this.add(join(dir, d.name))));
  }

  /**
   * Watch `root`'s parent for entries named like the root: the root made (again), moved into
   * place, replaced, or (a link) pointed elsewhere is looked at again (follow: watched again when
   * it is another directory now) and hinted. Without it, only the sweep would see such a root.
   */
  private watchParent(root: string): void {
    const parent = dirname(root);
    if (parent === root) return;
    const name = basename(root);
    try {
      const w = watch(parent, { persistent: true }, (event, entry) => {
        // A "change" of the root (a chmod, a touch) is reported by the root's own watch too.
        if (this.closed || event !== "rename" || entry === null || entry.toString() !== name) return;
        this.sink.event(root);
        void this.follow(root);
      });
      w.on("error", (e) => {
        w.close();
        if (!gone(e)) this.report(e, "parent");
      });
      this.parents.push(w);
    } catch (e) {
      // A parent this agent may enter but not read (0711) cannot be watched: the root itself can.
      if (!gone(e) && errCode(e) !== "EACCES") this.report(e, "parent");
    }
  }

  /** Each error code once per source (and once more for the parents': theirs must not hide a root's). */
  private report(e: unknown, of: "tree" | "parent" = "tree"): void {
    const key = `${of}:${errCode(e) ?? "?"}`;
    if (this.closed || this.reported.has(key)) return;
    this.reported.add(key);
    this.sink.error(e);
  }

  private onEvent(dir: string, event: string, name: string | Buffer | null): void {
    if (this.closed) return;
    const child = name === null ? "" : name.toString();
    const path = child === "" ? dir : join(dir, child);
    this.sink.event(path);
    // Only a "rename" (create, delete, move) can make, remove or replace a directory; a
    // "change" (a write, a chmod) cannot, and costs no lstat.
    if (event !== "rename") return;
    // The watched directory itself deleted or moved away reports its own name (so does a child
    // of that name): its watch may be gone, so it is made again if the path is still a directory.
    if (child === "" || child === basename(dir)) void this.follow(dir, true);
    if (child !== "") void this.follow(path);
  }

  /**
   * An entry appeared or went away: watch a new directory (then hint again, for what was written
   * before its watch), drop a vanished one, and watch again a path that now names another
   * directory (`rm -rf d && mkdir d`, or `mv d.new d`, done before this look).
   */
  private async follow(path: string, rewatch = false): Promise<void> {
    let id: string | null;
    try {
      const st = await this.look(path);
      id = st.isDirectory() ? idOf(st) : null;
    } catch (e) {
      if (gone(e)) this.drop(path);
      else this.report(e);
      return;
    }
    if (this.closed) return;
    const known = this.watched.get(path);
    if (known && known.id === id && !rewatch) return;
    this.drop(path); // gone, replaced by a file or a link, or by another directory
    if (id === null) return;
    await this.add(path);
    if (!this.closed) this.sink.event(path);
  }

  /** Stop watching `dir` and everything below it. */
  private drop(dir: string): void {
    // Only a watched directory has watched directories below it.
    if (!this.watched.has(dir)) return;
    const below = dir + sep;
    for (const [p, w] of this.watched) {
      if (p === dir || p.startsWith(below)) {
        w.watcher.close();
        this.watched.delete(p);
      }
    }
  }

  /** For tests: how many directories are watched. */
  get size(): number {
    return this.watched.size;
  }
}

/** The production watch source: node:fs watches on every directory of the roots. */
export function dirTreeSource(): WatchSourceFactory {
  return (roots, sink) => new DirTree(roots, sink);
}
