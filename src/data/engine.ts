// Data replication's engine (docs/data-replication-design.md): what the HA loop
// drives (DataPort: follow, stopShipping, memberSummary) and what the API and
// metrics read (DataControl). Two sides, never both at once:
//
// * Primary with a term: one watcher and one journal per root (a new journal per
//   term: every standby gets a full pass first) and a Shipper (shipper.ts) that
//   ships to each standby once its member key says it receives this term.
// * Standby following leader L in term T (L's address known): the write modules
//   `d<T>-<root>` are rendered into the sync daemon config (sync.serve_config,
//   receiver.ts), only L (and the VIP) may write; then this node reports
//   `receiving: T`. Anything else renders no write module at all (the term fence).
import path from "node:path";
import type { DataLagRecord, DataProgress, DataProgressPublisher, MemberDataSummary } from "../coordinator/port.js";
import { DataProgressWriter, ownLag } from "./progress.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import type { StreamSpawner } from "../platform/stream-process.js";
import type { ServedRoot } from "../sync/rsyncd.js";
import type { SshTransport } from "../sync/transport-ssh.js";
import { ChangeJournal, type DataEvent, type JournalLimits } from "./journal.js";
import type { DataControl, DataStatus, ShipTargetStatus } from "./port.js";
import { WriteModules, type ReceiverFiles } from "./receiver.js";
export type { ReceiverFiles } from "./receiver.js";
import type { WriterSessions } from "./writer-sessions.js";
import { Shipper, type ShipMember, type ShipSettings, type ShipperDeps } from "./shipper.js";
import { RootWatcher } from "./watch.js";
import type { RejoinAgent } from "./rejoin-agent.js";
import type { FreeSpaceReader } from "./free-space.js";

/** The HA loop's view (the DataPort.follow argument). */
export interface DataFollowView {
  readonly acting: "primary" | "standby";
  readonly term: number | null;
  readonly leader: { readonly node: string; readonly term: number; readonly address: string | null } | null;
  readonly members: readonly { readonly node: string; readonly address: string | null; readonly data?: MemberDataSummary }[];
  /** data/progress as last read (a standby copies its own entry into its member key: ownLag). */
  readonly progress?: DataProgress | null;
  /** true: etcd was not read this cycle, so `leader` and `members` are unknown rather than absent. */
  readonly unread?: boolean;
}

export interface DataEngineDeps {
  readonly node: string;
  readonly roots: readonly { readonly name: string; readonly path: string }[];
  readonly ship: ShipSettings;
  readonly journal: JournalLimits;
  readonly reconcileMs: number;
  readonly inotifywaitPath: string;
  readonly ssh: SshTransport;
  /** The one daemon config file (sync.serve_config) and the read-only sync modules it holds. */
  readonly serve: { readonly configPath: string; readonly syncRoots: readonly ServedRoot[]; readonly daemonUser: string };
  /** The floating IP's address (no prefix), allowed to write beside the leader's address. */
  readonly vipAddress?: string;
  readonly runner: CommandRunner;
  readonly spawner: StreamSpawner;
  readonly files: ReceiverFiles;
  readonly clock: Clock;
  readonly log: Logger;
  /** Something the member key shows changed (receiving): the loop publishes again. */
  readonly onProgress?: () => void;
  /**
   * Rejoin hook (datarejoin): while this returns true this node is a former
   * primary whose files the new primary has not merged yet: it opens no write module.
   */
  readonly rejoinPending?: () => boolean;
  /** Loss-free rejoin (rejoin-agent.ts): the marker, the read-only modules while pending, the member key's `rejoin`. */
  readonly rejoin?: RejoinAgent;
  /** Where the primary writes data/progress (term-guarded), at most every intervalMs (progress.ts); absent: not written. */
  readonly progressSink?: { readonly coordinator: DataProgressPublisher; readonly intervalMs: number };
  /** The data roots' free space (free-space.ts, datasurface): memberSummary.freeBytes and GET /data's roots. */
  readonly freeSpace?: FreeSpaceReader;
  /** Each finished rsync run, for metrics (Shipper.onRun). */
  readonly onShipRun?: ShipperDeps["onRun"];
  /** Cuts sessions still writing after their term's modules closed (writer-sessions.ts). */
  readonly writerSessions?: WriterSessions;
}

