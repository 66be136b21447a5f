// Batches without the start-up cost (docs/data-replication-design.md §6, "Warm
// batches"). Every batch rsync pays a process chain before its first byte: the
// ssh session over the ControlMaster, the standby's sshd fork, its shell, the
// forced rsync daemon, the module's chroot: 45-120 ms of a one-file batch in the
// lab (docs/benchmarks.md). rsync connects and opens the module before it
// reads --files-from, so the shipper starts the next batch's rsync while the
// current one runs; it waits, connected, for its list on stdin, and a batch that
// finds one waiting only pays for the list and its files.
//
// Bounds: at most one waiting run per key (standby and root), MAX_WAITING per
// standby (sessions on one ssh connection: sshd's MaxSessions). One not taken
// within `idleMs` is retired with an empty list (rsync exits 0 having sent
// nothing); one that exited while it waited (the standby refused the session,
// the link broke) is dropped, and the batch starts its own. Each run's
// timeout is idleMs + shipTimeoutMs from its start, and the caller's abort signal
// (shipper stop, a standby dropped) kills it, waiting or not.
import type { Clock, TimerHandle } from "../platform/clock.js";
import { describeError } from "../errors/catalogue.js";
import { classifyShipFailure } from "./ship-plan.js";
import type { CommandResult, CommandRunner } from "../platform/command.js";

export interface WarmRsyncDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  /** How long a started run waits for its list before it is retired (> 0). */
  readonly idleMs: number;
  /** data.ship_timeout: the transfer's own bound once the list is sent. */
  readonly shipTimeoutMs: number;
  /** At most this many runs wait at once (default MAX_WAITING). */
  readonly maxWaiting?: number;
}

/**
 * Runs waiting per standby, whatever the number of data roots. Every run is a session on the one
 * ControlMaster connection to the standby, whose sshd allows MaxSessions (default 10) per
 * connection: with the batch in flight and a rejoin pull this stays well below.
 */
export const MAX_WAITING = 2;

/**
 * After a run exited while it waited (a refused session, a broken link), no new one for its key
 * this long: batches start cold meanwhile, and a stream of upload events does not spawn ssh at
 * the rate the kernel reports them.
 */
export const EARLY_EXIT_PAUSE_MS = 5000;

/** A started rsync that was waiting for its list: send it, then await `result`. */
export interface WarmRun {
  send(list: Buffer): void;
  readonly result: Promise<CommandResult>;
}

interface Waiting {
  readonly argv: readonly string[];
  readonly result: Promise<CommandResult>;
  readonly list: (data: Buffer) => void;
  readonly idle: TimerHandle;
  exited: boolean;
}

export class WarmRsyncs {
  private readonly waiting = new Map<string, Waiting>();
  /** Every run started and not yet exited (waiting, taken or retired). */
  private readonly running = new Set<Promise<CommandResult>>();
  /** Per key: no start before this monotonic time (EARLY_EXIT_PAUSE_MS). */
  private readonly pausedUntil = new Map<string, number>();

  constructor(private readonly deps: WarmRsyncDeps) {}

  /** Resolves once every run started here has exited (after the abort, at a stop). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** Starts a run of `argv` for `key` unless one is waiting there already; true when it started one. */
  start(key: string, argv: readonly string[], signal: AbortSignal): boolean {
    if (signal.aborted) return false;
    const current = this.waiting.get(key);
    if (current !== undefined && !current.exited) return false;
    if (this.waiting.size >= (this.deps.maxWaiting ?? MAX_WAITING)) return false;
    if ((this.pausedUntil.get(key) ?? 0) > this.deps.clock.monotonicMs()) return false;
    let list!: (data: Buffer) => void;
    const input = new Promise<Buffer>((resolve) => (list = resolve));
    const result = this.deps.runner.run(argv, { input, timeoutMs: this.deps.idleMs + this.deps.shipTimeoutMs, signal });
    const w: Waiting = {
      argv: [...argv],
      result,
      list,
      exited: false,
      idle: this.deps.clock.setTimer(this.deps.idleMs, () => this.retire(key, w)),
    };
    this.waiting.set(key, w);
    this.running.add(result);
    const gone = (): void => {
      this.running.delete(result);
      w.exited = true;
      w.idle.cancel();
      if (this.waiting.get(key) === w) {
        // Neither taken nor retired: it ended by itself while it waited.
        this.waiting.delete(key);
        this.pausedUntil.set(key, this.deps.clock.monotonicMs() + EARLY_EXIT_PAUSE_MS);
      }
    };
    result.then(gone, gone);
    return true;
  }

