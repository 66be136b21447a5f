import { readFile } from "node:fs/promises";
import type { SessionCounter } from "./port.js";

// The kernel's socket table, as /proc/net/tcp and /proc/net/tcp6 show it for
// the reading process's network namespace (the agent runs in the daemon's).
// One line per socket:
//   sl local_address rem_address st ...
//   0: 6400A8C6:0016 3200A8C6:D2F4 01 ...
// Addresses are hex in host byte order per 32-bit word, ports hex big-endian,
// st 01 = ESTABLISHED (include/net/tcp_states.h).

export const TCP_ESTABLISHED = 0x01;

export interface TcpSocket {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly state: number;
}

/** The sockets of one /proc/net/tcp{,6} text; the header and malformed lines are skipped. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+:$/.test(f[0]!)) continue;
    const local = endpoint(f[1]!);
    const remote = endpoint(f[2]!);
    if (!local || !remote || !/^[0-9A-Fa-f]{2}$/.test(f[3]!)) continue;
    out.push({ localAddress: local.address, localPort: local.port, remoteAddress: remote.address, remotePort: remote.port, state: parseInt(f[3]!, 16) });
  }
  return out;
}

function endpoint(text: string): { address: string; port: number } | null {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(text);
  if (!m) return null;
  const hex = m[1]!;
  const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(""));
  if (words.length === 1)
    return {
      address: words[0]!
        .match(/../g)!
        .map((b) => parseInt(b, 16))
        .join("."),
      port: parseInt(m[2]!, 16),
    };
  const groups = words.flatMap((w) => [w.slice(0, 4), w.slice(4)]).map((g) => parseInt(g, 16).toString(16));
  return { address: groups.join(":"), port: parseInt(m[2]!, 16) };
}

/** Loopback peers are the agent's own probes and local checks, not transfer sessions. */
export function isLoopback(address: string): boolean {
  if (/^127\./.test(address)) return true;
  if (address === "0:0:0:0:0:0:0:1") return true;
  // IPv4-mapped (::ffff:127.x.y.z) as parsed above: 0:0:0:0:0:ffff:7fxx:xxxx
  return /^0:0:0:0:0:ffff:7f[0-9a-f]{2}:/.test(address);
}

/** Transfer sessions in a parsed table: ESTABLISHED, local port a service port, peer not loopback. */
export function countSessions(sockets: readonly TcpSocket[], ports: readonly number[]): number {
  const wanted = new Set(ports);
  return sockets.filter((s) => s.state === TCP_ESTABLISHED && wanted.has(s.localPort) && !isLoopback(s.remoteAddress)).length;
}

/** The real counter: reads /proc/net/tcp and /proc/net/tcp6 (a missing tcp6, IPv6 disabled, counts as empty). */
export class ProcNetSessions implements SessionCounter {
  constructor(
    readonly ports: readonly number[],
    private readonly files: readonly string[] = ["/proc/net/tcp", "/proc/net/tcp6"],
    private readonly read: (file: string) => Promise<string> = (f) => readFile(f, "utf8"),
  ) {}

  async established(): Promise<number> {
    let n = 0;
    for (const file of this.files) {
      let text: string;
      try {
        text = await this.read(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT" && file.endsWith("6")) continue;
        throw e;
      }
      n += countSessions(parseProcNetTcp(text), this.ports);
    }
    return n;
  }
}
