// Loss-free rejoin inside the data engine (docs/data-replication-design.md §7):
// the one object the engine, the shipper and the agent hold for it.
//
// * Former primary side (rejoin-marker.ts): `follow` runs the marker planner
//   after each HA cycle (serially, off the cycle); `blocksReceiving` keeps the
//   write modules shut from agent start until the marker is read and while
//   rejoin is pending; `modules` is the read-only `r<T>-<root>` text the
//   engine appends to the daemon config while pending; `summary` is the
//   member key's `rejoin`.
// * Primary side: `follow` with the primary's term writes the marker (each
//   cycle until it is on disk; `becomePrimary` awaits it, for callers that
//   can wait); `run` pulls and merges a pending member's files
//   (rejoin-exec.ts) for every root at once; `noteDeleted` keeps this term's
//   deletions (bounded) so a restore is reported as one.
import { describeError } from "../errors/catalogue.js";
import type { DataRejoinRecords, HistoryLog } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { DurableFs } from "../platform/durable-fs.js";
import type { Logger } from "../platform/logger.js";
import { SerialRunner } from "../platform/serial.js";
import type { SshTransport } from "../sync/transport-ssh.js";
import { runRejoin, type RejoinEvent, type RejoinResult } from "./rejoin-exec.js";
import { FormerPrimarySide, RejoinMarkerStore, type MarkerObservation, type MarkerPlan } from "./rejoin-marker.js";
import { renderRejoinModules } from "./rejoin-pull.js";

export interface RejoinAgentDeps {
  readonly node: string;
  readonly roots: readonly { readonly name: string; readonly path: string }[];
  readonly stateDir: string;
  readonly fs: DurableFs;
  readonly coordinator: DataRejoinRecords & HistoryLog;
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly ssh: SshTransport;
  readonly sshUser: string;
  readonly rsyncPath: string;
  readonly fsync: boolean;
  /** One pull of one root is killed after this long. */
  readonly runTimeoutMs: number;
  /** Per file and per rejoin: the agent feeds the metric and the webhook. */
  readonly onEvent?: (e: RejoinEvent) => void;
  /** The plan changed (pending, served modules): re-render the daemon config, publish the member key. */
  readonly onChange?: () => void;
}

const MAX_TOMBSTONES = 100_000;

export type RejoinView = Omit<MarkerObservation, "marker" | "record" | "node">;

export class RejoinAgent {
  private readonly side: FormerPrimarySide;
  private readonly serial: SerialRunner;
  private view: RejoinView | null = null;
  private known = false;
  /** Paths deleted during this primary's term (bounded: MAX_TOMBSTONES; beyond it a restore is reported as a move). */
  private readonly deleted = new Set<string>();
  private deletedTerm: number | null = null;

  constructor(private readonly deps: RejoinAgentDeps) {
    this.side = new FormerPrimarySide(new RejoinMarkerStore(deps.stateDir, deps.fs), deps.coordinator, deps.log);
    this.serial = new SerialRunner(
      () => this.update(),
      (e) => deps.log.error({ err: describeError(e) }, "data rejoin: marker update failed"),
    );
  }

  /** After each HA cycle. Returns at once; the marker planner runs serially. */
  follow(view: RejoinView): void {
    if (view.primaryTerm !== null && view.primaryTerm !== this.deletedTerm) {
      this.deletedTerm = view.primaryTerm;
      this.deleted.clear();
    }
    this.view = view;
    this.serial.trigger("cycle");
  }

  /** A path deleted in this primary's term (its watcher's remove events): a rejoin that brings it back says "restored". */
  noteDeleted(root: string, path: string): void {
    if (this.deleted.size >= MAX_TOMBSTONES) return;
    this.deleted.add(`${root}\0${path}`);
  }

  /** Before this node ships or takes uploads as primary of `term`: the marker says so on disk. */
  async becomePrimary(term: number): Promise<MarkerPlan> {
    this.view = { primaryTerm: term, leader: { node: this.deps.node, term, address: null } };
    const plan = await this.side.update({ node: this.deps.node, ...this.view });
    this.known = true;
    return plan;
  }

  /**
   * Open no write module: the marker is not read yet, or this node is a former primary whose files
   * are not merged yet. Decided from the marker in memory, not only from the last plan: right after
   * a demotion the plan is still the primary's (pending: false) until the marker update, which first
   * reads data/rejoin from etcd, has run. A marker that is set while another node leads blocks until
   * that update read the done record and cleared it.
   */
  blocksReceiving(): boolean {
    if (!this.known || this.side.plan.pending) return true;
    const marker = this.side.cachedMarker;
    const leader = this.view?.leader ?? null;
    return marker !== undefined && marker !== null && (this.view?.primaryTerm ?? null) === null && leader !== null && leader.node !== this.deps.node;
  }

  /** The member key's `rejoin`. */
  summary(): "pending" | null {
    return this.known && this.side.plan.pending ? "pending" : null;
  }

  /** The reason sentence of the marker's latest plan. */
  step(): string {
    return this.side.plan.reason;
  }

  /** The read-only modules to append to the daemon config ("" unless pending with a leader address). */
  modules(): string {
    return this.known && this.side.plan.pending ? renderRejoinModules(this.deps.roots, this.side.plan.serve) : "";
  }

  /** Primary of `term`: pull and merge `from`'s files (its read-only modules at `address`), every root, then data/rejoin/<from> done. */
  async run(from: string, address: string, term: number, journal: (root: string, path: string, kind: "file" | "dir") => void, signal?: AbortSignal): Promise<RejoinResult> {
    const d = this.deps;
    return runRejoin(
      {
        node: d.node,
        term,
        from,
        roots: d.roots,
        source: (root) => ({ kind: "module", user: d.sshUser, host: address, term, root: root.name, ssh: d.ssh }),
        fsync: d.fsync,
        rsyncPath: d.rsyncPath,
        runTimeoutMs: d.runTimeoutMs,
        ...(signal ? { signal } : {}),
      },
      {
        runner: d.runner,
        clock: d.clock,
        log: d.log,
        coordinator: d.coordinator,
        fsyncDir: (dir) => d.fs.fsyncDir(dir),
        journal,
        deletedHere: (root, path) => this.deleted.has(`${root}\0${path}`),
        ...(d.onEvent ? { onEvent: d.onEvent } : {}),
      },
    );
  }

  async close(): Promise<void> {
    await this.serial.stop();
  }

  private async update(): Promise<void> {
    const v = this.view;
    if (v === null) return;
    const before = this.signature();
    await this.side.update({ node: this.deps.node, ...v });
    this.known = true;
    if (this.signature() !== before) this.deps.onChange?.();
  }

  private signature(): string {
    return JSON.stringify([this.known, this.side.plan.pending, this.side.plan.serve]);
  }
}
