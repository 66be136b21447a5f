// Builds the data engine from the `data` section (composition helper for
// agent.ts). Data rides on the sync transport: the same ssh key, known_hosts,
// ControlMaster directory and forced command (sync.serve_config), so it needs
// a `sync` section (the config schema checks that). Everything here runs
// before the agent starts anything: a bad setting stops it with a coded error.
import { constants } from "node:fs";
import { access, chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Config } from "../config/load.js";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { NODE_DURABLE_FS } from "../platform/node-durable-fs.js";
import { NodeStreamSpawner, type StreamSpawner } from "../platform/stream-process.js";
import { checkControlDir } from "../sync/transport.js";
import { MAX_CONTROL_DIR_CHARS, sshSettingsFrom, validateSshTransport } from "../sync/transport-ssh.js";
import { FreeSpaceSampler } from "./free-space.js";
import { barrierProblem, mountsBelow } from "./receive.js";
import { SYNC_BINARY } from "../sync/rsyncd.js";
import { ProcWriterSessions } from "./writer-sessions.js";
import { DataEngine, type ReceiverFiles } from "./engine.js";
import type { DataProgressPublisher, DataRejoinRecords, HistoryLog } from "../coordinator/port.js";
import type { RejoinEvent } from "./rejoin-exec.js";
import { RejoinAgent } from "./rejoin-agent.js";

export { DataEngine } from "./engine.js";

export interface DataDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  /** The member key changed (receiving): wake the HA loop so it publishes. */
  readonly onProgress: () => void;
  readonly spawner?: StreamSpawner;
  /** Loss-free rejoin: data/rejoin records and the data_rejoin history event. Absent: no rejoin (a former primary just waits). */
  readonly coordinator?: DataRejoinRecords & HistoryLog & DataProgressPublisher;
  /** Rejoin events: the metric (understudy_data_rejoin_files_total) and the webhook. */
  readonly onRejoinEvent?: (e: RejoinEvent) => void;
  /** Each finished rsync run to a standby (metrics: understudy_data_ship_runs_total). */
  readonly onShipRun?: (run: { readonly standby: string; readonly kind: "batch" | "full"; readonly result: "ok" | "error" }) => void;
  /** ssh's Ciphers value, the same as the sync engine's: both share one SSH master per peer. */
  readonly sshCiphers?: string | null;
}

/** The receiver's directories and the daemon config file, on this node's filesystem. */
export const NODE_RECEIVER_FILES: ReceiverFiles = {
  async prepareRoot(root, tempDir) {
    await mkdir(root, { recursive: true, mode: 0o755 });
    await mkdir(tempDir, { recursive: true, mode: 0o700 });
    const st = await lstat(tempDir);
    if (!st.isDirectory()) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data temp dir", problem: "must be a directory", value: JSON.stringify(tempDir) });
    if ((st.mode & 0o777) !== 0o700) await chmod(tempDir, 0o700);
  },
  async clearTemp(tempDir) {
    const names = await readdir(tempDir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return [] as string[];
      throw e;
    });
    // rsync's partial files (`.name.XXXXXX`); a rejoin's inbox-<term>-<node>/ is the rejoin's to clear.
    const partial = names.filter((n) => !n.startsWith("inbox-"));
    for (const n of partial) await rm(path.join(tempDir, n), { recursive: true, force: true });
    return partial.length;
  },
  async barrierProblem(root) {
    const usable = await access(SYNC_BINARY, constants.X_OK).then(
      () => true,
      () => false,
    );
    return barrierProblem(usable, mountsBelow(await readFile("/proc/self/mountinfo", "utf8"), root));
  },
  async writeIfChanged(file, text) {
    const current = await readFile(file, "utf8").catch(() => null);
    if (current === text) return false;
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await NODE_DURABLE_FS.writeFileAtomic(file, text, 0o644);
    return true;
  },
};

