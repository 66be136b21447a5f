/**
 * A live view of a lab cluster's etcd keys (leader, members) from one long-running
 * `etcdctl watch` in the client namespace, instead of an `etcdctl get` process per
 * check: a loop that waits for the leader or a standby many times (stop.lab: 50
 * cycles) sees the change when etcd sends it, and spares the machine a process
 * spawn and a TLS handshake every 100-200 ms. The view is what etcd said: every key
 * keeps the revision it was last changed at, and a full `get` (at start, and every
 * `refreshMs` while a wait is pending, in case the watch stream broke) only applies
 * what is newer. Waits are bounded; the watch process is a tracked lab process.
 */
import type { ChildProcess } from "node:child_process";
import type { LabCluster, LeaderView } from "./cluster.js";

interface Member {
  node: string;
  role: string;
  healthy: boolean;
}

interface KeyState {
  /** The revision of the last change seen (a put or a delete). */
  rev: number;
  /** The value, or null once deleted. */
  value: string | null;
}

interface RawKv {
  key: string;
  value?: string;
  mod_revision?: number;
}

const b64 = (s: string | undefined) => Buffer.from(s ?? "", "base64").toString("utf8");

export class ClusterKeyWatch {
  private readonly keys = new Map<string, KeyState>();
  private readonly listeners = new Set<() => void>();
  private child: ChildProcess | undefined;
  private buf = "";
  private stopped = false;

  private constructor(
    private readonly c: LabCluster,
    private readonly base: string,
    private readonly refreshMs: number,
  ) {}

  /** Read every key of the lab cluster once, then follow the changes from that revision on. */
  static async start(c: LabCluster, opts: { refreshMs?: number } = {}): Promise<ClusterKeyWatch> {
    const w = new ClusterKeyWatch(c, `${c.prefix}/lab/`, opts.refreshMs ?? 2000);
    const rev = await w.refresh();
    if (rev === undefined) throw new Error("ClusterKeyWatch: cannot read the cluster keys from etcd");
    w.follow(rev + 1);
    return w;
  }

  private follow(fromRev: number): void {
    const lab = this.c.lab;
    const child = lab.spawn(lab.client, [...lab.etcdctlArgv(), "watch", "--prefix", this.base, `--rev=${fromRev}`, "-w", "json"], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ETCDCTL_API: "3" },
    });
    this.child = child;
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onWatchLine(line);
      }
    });
  }

  private onWatchLine(line: string): void {
    let r: { Events?: { type?: number; kv: RawKv }[] };
    try {
      r = JSON.parse(line) as typeof r;
    } catch {
      return; // not a response line: the periodic refresh covers it
    }
    for (const e of r.Events ?? []) this.apply(b64(e.kv.key), Number(e.kv.mod_revision ?? 0), e.type === 1 ? null : b64(e.kv.value));
    this.notify();
  }

  private apply(key: string, rev: number, value: string | null): void {
    const had = this.keys.get(key);
    if (had && had.rev >= rev) return;
    this.keys.set(key, { rev, value });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** A full `get` of the prefix, applied where newer than what the watch brought; its revision, or undefined. */
  async refresh(): Promise<number | undefined> {
    const r = await this.c.lab.etcdctl(["get", "--prefix", this.base, "-w", "json"], { ns: this.c.lab.client, timeoutMs: 3000 });
    if (r.code !== 0) return undefined;
    let j: { header: { revision: number }; kvs?: RawKv[] };
    try {
      j = JSON.parse(r.stdout) as typeof j;
    } catch {
      return undefined;
    }
    const rev = Number(j.header.revision);
    const present = new Set<string>();
    for (const kv of j.kvs ?? []) {
      const key = b64(kv.key);
      present.add(key);
      this.apply(key, Number(kv.mod_revision ?? 0), b64(kv.value));
    }
    // Gone at `rev`: deleted at or before it (a key changed after `rev` is the watch's to report).
    for (const [key, s] of this.keys) if (!present.has(key) && s.value !== null && s.rev <= rev) this.keys.set(key, { rev, value: null });
    this.notify();
    return rev;
  }

  /** The leader key as last seen (node and term: its mod revision, as LabCluster.leader() reads it), or null. */
  leader(): LeaderView | null {
    const s = this.keys.get(`${this.base}leader`);
    if (!s || s.value === null) return null;
    try {
      return { node: (JSON.parse(s.value) as { node: string }).node, term: s.rev };
    } catch {
      return null;
    }
  }

  /** The node's member key says it is a healthy standby (as LabCluster.waitForStandbys checks). */
  isStandby(node: string): boolean {
    for (const [key, s] of this.keys) {
      if (!key.startsWith(`${this.base}members/`) || s.value === null) continue;
      try {
        const m = JSON.parse(s.value) as Member;
        if (m.node === node && m.role === "standby" && m.healthy) return true;
      } catch {
        /* not a member record */
      }
    }
    return false;
  }

  /**
   * Resolve with probe()'s first defined value, checked at once, on every change the watch
   * brings, after every periodic refresh and every `checkMs` (for a probe that also reads
   * something local, e.g. a log file); undefined after timeoutMs.
   */
  until<T>(probe: () => T | undefined, timeoutMs: number, checkMs = 50): Promise<T | undefined> {
    const now = probe();
    if (now !== undefined || this.stopped) return Promise.resolve(now);
    return new Promise((resolve) => {
      let refreshing = false;
      const finish = (v: T | undefined) => {
        this.listeners.delete(check);
        clearTimeout(deadline);
        clearInterval(poll);
        clearInterval(local);
        resolve(v);
      };
      const check = () => {
        const v = probe();
        if (v !== undefined) finish(v);
      };
      const deadline = setTimeout(() => finish(probe()), timeoutMs);
      const poll = setInterval(() => {
        if (refreshing) return;
        refreshing = true;
        void this.refresh().finally(() => {
          refreshing = false;
        });
      }, this.refreshMs);
      const local = setInterval(check, checkMs);
      this.listeners.add(check);
    });
  }

  stop(): void {
    this.stopped = true;
    const pid = this.child?.pid;
    if (pid) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    this.child = undefined;
  }
}