  /** The run waiting for `key` when it was started with exactly `argv` and is still there; null otherwise. */
  take(key: string, argv: readonly string[]): WarmRun | null {
    const w = this.waiting.get(key);
    if (w === undefined || w.exited) return null;
    if (!sameArgv(w.argv, argv)) {
      // Another destination (the standby's address or term changed): it will never be taken.
      // Only the recursion flag differing (a tree moved in): it stays for the next plain batch.
      if (!sameArgv(w.argv.map(plain), argv.map(plain))) this.retire(key, w);
      return null;
    }
    this.waiting.delete(key);
    w.idle.cancel();
    return { send: (data) => w.list(data), result: w.result };
  }

  private retire(key: string, w: Waiting): void {
    if (this.waiting.get(key) === w) this.waiting.delete(key);
    w.idle.cancel();
    w.list(Buffer.alloc(0));
  }
}

const plain = (arg: string): string => (arg === "-r" ? "--no-recursive" : arg);

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * One rsync of the shipper: a batch takes the run waiting for `key` when it has the same argv
 * (else starts its own) and starts the `next` batch's run right away, so it connects while this
 * one transfers; a full pass (warm null) runs alone. A warm run that fails is tried once more,
 * cold (`onRetry` says so): its connection may have broken while it waited. Only after a transient
 * failure: not after a timeout (the standby hangs: a second full ship_timeout would only delay
 * the failure), a full disk (it waits for its own pause) or a refused module. Never throws.
 */
export async function runShipRsync(o: {
  readonly runner: CommandRunner;
  readonly warm: WarmRsyncs | null;
  readonly key: string;
  readonly argv: readonly string[];
  readonly input: Buffer | undefined;
  readonly next: readonly string[];
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly onRetry?: (failed: { readonly code: number; readonly stderr: string }) => void;
}): Promise<CommandOutcome> {
  const warm = o.warm?.take(o.key, o.argv) ?? null;
  o.warm?.start(o.key, o.next, o.signal);
  const once = (w: WarmRun | null): Promise<CommandOutcome> =>
    rsyncOutcome(async () => {
      if (!w) return o.runner.run(o.argv, { timeoutMs: o.timeoutMs, signal: o.signal, ...(o.input ? { input: o.input } : {}) });
      w.send(o.input ?? Buffer.alloc(0));
      return w.result;
    });
  const first = await once(warm);
  if (!warm || first.code === 0 || first.code === 24 || o.signal.aborted) return first;
  // Only a transient failure: a refused module (exit 5) or a full disk fails the same way again.
  if (first.stderr.includes("US_E_COMMAND_TIMEOUT") || classifyShipFailure(first.code, first.stderr) !== "transient") return first;
  o.onRetry?.(first);
  return once(null);
}

/** What a data rsync run ended with: its exit code and stderr (-1 and the error when it could not run). */
export interface CommandOutcome {
  readonly code: number;
  readonly stderr: string;
}

/** Runs one rsync and never throws: a spawn failure, timeout or abort becomes code -1 with its description. */
export async function rsyncOutcome(run: () => Promise<CommandResult>): Promise<CommandOutcome> {
  try {
    const r = await run();
    return { code: r.code ?? -1, stderr: r.stderr };
  } catch (e) {
    return { code: -1, stderr: describeError(e) };
  }
}
