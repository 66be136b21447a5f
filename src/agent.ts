// The composition root: the one place that builds real adapters from config
// and hands them to the HA loop. Everything below it depends on ports only.
import { FilePromiseLedger } from "./platform/promise-ledger.js";
import { mkdir } from "node:fs/promises";
import type { Config } from "./config/load.js";
import { etcdRequestTimeoutMs } from "./config/timing.js";
import { EtcdCoordinator } from "./coordinator/etcd.js";
import { createDaemon } from "./daemon/index.js";
import { describeError } from "./errors/catalogue.js";
import { HaLoop } from "./ha/loop.js";
import { ReadinessCheck } from "./daemon/readiness.js";
import { allReady, type Readiness } from "./daemon/port.js";
import { SystemClock, type Clock } from "./platform/clock.js";
import { SpawnCommandRunner } from "./platform/command.js";
import { IpBatchRunner } from "./platform/ip-batch.js";
import { createLogger, type Logger } from "./platform/logger.js";
import { createProbeHealth } from "./probes/index.js";
import { ResidentGarpSender, VipReconciler, createFloatingIp } from "./vip/index.js";
import { VERSION } from "./version.js";
import { AgentMetrics } from "./api/metrics.js";
import { InvalidRecordLog } from "./coordinator/invalid-records.js";
import { readEtcdSecurity } from "./config/etcd-security.js";
import { FailsafePeerClient } from "./api/failsafe-peers.js";
import { HandoverReadyClient } from "./api/handover-ready-client.js";
import { buildApi } from "./api/server.js";
import { reloadingApiTls, reloadingToken } from "./api/token.js";
import { ReloadReporters, type ReloadReporter } from "./platform/reloading-file.js";
import { formatListenAddress, isLoopbackHost, parseListenAddress } from "./platform/listen-address.js";
import { WakeUps } from "./platform/wake-ups.js";
import { UnderstudyError } from "./errors/catalogue.js";
import { FenceGuardLink } from "./fence/client.js";
import { createHooks } from "./hooks/index.js";
import type { FenceOrders } from "./fence/protocol.js";
import { watchdogTimeoutS } from "./config/watchdog.js";
import type { FenceGuard, WatchdogSettings } from "./fence/port.js";
import { createSyncEngine, resolveSshCiphers } from "./sync/index.js";
import { createDataEngine } from "./data/index.js";
import { ToolReadiness, checkTools } from "./tools/check.js";
import { createDrain } from "./drain/index.js";

export interface RunningAgent {
  readonly loop: HaLoop;
  /** The agent's logger (the CLI logs its exit backstop there). */
  readonly log: Logger;
  /** Graceful stop: quiesce the daemon, drop the VIP, revoke the lease. */
  stop(): Promise<void>;
}

