// Builds the sync engine from the `sync` section of the config (composition
// helper for agent.ts). Everything here runs before the agent starts anything:
// a bad setting (unsafe path, unknown owner) stops the agent with a coded
// error and nothing changed.
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import type { ReloadReporter } from "../platform/reloading-file.js";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Config } from "../config/load.js";
import type { GenerationPublisher } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { SyncEngine, type EngineRoot, type SyncSettings } from "./engine.js";
import { resolveOwner } from "./owner.js";
import { NODE_DURABLE_FS } from "../platform/node-durable-fs.js";
import { HashWorker } from "./hasher.js";
import { checkSyncRoot } from "./paths.js";
import { renderRsyncdConf } from "./rsyncd.js";
import { SyncStateStore } from "./state.js";
import { RsyncPuller, checkControlDir } from "./transport.js";
import { MAX_CONTROL_DIR_CHARS, sshSettingsFrom } from "./transport-ssh.js";
import { chooseSshCiphers } from "./ssh-ciphers.js";
import { readCpuAes } from "../platform/cpu-features.js";

export { SyncEngine, type SyncEvent, type SyncStatus } from "./engine.js";

export interface SyncDeps {
  readonly coordinator: GenerationPublisher;
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly onProgress: () => void;
  /** Told when the sync key or known_hosts changed (SSH masters closed to pick them up). */
  readonly reloads?: ReloadReporter;
  /** ssh's Ciphers value (agent.ts resolved sync.ssh.ciphers: ssh-ciphers.ts); absent: OpenSSH's default order. */
  readonly sshCiphers?: string | null;
}

/** sync.ssh.ciphers to ssh's Ciphers value (ssh-ciphers.ts decides, with the CPU's AES support for auto); the reason is logged. */
export async function resolveSshCiphers(setting: string, log: Logger): Promise<string | null> {
  const cpu = setting === "auto" ? await readCpuAes() : { aes: null };
  const choice = chooseSshCiphers(setting, cpu.aes, cpu.problem);
  log.info({ ciphers: choice.ciphers ?? "default" }, choice.reason);
  return choice.ciphers;
}

export async function createSyncEngine(config: Config, deps: SyncDeps): Promise<SyncEngine | undefined> {
  const s = config.sync;
  if (!s) return undefined;
  const roots: EngineRoot[] = [];
  for (const r of s.roots) {
    const root: EngineRoot = {
      name: r.name,
      path: path.resolve(r.path),
      include: r.include,
      exclude: r.exclude,
      maxFileBytes: r.max_file_size,
      ...(r.max_mode !== undefined ? { maxMode: r.max_mode } : {}),
      ...(r.owner !== undefined ? { owner: await resolveOwner(r.name, r.owner) } : {}),
      ...(r.validate ? { validate: r.validate } : {}),
      ...(r.post_sync ? { postSync: r.post_sync } : {}),
      ...(r.post_publish ? { postPublish: r.post_publish } : {}),
    };
    checkSyncRoot(root);
    roots.push(root);
  }
  // ControlMaster sockets: a private directory with a short path (sun_path is 108 bytes);
  // a long state_dir falls back to a fresh 0700 directory under the temp dir.
  let controlDir = path.join(config.state_dir, "cm");
  let onClose: (() => Promise<void>) | undefined;
  if (controlDir.length <= MAX_CONTROL_DIR_CHARS) {
    await mkdir(controlDir, { recursive: true, mode: 0o700 });
  } else {
    const temp = await mkdtemp(path.join(tmpdir(), "understudy-cm-"));
    controlDir = temp;
    onClose = () => rm(temp, { recursive: true, force: true });
    deps.log.info({ control_dir: controlDir, state_dir: config.state_dir }, "state_dir is too long for SSH control sockets; using a private temp directory");
  }
  await checkControlDir(controlDir);
  const puller = new RsyncPuller({
    runner: deps.runner,
    clock: deps.clock,
    ssh: sshSettingsFrom(s.ssh, controlDir, deps.sshCiphers ?? null),
    rsyncPath: s.rsync_path,
    timeoutMs: s.pull_timeout,
    // Quick check (size + mtime to the nanosecond) by default; a digest mismatch re-pulls that root with --checksum.
    checksum: false,
    ...(deps.reloads ? { reloads: deps.reloads } : {}),
  });
  // The daemon config the sync key's forced command reads: rewritten at every start, so it follows sync.roots.
  const conf = renderRsyncdConf(roots, { daemonUser: s.ssh.user });
  const current = await readFile(s.serve_config, "utf8").catch(() => null);
  if (current !== conf) {
    await mkdir(path.dirname(s.serve_config), { recursive: true, mode: 0o755 });
    await NODE_DURABLE_FS.writeFileAtomic(s.serve_config, conf, 0o644);
    deps.log.info({ file: s.serve_config, roots: roots.map((r) => r.name) }, "wrote the rsync daemon config for the sync key");
  }
  const settings: SyncSettings = {
    roots,
    debounceMs: s.debounce,
    maxDelayMs: s.max_delay,
    reconcileMs: s.reconcile_interval,
    validateTimeoutMs: s.validate_timeout,
    postSyncTimeoutMs: s.post_sync_timeout,
    retryMaxMs: s.retry_max,
    maximumLagMs: s.maximum_lag_on_failover,
  };
  return new SyncEngine({
    node: config.node.name,
    settings,
    // The one place the sync engine's durable writes are bound to the node adapter.
    store: new SyncStateStore(config.state_dir, NODE_DURABLE_FS),
    fs: NODE_DURABLE_FS,
    coordinator: deps.coordinator,
    puller,
    runner: deps.runner,
    clock: deps.clock,
    log: deps.log,
    // Hashing in a worker thread: the lease renewals on this event loop must not wait for a 1 GiB manifest.
    hasher: new HashWorker(10_000, deps.clock),
    onProgress: deps.onProgress,
    ...(onClose ? { onClose } : {}),
  });
}
