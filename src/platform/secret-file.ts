import { constants } from "node:fs";
import { open } from "node:fs/promises";

/** Secrets are short: a token, a password. More than this is not a secret file. */
export const SECRET_FILE_MAX_BYTES = 4096;

/**
 * Read a small secret file (API token, etcd password) safely, or say in one
 * sentence why not. Refused: a symlink (O_NOFOLLOW), anything but a regular
 * file (a FIFO or device would block or never end: opened O_NONBLOCK and
 * checked with fstat before any read), a file over maxBytes (4 KiB), and modes wider
 * than PostgreSQL accepts for its key files — 0600 or narrower, or 0640 or
 * narrower when root owns it (the agent's group may read a root-owned file).
 * Never logs or returns the content in the problem text.
 */
export async function readSecretFile(file: string, maxBytes = SECRET_FILE_MAX_BYTES): Promise<{ text: string } | { problem: string }> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") return { problem: "is a symbolic link; point the config at the file itself" };
    if (code === "ENOENT") return { problem: "does not exist" };
    if (code === "EACCES") return { problem: "cannot be read by this user (permission denied)" };
    return { problem: `cannot be opened: ${code ?? String(e)}` };
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { problem: `is not a regular file (${fileKind(st)})` };
    const mode = st.mode & 0o7777;
    const widest = st.uid === 0 ? 0o640 : 0o600;
    if ((mode & ~widest) !== 0) {
      return { problem: `has mode ${mode.toString(8).padStart(4, "0")}, wider than ${widest.toString(8).padStart(4, "0")}${st.uid === 0 ? " (root-owned)" : ""}; use chmod 0600` };
    }
    if (st.size > maxBytes) return { problem: `is ${st.size} bytes, more than a secret file holds (at most ${maxBytes})` };
    const buf = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > maxBytes) return { problem: `holds more than ${maxBytes} bytes` };
    return { text: buf.subarray(0, bytesRead).toString("utf8") };
  } finally {
    await handle.close();
  }
}

/** What a non-regular file is, for an error message. */
export function fileKind(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a file";
}
