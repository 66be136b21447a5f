// Builds small directory trees for the sync tests and snapshots them exactly
// (type, mode, owner, inode, content, link target), so a test can assert that
// an operation left a tree untouched, byte for byte.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export type TreeSpec = Record<string, string | { content: string; mode?: number; uid?: number; gid?: number } | { dir: true; mode?: number } | { link: string }>;

/** Create entries under `base` (parents first, as listed). Files default to 0644, dirs to 0755. */
export async function makeTree(base: string, spec: TreeSpec): Promise<void> {
  await mkdir(base, { recursive: true });
  for (const [rel, v] of Object.entries(spec)) {
    const abs = path.join(base, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    if (typeof v === "string") {
      await writeFile(abs, v);
      await chmod(abs, 0o644);
    } else if ("dir" in v) {
      await mkdir(abs, { recursive: true });
      await chmod(abs, v.mode ?? 0o755);
    } else if ("link" in v) {
      await symlink(v.link, abs);
    } else {
      await writeFile(abs, v.content);
      if (v.uid !== undefined || v.gid !== undefined) await chown(abs, v.uid ?? 0, v.gid ?? 0);
      await chmod(abs, v.mode ?? 0o644);
    }
  }
}

/** Every entry below `dir`, sorted, with what could change: a changed inode means the file was replaced. */
export async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      const head = `${r} mode=${(st.mode & 0o7777).toString(8)} uid=${st.uid} gid=${st.gid} ino=${st.ino}`;
      if (st.isDirectory()) {
        out.push(`${head} dir`);
        await walk(r);
      } else if (st.isSymbolicLink()) {
        out.push(`${head} -> ${await readlink(abs)}`);
      } else {
        out.push(`${head} ${(await readFile(abs)).toString("base64")}`);
      }
    }
  }
  await walk("");
  return out;
}

/** `cp -a src/. dst/`: stands in for the rsync transport (keeps modes, owners, times and links). */
export function copyTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  execFileSync("cp", ["-a", `${src}/.`, `${dst}/`]);
}

/** A fresh temp dir under os.tmpdir() (or `parent`), and its cleanup. */
export async function tempDir(prefix: string, parent = os.tmpdir()): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(parent, `understudy-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const isRoot = process.getuid?.() === 0;
