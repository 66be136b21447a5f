// Whether this CPU has AES instructions (x86 `flags: ... aes`, arm64 `Features: ... aes`), read
// once from /proc/cpuinfo for sync.ssh.ciphers auto (sync/ssh-ciphers.ts decides).
import { readFile } from "node:fs/promises";
import { describeError } from "../errors/catalogue.js";

/** Pure: whether a /proc/cpuinfo text names the aes feature on every processor it lists (null: it lists none). */
export function cpuinfoHasAes(text: string): boolean | null {
  const lines = text.split("\n").filter((l) => /^(flags|Features)\s*:/.test(l));
  if (lines.length === 0) return null;
  return lines.every((l) =>
    l
      .slice(l.indexOf(":") + 1)
      .trim()
      .split(/\s+/)
      .includes("aes"),
  );
}

export async function readCpuAes(file = "/proc/cpuinfo"): Promise<{ readonly aes: boolean | null; readonly problem?: string }> {
  try {
    const aes = cpuinfoHasAes(await readFile(file, "utf8"));
    return aes === null ? { aes, problem: `${file} lists no CPU features` } : { aes };
  } catch (e) {
    return { aes: null, problem: `${file}: ${describeError(e)}` };
  }
}
