// Finding the external programs the config needs, the way execvp would, but
// up front: a missing tool is reported at `config check` and at start with
// the package that provides it, not as `spawn ... ENOENT` on every retry.
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";

/** Directories searched after $PATH: systemd's default PATH holds both sbin and bin. */
export const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Why `file` cannot be run, or null when it is an executable regular file. */
export function notExecutable(file: string): string | null {
  try {
    if (!statSync(file).isFile()) return "is not a regular file";
    accessSync(file, constants.X_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not executable" : `cannot be used (${code ?? String(e)})`;
  }
}

/**
 * The absolute path a bare program name resolves to (PATH first, then the
 * system directories), or null. An absolute name is returned as it is when executable.
 */
export function findProgram(name: string, pathEnv: string | undefined = process.env.PATH): string | null {
  if (name.includes("/")) return notExecutable(name) === null ? name : null;
  const dirs = [...(pathEnv ?? "").split(":").filter((d) => d.startsWith("/")), ...SYSTEM_DIRS];
  for (const dir of new Set(dirs)) {
    const candidate = path.join(dir, name);
    if (notExecutable(candidate) === null) return candidate;
  }
  return null;
}
