// The primary's event source for one data root (docs/data-replication-design.md
// §3): `inotifywait -m -r` (inotify-tools) printing each event as
// "<EVENTS>\0<path>\0", so any file name (spaces, newlines, quotes) is read back
// exactly: NUL cannot occur in a name. Its lines become journal events:
//
//   CLOSE_WRITE            -> closed  (ships at once)
//   CREATE, MODIFY, ATTRIB -> change  (ships after the stability window)
//   DELETE, MOVED_FROM     -> remove
//   MOVED_TO               -> closed  (a file renamed or moved in)
//   CREATE/MOVED_TO ISDIR  -> dir, recursive (a mkdir'd or moved-in tree ships whole)
//   ATTRIB ISDIR           -> dir     (a chmod/chown of a directory)
//   Q_OVERFLOW, the root deleted or unmounted, the watcher exiting -> overflow (full pass)
//
// `<root>/.understudy-tmp` (rsync's temp dir while this node was a standby) is
// never reported. The watcher is restarted with backoff when it exits; each
// restart is an overflow, since events between the two processes are lost.
import { lstatSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { StreamProcess, StreamSpawner } from "../platform/stream-process.js";
import { UnderstudyError } from "../errors/catalogue.js";
import { checkDataPath, type DataEvent } from "./journal.js";
import { TEMP_DIR_NAME } from "./receive.js";

export const WATCH_EVENTS = "close_write,moved_to,moved_from,delete,create,attrib,modify";

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The inotifywait command for one root (absolute, no trailing slash). */
export function inotifyArgv(inotifywaitPath: string, root: string): string[] {
  return [
    inotifywaitPath,
    "-m",
    "-r",
    "--format",
    "%e%0%w%f%0",
    "--no-newline",
    "-e",
    WATCH_EVENTS,
    // Not even watched: rsync's temp files while this node received.
    "--exclude",
    `^${escapeRegex(root)}/${escapeRegex(TEMP_DIR_NAME)}(/|$)`,
    root,
  ];
}

/** One inotifywait record (its comma-separated event names and the full path) as a journal event; null: nothing to ship. */
export function eventOf(events: string, fullPath: string, root: string): DataEvent | null {
  const names = new Set(events.split(","));
  if (names.has("Q_OVERFLOW")) return { kind: "overflow", why: "the kernel's inotify queue overflowed" };
  if (fullPath === root || fullPath === `${root}/`) {
    if (names.has("DELETE_SELF") || names.has("UNMOUNT") || names.has("MOVE_SELF"))
      return { kind: "overflow", why: `the data root ${root} itself was ${names.has("UNMOUNT") ? "unmounted" : "moved or deleted"}` };
    return null;
  }
  if (!fullPath.startsWith(`${root}/`)) return null;
  const path = fullPath.slice(root.length + 1).replace(/\/+$/, "");
  if (path === TEMP_DIR_NAME || path.startsWith(`${TEMP_DIR_NAME}/`)) return null;
  try {
    checkDataPath(path);
  } catch {
    return null;
  }
  const dir = names.has("ISDIR");
  if (names.has("DELETE") || names.has("MOVED_FROM")) return { kind: "remove", path };
  if (names.has("CLOSE_WRITE")) return { kind: "closed", path };
  if (names.has("MOVED_TO")) return dir ? { kind: "dir", path, recursive: true } : { kind: "closed", path };
  if (names.has("CREATE")) return dir ? { kind: "dir", path, recursive: true } : { kind: "change", path };
  if (names.has("ATTRIB")) return dir ? { kind: "dir", path } : { kind: "change", path };
  if (names.has("MODIFY")) return dir ? null : { kind: "change", path };
  return null;
}

/**
 * A closed file's size, for the journal's lag in bytes (data/progress, maximum_data_lag_on_failover)
 * and max_batch_bytes: one lstat per closed upload, not per write. undefined when it is gone already
 * (its remove event follows) or is not a regular file.
 */
export function sizeOfClosed(fullPath: string): number | undefined {
  try {
    const st = lstatSync(fullPath);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** Reads "<EVENTS>\0<path>\0" records from a byte stream split anywhere (UTF-8 safe). */
export class InotifyParser {
  private readonly decoder = new StringDecoder("utf8");
  private buffer = "";
  private events: string | null = null;

  constructor(
    private readonly root: string,
    /** The size of a closed file (sizeOfClosed); tests give a table. */
    private readonly sizeOf: (fullPath: string) => number | undefined = sizeOfClosed,
  ) {}

  push(chunk: Buffer | string): DataEvent[] {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    const out: DataEvent[] = [];
    let at: number;
    while ((at = this.buffer.indexOf("\0")) >= 0) {
      const token = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 1);
      if (this.events === null) {
        this.events = token;
        continue;
      }
      const e = eventOf(this.events, token, this.root);
      this.events = null;
      if (e?.kind === "closed") {
        const size = this.sizeOf(token);
        out.push(size === undefined ? e : { ...e, size });
      } else if (e) out.push(e);
    }
    return out;
  }
}

export interface WatcherDeps {
  readonly spawner: StreamSpawner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly inotifywaitPath: string;
  /** The root's name (logs) and absolute path. */
  readonly name: string;
  readonly root: string;
  readonly onEvents: (events: readonly DataEvent[]) => void;
  /** The watches are in place (every event from now on is seen). */
  readonly onReady: () => void;
  /** Longest wait before a restart (default 10 s). */
  readonly restartMaxMs?: number;
}

const FIRST_RESTART_MS = 200;

/**
 * inotifywait's own words when the kernel refuses a watch or an instance (inotify-tools 3.22:
 * "Failed to watch P; upper limit on inotify watches reached!", "Couldn't initialize inotify:
 * Too many open files"). Retrying soon cannot help: the limit is the host's setting.
 */
const LIMIT = /upper limit on inotify (watches|instances) reached|Couldn't initialize inotify: Too many open files/;

/** The coded sentence for a root that cannot be watched (logged once, shown by GET /data, counted by the metric). */
export function watchLimitSentence(name: string, root: string, stderr: string, retryMs: number): string {
  const instances = /instances|Too many open files/.test(stderr);
  return new UnderstudyError("US_E_DATA_WATCH_LIMIT", {
    root: name,
    path: root,
    what: instances ? "instances" : "watches",
    knob: instances ? "fs.inotify.max_user_instances" : "fs.inotify.max_user_watches (one watch per directory below the root)",
    retry_s: Math.round(retryMs / 1000),
  }).message;
}

/** One inotifywait for one root, restarted with backoff until stop(). */
export class RootWatcher {
  private proc: StreamProcess | null = null;
  private stopped = false;
  private ready = false;
  private restarts = 0;
  private timer: TimerHandle | undefined;
  private stderrTail = "";
  private limited: string | null = null;

  constructor(private readonly deps: WatcherDeps) {}

  isReady(): boolean {
    return this.ready;
  }

  /**
   * Why this root cannot be watched (the kernel's inotify limit), or null. While set, the root
   * still ships: each watcher retry is an overflow, so every standby gets a full pass.
   */
  degraded(): string | null {
    return this.limited;
  }

  start(): void {
    if (this.stopped || this.proc) return;
    const d = this.deps;
    const parser = new InotifyParser(d.root);
    this.stderrTail = "";
    const proc = d.spawner.spawn(inotifyArgv(d.inotifywaitPath, d.root), {
      stdout: (chunk) => {
        const events = parser.push(chunk);
        if (events.length > 0 && !this.stopped) d.onEvents(events);
      },
      stderr: (chunk) => {
        this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-2000);
        if (!this.ready && this.stderrTail.includes("Watches established")) {
          this.ready = true;
          this.restarts = 0;
          if (this.limited !== null) d.log.info({ root: d.name, path: d.root }, `data root ${d.name} is watched again: shipping by events, not by full passes`);
          this.limited = null;
          d.log.info({ root: d.name, path: d.root }, "data watcher ready");
          if (!this.stopped) d.onReady();
        }
      },
    });
    this.proc = proc;
    void proc.exited.then((exit) => {
      this.proc = null;
      this.ready = false;
      if (this.stopped) return;
      const why = `the watcher of ${d.name} exited (${exit.error ?? (exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`)}): ${this.stderrTail.trim().split("\n").pop() ?? ""}`;
      const maxMs = d.restartMaxMs ?? 10_000;
      const limit = LIMIT.test(this.stderrTail);
      // At the host's limit a quick retry cannot help: wait the longest, and say it once, as an error.
      const delay = limit ? maxMs : Math.min(maxMs, FIRST_RESTART_MS * 2 ** Math.min(this.restarts, 20));
      this.restarts += 1;
      if (limit && this.limited === null) {
        this.limited = watchLimitSentence(d.name, d.root, this.stderrTail, delay);
        d.log.error({ root: d.name, path: d.root, code: "US_E_DATA_WATCH_LIMIT", retry_ms: delay }, this.limited);
      } else if (!limit) {
        this.limited = null;
        d.log.warn({ root: d.name, retry_ms: delay }, `${why}; restarting, and every standby gets a full pass`);
      }
      d.onEvents([{ kind: "overflow", why }]);
      this.timer = d.clock.setTimer(delay, () => this.start());
    });
  }

  /** Stops the watcher and waits for it to exit (SIGTERM, SIGKILL after 1 s). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    this.timer?.cancel();
    const proc = this.proc;
    if (!proc) return;
    proc.kill("SIGTERM");
    const kill = this.deps.clock.setTimer(1000, () => proc.kill("SIGKILL"));
    await proc.exited;
    kill.cancel();
  }
}
