import { completeLines, type GreetingVerdict } from "./tcp.js";

/** Judge for SocketProbe("ssh"): reads the SSH identification line (RFC 4253 §4.2); the daemon is up if it speaks SSH 2. */
export function judgeSshBanner(received: string): GreetingVerdict {
  // A server may send other lines before its identification line; only "SSH-" starts the real one.
  const banner = completeLines(received).find((l) => l.startsWith("SSH-"));
  if (banner === undefined) return undefined;
  // "1.99" is how a server that also speaks SSH 1 announces SSH 2 (RFC 4253 §5.1).
  const ok = banner.startsWith("SSH-2.0-") || banner.startsWith("SSH-1.99-");
  return { ok, detail: banner };
}
