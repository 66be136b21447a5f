import { readFileSync } from "node:fs";
import type { DurableFs } from "./durable-fs.js";
import { NODE_DURABLE_FS } from "./node-durable-fs.js";

/**
 * Where a failsafe promise outlives the agent (docs/failsafe-design.md, S6):
 * `{boot_id, until_system_ms, for_ms}` in the state directory, written through
 * the DurableFs port (fsync, rename, directory fsync) before a grant is answered. `until_system_ms` is on the host's
 * CLOCK_MONOTONIC (Clock.systemMonotonicMs), so it holds across agent restarts
 * of the same boot; after a reboot only the promise's length is known.
 */
export interface PromiseLedgerRecord {
  /** The promise's end on the host's monotonic clock; null: written in another boot. */
  readonly untilSystemMs: number | null;
  /** The promise's length (ttl + fence margin of the run that gave it). */
  readonly forMs: number;
}

const MAX_FOR_MS = 3_600_000;

export class FilePromiseLedger {
  /** This boot's id, read once. */
  private readonly bootId: string;
  /** Saves run one after another (DurableFs: no concurrent writes to one file). */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    bootId: () => string = readBootId,
    private readonly fs: DurableFs = NODE_DURABLE_FS,
  ) {
    this.bootId = bootId();
  }

  /** The last run's promise, or null (none, or unreadable: then `problem` says why). */
  load(): { record: PromiseLedgerRecord | null; problem?: string } {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === "ENOENT" ? { record: null } : { record: null, problem: `cannot read ${this.file}: ${code ?? String(e)}` };
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return { record: null, problem: `${this.file} is not JSON` };
    }
    const r = v as { boot_id?: unknown; until_system_ms?: unknown; for_ms?: unknown };
    if (typeof r.boot_id !== "string" || typeof r.until_system_ms !== "number" || !Number.isFinite(r.until_system_ms) || typeof r.for_ms !== "number" || !(r.for_ms > 0 && r.for_ms <= MAX_FOR_MS)) {
      return { record: null, problem: `${this.file} does not hold {boot_id, until_system_ms, for_ms}` };
    }
    return { record: { untilSystemMs: r.boot_id === this.bootId ? r.until_system_ms : null, forMs: r.for_ms } };
  }

  /** Record a promise durably; rejects when it cannot. */
  save(untilSystemMs: number, forMs: number): Promise<void> {
    const text = JSON.stringify({ boot_id: this.bootId, until_system_ms: untilSystemMs, for_ms: forMs });
    const write = this.queue.then(() => this.fs.writeFileAtomic(this.file, text, 0o600));
    this.queue = write.catch(() => undefined);
    return write;
  }
}

function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}
