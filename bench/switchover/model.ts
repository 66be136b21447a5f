// The switchover benchmark's options, records and shared helpers (bench/switchover/run.ts).
import { loadavg } from "node:os";
import { type Observer, sleep } from "../../test/lab/harness/index.js";
import { type Stats, forEachArg } from "../failover/lib.js";

// ------------------------------------------------------------------ options

export type ModeName = "cold" | "warm";

export interface Options {
  runs: number;
  json: string | undefined;
  only: Set<string> | undefined;
  /** Prober --slow-ms (15: a new attempt every 20 ms tick from the first hang; 50: the failover prober's cadence). */
  slowMs: number;
  /** Before each mode, wait (at most 10 min) until the 1-minute load average is below this. */
  waitLoad: number | undefined;
  /** How the switchover is requested: the CLI (a Node process started per run, as an operator types it) or one POST from a resident client. */
  trigger: "cli" | "api";
}

export function parseArgs(argv: string[]): Options {
  let runs = 10;
  let json: string | undefined;
  let only: Set<string> | undefined;
  let quick = false;
  let slowMs = 15;
  let waitLoad: number | undefined;
  let trigger: "cli" | "api" = "cli";
  forEachArg(argv, (a, val) => {
    if (a === "--runs") runs = Number(val());
    else if (a === "--quick") quick = true;
    else if (a === "--json") json = val();
    else if (a === "--only")
      only = new Set(
        val()
          .split(",")
          .map((s) => s.trim()),
      );
    else if (a === "--prober-slow-ms") slowMs = Number(val());
    else if (a === "--wait-load") waitLoad = Number(val());
    else if (a === "--trigger") {
      const t = val();
      if (t !== "cli" && t !== "api") throw new Error(`--trigger takes cli or api, got ${t}`);
      trigger = t;
    } else if (a === "--help" || a === "-h") {
      console.log("usage: bench/switchover/run.ts [--runs N] [--quick] [--json FILE] [--only cold,warm,keepalived] [--prober-slow-ms 15] [--wait-load 1.0] [--trigger cli|api]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (quick) runs = 3;
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs must be 1..50");
  if (only) for (const o of only) if (!["cold", "warm", "keepalived"].includes(o)) throw new Error(`--only: unknown ${o}`);
  if (!(slowMs >= 0 && slowMs <= 1000)) throw new Error("--prober-slow-ms must be 0..1000");
  if (waitLoad !== undefined && !(waitLoad > 0 && waitLoad < 100)) throw new Error("--wait-load takes a load average like 1.0");
  return { runs, json, only, slowMs, waitLoad, trigger };
}

/** Target medians of the client-visible gap (issue 16 part 3). */
export const TARGET_MS: Record<ModeName, number> = { cold: 100, warm: 50 };
export const LEADER_KEY = "/understudy/lab/leader";

// ------------------------------------------------------------------ records

/** Milliseconds after the old primary's "stepping down to standby" log line (null: not seen). */
export interface Breakdown {
  /** Old primary: decision "switchover: handing over to …" (the request seen), relative to stepping down (negative). */
  requestSeen: number | null;
  /** Old primary: the reconciler's `ip -j addr show` done, `ip addr del` starts ("held but not desired: removing"). */
  removeStarted: number | null;
  vipRemoved: number | null;
  daemonStopped: number | null;
  released: number | null;
  /** etcdctl watch in the etcd namespace: the leader key's DELETE and the new PUT. */
  keyDeleted: number | null;
  /** New primary: decision "campaigning: switchover to me", or "promoting: the leader key names me" (a key handed over). */
  campaigning: number | null;
  won: number | null;
  /** New primary: "fence guard started" (a guard process spawned on promotion), when it happened in this run. */
  guardStarted: number | null;
  daemonStarted: number | null;
  /** New primary: the reconciler's `ip -j addr show` done, `ip addr add` starts ("desired but not held: adding"). */
  addStarted: number | null;
  vipAdded: number | null;
  /** `ip addr add` itself (the agent's "floating IP added" ms field). */
  vipAddTook: number | null;
  acting: number | null;
  keyPut: number | null;
  /** ARP observer (20 ms samples): first sample in which the new primary answered for the VIP. */
  arpAnswer: number | null;
  lastBannerBefore: number | null;
  /** Start of the attempt that brought the first banner after the gap (its end minus this = sshd's banner latency then). */
  firstOkStarted: number | null;
  firstBannerAfter: number | null;
}

export interface SwitchRun {
  run: number;
  from: string;
  to: string;
  ok: boolean;
  /** Client-visible gap: last banner before -> first banner after, ms. */
  gapMs: number | null;
  /** The CLI's "handover took N ms". */
  cliHandoverMs: number | null;
  /** durations.handover_ms of the history event of this switchover. */
  historyHandoverMs: number | null;
  /** Wall time of the CLI process (node start, POST, following until done). */
  cliWallMs: number | null;
  /** For reference: the longest banner gap anywhere after the command (may be an unrelated hiccup). */
  longestGapAfterCommandMs?: number | null;
  /** The old primary sees the request (its decision log line) -> first banner from the new primary. */
  requestToBannerMs: number | null;
  cliLine: string;
  failures: Record<string, number>;
  proberResolutionMs: number | null;
  breakdown?: Breakdown;
  /** CPU ms per process group (bench/switchover/cpu.ts) in the second before the request and the second from it. */
  cpuBefore?: Record<string, number>;
  cpuAfter?: Record<string, number>;
  error?: string;
}

export interface ObserverCount {
  samples: number;
  twoHolder: number;
  maxHolders: number;
}

export interface ModeResult {
  mode: ModeName;
  /** How each switchover was requested (--trigger). */
  trigger: "cli" | "api";
  runs: SwitchRun[];
  gap?: Stats | undefined;
  cliHandover?: Stats | undefined;
  historyHandover?: Stats | undefined;
  requestToBanner?: Stats | undefined;
  observer?: ObserverCount;
  loadavg: { start: string; end: string };
  wallSeconds: number;
  /** mtime of dist/ha/role.js when the mode started (other engineers may rebuild meanwhile). */
  build: string;
  error?: string;
}

export interface KaRun {
  run: number;
  from: string;
  to: string;
  ok: boolean;
  gapMs: number | null;
  /** SIGHUP -> first ARP answer from the new master (observer). */
  arpAnswerMs: number | null;
  /** SIGHUP -> first banner after. */
  hupToBannerMs: number | null;
  failures: Record<string, number>;
  error?: string;
}

export interface KaResult {
  version: string;
  method: string;
  runs: KaRun[];
  gap?: Stats | undefined;
  hupToBanner?: Stats | undefined;
  observer?: ObserverCount;
  loadavg: { start: string; end: string };
  wallSeconds: number;
  error?: string;
}

// ------------------------------------------------------------------ helpers

export const log = (msg: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};
export const la = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

/** Wait (bounded: 10 min) until the 1-minute load average is below `max`; other work on a 2-core host skews the figures. */
export async function waitForLoad(max: number | undefined): Promise<void> {
  if (max === undefined) return;
  const started = Date.now();
  while (loadavg()[0]! >= max && Date.now() - started < 600_000) await sleep(5000);
  const waited = Math.round((Date.now() - started) / 1000);
  log(`load average ${la()} after waiting ${waited} s for the 1-minute figure to fall below ${max}${loadavg()[0]! >= max ? " (gave up after 10 min)" : ""}`);
}
export const r0 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x));
export const jitter = (maxMs: number): Promise<void> => sleep(Math.floor(Math.random() * maxMs));

export function countObserver(obs: Observer, samples: ReturnType<Observer["samples"]>): ObserverCount {
  return { samples: samples.length, twoHolder: samples.filter((s) => s.macs.length >= 2).length, maxHolders: obs.maxSimultaneousHolders(samples) };
}

/** Next node after `from` in n1, n2, n3 order: targets rotate through every node. */
/**
 * A gap that began before the request measures the prober, not the move: its new
 * connection every 20 ms tick can keep sshd busy on this 2-core host until banners
 * stop altogether (seen 2026-12-06: 1.6-1.8 s of sshd CPU per second, no banner for
 * 2 s before the request). Such a run is discarded with the reason, not reported.
 */
export function assertGapAfterRequest(gapFromMs: number, requestMs: number): void {
  if (gapFromMs < requestMs) throw new Error(`no banner since ${Math.round(requestMs - gapFromMs)} ms before the request: the prober overloaded sshd by itself; run discarded`);
}

export function nextNode(nodes: readonly { name: string }[], from: string): string {
  const i = nodes.findIndex((n) => n.name === from);
  return nodes[(i + 1) % nodes.length]!.name;
}
