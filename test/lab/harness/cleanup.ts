/**
 * Teardown plumbing shared by every lab in this process:
 *  - a registry of live labs, torn down synchronously on process 'exit',
 *    SIGINT, SIGTERM and SIGHUP;
 *  - killAllInSync(ns): SIGKILL every process whose network namespace is ns;
 *  - sweep(prefix) / sweepStale(): remove leftovers of earlier runs.
 */
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSync } from "./exec.js";

export interface Teardownable {
  teardownSync(): void;
}

export const LAB_DIR_PREFIX = "understudy-lab-";
const PREFIX_RE = /^[a-z0-9]{3,32}$/;

const live = new Set<Teardownable>();
const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
let installed = false;

function teardownAll(): void {
  for (const lab of [...live]) {
    try {
      lab.teardownSync();
    } catch {
      /* best effort */
    }
    live.delete(lab);
  }
}

const onExit = (): void => teardownAll();
const onSignal = (sig: NodeJS.Signals): void => {
  teardownAll();
  uninstall();
  // Re-raise so the default action (terminate) happens, unless someone else
  // also listens for this signal and has decided what to do.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
};

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off("exit", onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

export function registerLab(lab: Teardownable): void {
  live.add(lab);
  install();
}

export function unregisterLab(lab: Teardownable): void {
  live.delete(lab);
  if (live.size === 0) uninstall();
}

/** Block the thread for ms (teardown must be synchronous to run in 'exit'). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

function nsLink(ns: string): string | undefined {
  try {
    return `net:[${statSync(join("/run/netns", ns)).ino}]`;
  } catch {
    return undefined;
  }
}

/**
 * Pids of the processes whose /proc/<pid>/ns/net is the named namespace
 * (pgrep alone would see the whole machine: `ip netns exec` shares the pid
 * namespace), optionally only those whose /proc/<pid>/comm is `comm`.
 */
export function pidsInNetns(ns: string, comm?: string): number[] {
  const target = nsLink(ns);
  if (!target) return [];
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/net`) !== target) continue;
      if (comm !== undefined && readFileSync(`/proc/${e}/comm`, "utf8").trim() !== comm) continue;
      out.push(Number(e));
    } catch {
      continue; // gone, zombie, or kernel thread
    }
  }
  return out;
}

/**
 * SIGKILL every process whose /proc/<pid>/ns/net is the named namespace.
 * Repeats (at most `rounds` times, 20 ms apart) until no process is found, so
 * children forked meanwhile are caught too. Returns the pids killed. Refuses
 * to act on the caller's own namespace.
 */
export function killAllInSync(ns: string, rounds = 5): number[] {
  const target = nsLink(ns);
  if (!target) return [];
  let own: string | undefined;
  try {
    own = readlinkSync("/proc/self/ns/net");
  } catch {
    own = undefined;
  }
  if (own === target) throw new Error(`killAllIn: refusing to kill processes of our own namespace (${ns})`);
  const killed = new Set<number>();
  for (let round = 0; round < rounds; round++) {
    let found = 0;
    let entries: string[];
    try {
      entries = readdirSync("/proc");
    } catch {
      break;
    }
    for (const e of entries) {
      if (!/^\d+$/.test(e)) continue;
      const pid = Number(e);
      if (pid <= 1 || pid === process.pid) continue;
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        continue; // gone, zombie, or kernel thread
      }
      if (link !== target) continue;
      try {
        process.kill(pid, "SIGKILL");
        killed.add(pid);
        found++;
      } catch {
        /* exited meanwhile */
      }
    }
    if (found === 0) break;
    sleepSync(20);
  }
  return [...killed];
}

export function listNetns(): string[] {
  const r = runSync(["ip", "netns", "list"], { timeoutMs: 5000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.length > 0);
}

export interface SweepResult {
  namespaces: string[];
  dirs: string[];
  killed: number;
}

/**
 * Remove everything a lab with this prefix may have left: kill processes in
 * namespaces named `<prefix>-*`, delete those namespaces, and remove
 * `$TMPDIR/understudy-lab-<prefix>-*`. Only exact `<prefix>-` matches are
 * touched, so sweep("usab") never hits "usabcde-n1" of another run.
 */
export function sweep(prefix: string): SweepResult {
  if (!PREFIX_RE.test(prefix)) throw new Error(`sweep: invalid prefix ${JSON.stringify(prefix)}`);
  const res: SweepResult = { namespaces: [], dirs: [], killed: 0 };
  const mine = listNetns().filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of mine) {
    try {
      res.killed += killAllInSync(ns).length;
    } catch {
      /* best effort */
    }
  }
  for (const ns of mine) {
    const r = runSync(["ip", "netns", "del", ns], { timeoutMs: 5000 });
    if (r.code === 0) res.namespaces.push(ns);
  }
  let entries: string[] = [];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    entries = [];
  }
  for (const e of entries) {
    if (!e.startsWith(`${LAB_DIR_PREFIX}${prefix}-`)) continue;
    try {
      rmSync(join(tmpdir(), e), { recursive: true, force: true, maxRetries: 2 });
      res.dirs.push(e);
    } catch {
      /* best effort */
    }
  }
  return res;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Sweep every lab whose lab.json names an owner process that no longer exists. */
export function sweepStale(): SweepResult[] {
  const out: SweepResult[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.startsWith(LAB_DIR_PREFIX)) continue;
    try {
      const meta = JSON.parse(readFileSync(join(tmpdir(), e, "lab.json"), "utf8")) as { prefix?: unknown; pid?: unknown };
      if (typeof meta.prefix !== "string" || typeof meta.pid !== "number") continue;
      if (meta.pid === process.pid || pidAlive(meta.pid)) continue;
      out.push(sweep(meta.prefix));
    } catch {
      /* not a lab dir we understand */
    }
  }
  return out;
}
