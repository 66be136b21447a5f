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
// Events are hints, never the truth; what is missed (a directory created and
// filled before its watch exists is re-hinted once its watch is up; a kernel
// queue overflow is not reported by node:fs; a root deleted and made again is
// not watched again until the primary side restarts) is caught by the periodic
// sweep.
// Symbolic links are not followed: a link is synced as a link.
import { watch, type FSWatcher } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join, sep } from "node:path";
import type { WatchSink, WatchSource, WatchSourceFactory } from "./watch.js";

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** Vanished between the event and our look at it, or never there: nothing to watch, nothing to report. */
const gone = (e: unknown): boolean => errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR";

class DirTree implements WatchSource {
  readonly ready: Promise<void>;
  private readonly watchers = new Map<string, FSWatcher>();
  /** Error codes already reported: an inotify limit hit on 5,000 directories is one warning, not 5,000. */
  private readonly reported = new Set<string>();
  private closed = false;

  constructor(
    roots: readonly string[],
    private readonly sink: WatchSink,
  ) {
    this.ready = Promise.all(roots.map((r) => this.add(r))).then(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    await this.ready;
  }

  /** Watch `dir` and, below it, every directory not yet watched. Never rejects: failures go to the sink. */
  private async add(dir: string): Promise<void> {
    if (this.closed || this.watchers.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: true }, (_event, name) => this.onEvent(dir, name));
    } catch (e) {
      if (!gone(e)) this.report(e);
      return;
    }
    w.on("error", (e) => {
      this.drop(dir);
      if (!gone(e)) this.report(e);
    });
    this.watchers.set(dir, w);
    let entries: { name: string; isDirectory(): boolean }[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (!gone(e)) this.report(e);
      return;
    }
    await Promise.all(entries.filter((d) => d.isDirectory()).map((d) => this.add(join(dir, d.name))));
  }

  private report(e: unknown): void {
    const code = errCode(e) ?? "?";
    if (this.closed || this.reported.has(code)) return;
    this.reported.add(code);
    this.sink.error(e);
  }

  private onEvent(dir: string, name: string | Buffer | null): void {
    if (this.closed) return;
    const child = name === null ? "" : name.toString();
    const path = child === "" ? dir : join(dir, child);
    this.sink.event(path);
    // The watched directory itself deleted or moved away reports its own name: look at it too.
    void this.follow(path === dir || child === basename(dir) ? dir : path);
    if (child !== "" && child === basename(dir)) void this.follow(path);
  }

  /** An entry appeared or went away: watch a new directory (then hint again, for what was written before its watch), drop a vanished one. */
  private async follow(path: string): Promise<void> {
    let isDir: boolean;
    try {
      isDir = (await lstat(path)).isDirectory();
    } catch (e) {
      if (gone(e)) this.drop(path);
      else this.report(e);
      return;
    }
    if (this.closed) return;
    if (!isDir) {
      this.drop(path); // a directory replaced by a file or a link
      return;
    }
    if (this.watchers.has(path)) return;
    await this.add(path);
    if (!this.closed) this.sink.event(path);
  }

  /** Stop watching `dir` and everything below it. */
  private drop(dir: string): void {
    // Only a watched directory has watched directories below it.
    if (!this.watchers.has(dir)) return;
    const below = dir + sep;
    for (const [p, w] of this.watchers) {
      if (p === dir || p.startsWith(below)) {
        w.close();
        this.watchers.delete(p);
      }
    }
  }

  /** For tests: how many directories are watched. */
  get size(): number {
    return this.watchers.size;
  }
}

/** The production watch source: node:fs watches on every directory of the roots. */
export function dirTreeSource(): WatchSourceFactory {
  return (roots, sink) => new DirTree(roots, sink);
}
