/**
 * ARP observer: reads the JSON lines written by arp_observer.py (running in the
 * observer namespace) and answers "who answered for the VIP, and when".
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { killGroup, pollUntil, sleep } from "./exec.js";

export interface ArpSample {
  /** Epoch milliseconds (Date.now() scale) at which the ARP request was sent. */
  t_ms: number;
  seq: number;
  /** Sorted unique sender MACs of ARP replies for the VIP seen in this interval. */
  macs: string[];
  /** Sorted unique sender MACs of gratuitous ARP requests for the VIP in this interval. */
  garp: string[];
  err?: string;
}

export interface HolderSample {
  t_ms: number;
  /** Node names (or the raw MAC when it belongs to no lab host), sorted. */
  holders: string[];
}

export function parseSamples(text: string): ArpSample[] {
  const out: ArpSample[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as Partial<ArpSample>;
      if (typeof v.t_ms !== "number" || !Array.isArray(v.macs)) continue;
      out.push({
        t_ms: v.t_ms,
        seq: typeof v.seq === "number" ? v.seq : out.length,
        macs: v.macs,
        garp: Array.isArray(v.garp) ? v.garp : [],
        ...(typeof v.err === "string" ? { err: v.err } : {}),
      });
    } catch {
      /* a partially written last line: ignore */
    }
  }
  return out;
}

export class Observer {
  private stopped: Promise<ArpSample[]> | undefined;

  constructor(
    readonly file: string,
    readonly child: ChildProcess,
    /** Lower-case MAC → host name ("n1", "etcd", …). */
    readonly macToName: ReadonlyMap<string, string>,
    private readonly nameToMac: ReadonlyMap<string, string>,
  ) {}

  /** Samples written so far (the observer keeps running). */
  samples(): ArpSample[] {
    if (!existsSync(this.file)) return [];
    return parseSamples(readFileSync(this.file, "utf8"));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Stop the sampler (stdin EOF, then SIGKILL after 2 s) and return every sample. */
  stop(): Promise<ArpSample[]> {
    if (!this.stopped) {
      this.stopped = (async () => {
        if (this.running) {
          const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
          this.child.stdin?.end();
          const done = await Promise.race([exited.then(() => true), sleep(2000).then(() => false)]);
          if (!done) {
            killGroup(this.child.pid);
            await Promise.race([exited, sleep(1000)]);
          }
        }
        return this.samples();
      })();
    }
    return this.stopped;
  }

  /** Map each sample's MACs to host names. */
  holders(samples: readonly ArpSample[] = this.samples()): HolderSample[] {
    return samples.map((s) => ({
      t_ms: s.t_ms,
      holders: s.macs.map((m) => this.macToName.get(m.toLowerCase()) ?? m).sort(),
    }));
  }

  /** Largest number of distinct MACs that answered for the VIP within one interval. */
  maxSimultaneousHolders(samples: readonly ArpSample[] = this.samples()): number {
    let max = 0;
    for (const s of samples) max = Math.max(max, s.macs.length);
    return max;
  }

  /** Epoch ms of the first sample (at/after sinceMs) in which `node` answered for the VIP. */
  firstAnsweredBy(node: string | { name: string }, samples: readonly ArpSample[] = this.samples(), sinceMs = 0): number | undefined {
    const mac = this.macOf(node);
    for (const s of samples) if (s.t_ms >= sinceMs && s.macs.includes(mac)) return s.t_ms;
    return undefined;
  }

  /** Epoch ms of the last sample in which `node` answered for the VIP. */
  lastAnsweredBy(node: string | { name: string }, samples: readonly ArpSample[] = this.samples()): number | undefined {
    const mac = this.macOf(node);
    for (let i = samples.length - 1; i >= 0; i--) {
      const s = samples[i];
      if (s && s.macs.includes(mac)) return s.t_ms;
    }
    return undefined;
  }

  /**
   * Gaps: intervals (epoch ms) during which nobody answered for the VIP, between
   * sinceMs and the last sample. Useful for measuring failover downtime.
   */
  silentPeriods(samples: readonly ArpSample[] = this.samples(), sinceMs = 0): Array<{ from: number; to: number }> {
    const out: Array<{ from: number; to: number }> = [];
    let from: number | undefined;
    for (const s of samples) {
      if (s.t_ms < sinceMs) continue;
      if (s.macs.length === 0) from ??= s.t_ms;
      else if (from !== undefined) {
        out.push({ from, to: s.t_ms });
        from = undefined;
      }
    }
    const last = samples[samples.length - 1];
    if (from !== undefined && last) out.push({ from, to: last.t_ms });
    return out;
  }

  /**
   * Wait (bounded) until `consecutive` latest samples all show exactly `names`
   * as holders (empty array = nobody answers). Returns the epoch ms of the
   * first matching sample of the streak, or undefined on timeout.
   */
  async waitForHolders(names: ReadonlyArray<string | { name: string }>, opts: { timeoutMs: number; consecutive?: number; sinceMs?: number }): Promise<number | undefined> {
    const want = names
      .map((n) => this.macOf(n))
      .sort()
      .join(",");
    const consecutive = Math.max(1, opts.consecutive ?? 3);
    const sinceMs = opts.sinceMs ?? 0;
    return pollUntil(
      () => {
        const recent = this.samples()
          .filter((s) => s.t_ms >= sinceMs)
          .slice(-consecutive);
        if (recent.length < consecutive) return undefined;
        if (!recent.every((s) => s.macs.join(",") === want)) return undefined;
        return recent[0]?.t_ms;
      },
      { timeoutMs: opts.timeoutMs, intervalMs: 25 },
    );
  }

  private macOf(node: string | { name: string }): string {
    const name = typeof node === "string" ? node : node.name;
    if (name.includes(":")) return name.toLowerCase();
    const mac = this.nameToMac.get(name);
    if (!mac) throw new Error(`observer: unknown host ${name}`);
    return mac;
  }
}
