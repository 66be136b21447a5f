/**
 * CPU time of the lab's processes around one switchover: what shared the
 * host's cores with the daemon while the client waited for its banner.
 * Per process: utime + stime from /proc/PID/stat, in ms (USER_HZ 100: 10 ms
 * resolution); for sshd also the children it reaped (cutime + cstime), so
 * its per-connection processes count in their listener. Not for the agents:
 * in cold mode an agent reaps the stopped daemon, whose whole life would
 * land in that second.
 */
import type { Lab } from "../../test/lab/harness/index.js";
import { procComm, procSample } from "../failover/lib.js";

const TICK_MS = 10;

/** pid -> [label, cpu ms] for every process in the lab's node, etcd and client namespaces. */
export type CpuSnapshot = Map<number, [string, number]>;

export function cpuSnapshot(lab: Lab): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  const add = (ns: string, label: (c: string) => string) => {
    for (const pid of lab.pidsIn(ns)) {
      const c = procComm(pid) ?? "?";
      const p = procSample(pid);
      if (p) out.set(pid, [label(c), (p.selfTicks + (c === "sshd" ? p.childTicks : 0)) * TICK_MS]);
    }
  };
  for (const n of lab.nodes) add(n.name, (c) => `${n.name} ${c === "node" ? "agent" : c === "sshd" ? "sshd" : "other"}`);
  add(lab.etcd.name, (c) => (c === "etcd" ? "etcd" : "etcd ns other"));
  add(lab.client.name, (c) => (c === "node" ? "client: prober/CLI (node)" : `client: ${c}`));
  return out;
}

/** CPU ms per label between two snapshots (processes that exited in between are not counted). */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): Record<string, number> {
  const by: Record<string, number> = {};
  for (const [pid, [label, ms]] of b) {
    const d = ms - (a.get(pid)?.[1] ?? 0);
    if (d > 0) by[label] = (by[label] ?? 0) + d;
  }
  return Object.fromEntries(Object.entries(by).sort((x, y) => y[1] - x[1]));
}