interface PrimarySide {
  readonly term: number;
  readonly journals: ReadonlyMap<string, ChangeJournal>;
  readonly watchers: readonly RootWatcher[];
  readonly shipper: Shipper;
  stabilise: TimerHandle | undefined;
  stabiliseAtMs: number | null;
  reconcile: TimerHandle | undefined;
  stopping: Promise<void> | null;
}

export class DataEngine implements DataControl {
  private primary: PrimarySide | null = null;
  private readonly stopping = new Set<Promise<void>>();
  private closed = false;
  private readonly modules: WriteModules;
  private readonly progressWriter: DataProgressWriter | null;
  private lastProgress: DataProgress | null = null;

  constructor(private readonly deps: DataEngineDeps) {
    this.modules = new WriteModules({
      roots: deps.roots,
      serve: deps.serve,
      files: deps.files,
      clock: deps.clock,
      log: deps.log,
      ...(deps.rejoin ? { rejoinModules: () => deps.rejoin!.modules() } : {}),
      ...(deps.onProgress ? { onReceivingChanged: deps.onProgress } : {}),
      ...(deps.writerSessions ? { sessions: deps.writerSessions } : {}),
    });
    this.progressWriter = deps.progressSink ? new DataProgressWriter({ coordinator: deps.progressSink.coordinator, clock: deps.clock, log: deps.log, intervalMs: deps.progressSink.intervalMs }) : null;
  }

  /** Writes the daemon config once at start (no write module until a leader is followed). */
  start(): void {
    this.modules.start();
    this.deps.freeSpace?.start();
  }

  follow(view: DataFollowView): void {
    if (this.closed) return;
    if (view.progress !== undefined) this.lastProgress = view.progress;
    const { node } = this.deps;
    if (view.acting === "primary" && view.term !== null) {
      // The former-primary marker (rejoin): on disk before this term ships.
      // Every cycle, serially: a failed write is retried; a marker already of this term is not rewritten.
      this.deps.rejoin?.follow({ primaryTerm: view.term, leader: view.leader });
      // A node that is primary serves no write module: rendered away first.
      this.modules.set(null);
      if (this.primary && this.primary.term !== view.term) this.stopPrimary();
      this.primary ??= this.startPrimary(view.term);
      this.primary.shipper.update(view.members.filter((m) => m.node !== node).map(shipMember));
      this.offerProgress();
      return;
    }
    if (this.primary) this.stopPrimary();
    // A standby whose etcd read failed keeps the write modules of the term it follows, as long as
    // the HA loop says so (src/ha/follow.ts unreadHold: a lease period and a read after its last
    // read, or while its failsafe promise to that leader runs), as a Patroni replica keeps
    // streaming through a DCS outage. A read that timed out once under load used to kill a 10 GiB
    // full pass. A promotion here needs etcd and closes every module first (beforeServe).
    if (view.unread) return;
    const l = view.leader;
    this.deps.rejoin?.follow({ primaryTerm: null, leader: l });
    const blocked = (this.deps.rejoinPending?.() ?? false) || (this.deps.rejoin?.blocksReceiving() ?? false);
    const follows = view.acting === "standby" && l !== null && l.node !== node && l.address !== null && !blocked;
    this.modules.set(follows ? { term: l.term, leaderAddress: l.address!, ...(this.deps.vipAddress ? { vipAddress: this.deps.vipAddress } : {}) } : null);
  }

  /**
   * Awaited by the promotion before the daemon starts and the floating IP comes up: every write
   * module (of any term) is closed in the daemon config, and the former-primary marker of `term` is
   * on disk, so an upload this node acknowledges is one a later primary will ask back at rejoin.
   * A failure is thrown: the caller logs it and goes on (the cycle's follow retries both).
   */
  async beforeServe(term: number): Promise<void> {
    if (this.closed) return;
    await this.modules.closeAll();
    await this.deps.rejoin?.becomePrimary(term);
  }

  async stopShipping(): Promise<void> {
    if (this.primary) this.stopPrimary();
    await Promise.all([...this.stopping]);
  }

  memberSummary(): MemberDataSummary {
    return {
      receiving: this.modules.receiving,
      rejoin: this.deps.rejoin?.summary() ?? null,
      freeBytes: this.deps.freeSpace?.min() ?? null,
      lag: ownLag(this.lastProgress, this.deps.node, this.modules.wanted?.term ?? null),
      step: this.stepSentence(),
    };
  }

