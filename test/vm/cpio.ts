/**
 * A minimal writer for the "newc" cpio format, the one the Linux kernel
 * unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Directories, regular files, symlinks and character devices; no hard links.
 * Several archives concatenated are unpacked in order, later entries
 * replacing earlier ones: a big base image plus a small per-boot archive.
 */
import { closeSync, openSync, writeSync } from "node:fs";

export type CpioEntry =
  | { readonly type: "dir"; readonly path: string; readonly mode?: number }
  | { readonly type: "file"; readonly path: string; readonly data: Buffer; readonly mode?: number }
  | { readonly type: "symlink"; readonly path: string; readonly target: string }
  | { readonly type: "chardev"; readonly path: string; readonly major: number; readonly minor: number; readonly mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

function header(name: string, f: { ino: number; mode: number; size: number; rdevMajor?: number; rdevMinor?: number }): Buffer {
  const nameBuf = Buffer.from(`${name}\0`, "utf8");
  const fields = [
    "070701",
    hex8(f.ino),
    hex8(f.mode),
    hex8(0), // uid
    hex8(0), // gid
    hex8(f.mode & S_IFDIR ? 2 : 1), // nlink
    hex8(0), // mtime: reproducible
    hex8(f.size),
    hex8(0), // devmajor
    hex8(0), // devminor
    hex8(f.rdevMajor ?? 0),
    hex8(f.rdevMinor ?? 0),
    hex8(nameBuf.length),
    hex8(0), // check
  ].join("");
  const head = Buffer.concat([Buffer.from(fields, "ascii"), nameBuf]);
  return Buffer.concat([head, pad4(head.length)]);
}

/** Write the entries (parents before children) as one newc archive, streaming to `file`. */
export function writeCpio(file: string, entries: Iterable<CpioEntry>): number {
  const fd = openSync(file, "w", 0o600);
  let written = 0;
  const put = (b: Buffer): void => {
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off);
    written += b.length;
  };
  try {
    let ino = 1;
    for (const e of entries) {
      const name = e.path.replace(/^\/+/, "");
      if (!name) throw new Error(`cpio: empty path`);
      switch (e.type) {
        case "dir":
          put(header(name, { ino: ino++, mode: S_IFDIR | (e.mode ?? 0o755), size: 0 }));
          break;
        case "file":
          put(header(name, { ino: ino++, mode: S_IFREG | (e.mode ?? 0o644), size: e.data.length }));
          put(e.data);
          put(pad4(e.data.length));
          break;
        case "symlink": {
          const t = Buffer.from(e.target, "utf8");
          put(header(name, { ino: ino++, mode: S_IFLNK | 0o777, size: t.length }));
          put(t);
          put(pad4(t.length));
          break;
        }
        case "chardev":
          put(header(name, { ino: ino++, mode: S_IFCHR | (e.mode ?? 0o600), size: 0, rdevMajor: e.major, rdevMinor: e.minor }));
          break;
      }
    }
    put(header("TRAILER!!!", { ino: 0, mode: 0, size: 0 }));
    return written;
  } finally {
    closeSync(fd);
  }
}

/** The directory entries needed before `paths` (each parent once, shallow first). */
export function parentDirs(paths: Iterable<string>, have: Set<string> = new Set()): CpioEntry[] {
  const out: CpioEntry[] = [];
  for (const p of paths) {
    const parts = p.replace(/^\/+/, "").split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!have.has(d)) {
        have.add(d);
        out.push({ type: "dir", path: d });
      }
    }
  }
  return out;
}