export async function startAgent(config: Config, options: { log?: Logger; clock?: Clock; configFile?: string } = {}): Promise<RunningAgent> {
  const clock = options.clock ?? new SystemClock();
  const log = options.log ?? createLogger({ level: config.log.level, node: config.node.name });
  const runner = new SpawnCommandRunner();
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });

  // Read the etcd TLS material and password before anything starts: a bad file must change nothing.
  const etcdSecurity = await readEtcdSecurity(options.configFile ?? "(config)", config.etcd);
  const invalidRecords = new InvalidRecordLog(log.child({ component: "etcd" }));
  const coordinator = new EtcdCoordinator({
    endpoints: config.etcd.endpoints,
    prefix: config.etcd.prefix,
    cluster: config.cluster,
    // A keepalive stuck longer than the renew interval is as good as lost; the next one goes out on time.
    requestTimeoutMs: etcdRequestTimeoutMs(config),
    dialTimeoutMs: config.etcd.dial_timeout,
    clock,
    log: log.child({ component: "etcd" }),
    security: etcdSecurity,
    onInvalidRecord: (r) => invalidRecords.report(r),
  });
  const daemon = createDaemon(config.daemon, { clock, runner, stateDir: config.state_dir, logger: log.child({ component: "daemon" }) });
  // `ip addr add/del/show` through one resident `ip -batch`: no spawn on the promotion path.
  // Gratuitous ARP from one resident sender: no arping spawn between `ip addr add` and the first packet.
  const ipRunner = new IpBatchRunner(runner);
  const garp = new ResidentGarpSender(clock);
  const ownVip = config.vip?.backend === "ip";
  if (ownVip) {
    ipRunner.prepare();
    garp.prepare();
  }
  const floatingIp = createFloatingIp(config.vip, { runner: ipRunner, clock, logger: log, ...(garp.available() ? { garp } : {}) });
  const vip = new VipReconciler(floatingIp, clock, log.child({ component: "vip" }), {
    reconcileIntervalMs: config.vip?.reconcile_interval ?? 2000,
    announceIntervalMs: config.vip?.announce_interval ?? 10_000,
  });
  vip.onError((e) => log.warn({ err: describeError(e) }, "floating IP reconcile failed"));
  // Parts built before the HA loop tell it "look again" through these; the loop subscribes when built.
  const wakeUps = new WakeUps((e) => log.error({ err: describeError(e) }, "a wake-up listener failed"));
  // Trust files re-read on change (issue 12): every reload is logged, and counted once the metrics exist; a bad new file keeps the last good one.
  const reloads = new ReloadReporters().add(loggedReloads(log.child({ component: "trust" })));
  const health = createProbeHealth(config.probes, { clock, logger: log.child({ component: "probes" }), reloads });
  // Grace after a (re)start for probes of the daemon's own listeners; disk and TLS file
  // checks do not depend on the daemon starting.
  const listenerProbes = config.probes.filter((p) => p.critical && p.type !== "disk" && p.type !== "tls_file");
  const probeGraceMs = Math.min(120_000, Math.max(0, ...listenerProbes.map((p) => p.interval * p.fall + p.timeout)));

  // Read the token and TLS files before anything starts: a bad file must change nothing.
  const tokenSource = config.api?.token_file ? await reloadingToken(config.api.token_file, reloads) : undefined;
  const token = tokenSource ? tokenSource.peek() : null;
  const tlsSource = config.api?.tls ? await reloadingApiTls(config.api.tls, reloads) : undefined;
  const tls = tlsSource?.peek();
  const apiListen = config.api ? parseListenAddress(config.api.listen) : undefined;
  const apiUrl = apiListen ? `${tls ? "https" : "http"}://${formatListenAddress(config.node.address, apiListen.port)}` : undefined;

  const fenceLog = log.child({ component: "fence" });
  const fenceGuard = new FenceGuardLink(config.state_dir, fenceOrders(config), {
    clock,
    log: fenceLog,
    watchdog: watchdogSettings(config),
    onWatchdog: (s) => {
      const fields = { device: s.device, timeout_s: s.timeoutS, problem: s.problem };
      if (s.state === "unavailable") fenceLog.error(fields, `watchdog unavailable${config.watchdog.mode === "required" ? ": this node will not become primary (watchdog.mode required)" : ""}`);
      else fenceLog.info(fields, `watchdog ${s.state}`);
      wakeUps.wake("watchdog");
    },
  });
  fenceGuard.start();

  const hookSet = createHooks(config, { runner, clock, log: log.child({ component: "hooks" }) });

  // Built (owners resolved, transport values checked) before anything starts: a bad sync setting changes nothing.
  // One cipher choice for both engines: they share one SSH master connection per peer.
  const sshCiphers = config.sync ? await resolveSshCiphers(config.sync.ssh.ciphers, log.child({ component: "sync" })) : null;
  const sync = await createSyncEngine(config, { coordinator, runner, clock, log: log.child({ component: "sync" }), onProgress: wakeUps.notifier("sync"), reloads, sshCiphers });
  // Data replication (issue 14): built after sync, whose daemon config file it extends with its write modules.
  const data = await createDataEngine(config, {
    runner,
    clock,
    log: log.child({ component: "data" }),
    onProgress: wakeUps.notifier("data"),
    coordinator,
    sshCiphers,
    // Loss-free rejoin: each file counted, one webhook event per merge (metrics exist by the time a merge runs).
    onRejoinEvent: (e) => {
      rejoinMetrics?.observeDataRejoin(e);
      if (e.type === "data_rejoin") hookSet.webhook?.notify(e);
    },
    // metrics is built below; runs only start once the agent has started.
    onShipRun: (r) => metrics.observeDataShip(r.standby, r.kind, r.result),
  });
  let rejoinMetrics: AgentMetrics | undefined;
  const check = new ReadinessCheck(config.daemon.check, config.daemon.check_interval, {
    runner,
    clock,
    log: log.child({ component: "readiness" }),
    onChange: wakeUps.notifier("readiness"),
  });
  // A missing program (arping, ip, rsync, the daemon's binary) starts the agent anyway, not ready:
  // `status` shows why, and the node never campaigns until the package is installed.
  const toolReport = await checkTools(config, runner);
  for (const problem of toolReport.problems) log.error({ code: problem.code }, problem.message);
  if (toolReport.arping) log.info({ arping: toolReport.arping.path, flavour: toolReport.arping.flavour }, "arping found");
  const tools = new ToolReadiness(config, { runner, clock, log: log.child({ component: "tools" }), onChange: wakeUps.notifier("tools") }, toolReport);
  const readiness = config.watchdog.mode === "required" ? allReady(tools, check, watchdogReadiness(fenceGuard)) : allReady(tools, check);
  // The other agents' APIs (failsafe grants, a move's target): the cluster token, re-read each time, and this node's certificate.
  const peerToken = async () => (tokenSource ? await tokenSource.get() : null);
  const peerTls = tls ? { ...(tls.clientCa ? { ca: tls.clientCa } : {}), cert: tls.cert, key: tls.key } : undefined;
  const ha = new HaLoop({
    config,
    coordinator,
    daemon,
    vip,
    health,
    clock,
    log,
    version: VERSION,
    probeGraceMs,
    readiness,
    fenceGuard,
    hooks: hookSet.hooks,
    wakeUps,
    drain: createDrain(config, runner),
    // A failsafe promise of an earlier run binds this one, whatever its settings (S6).
    promiseLedger: new FilePromiseLedger(`${config.state_dir}/failsafe-promise.json`),
    // A planned move asks its target's API first (src/ha/target-check.ts), MAC'd as the failsafe requests are.
    targetPeers: new HandoverReadyClient({ token: peerToken, ...(peerTls ? { tls: peerTls } : {}) }),
    // Failsafe mode (docs/failsafe-design.md): ask the other agents' APIs; requests and answers are
    // MAC'd with a key derived from the cluster token (re-read each round), which is never sent.
    ...(config.election.failsafe === "on"
      ? {
          failsafePeers: new FailsafePeerClient({ token: peerToken, wallMs: () => clock.wallMs(), ...(peerTls ? { tls: peerTls } : {}) }),
        }
      : {}),
    ...(apiUrl ? { apiUrl, apiAnswersPeers: !isLoopbackHost(apiListen!.host) } : {}),
    ...(sync ? { sync } : {}),
    ...(data ? { data } : {}),
  });
  const metrics = new AgentMetrics(
    () => ha.view(),
    { cluster: config.cluster, node: config.node.name },
    () => health.states(),
  );
  reloads.add({ reloaded: (what) => metrics.observeReload(what, "ok"), rejected: (what) => metrics.observeReload(what, "rejected") });
  metrics.withWatchdog(() => fenceGuard.watchdogStatus());
  metrics.withInvalidRecords(() => invalidRecords.totals());
  if (data) rejoinMetrics = metrics.withDataRejoin();
  ha.onEvent((e) => metrics.observe(e));
  if (data) metrics.withData(() => data.status());
  if (sync) {
    metrics.withSync(() => sync.status());
    sync.onEvent((e) => {
      metrics.observeSync(e);
      if (e.type === "synced")
        hookSet.hooks.fire("post_sync", { node: config.node.name, cluster: config.cluster, role: "standby", term: null, reason: "generation applied", generation: e.generation });
      // The primary's own edits, published: hooks.post_publish once (per-root post_publish runs in the engine).
      if (e.type === "published" && e.local.length > 0) {
        hookSet.hooks.fire("post_publish", {
          node: config.node.name,
          cluster: config.cluster,
          role: "primary",
          term: ha.view().term ?? null,
          reason: "own changes published",
          generation: e.generation,
          roots: e.local.map((c) => c.root),
        });
      }
      if (e.type === "rescued") hookSet.webhook?.notify({ type: "sync_rescue", root: e.root, dir: e.result.dir, files: e.result.files.length });
    });
  }
  // Notify-only hooks and the webhook run beside the HA loop; they never delay it.
  const who = { node: config.node.name, cluster: config.cluster };
  ha.onEvent((e) => {
    if (e.type === "promoted") {
      const ctx = { ...who, role: "primary", previousRole: "standby", term: e.term, reason: e.kind } as const;
      hookSet.hooks.fire("post_promote", ctx);
      hookSet.hooks.fire("on_role_change", ctx);
    } else if (e.type === "demoted") {
      const ctx = { ...who, role: "standby", previousRole: "primary", term: null, reason: e.why } as const;
      hookSet.hooks.fire("on_demote", ctx);
      hookSet.hooks.fire("on_role_change", ctx);
    }
    if (e.type !== "cycle") hookSet.webhook?.notify(e);
  });
  const api = config.api
    ? buildApi({
        view: () => ha.view(),
        coordinator,
        metrics,
        clock,
        log: log.child({ component: "api" }),
        token,
        authReads: config.api.auth_reads,
        livenessMaxMs: 3 * config.election.renewIntervalMs + config.etcd.request_timeout,
        failbackPreferred: config.failback.preferred ?? null,
        failsafe: { answer: (r) => ha.answerFailsafe(r) },
        ...(tls && tlsSource ? { tls, tlsSource } : {}),
        ...(tokenSource ? { tokenSource } : {}),
        ...(sync ? { sync } : {}),
        ...(data ? { data } : {}),
      })
    : undefined;
  if (api && apiListen) {
    await api.listen(apiListen);
    log.info({ url: apiUrl, listen: config.api?.listen, mutations: token ? "bearer token" : "refused (no api.token_file)" }, "REST API listening");
  }
  log.info({ version: VERSION, cluster: config.cluster, ttl_ms: config.election.ttlMs, fence_margin_ms: config.election.fenceMarginMs }, "agent starting");
  // No vip.start(): the loop's first setDesired() arms the reconciler, after it has
  // decided whether it adopts its own lease (keep the VIP) or not (drop a leftover).
  // Load the held generation first: the loop's first member key and ranking use it.
  await sync?.start();
  data?.start();
  await ha.start();

  let stopping: Promise<void> | undefined;
  return {
    loop: ha,
    log,
    stop: () =>
      (stopping ??= (async () => {
        await ha.stop();
        ipRunner.close();
        garp.close();
        await data?.close();
        await sync?.close();
        await hookSet.close();
        await fenceGuard.close();
        await api?.close();
        await daemon.close();
        await coordinator.close();
      })()),
  };
}

