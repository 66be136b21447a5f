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
import { describeError, UnderstudyError } from "../errors/catalogue.js";
import path from "node:path";

/** What receiver.ts calls when a term's write modules close. */
export interface WriterSessions {
  /** Kills (SIGKILL) the sessions writing into `roots`; the pids killed. Throws (US_E_DATA_FENCE) when it cannot look. */
  kill(roots: readonly string[]): Promise<readonly number[]>;
}

export interface ProcWriterSessionsOptions {
  /** The daemon config the forced command names (sync.serve_config, normalised as the forced command spells it). */
  readonly configPath: string;
  /** The rsync binary (data/sync rsync_path): its name is what /proc/PID/comm shows. Default /usr/bin/rsync. */
  readonly rsyncPath?: string;
  /** Default /proc; tests give a directory shaped like it. */
  readonly procRoot?: string;
  /** Default process.kill (a negative pid: the process group); tests record. */
  readonly kill?: (pid: number, signal: NodeJS.Signals) => void;
  /** This process: never killed, nor its process group. */
  readonly selfPid?: number;
}

/** Scans until one finds nothing left (a session that forked during a scan is caught by the next). */
const MAX_PASSES = 3;

export class ProcWriterSessions implements WriterSessions {
  private readonly config: string;
  private readonly comm: string;

  constructor(private readonly o: ProcWriterSessionsOptions) {
    this.config = path.resolve(o.configPath);
    // The kernel keeps the first 15 bytes of the executable's name.
    this.comm = path.basename(o.rsyncPath ?? "/usr/bin/rsync").slice(0, 15);
  }

  async kill(roots: readonly string[]): Promise<readonly number[]> {
    const proc = this.o.procRoot ?? "/proc";
    const wanted = new Set(roots.map((r) => path.resolve(r)));
    wanted.add("/");
    const killed: number[] = [];
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      // A process killed in an earlier pass may still be listed (dying, or a zombie): not new.
      const found = (await this.scan(wanted)).filter((f) => !killed.includes(f.pid));
      if (found.length === 0) break;
      for (const { pid, pgid } of found) {
        // sshd starts the forced command in a session of its own: its group is the daemon and the
        // children it forked (generator, receiver), even one forked while this scan ran.
        if (pgid !== null) this.signal(-pgid, proc);
        this.signal(pid, proc);
        killed.push(pid);
      }
    }
    return killed;
  }

  /** SIGKILL; gone already (ESRCH) is fine, refused (EPERM: no CAP_KILL for root's daemon) is not. */
  private signal(pid: number, proc: string): void {
    try {
      (this.o.kill ?? process.kill)(pid, "SIGKILL");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") return;
      throw new UnderstudyError("US_E_DATA_FENCE", { proc, cause: `kill ${pid}: ${describeError(e)} (the agent needs CAP_KILL for the daemon's root-owned sessions)` }, { cause: e });
    }
  }

  /** Our daemon's sessions in `roots`, each with its process group when that group is led by one of our daemons. */
  private async scan(roots: ReadonlySet<string>): Promise<{ pid: number; pgid: number | null }[]> {
    const proc = this.o.procRoot ?? "/proc";
    const self = this.o.selfPid ?? process.pid;
    const selfGroup = await this.groupOf(proc, self);
    let entries: string[];
    try {
      entries = await readdir(proc);
    } catch (e) {
      // Not "nothing found": a session still writing would go on (receiver.ts does not move on).
      throw new UnderstudyError("US_E_DATA_FENCE", { proc, cause: describeError(e) }, { cause: e });
    }
    // Root's processes hidden from this user (systemd's ProtectProc=invisible, mount option hidepid):
    // the daemon's sessions would be "not found". pid 1 is always there and never ours to see then.
    if (!entries.includes("1")) {
      throw new UnderstudyError("US_E_DATA_FENCE", {
        proc,
        cause: "other users' processes are hidden (pid 1 is not listed): ProtectProc=default is needed in the agent's unit, see systemd/understudy.service.d/20-data.conf.example",
      });
    }
    const out: { pid: number; pgid: number | null }[] = [];
    for (const name of entries) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      if (pid === self || !(await this.isOurDaemon(proc, pid))) continue;
      try {
        const root = path.resolve(await readlink(path.join(proc, name, "root")));
        if (!roots.has(root)) continue;
      } catch (e) {
        // Our daemon, and where it writes cannot be read: not "elsewhere".
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EACCES" || code === "EPERM") {
          throw new UnderstudyError(
            "US_E_DATA_FENCE",
            { proc, cause: `readlink ${path.join(proc, name, "root")}: ${code} (the agent needs CAP_SYS_PTRACE to see where the daemon's root-owned sessions write)` },
            { cause: e },
          );
        }
        continue;
      }
      const pgid = await this.groupOf(proc, pid);
      const leadsOurs = pgid !== null && pgid > 1 && pgid !== selfGroup && (pgid === pid || (await this.isOurDaemon(proc, pgid)));
      out.push({ pid, pgid: leadsOurs ? pgid : null });
    }
    return out;
  }

  private async isOurDaemon(proc: string, pid: number): Promise<boolean> {
    try {
      if ((await readFile(path.join(proc, String(pid), "comm"), "utf8")).trim() !== this.comm) return false;
      const argv = (await readFile(path.join(proc, String(pid), "cmdline"), "utf8")).split("\0");
      return argv.includes("--daemon") && argv.some((a) => a.startsWith("--config=") && path.resolve(a.slice("--config=".length)) === this.config);
    } catch {
      return false;
    }
  }

  /** The process group (field 5 of /proc/PID/stat, after the parenthesised comm), or null. */
  private async groupOf(proc: string, pid: number): Promise<number | null> {
    try {
      const stat = await readFile(path.join(proc, String(pid), "stat"), "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pgid = Number(fields[2]);
      return Number.isInteger(pgid) && pgid > 0 ? pgid : null;
    } catch {
      return null;
    }
  }
}
