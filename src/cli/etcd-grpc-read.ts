// `understudy status` through the agent's own etcd adapter (gRPC), for an etcd
// that wants a client certificate: etcd 3.4's JSON gateway refuses any request
// that carries a client certificate with a CommonName once auth is on ("CommonName
// of client sending a request against gateway will be ignored"), so the fast
// gateway reader (./etcd-read.ts) cannot serve those deployments. This costs the
// gRPC library's load (~0.2 s, docs/benchmarks.md) and answers the same shape.
import type { EtcdSecurity } from "../config/etcd-security.js";
import { UnderstudyError } from "../errors/catalogue.js";
import type { ClusterSnapshot } from "../coordinator/port.js";

export interface SnapshotReader {
  snapshot(prefix: string, cluster: string): Promise<{ snap: ClusterSnapshot; keys: number }>;
  clusterNames(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function grpcReader(endpoints: readonly string[], timeoutMs: number, security: EtcdSecurity): Promise<SnapshotReader> {
  const [{ EtcdCoordinator }, { SystemClock }, { silentLogger }] = await Promise.all([import("../coordinator/etcd.js"), import("../platform/clock.js"), import("../platform/logger.js")]);
  const opened: { close(): Promise<void> }[] = [];
  return {
    async snapshot(prefix, cluster) {
      const c = new EtcdCoordinator({ endpoints, prefix, cluster, requestTimeoutMs: timeoutMs, dialTimeoutMs: timeoutMs, clock: new SystemClock(), log: silentLogger(), security });
      opened.push(c);
      const snap = await c.snapshot();
      const any = snap.leader || snap.members.length > 0 || snap.sync || snap.switchover || snap.released || snap.bans.length > 0 || snap.paused;
      // Nothing in the snapshot: the cluster is unknown unless it has history (every cluster that ever ran has).
      const keys = any ? 1 : (await c.history(1)).length;
      return { snap, keys };
    },
    // The role reaches one cluster's prefix only: other clusters' names cannot be listed with it.
    async clusterNames(prefix) {
      throw new UnderstudyError("US_E_CLUSTER_LIST", { prefix, problem: "the etcd user's role reaches only its own cluster's keys" });
    },
    async close() {
      for (const c of opened) await c.close().catch(() => undefined);
    },
  };
}