/** Reloads of trust files as log lines (US_E_FILE_RELOAD when refused); the metrics count them too (understudy_trust_file_reloads_total). */
function loggedReloads(log: Logger): ReloadReporter {
  return {
    reloaded: (what, files) => log.info({ what, files }, `${what} changed: re-read`),
    rejected: (what, files, problem) => {
      const err = new UnderstudyError("US_E_FILE_RELOAD", { what, files: files.join(", "), problem });
      log.warn({ code: err.code, what, files }, err.message);
    },
  };
}

function watchdogSettings(config: Config): WatchdogSettings | null {
  const w = config.watchdog;
  if (w.mode === "off") return null;
  return { mode: w.mode, device: w.device, timeoutS: watchdogTimeoutS(config.election, w.safety_margin), safetyMarginMs: w.safety_margin };
}

/** watchdog.mode required: a node whose watchdog could not run does not campaign (and says why in its member key). */
function watchdogReadiness(guard: FenceGuard): Readiness {
  return {
    problem: () => {
      const s = guard.watchdogStatus();
      return s.state === "ready" || s.state === "active" ? null : `watchdog ${s.device ?? ""} ${s.state}${s.problem ? `: ${s.problem}` : ""}`;
    },
    start: () => undefined,
    stop: () => undefined,
  };
}

/** What the fence guard undoes if this agent stops renewing while primary. */
function fenceOrders(config: Config): FenceOrders {
  const held = config.vip && config.vip.backend !== "none";
  const vip = held ? ["ip", "addr", "del", config.vip!.address, "dev", config.vip!.interface] : null;
  const keepalivedTrackFile = config.vip?.backend === "keepalived" ? config.vip.keepalived!.track_file : null;
  const d = config.daemon;
  const base = { dropVip: vip, keepalivedTrackFile };
  if (d.mode === "warm") return { ...base, daemonPidfile: null, stopArgv: null };
  switch (d.backend) {
    case "process":
      return { ...base, daemonPidfile: `${config.state_dir}/daemon.pid`, stopArgv: null };
    case "command":
      return { ...base, daemonPidfile: null, stopArgv: d.stop ?? null };
    case "systemd":
      return { ...base, daemonPidfile: null, stopArgv: ["systemctl", "stop", d.unit!] };
  }
}
