// File hashing and directory listing off the main thread. A primary that
// builds the manifest of a large root (1 GiB: seconds of SHA-256) on its event
// loop, on a busy host, delayed its own lease renewals past the fence deadline
// (seen in bench/sync). One worker thread, started on first use and stopped
// when idle, keeps the event loop free for the lease. It also lists a
// directory with its entries' lstat in one request: synchronous calls there
// block no one, and cost ~5 µs each against ~40 µs of CPU for an async lstat
// and its promise on the event loop.
import { Worker } from "node:worker_threads";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import { listedFromWorker, workerError, type DirLister, type WorkerListing } from "./listing.js";

export interface FileHash {
  readonly size: number;
  readonly sha256: string;
}

/** What hashes a file for buildManifest: in the calling thread by default, or a HashWorker. */
export type FileHasher = (abs: string, maxBytes: number) => Promise<FileHash>;

/** What buildManifest reads a tree with: a hasher alone, or a service that may also list directories (a HashWorker). */
export type TreeReader = FileHasher | Pick<FileHashService, "hash" | "hashMany" | "list" | "running">;

// Plain JS, evaluated in the worker: it must not import project modules (works the same under tsx and from dist/).
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { openSync, fstatSync, readSync, closeSync, readdirSync, lstatSync, constants } = require("node:fs");
const { createHash } = require("node:crypto");
const { join } = require("node:path");
const buf = Buffer.allocUnsafe(1 << 20);
const failed = (e) => ({ error: String((e && e.message) || e), code: e && e.code });
const kindOf = (st) =>
  st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : st.isSocket() ? "socket"
  : st.isFIFO() ? "fifo" : st.isBlockDevice() ? "block-device" : st.isCharacterDevice() ? "char-device" : "unknown";
