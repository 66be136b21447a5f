/**
 * The fault catalogue. Each fault kind injects one bounded fault and returns
 * how to heal it; the runner holds it for the scheduled time, heals it, and
 * lets the cluster settle before the next one. Targets are resolved when the
 * fault is injected ("the primary", "a standby"), so the same seeded schedule
 * means the same thing for understudy and for the keepalived peer.
 *
 * Kinds that this machine cannot inject faithfully are listed in
 * NOT_INJECTED with the reason, and are never pretended.
 */
import { readFileSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { killGroup, run, sleep } from "../lab/harness/exec.js";
import type { Lab } from "../lab/harness/lab.js";
import type { LabCluster } from "../lab/harness/cluster.js";
import type { Prng } from "./prng.js";

export const FAULT_KINDS = [
  "agent_kill9",
  "agent_sigstop",
  "daemon_kill",
  "partition_node_etcd",
  "partition_node_node",
  "partition_client_primary",
  "etcd_member_kill",
  "etcd_leader_kill",
  "etcd_quorum_loss",
  "disk_full_standby",
  "packet_loss",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Asked for by the issue, not injected here, and why. */
export const NOT_INJECTED: Record<string, string> = {
  packet_delay:
    'tc netem is unavailable: this kernel has no sch_netem ("Specified qdisc kind is unknown"), and nftables can drop but not delay; packet loss is injected with an nftables numgen rule instead',
  slow_disk:
    "no faithful slow disk: no device-mapper in this kernel (dm-delay), and no FUSE delay filesystem installed; a cgroup io.max throttle needs a block device under the sync root (here tmpfs)",
  clock_step:
    "the wall clock is machine-global (stepping it would disturb every process on the host), and time namespaces only offset CLOCK_MONOTONIC/BOOTTIME of processes started inside them, not CLOCK_REALTIME of a running agent",
};

/** Hold time range (ms) per kind, before scaling. */
const HOLD: Record<FaultKind, [number, number]> = {
  agent_kill9: [3000, 6000],
  agent_sigstop: [3000, 6000],
  daemon_kill: [0, 0],
  partition_node_etcd: [4000, 7000],
  partition_node_node: [3000, 6000],
  partition_client_primary: [2000, 4000],
  etcd_member_kill: [3000, 6000],
  etcd_leader_kill: [3000, 6000],
  etcd_quorum_loss: [3000, 6000],
  disk_full_standby: [4000, 8000],
  packet_loss: [4000, 8000],
};

/** Fault kinds that only make sense with understudy (etcd, file sync). */
const UNDERSTUDY_ONLY: ReadonlySet<FaultKind> = new Set(["partition_node_etcd", "etcd_member_kill", "etcd_leader_kill", "etcd_quorum_loss", "disk_full_standby"]);

export interface FaultSpec {
  id: number;
  kind: FaultKind;
  holdMs: number;
  /** A number in [0,1) for the fault's own choices (which target, which variant). */
  choice: number;
  /** Pause after the cluster settled, before the next fault. */
  gapMs: number;
}

/** A seeded schedule: kinds in shuffled rounds (every kind once per round), holds and choices drawn from prng. */
export function makeSchedule(prng: Prng, count: number, opts: { kinds?: readonly FaultKind[]; holdScale?: number; gapMs?: [number, number] } = {}): FaultSpec[] {
  const kinds = opts.kinds ?? FAULT_KINDS;
  const out: FaultSpec[] = [];
  while (out.length < count) {
    for (const kind of prng.shuffle(kinds)) {
      if (out.length >= count) break;
      const [a, b] = HOLD[kind];
      const [g0, g1] = opts.gapMs ?? [500, 2000];
      out.push({ id: out.length + 1, kind, holdMs: Math.round(prng.int(a, b) * (opts.holdScale ?? 1)), choice: prng.next(), gapMs: prng.int(g0, g1) });
    }
  }
  return out;
}

export interface FaultEnv {
  lab: Lab;
  controller: "understudy" | "keepalived";
  cluster?: LabCluster;
  /** The node serving now (leader key for understudy, the ARP holder for keepalived). */
  primary(): Promise<string | undefined>;
  /** Directory of a node's sync volume (a tmpfs), for disk_full_standby. */
  volumeOf?(node: string): string;
  /** keepalived peer: its process per node, and how to restart it. */
  keepalived?: { pid(node: string): number | undefined; restart(node: string): void };
  /** Restart the transfer daemon by hand (keepalived peer: nobody else does). */
  restartDaemon?(node: string): Promise<void>;
  log(line: string): void;
}

export interface ActiveFault {
  target?: string;
  detail?: string;
  heal(): Promise<void>;
}

const pickOf = <T>(items: readonly T[], choice: number): T => items[Math.min(items.length - 1, Math.floor(choice * items.length))]!;

/** Pids of the transfer daemon's listener in a node: sshd started with `-f <node dir>/sshd_config` (never the sync sshd). */
export function transferDaemonPids(lab: Lab, node: string): number[] {
  const n = lab.node(node);
  const config = join(n.dir, "sshd_config");
  return lab.pidsIn(n.ns, "sshd").filter((pid) => {
    try {
      // sshd rewrites its title to "sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ..."; per-connection children say "sshd: root [priv]".
      const title = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      return title.includes(`-f ${config} `) || title.trimEnd().endsWith(`-f ${config}`);
    } catch {
      return false;
    }
  });
}

const LOSS_TABLE = "chaos_loss";

/** Inject one fault. Returns undefined (with a reason) when it does not apply. */
export async function inject(env: FaultEnv, spec: FaultSpec): Promise<ActiveFault | { skipped: string }> {
  const { lab, cluster } = env;
  if (env.controller === "keepalived" && UNDERSTUDY_ONLY.has(spec.kind)) return { skipped: "not applicable to keepalived (no etcd, no file sync)" };
  const primary = await env.primary();
  const nodes = lab.nodes.map((n) => n.name);
  const standbys = nodes.filter((n) => n !== primary);
  // Agent/daemon faults hit the primary three times out of four, otherwise a standby.
  const primaryOrStandby = () => (primary && spec.choice < 0.75 ? primary : pickOf(standbys, (spec.choice % 0.25) * 4));

  switch (spec.kind) {
    case "agent_kill9": {
      const target = primaryOrStandby();
      if (env.controller === "keepalived") {
        killGroup(env.keepalived!.pid(target), "SIGKILL");
        await sleep(50);
        return { target, heal: async () => env.keepalived!.restart(target) };
      }
      await cluster!.signalAgent(target, "SIGKILL");
      return { target, heal: async () => void cluster!.startAgent(target) };
    }
    case "agent_sigstop": {
      const target = primaryOrStandby();
      if (env.controller === "keepalived") {
        const pid = env.keepalived!.pid(target);
        killGroup(pid, "SIGSTOP");
        return { target, heal: async () => killGroup(pid, "SIGCONT") };
      }
      await cluster!.signalAgent(target, "SIGSTOP");
      return { target, heal: () => cluster!.signalAgent(target, "SIGCONT") };
    }
    case "daemon_kill": {
      if (!primary) return { skipped: "no primary to kill the daemon of" };
      const pids = transferDaemonPids(lab, primary);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      return {
        target: primary,
        detail: `killed ${pids.length} sshd listener(s)`,
        heal: async () => {
          if (env.restartDaemon) await env.restartDaemon(primary);
        },
      };
    }
    case "partition_node_etcd": {
      const target = spec.choice < 0.75 && primary ? primary : pickOf(standbys, (spec.choice % 0.25) * 4);
      await lab.partitionFromEtcd(target);
      return { target, heal: () => lab.healPartition(target) };
    }
    case "partition_node_node": {
      if (!primary) return { skipped: "no primary" };
      if (spec.choice < 0.5) {
        // The primary loses both peers (it still reaches etcd and the clients).
        for (const s of standbys) await lab.partition(primary, s);
        return {
          target: `${primary}|${standbys.join(",")}`,
          heal: async () => {
            for (const s of standbys) await lab.heal(primary, s);
          },
        };
      }
      const other = pickOf(standbys, (spec.choice - 0.5) * 2);
      await lab.partition(primary, other);
      return { target: `${primary}|${other}`, heal: () => lab.heal(primary, other) };
    }
    case "partition_client_primary": {
      if (!primary) return { skipped: "no primary" };
      await lab.partition(lab.client, primary);
      return { target: primary, heal: () => lab.heal(lab.client, primary) };
    }
    case "etcd_member_kill":
    case "etcd_leader_kill":
    case "etcd_quorum_loss": {
      const leader = await lab.etcdLeaderIndex();
      const all = lab.etcdHosts.map((_, i) => i);
      let victims: number[];
      if (spec.kind === "etcd_leader_kill") victims = [leader ?? 0];
      else if (spec.kind === "etcd_member_kill")
        victims = [
          pickOf(
            all.filter((i) => i !== leader),
            spec.choice,
          ),
        ];
      else
        victims = [
          leader ?? 0,
          pickOf(
            all.filter((i) => i !== (leader ?? 0)),
            spec.choice,
          ),
        ];
      for (const i of victims) await lab.stopEtcdMember(i);
      return {
        target: victims.map((i) => lab.etcdHosts[i]!.name).join(","),
        detail: `etcd leader was ${leader === undefined ? "unknown" : lab.etcdHosts[leader]!.name}`,
        heal: async () => {
          for (const i of victims) lab.startEtcdMember(i);
        },
      };
    }
    case "disk_full_standby": {
      const target = pickOf(standbys, spec.choice);
      const vol = env.volumeOf!(target);
      const fill = join(vol, "chaos-fill.bin");
      const st = statfsSync(vol);
      const free = st.bavail * st.bsize;
      let r = await run(["fallocate", "-l", String(free), fill], { timeoutMs: 10_000 });
      if (r.code !== 0) r = await run(["dd", "if=/dev/zero", `of=${fill}`, "bs=1M", "status=none"], { timeoutMs: 20_000 });
      const after = statfsSync(vol);
      return {
        target,
        detail: `filled ${vol}: ${Math.round((after.bavail * after.bsize) / 1024)} KiB left`,
        heal: async () => rmSync(fill, { force: true }),
      };
    }
    case "packet_loss": {
      if (!primary) return { skipped: "no primary" };
      const port = lab.node(primary).port;
      const pct = 20;
      const script = [
        `add table bridge ${LOSS_TABLE}`,
        `add chain bridge ${LOSS_TABLE} lossy { type filter hook forward priority 1; policy accept; }`,
        // IPv4 frames only: ARP is left alone so the observer's own samples are not lost (they would read as "no holder").
        `add rule bridge ${LOSS_TABLE} lossy iifname "${port}" ether type ip numgen random mod 100 < ${pct} drop`,
        `add rule bridge ${LOSS_TABLE} lossy oifname "${port}" ether type ip numgen random mod 100 < ${pct} drop`,
        "",
      ].join("\n");
      await lab.execOk("sw", ["nft", "-f", "-"], { input: script, timeoutMs: 5000 });
      return {
        target: primary,
        detail: `${pct}% of IPv4 frames to and from ${primary} dropped`,
        heal: async () => {
          await lab.exec("sw", ["nft", "delete", "table", "bridge", LOSS_TABLE], { timeoutMs: 5000 });
        },
      };
    }
  }
}

/** Undo anything a fault may have left behind (used before giving up on a run). */
export async function healEverything(lab: Lab): Promise<void> {
  await lab.healAll().catch(() => undefined);
  await lab.exec("sw", ["nft", "delete", "table", "bridge", LOSS_TABLE], { timeoutMs: 5000 }).catch(() => undefined);
  for (let i = 0; i < lab.etcdHosts.length; i++) if (!lab.etcdProcesses[i]) lab.startEtcdMember(i);
}
