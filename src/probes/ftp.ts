import { completeLines, type GreetingVerdict } from "./tcp.js";

/** Judge for SocketProbe("ftp"): reads the FTP greeting; the daemon is up on a 220 "service ready" reply. */
/**
 * RFC 959 §4.2: a reply is "ddd text", or "ddd-text" followed by any lines
 * up to one that starts "ddd " with the same code.
 */
export function judgeFtpGreeting(received: string): GreetingVerdict {
  const [first, ...rest] = completeLines(received);
  if (first === undefined) return undefined;
  const m = /^(\d{3})([ -])/.exec(first);
  if (!m) return { ok: false, detail: `not an FTP reply: ${first}` };
  const code = m[1]!;
  const last = m[2] === " " ? first : rest.find((l) => l.startsWith(`${code} `));
  if (last === undefined) return undefined;
  // 120 "ready in n minutes" and 421 "too many users" both mean: not serving now.
  return { ok: code === "220", detail: last };
}
