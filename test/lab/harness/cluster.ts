/**
 * understudy agents running on a Lab: one agent per node namespace, OpenSSH as
 * the transfer daemon (process backend), the lab VIP, the lab etcd. Used by
 * the end-to-end tests, the demo and the benchmarks.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Lab, type LabNode, type SshdOptions } from "./lab.js";
import { runOk } from "./exec.js";
import { pollUntil } from "./exec.js";
import { API_PORT } from "./observability.js";

export const REPO = resolve(new URL("../../../", import.meta.url).pathname);
export const CLI = join(REPO, "dist", "cli", "main.js");
/** The flags the CLI's shebang gives node (src/cli/main.ts), for when it is started as `node CLI`: read from dist's first line, as scripts/build-deb.sh does. */
export const NODE_FLAGS = shebangFlags(CLI);

function shebangFlags(file: string): string[] {
  const prefix = "#!/usr/bin/env -S node";
  const first = existsSync(file) ? (readFileSync(file, "utf8").split("\n", 1)[0] ?? "") : "";
  if (!first.startsWith(prefix)) return []; // no build yet: every lab test needs one and says so
  return first.slice(prefix.length).trim().split(/\s+/).filter(Boolean);
}

/**
 * What (re)starting an agent costs on this machine right now: a fresh node loading the
 * agent's whole module graph (dist/agent.js), with the CLI's node flags. A baseline for
 * tests whose claim depends on an agent coming back within its lease.
 */
export async function agentLoadMs(): Promise<number> {
  const agent = join(REPO, "dist", "agent.js");
  const r = await runOk([process.execPath, ...NODE_FLAGS, "--input-type=module", "-e", `await import(${JSON.stringify(agent)})`], { timeoutMs: 60_000 });
  return r.ms;
}

export interface ClusterOptions {
  nodes?: number;
  ttl?: string;
  fenceMargin?: string;
  etcdTuned?: boolean;
  priorities?: number[];
  /** More keys inside the `election:` flow mapping, e.g. "failsafe: on". */
  electionYaml?: string;
  /** Extra YAML lines appended to every node's config. */
  extraYaml?: (node: LabNode) => string;
  /** Extra probe list items under `probes:` after the default/probesYaml ones (indented by two spaces, `  - { ... }`), per node. */
  extraProbesYaml?: (node: LabNode) => string;
  /** Extra YAML lines inside the `daemon:` block (indented by two spaces), per node. */
  daemonYaml?: (node: LabNode) => string;
  /** Start the agents at once (default true). */
  start?: boolean;
  /** Wait for a primary after starting (default true). */
  waitForPrimary?: boolean;
  /** An existing lab to use (the keepalived benchmark builds its own first). */
  lab?: Lab;
  /** The node's whole `vip:` block (default: the lab VIP with the ip backend). */
  vipYaml?: (node: LabNode, lab: Lab) => string;
  /** sshd options for a node's transfer daemon (e.g. host keys from a synced root). */
  sshd?: (node: LabNode) => SshdOptions;
  /** File sync between the nodes (see ClusterSyncOptions). */
  sync?: ClusterSyncOptions;
  /** The process backend's command per node (default: the lab sshd); e.g. ProFTPD (./proftpd.ts). */
  daemonCommand?: (node: LabNode) => string[];
  /** The node's `probes:` list items (indent 2; default: the ssh banner probe on :22). */
  probesYaml?: (node: LabNode) => string;
  /** The program that runs the agent, before `agent --config FILE` (default: this node, NODE_FLAGS, dist/cli/main.js); e.g. ['/usr/bin/understudy'] for an installed .deb. */
  agentCommand?: readonly string[];
}

/** The sync sshd's port: always on in every node namespace, like a system sshd beside the transfer daemon. */
export const SYNC_SSH_PORT = 2222;

/**
 * File sync in the lab: a sync sshd on SYNC_SSH_PORT in every node, the
 * dedicated sync key whose authorized_keys line (per node) forces rsync's
 * daemon with the config that node's agent writes (sync.serve_config, per
 * node: <node dir>/sync-rsyncd.conf), and a `sync:` section.
 */