// A directory's names, each with its lstat (never followed) as [name, kind, mode, uid, gid, size, mtimeMs, key]
// (key: listing.ts statKey's text) or [name, null, error, code] when that entry could not be read.
function list(id, dir) {
  let names;
  try {
    names = readdirSync(dir);
  } catch (e) {
    parentPort.postMessage({ id, ...failed(e) });
    return;
  }
  const entries = [];
  for (const name of names) {
    try {
      const st = lstatSync(join(dir, name), { bigint: true });
      const key = st.dev + ":" + st.ino + ":" + st.size + ":" + st.mtimeNs + ":" + st.ctimeNs;
      entries.push([name, kindOf(st), Number(st.mode & 0o7777n), Number(st.uid), Number(st.gid), Number(st.size), Number(st.mtimeMs), key]);
    } catch (e) {
      const f = failed(e);
      entries.push([name, null, f.error, f.code]);
    }
  }
  parentPort.postMessage({ id, entries });
}
// One file: { size, sha256 }, { tooLarge }, or { error, code }.
function hashOne(abs, max) {
  let fd;
  try {
    // O_NOFOLLOW/O_NONBLOCK: a file swapped for a link or a FIFO after lstat fails instead of being followed or hanging.
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) throw Object.assign(new Error("no longer a regular file"), { code: "ENOTFILE" });
    if (st.size > max) return { tooLarge: st.size };
    const h = createHash("sha256");
    let size = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      size += n;
      if (size > max) return { tooLarge: size };
      h.update(buf.subarray(0, n));
    }
    return { size, sha256: h.digest("hex") };
  } catch (e) {
    return failed(e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
parentPort.on("message", ({ id, op, abs, max, files }) => {
  if (op === "list") return list(id, abs);
  if (op === "hashMany") return parentPort.postMessage({ id, results: files.map((f) => hashOne(f, max)) });
  parentPort.postMessage({ id, ...hashOne(abs, max) });
});
`;

/** One file's outcome in hashMany(): its hash, or why not (a "too large" error is isTooLarge()). */
export type FileHashResult = FileHash | (Error & { code?: string; tooLarge?: number });

/** Hashes several files in one request, each with its own outcome (a failure is that file's alone). */
export type BatchHasher = (files: readonly string[], maxBytes: number) => Promise<FileHashResult[]>;

interface Reply {
  readonly id: number;
  readonly results?: readonly unknown[];
  readonly size?: number;
  readonly sha256?: string;
  readonly tooLarge?: number;
  readonly error?: string;
  readonly code?: string;
  readonly entries?: WorkerListing;
}

/** What the sync engine hashes with: a HashWorker in the agent, a fake (or none: in-thread) in tests. */
export interface FileHashService {
  readonly hash: FileHasher;
  /** Several files in one request (a HashWorker: one message each way instead of one per file); absent: hash() each. */
  readonly hashMany?: BatchHasher;
  /** Lists a directory with its entries' lstat (a HashWorker); absent: the walk lists in the calling thread. */
  readonly list?: DirLister;
  /** Whether list() would find its thread already up (starting one costs ~60 ms of CPU); absent: always. */
  readonly running?: () => boolean;
  close(): Promise<void>;
}

export class HashWorker implements FileHashService {
  private worker: Worker | undefined;
  private seq = 0;
  /** Requests in flight, each with the worker it went to (a worker that exits fails only its own). */
  private readonly waiting = new Map<number, { settle: (m: Reply) => void; reject: (e: Error) => void; worker: Worker }>();
  private idle: TimerHandle | undefined;

  /** The idle timer runs on `clock` (required: createSyncEngine passes the agent's; a FakeClock in tests). */
  constructor(
    private readonly idleMs = 10_000,
    private readonly clock: Clock,
  ) {}

  readonly hash: FileHasher = (abs, maxBytes) =>
    new Promise<FileHash>((resolve, reject) => {
      const settle = (m: Reply): void => {
        if (m.tooLarge !== undefined) reject(tooLarge(m.tooLarge));
        else if (m.error !== undefined) reject(workerError(m.error, m.code));
        else resolve({ size: m.size!, sha256: m.sha256! });
      };
      this.send({ abs, max: maxBytes }, settle, reject);
    });

  readonly hashMany: BatchHasher = (files, maxBytes) =>
    new Promise<FileHashResult[]>((resolve, reject) => {
      const settle = (m: Reply): void => {
        if (m.error !== undefined) reject(workerError(m.error, m.code));
        else if (!Array.isArray(m.results) || m.results.length !== files.length) reject(workerError("the hash worker answered a batch with another number of results"));
        else resolve(m.results.map(hashResultOf));
      };
      this.send({ op: "hashMany", files: [...files], max: maxBytes }, settle, reject);
    });

  /** The worker thread is up: a hash started it and it has not been idle for idleMs since. */
  readonly running = (): boolean => this.worker !== undefined;

  /** One directory, listed and lstat'ed in the worker (served in order with the hashes). */
  readonly list: DirLister = (dir) =>
    new Promise((resolve, reject) => {
      const settle = (m: Reply): void => {
        if (m.error !== undefined) reject(workerError(m.error, m.code));
        else resolve(listedFromWorker(m.entries ?? []));
      };
      this.send({ op: "list", abs: dir }, settle, reject);
    });

  private send(msg: { op?: "list"; abs: string; max?: number } | { op: "hashMany"; files: string[]; max: number }, settle: (m: Reply) => void, reject: (e: Error) => void): void {
    const id = ++this.seq;
    const worker = this.ensure();
    this.waiting.set(id, { settle, reject, worker });
    worker.postMessage({ id, ...msg });
    this.idle?.cancel();
    this.idle = undefined;
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on("message", (m: Reply) => this.settle(m));
    w.on("error", (e) => this.failAll(w, new UnderstudyError("US_E_SYNC_HASH_WORKER", { problem: describeError(e) })));
    w.on("exit", () => {
      if (this.worker === w) this.worker = undefined;
      // An idle worker stopped by its timer may exit after the next hash started a new one.
      this.failAll(w, new UnderstudyError("US_E_SYNC_HASH_WORKER", { problem: "the worker thread exited" }));
    });
    this.worker = w;
    return w;
  }

  private settle(m: Reply): void {
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    p.settle(m);
    if (this.waiting.size === 0) {
      this.idle?.cancel();
      this.idle = this.clock.setTimer(this.idleMs, () => void this.close().catch(() => undefined));
    }
  }

  private failAll(w: Worker, e: Error): void {
    for (const [id, p] of this.waiting) {
      if (p.worker !== w) continue;
      this.waiting.delete(id);
      p.reject(e);
    }
  }

  async close(): Promise<void> {
    this.idle?.cancel();
    this.idle = undefined;
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

/** One row of a hashMany reply; a row of any other shape is that file's failure, never a guessed hash. */
export function hashResultOf(r: unknown): FileHashResult {
  const o = (typeof r === "object" && r !== null ? r : {}) as Partial<Reply>;
  if (typeof o.tooLarge === "number") return tooLarge(o.tooLarge);
  if (typeof o.error === "string") return workerError(o.error, o.code);
  if (typeof o.size === "number" && typeof o.sha256 === "string" && /^[0-9a-f]{64}$/.test(o.sha256)) return { size: o.size, sha256: o.sha256 };
  return workerError(`the hash worker answered a file with ${JSON.stringify(r)?.slice(0, 80)}`);
}

const tooLarge = (size: number): Error & { tooLarge: number } => Object.assign(new Error("too large"), { tooLarge: size });

/** The worker's "too large" rejection, as buildManifest reports it. */
export function isTooLarge(e: unknown): e is Error & { tooLarge: number } {
  return e instanceof Error && typeof (e as { tooLarge?: unknown }).tooLarge === "number";
}