  /** Agent stop: ships nothing more, and closes the write modules (no one may write here while no agent follows the terms). */
  async close(): Promise<void> {
    this.closed = true;
    this.modules.cancelRetry();
    this.deps.freeSpace?.stop();
    await this.stopShipping();
    await this.progressWriter?.close();
    await this.modules.stop();
  }

  // ------------------------------------------------------------ primary side

  private startPrimary(term: number): PrimarySide {
    const { deps } = this;
    const journals = new Map(deps.roots.map((r) => [r.name, new ChangeJournal(deps.journal)]));
    const watchers: RootWatcher[] = [];
    const side: PrimarySide = {
      term,
      journals,
      watchers,
      stabilise: undefined,
      stabiliseAtMs: null,
      reconcile: undefined,
      stopping: null,
      shipper: new Shipper({
        node: deps.node,
        term,
        roots: deps.roots.map((r, i) => ({
          name: r.name,
          path: r.path,
          journal: journals.get(r.name)!,
          ready: () => (watchers[i]?.isReady() ?? false) || this.unwatched(i) !== null,
          degraded: () => this.unwatched(i),
        })),
        settings: deps.ship,
        ssh: deps.ssh,
        runner: deps.runner,
        clock: deps.clock,
        log: deps.log,
        ...(deps.rejoin ? { rejoin: deps.rejoin } : {}),
        onChange: () => this.offerProgress(),
        ...(deps.onShipRun ? { onRun: deps.onShipRun } : {}),
      }),
    };
    for (const r of deps.roots) {
      const journal = journals.get(r.name)!;
      const w = new RootWatcher({
        spawner: deps.spawner,
        clock: deps.clock,
        log: deps.log,
        inotifywaitPath: deps.inotifywaitPath,
        name: r.name,
        root: r.path,
        onEvents: (events) => {
          // Deletions of this term, so a rejoin that brings one back reports it as restored.
          for (const e of events) if (e.kind === "remove" || e.kind === "rename") this.deps.rejoin?.noteDeleted(r.name, e.path);
          this.record(side, journal, events);
          // An upload began (created, or written to): its batch rsync connects while it is written.
          if (events.some((e) => e.kind === "change")) side.shipper.prewarm(r.name);
        },
        onReady: () => this.stabilise(side, "watcher ready"),
      });
      watchers.push(w);
      w.start();
    }
    const reconcile = (): void => {
      side.reconcile = deps.clock.setTimer(deps.reconcileMs, () => {
        side.shipper.askFullPass(`periodic reconcile (every ${Math.round(deps.reconcileMs / 1000)}s)`);
        reconcile();
      });
    };
    reconcile();
    deps.log.info({ term, roots: deps.roots.map((r) => r.name) }, "data: shipping from this node (new journal: every standby gets a full pass first)");
    return side;
  }

  private record(side: PrimarySide, journal: ChangeJournal, events: readonly DataEvent[]): void {
    if (side.stopping) return;
    const now = this.deps.clock.monotonicMs();
    for (const e of events) journal.record(e, now);
    this.stabilise(side, "events");
  }

  /** Moves stable entries to the ready logs, kicks the shipper, and arms a timer for the next pending entry. */
  private stabilise(side: PrimarySide, why: string): void {
    if (side.stopping) return;
    const now = this.deps.clock.monotonicMs();
    let next: number | null = null;
    for (const j of side.journals.values()) {
      const r = j.stabilise(now);
      if (r.nextDueMs !== null) next = next === null ? r.nextDueMs : Math.min(next, r.nextDueMs);
    }
    side.shipper.kick(why);
    this.offerProgress();
    if (next !== null && (side.stabiliseAtMs === null || next < side.stabiliseAtMs || side.stabiliseAtMs <= now)) {
      side.stabilise?.cancel();
      side.stabiliseAtMs = next;
      side.stabilise = this.deps.clock.setTimer(Math.max(0, next - now), () => {
        side.stabiliseAtMs = null;
        this.stabilise(side, "stability window");
      });
    }
  }

  /** Stops shipping now: no new rsync starts once this returns; the children die in the background (awaited by stopShipping). */
  private stopPrimary(): void {
    const side = this.primary;
    if (!side) return;
    this.primary = null;
    side.stabilise?.cancel();
    side.reconcile?.cancel();
    const done = Promise.all([side.shipper.stop(), ...side.watchers.map((w) => w.stop())]).then(() => {
      this.deps.log.info({ term: side.term }, "data: shipping stopped");
    });
    side.stopping = done;
    this.stopping.add(done);
    void done.finally(() => this.stopping.delete(done));
  }

