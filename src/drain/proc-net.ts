import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
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

/**
 * An address as parseProcNetTcp spells it: IPv4 dotted, IPv6 as 8 lower-case hex groups without
 * leading zeros. An IPv4 address also matches its IPv4-mapped form in /proc/net/tcp6.
 */
export function procForms(address: string): string[] {
  if (isIP(address) === 4) {
    const b = address.split(".").map(Number);
    return [address, `0:0:0:0:0:ffff:${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`];
  }
  if (isIP(address) !== 6) return [address];
  const [head, tail] = address.toLowerCase().split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return [groups.map((g) => parseInt(g, 16).toString(16)).join(":")];
}

/**
 * Transfer sessions in a parsed table: ESTABLISHED, local port a service port, peer not loopback,
 * and, when `localAddress` is set (the floating IP), to that address only: the sessions a move
 * cuts. An operator's ssh to the node's own address, or a standby's sync pull, is not one.
 */
export function countSessions(sockets: readonly TcpSocket[], ports: readonly number[], localAddress: string | null = null): number {
  const wanted = new Set(ports);
  const local = localAddress === null ? null : new Set(procForms(localAddress));
  return sockets.filter((s) => s.state === TCP_ESTABLISHED && wanted.has(s.localPort) && !isLoopback(s.remoteAddress) && (local === null || local.has(s.localAddress))).length;
}

/** The real counter: reads /proc/net/tcp and /proc/net/tcp6 (a missing tcp6, IPv6 disabled, counts as empty). */
export class ProcNetSessions implements SessionCounter {
  constructor(
    readonly ports: readonly number[],
    private readonly files: readonly string[] = ["/proc/net/tcp", "/proc/net/tcp6"],
    private readonly read: (file: string) => Promise<string> = (f) => readFile(f, "utf8"),
    /** The floating IP (no prefix): only sessions to it count; null: every local address. */
    private readonly localAddress: string | null = null,
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
      n += countSessions(parseProcNetTcp(text), this.ports, this.localAddress);
    }
    return n;
  }
}
