/**
 * Trees for the sync benchmark: the big tree for the full-sync comparison
 * (N files, B bytes, random content), the small latency root, and a
 * byte-for-byte tree comparison (type, content, mode, owner).
 */
import { randomFillSync } from "node:crypto";
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export interface TreeSpec {
  files: number;
  bytes: number;
  /** How many of `files` are large (share what the small files leave). */
  largeFiles: number;
  /** Small files are uniformly sized in [smallMin, smallMax] bytes. */
  smallMin: number;
  smallMax: number;
  /** Small files spread over this many directories. */
  dirs: number;
}

export interface TreeFacts extends TreeSpec {
  smallBytes: number;
  largeBytes: number;
  largestFile: number;
  mode0600: number;
  mode0755: number;
  generateMs: number;
}

/** Deterministic PRNG (mulberry32) for sizes and modes, so every run builds the same shape. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A tree shaped like a big config/content root: `spec.files - largeFiles`
 * small files (1-64 KiB by default) in `dirs` directories, mostly 0644 with
 * every 50th 0600 (keys) and every 97th 0755 (scripts), plus `largeFiles`
 * large files sharing the rest of `spec.bytes` (about 70 MiB each for the
 * 10,000 / 1 GiB default). Content is random (incompressible).
 */
export function makeBigTree(root: string, spec: TreeSpec, seed = 20261123): TreeFacts {
  const t0 = performance.now();
  const rnd = prng(seed);
  const small = spec.files - spec.largeFiles;
  const sizes: number[] = [];
  for (let i = 0; i < small; i++) sizes.push(spec.smallMin + Math.floor(rnd() * (spec.smallMax - spec.smallMin + 1)));
  const smallBytes = sizes.reduce((a, b) => a + b, 0);
  const largeTotal = spec.bytes - smallBytes;
  if (spec.largeFiles > 0 && largeTotal < spec.largeFiles) throw new Error(`tree: the small files alone (${smallBytes} B) exceed ${spec.bytes} B`);
  const largeEach = spec.largeFiles > 0 ? Math.floor(largeTotal / spec.largeFiles) : 0;
  const buf = Buffer.allocUnsafe(4 * MiB);
  const writeRandom = (path: string, size: number, mode: number): void => {
    const fd = openSync(path, "w", mode);
    try {
      let left = size;
      while (left > 0) {
        const n = Math.min(left, buf.length);
        randomFillSync(buf, 0, n);
        writeSync(fd, buf, 0, n);
        left -= n;
      }
    } finally {
      closeSync(fd);
    }
    chmodSync(path, mode);
  };
  mkdirSync(root, { recursive: true });
  let m600 = 0;
  let m755 = 0;
  for (let d = 0; d < spec.dirs; d++) mkdirSync(join(root, `d${String(d).padStart(3, "0")}`), { recursive: true });
  for (let i = 0; i < small; i++) {
    const mode = i % 50 === 7 ? 0o600 : i % 97 === 11 ? 0o755 : 0o644;
    if (mode === 0o600) m600++;
    if (mode === 0o755) m755++;
    const dir = `d${String(i % spec.dirs).padStart(3, "0")}`;
    writeRandom(join(root, dir, `file-${String(i).padStart(5, "0")}.dat`), sizes[i]!, mode);
  }
  let largeBytes = 0;
  let largest = 0;
  if (spec.largeFiles > 0) {
    mkdirSync(join(root, "large"), { recursive: true });
    for (let i = 0; i < spec.largeFiles; i++) {
      const size = i === spec.largeFiles - 1 ? largeTotal - largeEach * (spec.largeFiles - 1) : largeEach;
      writeRandom(join(root, "large", `blob-${String(i).padStart(2, "0")}.bin`), size, 0o644);
      largeBytes += size;
      largest = Math.max(largest, size);
    }
  }
  return { ...spec, smallBytes, largeBytes, largestFile: sizes.reduce((m, x) => Math.max(m, x), largest), mode0600: m600, mode0755: m755, generateMs: performance.now() - t0 };
}

/** The small latency root: CONTENT_FILES files to rewrite and CHMOD_FILES files to chmod to 0600 (one per 5th change, so 1,000 changes never chmod one twice), all 0644 and ~1 KiB. */
export const CONTENT_FILES = 20;
export const CHMOD_FILES = 200;

export const contentFile = (i: number): string => `conf-${String(i % CONTENT_FILES).padStart(2, "0")}.txt`;
export const chmodFile = (k: number): string => `key-${String(k % CHMOD_FILES).padStart(3, "0")}.pem`;

