import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Constant-time bearer token check. Both sides are hashed first so the
 * comparison takes the same time whatever the lengths; the token itself is
 * never logged or echoed.
 */
export function bearerMatches(header: string | undefined, token: string | null): boolean {
  if (token === null || token.length === 0 || header === undefined) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash("sha256").update(m[1]!).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}
