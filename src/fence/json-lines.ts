import type { Socket } from "node:net";

const MAX_LINE = 65_536;

/**
 * The guard's wire format both ways: one JSON message per line. Calls
 * `onMessage` for each, `onBad` for a line that does not parse (or whose
 * handler throws); a line longer than 64 KiB closes the socket.
 */
export function readJsonLines<T>(sock: Socket, onMessage: (msg: T) => void, onBad: (e: unknown) => void): void {
  let buffer = "";
  sock.setEncoding("utf8");
  sock.on("data", (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        onMessage(JSON.parse(line) as T);
      } catch (e) {
        onBad(e);
      }
    }
    if (buffer.length > MAX_LINE) sock.destroy();
  });
}
