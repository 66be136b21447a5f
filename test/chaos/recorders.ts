/**
 * Recorders for a chaos run, all outside the nodes under test:
 *  - ArpRecorder:    the lab's ARP observer (observer namespace), read incrementally, rotated before its lifetime cap
 *  - DaemonSampler:  syn_sampler.py (observer namespace): which nodes' transfer ports answer SYN-ACK
 *  - EtcdWatcher:    `etcdctl watch --prefix` on the cluster keys (observer namespace), restarted from the
 *                    last revision seen whenever it exits or is kicked
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, existsSync, fstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { killGroup, sleep } from "../lab/harness/exec.js";
import type { Lab } from "../lab/harness/lab.js";
import type { Observer } from "../lab/harness/observer.js";
import type { ArpRecord, DaemonRecord, EtcdEvent } from "./types.js";

const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const SYN_SAMPLER = fileURLToPath(new URL("./syn_sampler.py", import.meta.url));

/** Reads the complete JSON lines appended to a file since the last call. */
export class JsonlTail {
  private offset = 0;
  private rest = "";

  constructor(readonly file: string) {}

  read(): unknown[] {
    if (!existsSync(this.file)) return [];
    const fd = openSync(this.file, "r");
    try {
      const size = fstatSync(fd).size;
      if (size <= this.offset) return [];
      const buf = Buffer.alloc(Math.min(size - this.offset, 64 * 1024 * 1024));
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const text = this.rest + buf.subarray(0, n).toString("utf8");
      const lines = text.split("\n");
      this.rest = lines.pop() ?? "";
      const out: unknown[] = [];
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          out.push(JSON.parse(line));
        } catch {
          /* torn line: skip */
        }
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }
}

// -------------------------------------------------------------------- ARP

export class ArpRecorder {
  readonly records: ArpRecord[] = [];
  private observer: Observer | undefined;
  private tail: JsonlTail | undefined;
  private startedAt = 0;
  private readonly segmentS: number;

  private constructor(
    private readonly lab: Lab,
    readonly intervalMs: number,
    segmentS: number,
  ) {
    this.segmentS = segmentS;
  }

  /** Start the observer; it is restarted every segmentS seconds (the sampler caps its own lifetime). */
  static async start(lab: Lab, intervalMs: number, segmentS = 1500): Promise<ArpRecorder> {
    const r = new ArpRecorder(lab, intervalMs, segmentS);
    await r.rotate();
    return r;
  }

  private async rotate(): Promise<void> {
    const old = this.observer;
    const oldTail = this.tail;
    this.observer = await this.lab.startObserver({ intervalMs: this.intervalMs, maxSeconds: this.segmentS + 120 });
    this.tail = new JsonlTail(this.observer.file);
    this.startedAt = Date.now();
    if (old && oldTail) {
      await old.stop();
      this.ingest(old, oldTail);
      this.records.sort((a, b) => a.t - b.t);
    }
  }

  private ingest(obs: Observer, tail: JsonlTail): void {
    for (const raw of tail.read()) {
      const s = raw as { t_ms?: number; macs?: string[] };
      if (typeof s.t_ms !== "number" || !Array.isArray(s.macs)) continue;
      this.records.push({ t: s.t_ms, holders: s.macs.map((m) => obs.macToName.get(m.toLowerCase()) ?? m).sort() });
    }
  }

  /** Pull in new samples (and rotate the sampler when its segment is over). */
  async poll(): Promise<void> {
    if (this.observer && this.tail) this.ingest(this.observer, this.tail);
    if (Date.now() - this.startedAt > this.segmentS * 1000) await this.rotate();
  }

  /** The last `n` samples. */
  recent(n: number): ArpRecord[] {
    if (this.observer && this.tail) this.ingest(this.observer, this.tail);
    return this.records.slice(-n);
  }

  get running(): boolean {
    return this.observer?.running ?? false;
  }

  async stop(): Promise<ArpRecord[]> {
    if (this.observer && this.tail) {
      await this.observer.stop();
      this.ingest(this.observer, this.tail);
    }
    this.records.sort((a, b) => a.t - b.t);
    return this.records;
  }
}

// ----------------------------------------------------------------- daemons

export class DaemonSampler {
  readonly records: DaemonRecord[] = [];
  private readonly tail: JsonlTail;

  private constructor(
    private readonly child: ChildProcess,
    file: string,
    private readonly nameOf: ReadonlyMap<string, string>,
  ) {
    this.tail = new JsonlTail(file);
  }

