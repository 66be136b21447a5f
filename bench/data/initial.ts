/**
 * Initial sync pieces of the data benchmark: the tree (bench/sync/tree.ts's
 * generator, shaped like an upload area), plain `rsync -a` pushed from the
 * primary to both standbys in parallel (the baseline), a completion probe for
 * a tree someone else is filling, and an RSS sampler for an agent and its
 * children (rsync, inotifywait).
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Lab, type LabNode, run, sleep } from "../../test/lab/harness/index.js";
import { type TreeFacts, type TreeSpec, makeBigTree } from "../sync/tree.js";
import { plainSsh } from "../sync/plain-ssh.js";
import { procPpid } from "../failover/lib.js";

/** The shape: files-10 files uniform in [1 KiB, 2·avg] holding ~85% of the bytes in files/100 directories, 10 large files sharing the rest. */
export function uploadTreeSpec(files: number, bytes: number): TreeSpec {
  const largeFiles = 10;
  const avg = (bytes * 0.85) / (files - largeFiles);
  return { files, bytes, largeFiles, smallMin: 1024, smallMax: Math.max(2048, Math.round(2 * avg - 1024)), dirs: Math.max(1, Math.round(files / 100)) };
}

export function makeUploadTree(root: string, files: number, bytes: number): TreeFacts {
  return makeBigTree(root, uploadTreeSpec(files, bytes), 20261204);
}

export async function flush(): Promise<void> {
  await run(["sync"], { timeoutMs: 300_000 });
}

export interface RsyncPush {
  ms: number | null;
  eachMs: (number | null)[];
  error?: string;
}

/** `rsync -a` from `primary` (its namespace) to each target in parallel, into empty directories. */
export async function rsyncPush(lab: Lab, primary: LabNode, source: string, targets: { node: LabNode; dir: string }[], timeoutMs: number, extra: string[] = []): Promise<RsyncPush> {
  for (const t of targets) rmSync(t.dir, { recursive: true, force: true });
  await flush();
  const ssh = plainSsh(lab);
  const t0 = performance.now();
  const rs = await Promise.all(targets.map((t) => lab.exec(primary, ["rsync", "-a", ...extra, "-e", ssh, `${source}/`, `root@${t.node.address}:${t.dir}/`], { timeoutMs })));
  const ms = performance.now() - t0;
  const bad = rs.find((r) => r.code !== 0);
  return {
    ms: bad ? null : ms,
    eachMs: rs.map((r) => (r.code === 0 ? r.ms : null)),
    ...(bad ? { error: `exit ${bad.code}${bad.timedOut ? " (timed out)" : ""}: ${bad.stderr.trim().slice(-300)}` } : {}),
  };
}

/** Every file of the tree: relative path -> size (listed once from the source, before timing). */
export function listTree(root: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.set(r, statSync(join(root, r)).size);
    }
  };
  walk("");
  return out;
}

/**
 * Wait (bounded) until `dest` holds every file of `want` with its size: a
 * cheap probe of the 20 last-sorted files (rsync sends in sorted order)
 * first, then a full check. Returns performance.now() of the full check's
 * end (a conservative completion time), or undefined on timeout.
 */
export async function waitTreeComplete(want: Map<string, number>, dests: string[], timeoutMs: number, everyMs = 250): Promise<number | undefined> {
  const names = [...want.keys()].sort();
  const probe = names.slice(-20);
  const has = (d: string, r: string): boolean => {
    try {
      return statSync(join(d, r)).size === want.get(r);
    } catch {
      return false;
    }
  };
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (dests.every((d) => probe.every((r) => has(d, r)))) {
      if (dests.every((d) => names.every((r) => has(d, r)))) return performance.now();
    }
    await sleep(everyMs);
  }
  return undefined;
}

// ------------------------------------------------------------------ RSS

export interface RssSeries {
  /** Max RSS of the agent's own (node) process, KiB. */
  agentMaxKb: number;
  /** Max of the sum over the agent and its descendants (rsync, ssh, inotifywait; not the transfer daemon's sshd tree), KiB. */
  treeMaxKb: number;
  /** Max RSS per descendant command name, KiB. */
  byComm: Record<string, number>;
  samples: number;
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

/** Samples every `everyMs` until stopped; `pids()` gives the agents' pids (node name -> pid). */
export class RssSampler {
  readonly series = new Map<string, RssSeries>();
  private stopping = false;
  private loop: Promise<void>;
  constructor(pids: () => Promise<Record<string, number | undefined>>, everyMs = 500) {
    this.loop = (async () => {
      while (!this.stopping) {
        const map = await pids();
        const all = readdirSync("/proc")
          .filter((x) => /^\d+$/.test(x))
          .map(Number);
        const parent = new Map<number, number>();
        for (const p of all) {
          const pp = procPpid(p);
          if (pp !== undefined) parent.set(p, pp);
        }
        for (const [node, pid] of Object.entries(map)) {
          if (!pid) continue;
          const s = this.series.get(node) ?? { agentMaxKb: 0, treeMaxKb: 0, byComm: {}, samples: 0 };
          const own = rssKb(pid);
          let sum = own;
          for (const p of all) {
            if (p === pid) continue;
            // Descendants of the agent, but not the transfer daemon (sshd) and its sessions: not the data engine's.
            let q: number | undefined = p;
            let daemon = false;
            let depth = 0;
            while (q !== undefined && q > 1 && q !== pid && depth++ < 20) {
              if (comm(q).startsWith("sshd")) daemon = true;
              q = parent.get(q);
            }
            if (q !== pid || daemon) continue;
            const k = rssKb(p);
            sum += k;
            const c = comm(p);
            s.byComm[c] = Math.max(s.byComm[c] ?? 0, k);
          }
          s.agentMaxKb = Math.max(s.agentMaxKb, own);
          s.treeMaxKb = Math.max(s.treeMaxKb, sum);
          s.samples++;
          this.series.set(node, s);
        }
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<Record<string, RssSeries>> {
    this.stopping = true;
    await this.loop;
    return Object.fromEntries(this.series);
  }
}
