import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";
import { completeLines, converse, type GreetingVerdict, type SocketTarget } from "./tcp.js";

/** Reads the SSH identification line (RFC 4253 §4.2); the daemon is up if it speaks SSH 2. */
export class SshProbe implements Probe {
  readonly type = "ssh" as const;
  readonly name: string;

  constructor(
    private readonly target: SocketTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    return converse(this.target, this.clock, signal, judgeSshBanner);
  }
}

export function judgeSshBanner(received: string): GreetingVerdict {
  // A server may send other lines before its identification line; only "SSH-" starts the real one.
  const banner = completeLines(received).find((l) => l.startsWith("SSH-"));
  if (banner === undefined) return undefined;
  // "1.99" is how a server that also speaks SSH 1 announces SSH 2 (RFC 4253 §5.1).
  const ok = banner.startsWith("SSH-2.0-") || banner.startsWith("SSH-1.99-");
  return { ok, detail: banner };
}
