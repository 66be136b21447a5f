// What a command may touch of the process: injected, so unit tests drive the
// real main() with captured output and a chosen environment.

export interface Io {
  /** One line (or several joined by \n) to stdout. */
  readonly out: (text: string) => void;
  /** One line to stderr. */
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function processIo(): Io {
  return {
    out: (text) => void process.stdout.write(`${text}\n`),
    err: (text) => void process.stderr.write(`${text}\n`),
    env: process.env,
  };
}

/**
 * Make text from etcd or an API safe for a terminal: C0 and C1 control
 * characters (ESC, CSI, BEL, CR, newlines, ...) become visible escapes, so a
 * value cannot move the cursor, retitle the window or forge a table row.
 * Not for --json, whose encoder escapes C0 itself.
 */
export function printable(value: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(value).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
