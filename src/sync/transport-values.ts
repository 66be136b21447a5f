// Validation for every value the sync transport puts on an ssh or rsync command
// line. rsync splits its `-e` string on whitespace and quotes, and sshd runs an
// authorized_keys `command=` through the login shell, so a value holding
// whitespace, quotes, `%` or shell characters could change the command; such
// values are refused with US_E_SYNC_CONFIG instead of being escaped.
import { posix } from "node:path";
import { UnderstudyError } from "../errors/catalogue.js";

/** Characters a path may hold: no whitespace, quotes, globs, `%` (ssh tokens), `$`, `;`, `\`. */
const SAFE_PATH = /^\/[A-Za-z0-9._@+/-]*$/;
const SAFE_USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

function refuse(setting: string, problem: string, value: unknown): never {
  throw new UnderstudyError("US_E_SYNC_CONFIG", { setting, problem, value: JSON.stringify(value) });
}

/**
 * An absolute, normalised path made only of safe characters, returned without
 * a trailing slash. Refuses `.`/`..` components so a path cannot climb out of
 * the directory it names.
 */
export function safeAbsolutePath(setting: string, value: string): string {
  if (typeof value !== "string" || !SAFE_PATH.test(value)) {
    refuse(setting, "must be an absolute path of letters, digits and . _ - / + @ only", value);
  }
  const parts = value.split("/").slice(1);
  if (parts.some((p) => p === "." || p === "..")) refuse(setting, "must not contain . or .. components", value);
  const normal = posix.normalize(value).replace(/\/+$/, "");
  return normal === "" ? "/" : normal;
}

/** A sync root: a safe absolute path that is not `/` itself. */
export function safeRoot(setting: string, value: string): string {
  const p = safeAbsolutePath(setting, value);
  if (p === "/") refuse(setting, "must not be the filesystem root", value);
  return p;
}

export function safeUser(setting: string, value: string): string {
  if (typeof value !== "string" || !SAFE_USER.test(value)) {
    refuse(setting, "must be a user name of letters, digits, _ . - (not starting with - or a digit)", value);
  }
  return value;
}

export function safePort(setting: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) refuse(setting, "must be an integer port 1..65535", value);
  return value;
}

/** Roots validated, normalised and deduplicated, in the given order. */
export function safeRoots(setting: string, roots: readonly string[]): string[] {
  if (!Array.isArray(roots) || roots.length === 0) refuse(setting, "must list at least one sync root", roots);
  const out: string[] = [];
  for (const [i, r] of roots.entries()) {
    const p = safeRoot(`${setting}.${i}`, r);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}