export interface ClusterSyncOptions {
  /** The node's root paths, in roots order (created if missing). */
  rootPaths: (node: LabNode) => string[];
  /** YAML list items under `sync.roots:` for the node (indent 4 spaces). */
  rootsYaml: (node: LabNode) => string;
  /** src/sync/rsyncd.ts authorizedKeysLine(publicKey, { config }), passed in (the harness does not import src/). */
  authorizedKeys: (publicKey: string, serveConfig: string) => string;
  /** More lines inside `sync:` (indent 2 spaces). */
  extraYaml?: string;
  /** sync.ssh.ciphers (absent: the product default, auto). */
  sshCiphers?: string;
}

export interface LeaderView {
  node: string;
  term: number;
}

export class LabCluster {
  readonly agents = new Map<string, ChildProcess>();
  private constructor(
    readonly lab: Lab,
    readonly opts: ClusterOptions,
  ) {}

  static async create(opts: ClusterOptions = {}): Promise<LabCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const lab = opts.lab ?? (await Lab.create({ nodes: opts.nodes ?? 3, etcdTuned: opts.etcdTuned ?? true }));
    const c = new LabCluster(lab, opts);
    try {
      writeFileSync(c.tokenFile, `${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
      if (opts.sync) await c.setUpSync(opts.sync);
      for (const n of lab.nodes) c.writeConfig(n);
      if (opts.start !== false) {
        for (const n of lab.nodes) c.startAgent(n.name);
        if (opts.waitForPrimary !== false) {
          const leader = await c.waitForLeader({ timeoutMs: 20_000 });
          if (!leader) throw new Error("no primary elected within 20 s");
          await c.waitServing(leader.node, 10_000);
        }
      }
      return c;
    } catch (e) {
      await lab.teardown();
      throw e;
    }
  }

  /** Private half of the lab's sync key. */
  get syncKey(): string {
    return join(this.lab.dir, "sync", "sync_ed25519");
  }

  private async setUpSync(sync: ClusterSyncOptions): Promise<void> {
    mkdirSync(join(this.lab.dir, "sync"), { recursive: true, mode: 0o700 });
    await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `understudy-sync-${this.lab.prefix}`, "-f", this.syncKey]);
    const publicKey = readFileSync(`${this.syncKey}.pub`, "utf8");
    // The nodes' sync sshds start at once (each waits until it listens).
    await Promise.all(
      this.lab.nodes.map((n) => {
        for (const p of sync.rootPaths(n)) mkdirSync(p, { recursive: true });
        const authorized = join(n.dir, "sync_authorized_keys");
        writeFileSync(authorized, `${sync.authorizedKeys(publicKey, this.serveConfig(n))}\n`, { mode: 0o600 });
        // SHLVL=1: root's login shell skips ~/.bashrc (pyenv on a dev box costs ~200 ms per pull).
        return this.lab.startSshd(n, {
          port: SYNC_SSH_PORT,
          configFile: join(n.dir, "sync_sshd_config"),
          authorizedKeysFile: authorized,
          hostKeyDir: join(n.dir, "sync-hostkey"),
          extraConfig: ["SetEnv SHLVL=1"],
        });
      }),
    );
  }

  /** sync.serve_config of a node: the rsync daemon config its agent writes. */
  serveConfig(n: LabNode): string {
    return join(n.dir, "sync-rsyncd.conf");
  }

  /** The API bearer token every agent accepts (mode 0600). */
  get tokenFile(): string {
    return join(this.lab.dir, "api-token");
  }

  /** Base URL of a node's REST API. */
  apiUrl(node: string): string {
    return `http://${this.lab.node(node).address}:${API_PORT}`;
  }

  /** Run the understudy CLI in the client namespace against `via`'s API, with the token. */
  async cli(args: readonly string[], opts: { via?: string; timeoutMs?: number; token?: boolean } = {}) {
    const via = opts.via ?? this.lab.nodes[0]!.name;
    const auth = opts.token === false ? [] : ["--token-file", this.tokenFile];
    return this.lab.exec(this.lab.client, [process.execPath, CLI, ...args, "--api", this.apiUrl(via), ...auth], { timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  get prefix(): string {
    return `/understudy`;
  }

  /** The agents' etcd.tls and etcd.auth on the lab's secure etcd (empty on a plain one). */
  private etcdSecurityYaml(): string {
    const c = this.lab.etcdCredentials;
    if (!c) return "";
    return `, tls: { ca: ${c.ca}, cert: ${c.cert}, key: ${c.key} }, auth: { user: ${c.user}, password_file: ${c.passwordFile} }`;
  }

  configPath(node: string): string {
    return join(this.lab.node(node).dir, "understudy.yaml");
  }

  private writeConfig(n: LabNode): void {
    const idx = this.lab.nodes.indexOf(n);
    const priority = this.opts.priorities?.[idx] ?? 100;
    const sshd = this.opts.daemonCommand?.(n) ?? this.lab.sshdConfig(n, this.opts.sshd?.(n));
    const sync = this.opts.sync
      ? `sync:
  roots:
${this.opts.sync.rootsYaml(n)}
  ssh: { user: root, key: ${this.syncKey}, known_hosts: ${this.lab.knownHosts}, port: ${SYNC_SSH_PORT}, connect_timeout: 2s${this.opts.sync.sshCiphers !== undefined ? `, ciphers: ${JSON.stringify(this.opts.sync.sshCiphers)}` : ""} }
  serve_config: ${this.serveConfig(n)}
${this.opts.sync.extraYaml ?? ""}`
      : "";
    const stateDir = join(n.dir, "state");
    mkdirSync(stateDir, { recursive: true });
    const yaml = `# generated by test/lab/harness/cluster.ts
cluster: lab
node: { name: ${n.name}, address: ${n.address}, priority: ${priority} }
etcd: { endpoints: [${this.lab.etcdEndpoint}], request_timeout: 1s${this.etcdSecurityYaml()} }
election: { ttl: ${this.opts.ttl ?? "2s"}, fence_margin: ${this.opts.fenceMargin ?? "500ms"}, ranking_delay: 300ms${this.opts.electionYaml ? `, ${this.opts.electionYaml}` : ""} }
${this.opts.vipYaml?.(n, this.lab) ?? `vip: { address: ${this.lab.vip}, interface: ${n.iface} }`}
daemon:
  backend: process
  mode: cold
  command: ${JSON.stringify(sshd)}
  stop_timeout: 3s
${this.opts.daemonYaml?.(n) ?? ""}
probes:
${this.opts.probesYaml?.(n) ?? "  - { name: sftp, type: ssh, host: 127.0.0.1, port: 22, interval: 1s, timeout: 500ms, fall: 2 }"}
${this.opts.extraProbesYaml?.(n) ?? ""}
state_dir: ${stateDir}
api: { listen: "0.0.0.0:${API_PORT}", token_file: ${this.tokenFile} }
log: { level: debug }
${sync}
${this.opts.extraYaml?.(n) ?? ""}`;
    writeFileSync(this.configPath(n.name), yaml);
  }

  startAgent(node: string): ChildProcess {
    const n = this.lab.node(node);
    // UNDERSTUDY_LAB_AGENT_FLAGS: node flags for the agents only (profiling; see README.md).
    const extra = (process.env.UNDERSTUDY_LAB_AGENT_FLAGS ?? "").split(" ").filter(Boolean);
    const program = this.opts.agentCommand ?? [process.execPath, ...NODE_FLAGS, ...extra, CLI];
    const child = this.lab.spawn(n, [...program, "agent", "--config", this.configPath(n.name)], {
      logFile: join(this.lab.logDir, `${n.name}-agent.log`),
      env: { UNDERSTUDY_LOG_LEVEL: "debug" },
    });
    this.agents.set(n.name, child);
    return child;
  }

  /** Send a signal to the agent process and, for TERM/INT, wait until it exited. */
  async signalAgent(node: string, signal: NodeJS.Signals, waitMs = 10_000): Promise<void> {
    const child = this.agents.get(node);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const pid = await this.agentPid(node);
    if (pid) process.kill(pid, signal);
    if (signal === "SIGSTOP" || signal === "SIGCONT") return;
    await Promise.race([exited, new Promise((r) => setTimeout(r, waitMs))]);
  }

  /** The agent's own pid (the spawned child is `ip netns exec … setpriv … node`, which execs through). */
  async agentPid(node: string): Promise<number | undefined> {
    return this.agents.get(node)?.pid;
  }

  /** The current leader from etcd's leader key, read from the client namespace. */
  async leader(): Promise<LeaderView | null> {
    const r = await this.lab.etcdctl(["get", `${this.prefix}/lab/leader`, "-w", "json"], { timeoutMs: 3000 });
    if (r.code !== 0) return null;
    try {
      const j = JSON.parse(r.stdout) as { kvs?: { value: string; mod_revision: number }[] };
      const kv = j.kvs?.[0];
      if (!kv) return null;
      const v = JSON.parse(Buffer.from(kv.value, "base64").toString()) as { node: string };
      return { node: v.node, term: Number(kv.mod_revision) };
    } catch {
      return null;
    }
  }

  /**
   * Wait until each node has published a healthy standby member key (its agent is up and
   * following the primary): agents take seconds to start on a busy machine, and a handover
   * picks among the members that exist.
   */
  async waitForStandbys(nodes: readonly string[], timeoutMs: number): Promise<boolean> {
    const ok = await pollUntil(
      async () => {
        const r = await this.lab.etcdctl(["get", "--prefix", `${this.prefix}/lab/members/`, "--print-value-only"], { timeoutMs: 3000 });
        const members = r.stdout.split("\n").flatMap((line) => {
          try {
            return [JSON.parse(line) as { node: string; role: string; healthy: boolean }];
          } catch {
            return [];
          }
        });
        return nodes.every((n) => members.some((m) => m.node === n && m.role === "standby" && m.healthy)) ? true : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    );
    return ok === true;
  }

  /** The leader key's lease id in hex (as `etcdctl lease …` takes it), or null without a leader. */
  async leaderLease(): Promise<string | null> {
    const r = await this.lab.etcdctl(["get", `${this.prefix}/lab/leader`, "-w", "json"], { timeoutMs: 3000 });
    // Lease ids are 64-bit: read the digits, JSON.parse would round them to a double.
    const lease = /"lease":(\d+)/.exec(r.stdout)?.[1];
    return lease === undefined ? null : BigInt(lease).toString(16);
  }

  /**
   * The earliest moment (performance.now()) etcd can expire this lease, from the remaining TTL
   * etcd reports now (whole seconds, rounded down, counted from before the request was sent):
   * a lower bound, whatever renewals follow. null if etcd says the lease is gone.
   */
  async leaseEarliestExpiry(leaseHex: string): Promise<number | null> {
    const before = performance.now();
    const r = await this.lab.etcdctl(["lease", "timetolive", leaseHex, "-w", "json"], { timeoutMs: 5000 });
    if (r.code !== 0) throw new Error(`etcdctl lease timetolive ${leaseHex}: exit ${r.code} ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { ttl?: number; TTL?: number };
    const ttl = Number(j.ttl ?? j.TTL ?? -1);
    return ttl > 0 ? before + ttl * 1000 : null;
  }

  async waitForLeader(opts: { timeoutMs: number; not?: string; term?: (t: number) => boolean }): Promise<LeaderView | null> {
    let found: LeaderView | null = null;
    await pollUntil(
      async () => {
        const l = await this.leader();
        if (l && l.node !== opts.not && (opts.term?.(l.term) ?? true)) {
          found = l;
          return true;
        }
        return undefined;
      },
      { timeoutMs: opts.timeoutMs, intervalMs: 100 },
    );
    return found;
  }

  /**
   * The VIP is configured on `node` and an SFTP handshake through it works. (A
   * dead node whose link is down may still have it configured: what counts on
   * the wire is what the observer sees.)
   */
  async waitServing(node: string, timeoutMs: number): Promise<boolean> {
    return pollUntil(
      async () => {
        const on = await this.lab.vipConfiguredOn();
        if (!on.includes(node)) return undefined;
        return (await this.lab.sshHandshake("vip", { timeoutMs: 3000 })).ok || undefined;
      },
      { timeoutMs, intervalMs: 100 },
    ).then((r) => Boolean(r));
  }

  /** `understudy status` run from the client namespace. */
  async status(json = false): Promise<string> {
    const r = await this.lab.exec(
      this.lab.client,
      [
        process.execPath,
        CLI,
        "status",
        ...(this.lab.etcdCredentials ? ["--config", this.configPath(this.lab.nodes[0]!.name)] : ["--etcd", this.lab.etcdEndpoint, "--cluster", "lab"]),
        ...(json ? ["--json"] : []),
      ],
      { timeoutMs: 10_000 },
    );
    // --json: stdout alone is the document (stderr may carry a fallback notice).
    return json ? r.stdout : r.stdout + r.stderr;
  }

  async teardown(): Promise<void> {
    await this.lab.teardown();
  }
}
