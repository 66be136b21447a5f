import { connect } from "node:net";
import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";

export interface SocketTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}

/** What a protocol probe makes of the text received so far; undefined means "need more". */
export type GreetingVerdict = { readonly ok: boolean; readonly detail: string } | undefined;

// A greeting longer than this is not the one we are waiting for.
const MAX_GREETING_BYTES = 8192;

/**
 * A probe over one TCP connection: connect, then (with a judge) read the
 * server's greeting until the judge decides. Without a judge, connecting is
 * enough. ssh.ts and ftp.ts supply the judges.
 */
export class SocketProbe implements Probe {
  readonly name: string;

  constructor(
    readonly type: "tcp" | "ssh" | "ftp",
    private readonly target: SocketTarget,
    private readonly clock: Clock,
    private readonly judge?: (received: string) => GreetingVerdict,
  ) {
    this.name = target.name;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    return converse(this.target, this.clock, signal, this.judge);
  }
}

/**
 * Connect, then (with `judge`) read what the server says first until judge
 * decides. Always resolves, within the timeout, and always destroys the socket.
 */
export function converse(target: SocketTarget, clock: Clock, signal: AbortSignal, judge?: (received: string) => GreetingVerdict): Promise<ProbeResult> {
  const started = clock.monotonicMs();
  const result = (ok: boolean, detail: string): ProbeResult => ({ ok, detail: oneLine(detail), latencyMs: clock.monotonicMs() - started });
  if (signal.aborted) return Promise.resolve(result(false, "aborted"));

  return new Promise((resolve) => {
    let received = "";
    let settled = false;
    const socket = connect({ host: target.host, port: target.port });
    const finish = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(result(ok, detail));
    };
    const onAbort = () => finish(false, "aborted");
    const timer = clock.setTimer(target.timeoutMs, () => finish(false, `timeout after ${target.timeoutMs}ms`));
    signal.addEventListener("abort", onAbort, { once: true });

    socket.setNoDelay(true);
    socket.setEncoding("latin1");
    socket.on("error", (e) => finish(false, e.message));
    socket.on("connect", () => {
      if (!judge) finish(true, `connected to ${target.host}:${target.port}`);
    });
    socket.on("data", (chunk: string) => {
      if (!judge) return;
      received += chunk;
      const verdict = judge(received);
      if (verdict) return finish(verdict.ok, verdict.detail);
      if (received.length > MAX_GREETING_BYTES) finish(false, `no greeting in the first ${MAX_GREETING_BYTES} bytes`);
    });
    socket.on("close", () => {
      const seen = firstLine(received);
      finish(false, seen ? `connection closed after "${seen}"` : "connection closed before a greeting");
    });
  });
}

/** Complete lines received so far (terminated by LF, CR stripped); a trailing partial line is left out. */
export function completeLines(received: string): string[] {
  const lines = received.split("\n");
  lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? "";
}

/** Detail strings are one printable line, short enough for a log field or a status table. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this flattens
  const flat = text.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}