  static async start(lab: Lab, opts: { port?: number; intervalMs?: number; maxSeconds?: number } = {}): Promise<DaemonSampler> {
    const file = join(lab.dir, `syn-sampler-${Date.now()}.jsonl`);
    const argv = [
      PYTHON,
      "-u",
      SYN_SAMPLER,
      "--src-ip",
      lab.observerHost.address,
      "--targets",
      lab.nodes.map((n) => n.address).join(","),
      "--port",
      String(opts.port ?? 22),
      "--interval-ms",
      String(opts.intervalMs ?? 50),
      "--max-seconds",
      String(opts.maxSeconds ?? 600),
      "--out",
      file,
    ];
    const child = lab.spawn(lab.observerHost, argv, { stdin: "pipe", logFile: join(lab.logDir, "syn-sampler.log") });
    child.stdin?.on("error", () => undefined);
    const s = new DaemonSampler(child, file, new Map(lab.nodes.map((n) => [n.address, n.name])));
    for (let i = 0; i < 100 && s.records.length === 0; i++) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      await sleep(50);
      s.poll();
    }
    if (s.records.length === 0) {
      killGroup(child.pid);
      throw new Error("daemon sampler did not start (see syn-sampler.log)");
    }
    return s;
  }

  poll(): void {
    for (const raw of this.tail.read()) {
      const r = raw as { t_ms?: number; open?: string[]; closed?: string[] };
      if (typeof r.t_ms !== "number") continue;
      const names = (xs: string[] | undefined) => (xs ?? []).map((a) => this.nameOf.get(a) ?? a).sort();
      this.records.push({ t: r.t_ms, open: names(r.open), closed: names(r.closed) });
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<DaemonRecord[]> {
    if (this.running) {
      const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
      this.child.stdin?.end();
      await Promise.race([exited, sleep(2000)]);
      if (this.running) killGroup(this.child.pid);
    }
    this.poll();
    return this.records;
  }
}

// -------------------------------------------------------------------- etcd

interface WatchKv {
  key?: string;
  value?: string;
  create_revision?: number;
  mod_revision?: number;
}

/**
 * `etcdctl watch --prefix <prefix> --rev N -w json` in the observer namespace.
 * Keeps every event (key relative to the prefix, receive time) and the
 * current leader. Restarted (from the last revision seen + 1) when it exits,
 * and on kick() after an etcd fault.
 */
export class EtcdWatcher {
  readonly events: EtcdEvent[] = [];
  leader: { node: string; term: number } | null = null;
  private child: ChildProcess | undefined;
  private lastRev = 0;
  private stopped = false;
  private restarts = 0;
  private buf = "";

  constructor(
    private readonly lab: Lab,
    readonly prefix: string,
  ) {}

  start(): void {
    if (this.stopped) return;
    const rev = this.lastRev + 1;
    const child = this.lab.spawn(this.lab.observerHost, [...this.lab.etcdctlArgv(), "--dial-timeout=1s", "watch", "--prefix", this.prefix, "-w", "json", "--rev", String(rev)], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ETCDCTL_API: "3" },
    });
    this.child = child;
    this.buf = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => this.onData(d));
    child.once("exit", () => {
      if (this.child !== child || this.stopped) return;
      this.child = undefined;
      if (++this.restarts > 2000) return;
      setTimeout(() => this.start(), 300).unref();
    });
  }

  private onData(d: string): void {
    const t = Date.now();
    this.buf += d;
    const lines = this.buf.split("\n");
    this.buf = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      let resp: { Events?: { type?: number; kv?: WatchKv }[] };
      try {
        resp = JSON.parse(line) as typeof resp;
      } catch {
        continue;
      }
      for (const e of resp.Events ?? []) {
        const kv = e.kv;
        if (!kv?.key || typeof kv.mod_revision !== "number") continue;
        if (kv.mod_revision <= this.lastRev) continue;
        const key = Buffer.from(kv.key, "base64").toString("utf8").slice(this.prefix.length);
        const ev: EtcdEvent = {
          t,
          type: e.type === 1 ? "delete" : "put",
          key,
          createRevision: kv.create_revision ?? 0,
          modRevision: kv.mod_revision,
        };
        if (ev.type === "put" && kv.value !== undefined) ev.value = Buffer.from(kv.value, "base64").toString("utf8");
        this.events.push(ev);
        if (key === "leader") {
          if (ev.type === "delete") this.leader = null;
          else {
            try {
              const v = JSON.parse(ev.value ?? "") as { node?: string };
              if (v.node) this.leader = { node: v.node, term: ev.modRevision };
            } catch {
              /* not ours */
            }
          }
        }
      }
      // Revisions only grow within one watch stream; the last event's revision is the resume point.
      const last = resp.Events?.[resp.Events.length - 1]?.kv?.mod_revision;
      if (typeof last === "number" && last > this.lastRev) this.lastRev = last;
    }
  }

  /** Restart the watch (after an etcd fault the stream may hang on a member that went away). */
  kick(): void {
    const c = this.child;
    this.child = undefined;
    if (c) killGroup(c.pid);
    this.start();
  }

  stop(): void {
    this.stopped = true;
    if (this.child) killGroup(this.child.pid);
    this.child = undefined;
  }
}
