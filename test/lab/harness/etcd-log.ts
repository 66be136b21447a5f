import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One raft leader election as a lab etcd member logged it. */
export interface EtcdElection {
  /** Epoch ms of etcd's "became leader" line. */
  at: number;
  term: number;
  /** The member's log file. */
  log: string;
}

const BECAME = /became leader at term (\d+)$/;

/**
 * The raft leader elections in the lab's etcd member logs (etcd.log, etcd2.log, ...), oldest first.
 * A new raft leader extends every lease to now + ttl + election timeout (etcd's lessor Promote), so
 * a lease held by a dead node runs out a ttl after the last election, not after etcd answered first.
 */
export function etcdElections(logDir: string): EtcdElection[] {
  const out: EtcdElection[] = [];
  for (const log of readdirSync(logDir).filter((f) => /^etcd\d*\.log$/.test(f))) {
    for (const line of readFileSync(join(logDir, log), "utf8").split("\n")) {
      if (!line.includes("became leader")) continue;
      try {
        const j = JSON.parse(line) as { ts?: unknown; msg?: unknown };
        const m = typeof j.msg === "string" ? BECAME.exec(j.msg) : null;
        const at = typeof j.ts === "string" ? Date.parse(j.ts) : NaN;
        if (m && Number.isFinite(at)) out.push({ at, term: Number(m[1]), log });
      } catch {
        // a line cut by a killed member
      }
    }
  }
  return out.sort((a, b) => a.at - b.at);
}