export async function createDataEngine(config: Config, deps: DataDeps): Promise<DataEngine | undefined> {
  const d = config.data;
  if (!d) return undefined;
  const s = config.sync;
  if (!s) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data", problem: "needs a sync section (data rides on the sync transport)", value: "no sync section" });
  if (s.ssh.user !== "root") {
    deps.log.error({ user: s.ssh.user }, "data replication needs sync.ssh.user root on every node: the receiving rsync daemon sets owners and chroots into each data root");
  }
  // The sync engine's ControlMaster directory (sync/index.ts): one SSH master per peer for both.
  let controlDir = path.join(config.state_dir, "cm");
  if (controlDir.length <= MAX_CONTROL_DIR_CHARS) await mkdir(controlDir, { recursive: true, mode: 0o700 });
  else controlDir = await mkdtemp(path.join(tmpdir(), "understudy-dm-"));
  await checkControlDir(controlDir);
  const ssh = validateSshTransport(sshSettingsFrom(s.ssh, controlDir, deps.sshCiphers ?? null));
  const vip = config.vip && config.vip.backend !== "none" ? config.vip.address.split("/")[0] : undefined;
  const roots = d.roots.map((r) => ({ name: r.name, path: path.resolve(r.path) }));
  const rejoin = deps.coordinator
    ? new RejoinAgent({
        node: config.node.name,
        roots,
        stateDir: config.state_dir,
        fs: NODE_DURABLE_FS,
        coordinator: deps.coordinator,
        runner: deps.runner,
        clock: deps.clock,
        log: deps.log,
        ssh,
        sshUser: s.ssh.user,
        rsyncPath: s.rsync_path,
        fsync: d.fsync,
        runTimeoutMs: Math.max(d.ship_timeout, 3_600_000),
        ...(deps.onRejoinEvent ? { onEvent: deps.onRejoinEvent } : {}),
        // Pending or served modules changed: the next cycle re-renders the daemon config and publishes the member key.
        onChange: deps.onProgress,
      })
    : undefined;
  const engine = new DataEngine({
    node: config.node.name,
    roots,
    ship: {
      fsync: d.fsync,
      shipTimeoutMs: d.ship_timeout,
      maxBatchFiles: d.max_batch_files,
      maxBatchBytes: d.max_batch_bytes,
      reserveBytes: d.reserve,
      maxDelete: d.max_delete,
      retryMaxMs: Math.max(1000, s.retry_max),
      diskFullRetryMs: d.disk_full_retry,
      rsyncPath: s.rsync_path,
      sshUser: s.ssh.user,
      warmMs: d.warm_batch,
    },
    journal: { stabilityWindowMs: d.stability_window, maxPending: d.max_pending, maxReady: d.max_ready },
    reconcileMs: d.reconcile_interval,
    inotifywaitPath: d.inotifywait_path,
    ssh,
    serve: { configPath: s.serve_config, syncRoots: s.roots.map((r) => ({ name: r.name, path: path.resolve(r.path), include: r.include, exclude: r.exclude })), daemonUser: s.ssh.user },
    ...(vip ? { vipAddress: vip } : {}),
    runner: deps.runner,
    spawner: deps.spawner ?? new NodeStreamSpawner(),
    files: NODE_RECEIVER_FILES,
    writerSessions: new ProcWriterSessions({ configPath: s.serve_config, rsyncPath: s.rsync_path }),
    clock: deps.clock,
    log: deps.log,
    onProgress: deps.onProgress,
    ...(rejoin ? { rejoin } : {}),
    ...(deps.coordinator ? { progressSink: { coordinator: deps.coordinator, intervalMs: d.progress_interval } } : {}),
    // Free space of the roots every 2 s; a changed (quantized) figure republishes the member key.
    freeSpace: new FreeSpaceSampler(
      d.roots.map((r) => path.resolve(r.path)),
      deps.clock,
      deps.onProgress ? { onChange: deps.onProgress } : {},
    ),
    ...(deps.onShipRun ? { onShipRun: deps.onShipRun } : {}),
  });
  return engine;
}
