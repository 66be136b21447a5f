import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";
import { completeLines, converse, type GreetingVerdict, type SocketTarget } from "./tcp.js";

/** Reads the FTP greeting; the daemon is up on a 220 "service ready" reply. */
export class FtpProbe implements Probe {
  readonly type = "ftp" as const;
  readonly name: string;

  constructor(
    private readonly target: SocketTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    return converse(this.target, this.clock, signal, judgeFtpGreeting);
  }
}

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