  // ------------------------------------------------------------ DataControl

  notify(paths: readonly string[]): { readonly role: DataStatus["role"]; readonly accepted: number; readonly ignored: readonly string[] } {
    const side = this.primary;
    if (!side || side.stopping) return { role: this.role(), accepted: 0, ignored: [...paths] };
    const ignored: string[] = [];
    let accepted = 0;
    const now = this.deps.clock.monotonicMs();
    for (const p of paths) {
      const abs = path.posix.normalize(p).replace(/\/+$/, "");
      const root = this.deps.roots.find((r) => abs.startsWith(`${r.path}/`));
      const rel = root ? abs.slice(root.path.length + 1) : "";
      if (!root || !p.startsWith("/") || rel === "" || rel.split("/")[0] === ".understudy-tmp") {
        ignored.push(p);
        continue;
      }
      side.journals.get(root.name)!.record({ kind: "closed", path: rel }, now);
      accepted += 1;
    }
    if (accepted > 0) this.stabilise(side, "notify");
    return { role: "primary", accepted, ignored };
  }

  status(): DataStatus {
    const side = this.primary;
    let journal: DataStatus["journal"] = null;
    if (side) {
      journal = { head: 0, pending: 0, ready: 0 };
      for (const j of side.journals.values()) journal = { head: journal.head + j.head, pending: journal.pending + j.pendingCount, ready: journal.ready + j.readyCount };
    }
    return {
      role: this.role(),
      term: side?.term ?? this.modules.receiving,
      roots: this.deps.roots.map((r, i) => ({ name: r.name, path: r.path, freeBytes: this.deps.freeSpace?.of(r.path) ?? null, unwatched: this.unwatched(i) })),
      journal,
      standbys: side ? this.targets(side) : [],
      self: this.memberSummary(),
    };
  }

  progress(): DataProgress | null {
    const side = this.primary;
    if (!side) return null;
    let head = 0;
    for (const j of side.journals.values()) head += j.head;
    const standbys: Record<string, DataLagRecord> = {};
    for (const t of this.targets(side)) standbys[t.node] = { acked: t.acked, files: t.files, bytes: t.bytes, seconds: t.seconds, full: t.full, paused: t.paused };
    return { node: this.deps.node, term: side.term, head, at: new Date(this.deps.clock.wallMs()).toISOString(), standbys };
  }

  private targets(side: PrimarySide): ShipTargetStatus[] {
    const { clock } = this.deps;
    const wallOf = (ms: number) => new Date(clock.wallMs() - (clock.monotonicMs() - ms)).toISOString();
    return side.shipper.status().map((t) => ({
      node: t.node,
      step: t.step,
      lastError: t.lastError,
      lastSuccessAt: t.lastSuccessAtMs === null ? null : wallOf(t.lastSuccessAtMs),
      acked: t.acked,
      files: t.lag.files,
      bytes: t.lag.bytes,
      seconds: t.lag.seconds,
      full: t.lag.full,
      paused: t.paused,
    }));
  }

  /** The per-standby lag to data/progress (throttled by the writer; nothing when not primary). */
  private offerProgress(): void {
    if (this.primary && !this.primary.stopping) this.progressWriter?.offer(this.progress());
  }

  /** Primary: why root i cannot be watched (US_E_DATA_WATCH_LIMIT), or null. */
  private unwatched(i: number): string | null {
    return this.primary?.watchers[i]?.degraded() ?? null;
  }

  private role(): DataStatus["role"] {
    if (this.primary) return "primary";
    return this.modules.wanted !== null ? "standby" : "none";
  }

  private stepSentence(): string {
    if (this.primary) return `shipping term ${this.primary.term} to ${this.primary.shipper.status().length} standby(s)`;
    if (this.deps.rejoin?.summary() === "pending") return this.deps.rejoin.step();
    const { receiving, wanted } = this.modules;
    if (receiving !== null && wanted) return `receiving term ${receiving} from ${wanted.leaderAddress}`;
    if (wanted) return `opening the write modules for term ${wanted.term}`;
    return "not receiving (no leader to follow)";
  }
}

function shipMember(m: DataFollowView["members"][number]): ShipMember {
  return { node: m.node, address: m.address, receiving: m.data?.receiving ?? null, rejoinPending: m.data?.rejoin === "pending", freeBytes: m.data?.freeBytes ?? null };
}
