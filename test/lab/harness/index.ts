/** Lab harness public API: see lab.ts for the topology and README.md for usage. */
export {
  Lab,
  type HostRef,
  type LabHost,
  type LabNode,
  type LabOptions,
  type LabTimings,
  type NsRef,
  type ObserverOptions,
  type SpawnOptions,
  type SshCheckOptions,
  type SshCheckResult,
  type SshdOptions,
} from "./lab.js";
export { Observer, parseSamples, type ArpSample, type HolderSample } from "./observer.js";
export { LabCluster, agentLoadMs, CLI, NODE_FLAGS, REPO, type ClusterOptions, type LeaderView } from "./cluster.js";
export { ClusterKeyWatch } from "./keywatch.js";
export { etcdElections, type EtcdElection } from "./etcd-log.js";
export { startPrometheus, startHaproxy, API_PORT, type PrometheusHandle } from "./observability.js";
export { sweep, sweepStale, killAllInSync, listNetns, type SweepResult } from "./cleanup.js";
export { freePort, run, runOk, pollUntil, sleep, type ExecOptions, type ExecResult } from "./exec.js";
