/**
 * Lab harness: a small network of hosts on this machine built from Linux
 * network namespaces, with real etcd, real OpenSSH and an ARP observer.
 *
 * Topology (one run, prefix P, subnet 198.18.X.0/24, X per run):
 *
 *   P-sw   : bridge br0; one veth port per host, named after the host
 *   P-etcd : eth0 198.18.X.2    (etcd on :2379, also 127.0.0.1:2379)
 *   P-n1.. : eth0 198.18.X.11.. (nodes; the VIP is 198.18.X.100/24)
 *   P-cl   : eth0 198.18.X.50   (client: ssh/sftp checks)
 *   P-ob   : eth0 198.18.X.51   (observer: ARP sampler)
 *
 * The bridge lives in its own namespace, so nothing touches the root
 * namespace's interfaces and parallel runs cannot clash. Faults are applied
 * in the switch namespace, invisible to the hosts: linkDown takes the host's
 * bridge port down (the host sees carrier loss), partition() silently drops
 * IP frames between two bridge ports with an nftables bridge-family rule
 * (ARP still passes, so TCP connections hang exactly as in a real partition).
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LAB_DIR_PREFIX, killAllInSync, pidsInNetns, registerLab, sleepSync, unregisterLab } from "./cleanup.js";
import { type ExecOptions, type ExecResult, describeFailure, killGroup, pollUntil, run, runOk, runSync, runSyncOk, sleep } from "./exec.js";
import { Observer } from "./observer.js";
import { authSetupSteps, etcdServerTlsArgs, etcdctlTlsArgs, makeEtcdCredentials, type LabEtcdCredentials } from "./etcd-auth.js";

export interface LabOptions {
  /** Number of node namespaces (n1..nN), 1..20. Default 3. */
  nodes?: number;
  /** etcd with --heartbeat-interval 10 --election-timeout 100 (allows 1 s leases). */
  etcdTuned?: boolean;
  /** Third octet X of 198.18.X.0/24, 1..250. Default: random. */
  subnetIndex?: number;
  /** Start etcd and wait until healthy. Default true. */
  startEtcd?: boolean;
  /** Name prefix (3..12 chars [a-z0-9]). Default "us" + 5 random base36 chars. */
  prefix?: string;
  /** Extra arguments appended to the etcd command line. */
  etcdArgs?: string[];
  /** etcd cluster size: 1 (host "etcd", .2) or 3 (also "etcd2" .3 and "etcd3" .4). Default 1. */
  etcdMembers?: 1 | 3;
  /**
   * "secure" (default): client TLS with client certificates and etcd auth with a least-privilege
   * role for /understudy/lab/ (./etcd-auth.ts); "plain": http without auth, for a test whose
   * agents are configured by something that does not speak the secure setup yet.
   */
  etcdSecurity?: "secure" | "plain";
}

export interface LabHost {
  /** "n1".."nN", "etcd", "cl", "ob". */
  name: string;
  /** Network namespace name, `<prefix>-<name>`. */
  ns: string;
  /** IPv4 address on eth0 (no prefix length). */
  address: string;
  iface: "eth0";
  /** Lower-case MAC of eth0. */
  mac: string;
  /** Name of the host's veth port on the bridge (inside the switch namespace). */
  port: string;
  /** Per-host scratch directory inside the lab dir. */
  dir: string;
}

export interface LabNode extends LabHost {
  /** 1-based node number. */
  index: number;
}

/** A host: its name ("n1", "etcd", "cl", "ob") or a LabHost. */
export type HostRef = string | { name: string };
/** A namespace: a host (name or object) or a raw namespace name. */
export type NsRef = string | { ns: string };

export interface SpawnOptions {
  /** Extra environment variables, merged over process.env. */
  env?: Record<string, string>;
  /** Full stdio override; when given, logFile/stdin are ignored. */
  stdio?: StdioOptions;
  /** stdout+stderr appended here. Default: <lab>/logs/<host>-<cmd>-<n>.log. */
  logFile?: string;
  /** Default 'ignore'. 'pipe' gives the caller child.stdin. */
  stdin?: "ignore" | "pipe";
  cwd?: string;
  /** Run through `setpriv --pdeathsig KILL` so the child dies with this process. Default true. */
  pdeathsig?: boolean;
}

export interface SshdOptions {
  /** Where the (shared) host key is installed. Default <host dir>/ssh. */
  hostKeyDir?: string;
  /** Default 22. Non-22 ports are added to lab.knownHosts as [addr]:port. */
  port?: number;
  /** internal-sftp start directory. Default <host dir>/data. */
  dataDir?: string;
  /** Copy the lab's shared host key into hostKeyDir. Default true. */
  installHostKey?: boolean;
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  /** Where the sshd_config is written. Default <host dir>/sshd_config. */
  configFile?: string;
  /** AuthorizedKeysFile. Default the lab's shared <lab dir>/client/authorized_keys. */
  authorizedKeysFile?: string;
}

export interface SshCheckOptions {
  /**
   * Restrict key exchange to curve25519-sha256 (default true). OpenSSH 9.2's
   * default sntrup761x25519 costs ~130 ms more CPU per handshake on a slow VM.
   */
  fastKex?: boolean;
  /** Overall bound for the ssh/sftp process. Default 5000. */
  timeoutMs?: number;
  /** ssh ConnectTimeout in seconds. Default 1. */
  connectTimeoutS?: number;
  /** Namespace to run the client in. Default: the client namespace. */
  from?: NsRef;
  port?: number;
  user?: string;
}

