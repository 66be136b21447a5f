// The rsync daemon sessions still writing into this node's data roots, found in
// /proc and killed when their write modules close (receiver.ts). The module list
// in the daemon config fences a deposed primary only at session start: a batch
// already running (its agent frozen, its children not) would go on writing, and
// could rename an old copy over a partner's newer upload on the node just
// promoted. A writing session is an `rsync --server --daemon --config=<ours>`
// process whose root (/proc/PID/root: the module's chroot) is a data root, or
// still "/" (a session in its handshake, which read the old config). Chrooted
// partners' sessions (sshd, sftp-server) are never matched: comm must be rsync
// and the command line must name our config.
import { readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";

/** What receiver.ts calls when a term's write modules close. */
export interface WriterSessions {
  /** Kills (SIGKILL) the sessions writing into `roots`; the pids killed. */
  kill(roots: readonly string[]): Promise<readonly number[]>;
}

export interface ProcWriterSessionsOptions {
  /** The daemon config the forced command names (sync.serve_config). */
  readonly configPath: string;
  /** Default /proc; tests give a directory shaped like it. */
  readonly procRoot?: string;
  /** Default process.kill; tests record. */
  readonly kill?: (pid: number, signal: NodeJS.Signals) => void;
  /** This process: never killed. */
  readonly selfPid?: number;
}

export class ProcWriterSessions implements WriterSessions {
  constructor(private readonly o: ProcWriterSessionsOptions) {}

  async kill(roots: readonly string[]): Promise<readonly number[]> {
    const proc = this.o.procRoot ?? "/proc";
    const wanted = new Set(roots.map((r) => path.resolve(r)));
    wanted.add("/");
    const killed: number[] = [];
    let entries: string[];
    try {
      entries = await readdir(proc);
    } catch {
      return killed;
    }
    for (const name of entries) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      if (pid === (this.o.selfPid ?? process.pid)) continue;
      try {
        if ((await readFile(path.join(proc, name, "comm"), "utf8")).trim() !== "rsync") continue;
        const argv = (await readFile(path.join(proc, name, "cmdline"), "utf8")).split("\0");
        if (!argv.includes("--daemon") || !argv.includes(`--config=${this.o.configPath}`)) continue;
        const root = path.resolve(await readlink(path.join(proc, name, "root")));
        if (!wanted.has(root)) continue;
        (this.o.kill ?? process.kill)(pid, "SIGKILL");
        killed.push(pid);
      } catch {
        // Gone in the meantime, or not ours to read: nothing to kill.
      }
    }
    return killed;
  }
}
