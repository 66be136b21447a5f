// A long-running child whose output is read as it comes (the data watcher's
// inotifywait). Like command.ts: an argument array, never a shell, and the
// child in its own process group so stopping it stops everything it started.
import { spawn } from "node:child_process";

export interface StreamExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the program could not be started (ENOENT, EACCES, EMFILE). */
  readonly error?: string;
}

export interface StreamProcess {
  /** Signals the child's process group (nothing when it has exited). */
  kill(signal: NodeJS.Signals): void;
  /** Settles once the child exited and its pipes closed; never rejects. */
  readonly exited: Promise<StreamExit>;
}

export interface StreamHandlers {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

export interface StreamSpawner {
  spawn(argv: readonly string[], handlers: StreamHandlers): StreamProcess;
}

export class NodeStreamSpawner implements StreamSpawner {
  spawn(argv: readonly string[], handlers: StreamHandlers): StreamProcess {
    const [file, ...args] = argv;
    if (file === undefined) return { kill: () => undefined, exited: Promise.resolve({ code: null, signal: null, error: "no program named" }) };
    let done = false;
    let resolveExit: (e: StreamExit) => void = () => undefined;
    const exited = new Promise<StreamExit>((r) => (resolveExit = r));
    const settle = (e: StreamExit): void => {
      if (done) return;
      done = true;
      resolveExit(e);
    };
    let pid: number | undefined;
    try {
      const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
      pid = child.pid;
      child.on("error", (e) => settle({ code: null, signal: null, error: e.message }));
      child.stdout?.on("data", (d: Buffer) => handlers.stdout(d));
      child.stderr?.on("data", (d: Buffer) => handlers.stderr(d));
      child.stdout?.on("error", () => undefined);
      child.stderr?.on("error", () => undefined);
      child.on("close", (code, signal) => settle({ code, signal }));
    } catch (e) {
      settle({ code: null, signal: null, error: e instanceof Error ? e.message : String(e) });
    }
    return {
      exited,
      kill: (signal) => {
        if (done || pid === undefined) return;
        try {
          process.kill(-pid, signal);
        } catch {
          // Already gone.
        }
      },
    };
  }
}