export interface SshCheckResult {
  ok: boolean;
  latencyMs: number;
  code: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface ObserverOptions {
  /** Sampling interval. Default 20 ms. */
  intervalMs?: number;
  /** Hard bound on the sampler's lifetime. Default 300 s. */
  maxSeconds?: number;
  /** Address to ask for. Default the VIP. */
  target?: string;
}

export interface LabTimings {
  createMs: number;
  networkMs: number;
  etcdReadyMs: number;
  teardownMs?: number;
}

const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const OBSERVER_SCRIPT = fileURLToPath(new URL("./arp_observer.py", import.meta.url));
const SETPRIV = "/usr/bin/setpriv";
const NFT_TABLE = "understudy_lab";
const IP_TIMEOUT = 5000;

function randomPrefix(): string {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  const bytes = randomBytes(5);
  let s = "us";
  for (const b of bytes) s += alphabet[b % 36];
  return s;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

export class Lab {
  readonly prefix: string;
  readonly subnetIndex: number;
  /** "198.18.X.0/24" */
  readonly subnet: string;
  /** "198.18.X.100/24" */
  readonly vip: string;
  /** "198.18.X.100" */
  readonly vipAddress: string;
  readonly vipPrefixLength = 24;
  /** "https://198.18.X.2:2379" (comma-separated client URLs of every member with etcdMembers 3; http with etcdSecurity plain) */
  readonly etcdEndpoint: string;
  /** Client TLS + auth on the lab's etcd (LabOptions.etcdSecurity). */
  readonly etcdSecure: boolean;
  /** The PKI and passwords of the secure etcd, once created. */
  etcdCredentials: LabEtcdCredentials | undefined;
  /** Set once auth is enabled: etcdctl then logs in as root. */
  private etcdAuthOn = false;
  readonly nodes: LabNode[];
  /** The first etcd member. */
  readonly etcd: LabHost;
  /** Every etcd member (one unless etcdMembers is 3). */
  readonly etcdHosts: LabHost[];
  readonly client: LabHost;
  readonly observerHost: LabHost;
  /** Namespace holding the bridge. */
  readonly switchNs: string;
  /** Temp directory holding everything this lab writes. */
  readonly dir: string;
  readonly logDir: string;
  /** Private key of the test client (authorized for root on every sshd). */
  readonly clientKey: string;
  /** known_hosts pinning the VIP and every node address to the shared host key. */
  readonly knownHosts: string;
  /** The shared ed25519 host key (private) and its public half. */
  readonly hostKey: string;
  readonly hostKeyPub: string;
  readonly etcdTuned: boolean;
  readonly timings: LabTimings = { createMs: 0, networkMs: 0, etcdReadyMs: 0 };
  etcdProcess: ChildProcess | undefined;
  /** Per member (index as in etcdHosts); undefined while a member is stopped. */
  readonly etcdProcesses: (ChildProcess | undefined)[] = [];

  private readonly hostsByName = new Map<string, LabHost>();
  private readonly createdNs: string[] = [];
  private readonly procs = new Set<ChildProcess>();
  private readonly cuts = new Set<string>();
  private nftReady = false;
  private logSeq = 0;
  private probeSeq = 0;
  private tornDown = false;
  private readonly knownHostPorts = new Set<number>([22]);
  private readonly opts: LabOptions;

  private constructor(opts: LabOptions) {
    this.opts = opts;
    const n = opts.nodes ?? 3;
    if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`Lab: nodes must be 1..20, got ${n}`);
    this.prefix = opts.prefix ?? randomPrefix();
    if (!/^[a-z0-9]{3,12}$/.test(this.prefix)) throw new Error(`Lab: invalid prefix ${this.prefix}`);
    this.subnetIndex = opts.subnetIndex ?? 1 + (randomBytes(1)[0]! % 250);
    if (!Number.isInteger(this.subnetIndex) || this.subnetIndex < 1 || this.subnetIndex > 250) {
      throw new Error(`Lab: subnetIndex must be 1..250, got ${this.subnetIndex}`);
    }
    this.etcdTuned = opts.etcdTuned ?? false;
    const base = `198.18.${this.subnetIndex}`;
    this.subnet = `${base}.0/24`;
    this.vipAddress = `${base}.100`;
    this.vip = `${this.vipAddress}/24`;
    const members = opts.etcdMembers ?? 1;
    if (members !== 1 && members !== 3) throw new Error(`Lab: etcdMembers must be 1 or 3, got ${String(members)}`);
    this.etcdSecure = (opts.etcdSecurity ?? "secure") === "secure";
    const scheme = this.etcdSecure ? "https" : "http";
    this.etcdEndpoint = Array.from({ length: members }, (_, i) => `${scheme}://${base}.${2 + i}:2379`).join(",");
    this.switchNs = `${this.prefix}-sw`;
    this.dir = mkdtempSync(join(tmpdir(), `${LAB_DIR_PREFIX}${this.prefix}-`));
    this.logDir = join(this.dir, "logs");
    mkdirSync(this.logDir, { recursive: true });

    const mk = (name: string, octet: number): LabHost => {
      const h: LabHost = {
        name,
        ns: `${this.prefix}-${name}`,
        address: `${base}.${octet}`,
        iface: "eth0",
        mac: `02:75:${hex2(this.subnetIndex)}:00:00:${hex2(octet)}`,
        port: name,
        dir: join(this.dir, "hosts", name),
      };
      mkdirSync(h.dir, { recursive: true });
      this.hostsByName.set(name, h);
      return h;
    };
    this.etcd = mk("etcd", 2);
    this.etcdHosts = [this.etcd, ...Array.from({ length: members - 1 }, (_, i) => mk(`etcd${i + 2}`, 3 + i))];
    this.nodes = [];
    for (let i = 1; i <= n; i++) this.nodes.push({ ...mk(`n${i}`, 10 + i), index: i });
    for (const node of this.nodes) this.hostsByName.set(node.name, node);
    this.client = mk("cl", 50);
    this.observerHost = mk("ob", 51);

    this.clientKey = join(this.dir, "client", "id_ed25519");
    this.knownHosts = join(this.dir, "client", "known_hosts");
    this.hostKey = join(this.dir, "hostkey", "ssh_host_ed25519_key");
    this.hostKeyPub = `${this.hostKey}.pub`;
  }

  /** Build the network, keys and (by default) etcd. Tears down on failure. */
  static async create(opts: LabOptions = {}): Promise<Lab> {
    const t0 = performance.now();
    const lab = new Lab(opts);
    registerLab(lab);
    try {
      writeFileSync(join(lab.dir, "lab.json"), JSON.stringify({ prefix: lab.prefix, pid: process.pid, createdAt: new Date().toISOString(), subnet: lab.subnet }, null, 2));
      if (existsSync(`/run/netns/${lab.switchNs}`)) throw new Error(`Lab: namespace ${lab.switchNs} already exists`);
      const startEtcd = opts.startEtcd ?? true;
      // The etcd PKI and the ssh keys need no network: made while it is built.
      const credentials =
        startEtcd && lab.etcdSecure
          ? makeEtcdCredentials(
              join(lab.dir, "etcd-pki"),
              lab.etcdHosts.map((h) => h.address),
            )
          : undefined;
      credentials?.catch(() => undefined); // awaited below; a network failure must not leave it unhandled
      const keys = lab.makeKeys();
      keys.catch(() => undefined);
      await lab.buildNetwork();
      lab.timings.networkMs = performance.now() - t0;
      await keys;
      if (startEtcd) {
        const te = performance.now();
        if (credentials) lab.etcdCredentials = await credentials;
        await lab.startEtcd();
        if (lab.etcdSecure) await lab.enableEtcdAuth();
        lab.timings.etcdReadyMs = performance.now() - te;
      }
      lab.timings.createMs = performance.now() - t0;
      return lab;
    } catch (e) {
      lab.teardownSync();
      throw e;
    }
  }

  // ---------------------------------------------------------------- lookup

  /** All hosts: etcd, nodes, client, observer. */
  get hosts(): LabHost[] {
    return [...this.etcdHosts, ...this.nodes, this.client, this.observerHost];
  }

  host(ref: HostRef): LabHost {
    const name = typeof ref === "string" ? ref : ref.name;
    const h = this.hostsByName.get(name) ?? [...this.hostsByName.values()].find((x) => x.ns === name);
    if (!h) throw new Error(`Lab: unknown host ${name}`);
    return h;
  }

  node(ref: HostRef): LabNode {
    const h = this.host(ref);
    const n = this.nodes.find((x) => x.name === h.name);
    if (!n) throw new Error(`Lab: ${h.name} is not a node`);
    return n;
  }

  /** Namespace name for a host name/object or a raw namespace name. */
  nsOf(ref: NsRef): string {
    if (typeof ref !== "string") return ref.ns;
    if (ref === "sw" || ref === this.switchNs) return this.switchNs;
    const h = this.hostsByName.get(ref);
    if (h) return h.ns;
    if (this.createdNs.includes(ref)) return ref;
    throw new Error(`Lab: unknown namespace ${ref}`);
  }

  /** Address for a target: "vip", a host name/object, or a literal address. */
  addressOf(target: HostRef): string {
    if (typeof target !== "string") return this.host(target).address;
    if (target === "vip") return this.vipAddress;
    return this.hostsByName.get(target)?.address ?? target;
  }

  // --------------------------------------------------------------- network

  private async ip(args: string[]): Promise<void> {
    await runOk(["ip", ...args], { timeoutMs: IP_TIMEOUT });
  }

  /** `ip [-n ns] -batch -` with these command lines: one process instead of one per command. */
  private async ipBatch(lines: readonly string[], ns?: string): Promise<void> {
    await runOk(["ip", ...(ns ? ["-n", ns] : []), "-batch", "-"], { input: `${lines.join("\n")}\n`, timeoutMs: IP_TIMEOUT });
  }

  /**
   * The switch namespace with its bridge, and one namespace per host with a veth to it: three
   * rounds of batched `ip` (namespaces; bridge and veths; each host's addresses, in parallel).
   * Every namespace is recorded before it is made, so teardown deletes a half-built network too.
   */
  private async buildNetwork(): Promise<void> {
    const all = [this.switchNs, ...this.hosts.map((h) => h.ns)];
    this.createdNs.push(...all);
    await this.ipBatch(all.map((ns) => `netns add ${ns}`));
    await this.ipBatch(
      [
        "link set lo up",
        "link add br0 type bridge stp_state 0 forward_delay 0",
        "link set br0 up",
        ...this.hosts.flatMap((h) => [`link add ${h.port} type veth peer name eth0 netns ${h.ns}`, `link set ${h.port} master br0 up`]),
      ],
      this.switchNs,
    );
    await Promise.all(this.hosts.map((h) => this.ipBatch(["link set lo up", `link set eth0 address ${h.mac}`, `addr add ${h.address}/24 dev eth0`, "link set eth0 up"], h.ns)));
  }

  private async makeKeys(): Promise<void> {
    mkdirSync(join(this.dir, "client"), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.dir, "hostkey"), { recursive: true, mode: 0o700 });
    await Promise.all([
      runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `understudy-lab-client-${this.prefix}`, "-f", this.clientKey]),
      runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `understudy-lab-host-${this.prefix}`, "-f", this.hostKey]),
    ]);
    writeFileSync(join(this.dir, "client", "authorized_keys"), readFileSync(`${this.clientKey}.pub`, "utf8"), { mode: 0o600 });
    this.writeKnownHosts();
  }

  private writeKnownHosts(): void {
    const [type, key] = readFileSync(this.hostKeyPub, "utf8").trim().split(/\s+/);
    const addrs = [this.vipAddress, ...this.nodes.map((n) => n.address)];
    const names: string[] = [];
    for (const p of [...this.knownHostPorts].sort((a, b) => a - b)) {
      for (const a of addrs) names.push(p === 22 ? a : `[${a}]:${p}`);
    }
    writeFileSync(this.knownHosts, `${names.join(",")} ${type} ${key}\n`, { mode: 0o600 });
  }

  // ------------------------------------------------------------ processes

  /** Run argv inside a namespace, bounded. Never throws on a non-zero exit. */
  exec(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(["ip", "netns", "exec", this.nsOf(ns), ...argv], opts);
  }

  /** exec() that throws with stderr unless the exit code is 0. */
  async execOk(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(ns, argv, opts);
    if (r.code !== 0) throw new Error(describeFailure([`[${this.nsOf(ns)}]`, ...argv], r));
    return r;
  }

  /**
   * Start a long-running process inside a namespace, in its own process
   * group. Tracked: teardown SIGKILLs its group (and everything else left in
   * the lab's namespaces).
   */
  spawn(ns: NsRef, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.tornDown) throw new Error("Lab: spawn after teardown");
    const nsName = this.nsOf(ns);
    if (argv.length === 0) throw new Error("Lab.spawn: empty argv");
    const wrap = (opts.pdeathsig ?? true) && existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "KILL", "--"] : [];
    const full = ["netns", "exec", nsName, ...wrap, ...argv];
    let stdio: StdioOptions;
    let fd: number | undefined;
    if (opts.stdio !== undefined) {
      stdio = opts.stdio;
    } else {
      const logFile = opts.logFile ?? join(this.logDir, `${nsName.slice(this.prefix.length + 1)}-${basename(argv[0]!)}-${++this.logSeq}.log`);
      fd = openSync(logFile, "a");
      stdio = [opts.stdin ?? "ignore", fd, fd];
    }
    let child: ChildProcess;
    try {
      child = spawn("ip", full, {
        detached: true,
        stdio,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        cwd: opts.cwd,
      });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    this.procs.add(child);
    child.on("error", () => undefined);
    child.once("exit", () => this.procs.delete(child));
    return child;
  }

  /**
   * SIGKILL every process whose network namespace is `ns` (compares
   * /proc/<pid>/ns/net with the inode of /run/netns/<ns>). Returns how many.
   */
  async killAllIn(ns: NsRef): Promise<number> {
    const killed = killAllInSync(this.nsOf(ns));
    await sleep(killed.length ? 20 : 0);
    return killed.length;
  }

  /** Pids of processes in `ns` (by network namespace), optionally only those named `comm`. */
  pidsIn(ns: NsRef, comm?: string): number[] {
    return pidsInNetns(this.nsOf(ns), comm);
  }

  /**
   * The listening sshd in `ns` (the daemon), without its per-connection children: those call
   * setsid() and can outlive the listener (a probe or handshake stopped mid-banner stays until
   * LoginGraceTime). OpenSSH titles the listener `sshd: … [listener] N of M startups`.
   */
  sshdListeners(ns: NsRef): number[] {
    return this.pidsIn(ns, "sshd").filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("[listener]");
      } catch {
        return false; // exited meanwhile
      }
    });
  }

  /** Wait (bounded) until something listens on TCP `port` in `ns`. */
  async waitForListen(ns: NsRef, port: number, timeoutMs = 5000): Promise<boolean> {
    const ok = await pollUntil(
      async () => {
        const r = await this.exec(ns, ["ss", "-Hltn", "sport", "=", `:${port}`], { timeoutMs: 2000 });
        return r.code === 0 && r.stdout.trim().length > 0 ? true : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
    return ok === true;
  }

  // ------------------------------------------------------------------ etcd

  private etcdArgv(index: number, state: "new" | "existing"): string[] {
    const h = this.etcdHosts[index]!;
    const single = this.etcdHosts.length === 1;
    // One member keeps its peer port on loopback, as before; a cluster's members talk over the lab network.
    const peer = (x: LabHost) => (single ? "http://127.0.0.1:2380" : `http://${x.address}:2380`);
    const name = (x: LabHost) => (single ? "lab" : x.name);
    return [
      "etcd",
      "--name",
      name(h),
      "--data-dir",
      join(h.dir, "data"),
      "--listen-client-urls",
      `${this.etcdScheme}://${h.address}:2379,${this.etcdScheme}://127.0.0.1:2379`,
      "--advertise-client-urls",
      `${this.etcdScheme}://${h.address}:2379`,
      ...(this.etcdCredentials ? etcdServerTlsArgs(this.etcdCredentials) : []),
      "--listen-peer-urls",
      peer(h),
      "--initial-advertise-peer-urls",
      peer(h),
      "--initial-cluster",
      this.etcdHosts.map((x) => `${name(x)}=${peer(x)}`).join(","),
      "--initial-cluster-state",
      state,
      "--initial-cluster-token",
      `understudy-lab-${this.prefix}`,
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
      ...(this.etcdTuned ? ["--heartbeat-interval", "10", "--election-timeout", "100"] : []),
      ...(this.opts.etcdArgs ?? []),
    ];
  }

  private async startEtcd(): Promise<void> {
    for (let i = 0; i < this.etcdHosts.length; i++) this.spawnEtcdMember(i, "new");
    const healthy = await pollUntil(
      async () => {
        if (this.etcdProcesses.some((c) => !c || c.exitCode !== null || c.signalCode !== null)) return false;
        for (const h of this.etcdHosts) {
          const listening = await this.exec(h, ["ss", "-Hltn", "sport", "=", ":2379"], { timeoutMs: 2000 });
          if (!listening.stdout.includes(`${h.address}:2379`)) return undefined;
        }
        return (await this.etcdHealthy(this.client, 1000)) ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    if (healthy !== true) {
      const logFile = join(this.logDir, "etcd.log");
      const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : "";
      throw new Error(`Lab: etcd did not become healthy (${healthy === false ? "exited" : "timeout"})\n${tail}`);
    }
  }

  private spawnEtcdMember(index: number, state: "new" | "existing"): ChildProcess {
    const h = this.etcdHosts[index]!;
    const logFile = join(this.logDir, index === 0 ? "etcd.log" : `${h.name}.log`);
    const child = this.spawn(h, this.etcdArgv(index, state), { logFile });
    this.etcdProcesses[index] = child;
    if (index === 0) this.etcdProcess = child;
    return child;
  }

  /** Kill one etcd member (SIGKILL by default) and wait until it exited. */
  async stopEtcdMember(index: number, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.etcdProcesses[index];
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    killGroup(child.pid, signal);
    await Promise.race([exited, sleep(5000)]);
    this.etcdProcesses[index] = undefined;
  }

  /** Restart a stopped member with its data dir (it rejoins the cluster). */
  startEtcdMember(index: number): void {
    if (this.etcdProcesses[index]) return;
    this.spawnEtcdMember(index, "existing");
  }

  /** Index (in etcdHosts) of the current etcd raft leader, or undefined if none answers. */
  async etcdLeaderIndex(): Promise<number | undefined> {
    const r = await this.etcdctl(["endpoint", "status", "-w", "json", "--dial-timeout=500ms", "--command-timeout=1s"], { ns: this.client, timeoutMs: 5000 });
    try {
      const rows = JSON.parse(r.stdout) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
      const lead = rows.find((x) => String(x.Status.header.member_id) === String(x.Status.leader));
      if (!lead) return undefined;
      const i = this.etcdHosts.findIndex((h) => lead.Endpoint.includes(`//${h.address}:`));
      return i >= 0 ? i : undefined;
    } catch {
      return undefined;
    }
  }

  private get etcdScheme(): "http" | "https" {
    return this.etcdSecure ? "https" : "http";
  }

  /**
   * etcdctl and its connection flags for the lab's etcd: the endpoints, and on the secure etcd the
   * client certificate and (once auth is on) root's login. Other endpoints (an etcd a test runs
   * itself over http) get no security flags.
   */
  etcdctlArgv(endpoints = this.etcdEndpoint): string[] {
    const ours = endpoints === this.etcdEndpoint || endpoints.startsWith("https://");
    const c = ours ? this.etcdCredentials : undefined;
    return ["etcdctl", `--endpoints=${endpoints}`, ...(c ? etcdctlTlsArgs(c) : []), ...(c && this.etcdAuthOn ? [`--user=root:${c.rootPassword}`] : [])];
  }

  /** Run etcdctl (API v3) against lab.etcdEndpoint, by default from the etcd namespace. */
  etcdctl(args: readonly string[], opts: { ns?: NsRef; timeoutMs?: number; endpoints?: string; input?: string } = {}): Promise<ExecResult> {
    const execOpts: ExecOptions = { timeoutMs: opts.timeoutMs ?? 5000, env: { ETCDCTL_API: "3" } };
    if (opts.input !== undefined) execOpts.input = opts.input;
    return this.exec(opts.ns ?? this.etcd, [...this.etcdctlArgv(opts.endpoints), ...args], execOpts);
  }

  /** Turn etcd auth on with root and the lab cluster's least-privilege user (./etcd-auth.ts). */
  private async enableEtcdAuth(): Promise<void> {
    const c = this.etcdCredentials!;
    const agentPassword = readFileSync(c.passwordFile, "utf8").trim();
    // The same steps in three rounds, each round's steps at once: users and roles made, then
    // granted, then auth turned on (the last step, alone).
    const steps = authSetupSteps(c, agentPassword);
    const round = (args: readonly string[]) => (args[0] === "auth" ? 2 : args[1] === "add" ? 0 : 1);
    for (const r of [0, 1, 2]) {
      await Promise.all(
        steps
          .filter((step) => round(step.args) === r)
          .map(async (step) => {
            const res = await this.etcdctl(step.args, { ns: this.client, timeoutMs: 15_000, ...(step.input !== undefined ? { input: step.input } : {}) });
            if (res.code !== 0) throw new Error(`Lab: etcdctl ${step.args.slice(0, 2).join(" ")} failed: ${res.stderr.trim()}`);
          }),
      );
    }
    this.etcdAuthOn = true;
  }

  /** `etcdctl endpoint health` from `from` (default client ns); dial and command bounded by timeoutMs. */
  async etcdHealthy(from: NsRef = this.client, timeoutMs = 2000): Promise<boolean> {
    const ms = Math.max(100, Math.floor(timeoutMs));
    const r = await this.etcdctl(["endpoint", "health", `--dial-timeout=${ms}ms`, `--command-timeout=${ms}ms`], {
      ns: from,
      timeoutMs: timeoutMs + 1500,
    });
    return r.code === 0;
  }

  // ---------------------------------------------------------------- faults

  /** Take the host's bridge port down: it is cut off from everyone (and sees carrier loss). */
  async linkDown(ref: HostRef): Promise<void> {
    await this.ip(["-n", this.switchNs, "link", "set", this.host(ref).port, "down"]);
  }

  async linkUp(ref: HostRef): Promise<void> {
    await this.ip(["-n", this.switchNs, "link", "set", this.host(ref).port, "up"]);
  }

  private async nft(script: string): Promise<void> {
    await runOk(["ip", "netns", "exec", this.switchNs, "nft", "-f", "-"], { input: script, timeoutMs: IP_TIMEOUT });
  }

  private async ensureNft(): Promise<void> {
    if (this.nftReady) return;
    await this.nft(
      [
        `table bridge ${NFT_TABLE} {`,
        "  set cut { type ifname . ifname; }",
        "  set cutall { type ifname . ifname; }",
        "  chain labcut {",
        "    type filter hook forward priority 0; policy accept;",
        "    iifname . oifname @cutall drop",
        "    ether type arp accept",
        "    iifname . oifname @cut drop",
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    this.nftReady = true;
  }

  private cutPairs(a: HostRef, b: HostRef): Array<[string, string]> {
    const pa = this.host(a).port;
    const pb = this.host(b).port;
    return pa === pb
      ? []
      : [
          [pa, pb],
          [pb, pa],
        ];
  }

  private static nftElements(pairs: Array<[string, string]>): string {
    return `{ ${pairs.map(([x, y]) => `"${x}" . "${y}"`).join(", ")} }`;
  }

  /**
   * Silently drop every non-ARP frame between hosts a and b, both directions
   * (nftables bridge-family filter in the switch namespace, keyed on the
   * bridge ports, so the VIP and any address the host uses are cut too).
   * ARP still passes, so neighbours stay resolved and TCP hangs instead of
   * failing with EHOSTUNREACH; with dropArp: true ARP is dropped as well (the
   * observer then stops seeing a VIP holder behind the cut). Idempotent.
   */
  async partition(a: HostRef, b: HostRef, opts: { dropArp?: boolean } = {}): Promise<void> {
    const set = opts.dropArp ? "cutall" : "cut";
    const pairs = this.cutPairs(a, b).filter((p) => !this.cuts.has(`${set} ${p.join(" ")}`));
    if (pairs.length === 0) return;
    await this.ensureNft();
    await this.nft(`add element bridge ${NFT_TABLE} ${set} ${Lab.nftElements(pairs)}\n`);
    for (const p of pairs) this.cuts.add(`${set} ${p.join(" ")}`);
  }

  /** Undo partition(a, b) (both the IP-only and the dropArp variant). Idempotent. */
  async heal(a: HostRef, b: HostRef): Promise<void> {
    const script: string[] = [];
    const done: string[] = [];
    for (const set of ["cut", "cutall"]) {
      const pairs = this.cutPairs(a, b).filter((p) => this.cuts.has(`${set} ${p.join(" ")}`));
      if (pairs.length === 0) continue;
      script.push(`delete element bridge ${NFT_TABLE} ${set} ${Lab.nftElements(pairs)}`);
      done.push(...pairs.map((p) => `${set} ${p.join(" ")}`));
    }
    if (script.length === 0) return;
    await this.nft(`${script.join("\n")}\n`);
    for (const k of done) this.cuts.delete(k);
  }

  /** Node can still reach nodes/client/observer, but not etcd (and vice versa): silent drop. */
  async partitionFromEtcd(node: HostRef): Promise<void> {
    for (const h of this.etcdHosts) await this.partition(node, h);
  }

  async healPartition(node: HostRef): Promise<void> {
    for (const h of this.etcdHosts) await this.heal(node, h);
  }

  /**
   * Silently drop all traffic between this host and every other host while
   * its link stays up (no carrier loss, unlike linkDown). IP only unless
   * dropArp: true.
   */
  async isolate(ref: HostRef, opts: { dropArp?: boolean } = {}): Promise<void> {
    const h = this.host(ref);
    for (const o of this.hosts) if (o.name !== h.name) await this.partition(h, o, opts);
  }

  async unisolate(ref: HostRef): Promise<void> {
    const h = this.host(ref);
    for (const o of this.hosts) if (o.name !== h.name) await this.heal(h, o);
  }

  /** Remove every partition. */
  async healAll(): Promise<void> {
    if (this.cuts.size === 0) return;
    await this.nft(`flush set bridge ${NFT_TABLE} cut\nflush set bridge ${NFT_TABLE} cutall\n`);
    this.cuts.clear();
  }

  // ------------------------------------------------------------------- VIP

  /** `ip addr add VIP/24 dev eth0` in the node, then (unless announce: false) gratuitous ARP(s). */
  async addVip(node: HostRef, opts: { announce?: boolean; count?: number; wait?: boolean } = {}): Promise<void> {
    const n = this.node(node);
    await this.ip(["-n", n.ns, "addr", "add", this.vip, "dev", "eth0"]);
    if (opts.announce ?? true) await this.announceVip(n, opts);
  }

  /**
   * Unsolicited ARP for the VIP from the node: `arping -U -c count` (iputils
   * arping only takes whole-second intervals, so packets go 1 s apart and one
   * run lasts `count` seconds). The first packet leaves at once. With
   * wait: false the arping runs in the background (tracked). Note Linux ignores
   * a gratuitous ARP for a neighbour entry updated less than `locktime` (1 s)
   * ago, so after recent traffic use count >= 2 to be sure peers move.
   */
  async announceVip(node: HostRef, opts: { count?: number; wait?: boolean } = {}): Promise<void> {
    const n = this.node(node);
    const c = Math.max(1, Math.min(10, Math.floor(opts.count ?? 1)));
    const argv = ["arping", "-q", "-U", "-c", String(c), "-i", "1", "-I", "eth0", this.vipAddress];
    if (opts.wait === false) {
      this.spawn(n, argv, { logFile: join(this.logDir, `${n.name}-arping.log`) });
      await sleep(10);
      return;
    }
    await this.execOk(n, argv, { timeoutMs: 2000 + c * 1000 });
  }

  /** Remove the VIP from the node if present. */
  async delVip(node: HostRef): Promise<void> {
    const n = this.node(node);
    await run(["ip", "-n", n.ns, "addr", "del", this.vip, "dev", "eth0"], { timeoutMs: IP_TIMEOUT });
  }

  /** Names of nodes whose eth0 currently has the VIP configured. */
  async vipConfiguredOn(): Promise<string[]> {
    // Every node's addresses at once, in node order.
    const held = await Promise.all(
      this.nodes.map(async (n) => {
        const r = await run(["ip", "-n", n.ns, "-j", "addr", "show", "dev", "eth0"], { timeoutMs: IP_TIMEOUT });
        if (r.code !== 0) return false;
        const links = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
        return links.some((l) => l.addr_info?.some((a) => a.local === this.vipAddress));
      }),
    );
    return this.nodes.filter((_, i) => held[i]).map((n) => n.name);
  }

  // ---------------------------------------------------------------- OpenSSH

  /**
   * Write <host dir>/sshd_config for the node, install the lab's shared
   * ed25519 host key, and return the argv running sshd in the foreground.
   */
  sshdConfig(node: HostRef, opts: SshdOptions = {}): string[] {
    const n = this.host(node);
    const port = opts.port ?? 22;
    const hostKeyDir = opts.hostKeyDir ?? join(n.dir, "ssh");
    const dataDir = opts.dataDir ?? join(n.dir, "data");
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    mkdirSync(hostKeyDir, { recursive: true, mode: 0o700 });
    mkdirSync(dataDir, { recursive: true, mode: 0o755 });
    const keyPath = join(hostKeyDir, "ssh_host_ed25519_key");
    if (opts.installHostKey ?? true) {
      copyFileSync(this.hostKey, keyPath);
      chmodSync(keyPath, 0o600);
      copyFileSync(this.hostKeyPub, `${keyPath}.pub`);
      chmodSync(`${keyPath}.pub`, 0o644);
    }
    if (!this.knownHostPorts.has(port)) {
      this.knownHostPorts.add(port);
      this.writeKnownHosts();
    }
    const config = opts.configFile ?? join(n.dir, "sshd_config");
    writeFileSync(
      config,
      [
        `# understudy lab sshd for ${n.name} (${this.prefix})`,
        `Port ${port}`,
        "ListenAddress 0.0.0.0",
        `HostKey ${keyPath}`,
        "PidFile none",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        `AuthorizedKeysFile ${opts.authorizedKeysFile ?? join(this.dir, "client", "authorized_keys")}`,
        // The lab dir lives under /tmp (mode 1777): StrictModes would reject it.
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "MaxStartups 200:30:400",
        "LogLevel INFO",
        `Subsystem sftp internal-sftp -d ${dataDir}`,
        ...(opts.extraConfig ?? []),
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    return ["/usr/sbin/sshd", "-D", "-e", "-f", config];
  }

  /** sshdConfig + spawn in the node's namespace + wait until it listens (bounded). */
  async startSshd(node: HostRef, opts: SshdOptions & { timeoutMs?: number } = {}): Promise<ChildProcess> {
    const n = this.host(node);
    const argv = this.sshdConfig(n, opts);
    const check = await run(["/usr/sbin/sshd", "-t", "-f", argv[4]!], { timeoutMs: 5000 });
    if (check.code !== 0) throw new Error(describeFailure(["sshd", "-t", "-f", argv[4]!], check));
    const logFile = join(this.logDir, `${n.name}-sshd.log`);
    const child = this.spawn(n, argv, { logFile });
    const ok = await this.waitForListen(n, opts.port ?? 22, opts.timeoutMs ?? 5000);
    if (!ok) {
      killGroup(child.pid);
      const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
      throw new Error(`Lab: sshd on ${n.name} did not start listening\n${tail}`);
    }
    return child;
  }

  private sshOpts(o: SshCheckOptions): string[] {
    return [
      "-F",
      "/dev/null",
      "-i",
      this.clientKey,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${this.knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "UpdateHostKeys=no",
      "-o",
      "CheckHostIP=no",
      "-o",
      `ConnectTimeout=${Math.max(1, Math.floor(o.connectTimeoutS ?? 1))}`,
      "-o",
      "LogLevel=ERROR",
      ...((o.fastKex ?? true) ? ["-o", "KexAlgorithms=curve25519-sha256"] : []),
    ];
  }

  /**
   * Full SSH handshake + public-key login from the client namespace, host key
   * pinned by lab.knownHosts (StrictHostKeyChecking=yes). mode 'sftp'
   * (default) opens the sftp subsystem with an empty batch (no login shell
   * involved); mode 'exec' runs `true` through root's login shell, which on a
   * dev box may source a slow ~/.bashrc (pyenv: +150 ms).
   */
  async sshHandshake(target: HostRef = "vip", opts: SshCheckOptions & { mode?: "sftp" | "exec" } = {}): Promise<SshCheckResult> {
    const addr = this.addressOf(target);
    const user = `${opts.user ?? "root"}@${addr}`;
    const port = String(opts.port ?? 22);
    const argv = (opts.mode ?? "sftp") === "exec" ? ["ssh", ...this.sshOpts(opts), "-p", port, user, "true"] : ["sftp", ...this.sshOpts(opts), "-b", "/dev/null", "-P", port, user];
    const r = await this.exec(opts.from ?? this.client, argv, { timeoutMs: opts.timeoutMs ?? 5000 });
    return { ok: r.code === 0, latencyMs: r.ms, code: r.code, timedOut: r.timedOut, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Real SFTP session (sftp -b -): put a small file into the daemon's start
   * directory, then `ls -l`. ok = exit 0 and the uploaded file is listed.
   */
  async sftpLogin(target: HostRef = "vip", opts: SshCheckOptions = {}): Promise<SshCheckResult & { remoteName: string }> {
    const addr = this.addressOf(target);
    const remoteName = `probe-${this.prefix}-${++this.probeSeq}.txt`;
    const local = join(this.dir, "client", "probe.txt");
    writeFileSync(local, `understudy lab probe ${this.prefix} ${new Date().toISOString()}\n`);
    const argv = ["sftp", ...this.sshOpts(opts), "-b", "-", "-P", String(opts.port ?? 22), `${opts.user ?? "root"}@${addr}`];
    const r = await this.exec(opts.from ?? this.client, argv, {
      timeoutMs: opts.timeoutMs ?? 8000,
      input: `put ${local} ${remoteName}\nls -l\n`,
    });
    const ok = r.code === 0 && r.stdout.includes(remoteName);
    return { ok, latencyMs: r.ms, code: r.code, timedOut: r.timedOut, stdout: r.stdout, stderr: r.stderr, remoteName };
  }

  // --------------------------------------------------------------- observer

  /** Start the ARP sampler in the observer namespace; resolves once it has written a first sample. */
  async startObserver(opts: ObserverOptions = {}): Promise<Observer> {
    const intervalMs = opts.intervalMs ?? 20;
    const maxSeconds = opts.maxSeconds ?? 300;
    const file = join(this.dir, `observer-${++this.logSeq}.jsonl`);
    const logFile = join(this.logDir, `observer-${this.logSeq}.log`);
    const argv = [
      PYTHON,
      "-u",
      OBSERVER_SCRIPT,
      "--iface",
      "eth0",
      "--target",
      opts.target ?? this.vipAddress,
      "--src-ip",
      this.observerHost.address,
      "--interval-ms",
      String(intervalMs),
      "--max-seconds",
      String(maxSeconds),
      "--out",
      file,
    ];
    const child = this.spawn(this.observerHost, argv, { stdin: "pipe", logFile });
    child.stdin?.on("error", () => undefined);
    const macToName = new Map<string, string>();
    const nameToMac = new Map<string, string>();
    for (const h of this.hosts) {
      macToName.set(h.mac, h.name);
      nameToMac.set(h.name, h.mac);
    }
    const obs = new Observer(file, child, macToName, nameToMac);
    const started = await pollUntil(() => (obs.samples().length > 0 ? true : !obs.running ? false : undefined), {
      timeoutMs: 5000,
      intervalMs: 20,
    });
    if (started !== true) {
      await obs.stop();
      const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
      throw new Error(`Lab: ARP observer did not start\n${tail}`);
    }
    return obs;
  }

  // --------------------------------------------------------------- teardown

  get isTornDown(): boolean {
    return this.tornDown;
  }

  /**
   * Kill everything, delete the namespaces and the temp dir. Idempotent, best
   * effort. With UNDERSTUDY_LAB_LOGS=DIR set, logs are first copied to DIR/<prefix>.
   */
  async teardown(): Promise<void> {
    this.teardownSync();
  }

  /** Synchronous teardown (usable from process 'exit' hooks). */
  teardownSync(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    const t0 = performance.now();
    for (const p of this.procs) killGroup(p.pid);
    this.procs.clear();
    const all = [...this.createdNs];
    for (const ns of all) {
      try {
        killAllInSync(ns);
      } catch {
        /* best effort */
      }
    }
    const keep = process.env.UNDERSTUDY_LAB_LOGS;
    if (keep) {
      try {
        this.copyLogsTo(join(keep, this.prefix));
      } catch {
        /* best effort */
      }
    }
    // One `ip -force -batch` for all (it goes on past an error), then one by one what is left.
    const present = all.reverse().filter((ns) => existsSync(`/run/netns/${ns}`));
    if (present.length > 1) runSync(["ip", "-force", "-batch", "-"], { input: `${present.map((ns) => `netns del ${ns}`).join("\n")}\n`, timeoutMs: IP_TIMEOUT });
    for (const ns of present) {
      if (!existsSync(`/run/netns/${ns}`)) continue;
      let r = runSync(["ip", "netns", "del", ns], { timeoutMs: IP_TIMEOUT });
      for (let i = 0; i < 3 && r.code !== 0 && existsSync(`/run/netns/${ns}`); i++) {
        sleepSync(50);
        r = runSync(["ip", "netns", "del", ns], { timeoutMs: IP_TIMEOUT });
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      /* best effort */
    }
    this.timings.teardownMs = performance.now() - t0;
    unregisterLab(this);
  }

  /**
   * Copy the lab's logs (etcd, sshd, observer, spawned processes) to dest, e.g. before teardown,
   * and each host's state/*.log (the fence guard's log) as <host>-<file>.
   */
  copyLogsTo(dest: string): void {
    mkdirSync(dest, { recursive: true });
    runSyncOk(["cp", "-a", "--", `${this.logDir}/.`, dest], { timeoutMs: 10_000 });
    for (const h of this.hosts) {
      const state = join(h.dir, "state");
      if (!existsSync(state)) continue;
      for (const f of readdirSync(state)) if (f.endsWith(".log")) copyFileSync(join(state, f), join(dest, `${h.name}-${f}`));
    }
  }
}