/** (Re)create the small root's files, every one 0644 (a fresh start for each contender). */
export function prepareSmallRoot(root: string, tag: string): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(root, 0o755);
  const body = (name: string) => `# ${name} (${tag})\n${"x".repeat(1000)}\n`;
  for (let i = 0; i < CONTENT_FILES; i++) writeSmall(join(root, contentFile(i)), body(contentFile(i)), 0o644);
  for (let k = 0; k < CHMOD_FILES; k++) writeSmall(join(root, chmodFile(k)), body(chmodFile(k)), 0o644);
}

function writeSmall(path: string, text: string, mode: number): void {
  const fd = openSync(path, "w", mode);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, mode);
}

// --------------------------------------------------------------- compare

export interface TreeDiff {
  /** Entries in `a` (including "." for the root itself). */
  entries: number;
  files: number;
  bytes: number;
  missing: number;
  extra: number;
  type: number;
  content: number;
  mode: number;
  owner: number;
  /** Informational: files whose mtime differs (not part of "identical"). */
  mtime: number;
  identical: boolean;
  examples: string[];
  compareMs: number;
}

/**
 * Compare tree `b` against `a`: every entry's type, permission bits, owner,
 * and for files the bytes (read and compared, no hashing shortcut). The root
 * directory itself is compared too. Synchronous (run it outside timed parts).
 */
export function compareTrees(a: string, b: string): TreeDiff {
  const t0 = performance.now();
  const d: TreeDiff = { entries: 0, files: 0, bytes: 0, missing: 0, extra: 0, type: 0, content: 0, mode: 0, owner: 0, mtime: 0, identical: false, examples: [], compareMs: 0 };
  const note = (what: string): void => {
    if (d.examples.length < 8) d.examples.push(what);
  };
  const walk = (rel: string): void => {
    const pa = rel ? join(a, rel) : a;
    const pb = rel ? join(b, rel) : b;
    const name = rel || ".";
    d.entries++;
    const sa = lstatSync(pa);
    let sb;
    try {
      sb = lstatSync(pb);
    } catch {
      d.missing++;
      note(`missing ${name}`);
      return;
    }
    const kind = (s: typeof sa) => (s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "link" : "other");
    if (kind(sa) !== kind(sb)) {
      d.type++;
      note(`type ${name}: ${kind(sa)} vs ${kind(sb)}`);
      return;
    }
    if ((sa.mode & 0o7777) !== (sb.mode & 0o7777)) {
      d.mode++;
      note(`mode ${name}: ${(sa.mode & 0o7777).toString(8)} vs ${(sb.mode & 0o7777).toString(8)}`);
    }
    if (sa.uid !== sb.uid || sa.gid !== sb.gid) {
      d.owner++;
      note(`owner ${name}: ${sa.uid}:${sa.gid} vs ${sb.uid}:${sb.gid}`);
    }
    if (sa.isFile()) {
      d.files++;
      d.bytes += sa.size;
      if (sa.mtimeMs !== sb.mtimeMs) d.mtime++;
      if (sa.size !== sb.size || !readFileSync(pa).equals(readFileSync(pb))) {
        d.content++;
        note(`content ${name}`);
      }
    } else if (sa.isSymbolicLink()) {
      if (readlinkSync(pa) !== readlinkSync(pb)) {
        d.content++;
        note(`link ${name}`);
      }
    } else if (sa.isDirectory()) {
      const na = readdirSync(pa).sort();
      const setA = new Set(na);
      for (const x of readdirSync(pb)) {
        if (!setA.has(x)) {
          d.extra++;
          note(`extra ${rel ? join(rel, x) : x}`);
        }
      }
      for (const x of na) walk(rel ? join(rel, x) : x);
    }
  };
  try {
    walk("");
  } catch (e) {
    d.missing++;
    note(`error ${(e as Error).message}`);
  }
  d.identical = d.missing + d.extra + d.type + d.content + d.mode + d.owner === 0;
  d.compareMs = performance.now() - t0;
  return d;
}

export function describeDiff(d: TreeDiff): string {
  if (d.identical) return `identical (${d.files} files, ${(d.bytes / MiB).toFixed(0)} MiB${d.mtime ? `; ${d.mtime} mtimes differ` : ""})`;
  const parts = (["missing", "extra", "type", "content", "mode", "owner"] as const).filter((k) => d[k] > 0).map((k) => `${k} ${d[k]}`);
  return `DIFFERENT: ${parts.join(", ")} of ${d.entries} entries (e.g. ${d.examples.slice(0, 3).join("; ")})`;
}
