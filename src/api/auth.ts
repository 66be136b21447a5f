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

/**
 * Decides which refused requests get a log line: the first, then at most one
 * per interval carrying how many were refused in between. A client hammering
 * the API with a wrong token must not flood the journal (or fill the disk).
 */
export class RefusalLogLimiter {
  private lastLoggedMs: number | null = null;
  private suppressed = 0;
  constructor(
    private readonly intervalMs: number,
    private readonly nowMs: () => number,
  ) {}

  /** null: stay quiet; otherwise log now, with the count of refusals not logged since the last line. */
  admit(): { suppressed: number } | null {
    const now = this.nowMs();
    if (this.lastLoggedMs !== null && now - this.lastLoggedMs < this.intervalMs) {
      this.suppressed++;
      return null;
    }
    const out = { suppressed: this.suppressed };
    this.lastLoggedMs = now;
    this.suppressed = 0;
    return out;
  }
}
