import type { Config } from "../config/load.js";
import type { Coordinator } from "../coordinator/port.js";
import type { DaemonController, Readiness } from "../daemon/port.js";
import type { FenceGuard } from "../fence/port.js";
import type { HookPort } from "../hooks/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { WakeSource } from "../platform/wake-ups.js";
import type { DrainParts } from "./drain-run.js";
import type { DaemonHealth, DataPort, FailsafePeers, PromiseLedger, SyncPort, TargetPeers, VipControl } from "./ports.js";

/** What the HA loop (loop.ts) is built from: the agent wires the real parts, tests the fakes. */
export interface HaLoopDeps {
  readonly config: Config;
  readonly coordinator: Coordinator;
  readonly daemon: DaemonController;
  readonly vip: VipControl;
  readonly health: DaemonHealth;
  readonly clock: Clock;
  readonly log: Logger;
  readonly version: string;
  /** Grace after a daemon (re)start before failing probes count. */
  readonly probeGraceMs: number;
  /** Could this standby serve if promoted? Defaults to always. */
  readonly readiness?: Readiness;
  /** Advertised in the member key so the CLI can reach any node. */
  readonly apiUrl?: string;
  /** Other agents can reach the API at apiUrl (not bound to loopback): the member key then says it answers POST /handover/ready. */
  readonly apiAnswersPeers?: boolean;
  /** The fence guard process (docs/architecture.md, "The fence guard"); tests may leave it out. */
  readonly fenceGuard?: FenceGuard;
  /** User hooks; only pre_promote is awaited (it may veto), the agent fires the others. */
  readonly hooks?: HookPort;
  /** The file sync engine; absent when no sync roots are configured. */
  readonly sync?: SyncPort;
  /** Data replication (src/data/); absent when no data roots are configured. */
  readonly data?: DataPort;
  /** "Look again" notices from parts built before the loop (sync progress, readiness, tools, watchdog): each runs a cycle. */
  readonly wakeUps?: WakeSource;
  /** Drained switchover: the gate and session counter, or why this node cannot drain; absent: cannot drain. */
  readonly drain?: DrainParts | { readonly unavailable: string };
  /** Failsafe mode (docs/failsafe-design.md): the other agents' grant endpoint; absent: no rounds, fence as without failsafe. */
  readonly failsafePeers?: FailsafePeers;
  /** The other agents' POST /handover/ready, asked before a planned move (target-check.ts); absent: moves go on unasked. */
  readonly targetPeers?: TargetPeers;
  /** Failsafe promises kept across restarts (S6); absent: in memory only. */
  readonly promiseLedger?: PromiseLedger;
}
