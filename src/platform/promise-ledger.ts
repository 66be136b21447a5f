import { readFileSync } from "node:fs";
import type { DurableFs } from "./durable-fs.js";
import { NODE_DURABLE_FS } from "./node-durable-fs.js";

/** S7: the newest request answered from one requester (the shape of ha/failsafe.ts's AnsweredRequest). */
export interface AnsweredMark {
  readonly node: string;
  readonly term: number;
  readonly seq: number;
}

/**
 * Where a failsafe promise (docs/failsafe-design.md, S6) and the replay marks
 * (S7) outlive the agent: `{boot_id, until_system_ms, for_ms, answered:
 * [{node, term, seq}]}` in the state directory, written through the DurableFs
 * port (fsync, rename, directory fsync) before an answer leaves. `until_system_ms` is on the host's
 * CLOCK_MONOTONIC (Clock.systemMonotonicMs), so it holds across agent restarts
 * of the same boot; after a reboot only the promise's length is known.
 */
export interface PromiseLedgerRecord {
  /** The promise's end on the host's monotonic clock; null: written in another boot. */
  readonly untilSystemMs: number | null;
  /** The promise's length (ttl + fence margin of the run that gave it); 0: no promise runs, the record holds marks only. */
  readonly forMs: number;
  /** S7: per requester, the newest request answered; empty in records of older versions. */
  readonly answered: readonly AnsweredMark[];
}

const MAX_FOR_MS = 3_600_000;
/** Marks are one per requester (the cluster's members); more is not a record this code wrote. */
const MAX_MARKS = 64;

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
    const r = v as { boot_id?: unknown; until_system_ms?: unknown; for_ms?: unknown; answered?: unknown };
    if (typeof r.boot_id !== "string" || typeof r.until_system_ms !== "number" || !Number.isFinite(r.until_system_ms) || typeof r.for_ms !== "number" || !(r.for_ms >= 0 && r.for_ms <= MAX_FOR_MS)) {
      return { record: null, problem: `${this.file} does not hold {boot_id, until_system_ms, for_ms}` };
    }
    const record = { untilSystemMs: r.boot_id === this.bootId ? r.until_system_ms : null, forMs: r.for_ms };
    if (r.answered === undefined) return { record: { ...record, answered: [] } };
    const marks = Array.isArray(r.answered) && r.answered.length <= MAX_MARKS ? r.answered.map(mark) : [null];
    // A record this code wrote always has valid marks: anything else is a damaged file, as above.
    if (marks.some((m) => m === null)) return { record: null, problem: `${this.file}: "answered" is not a list of {node, term, seq}` };
    return { record: { ...record, answered: marks as AnsweredMark[] } };
  }

  /** Record the running promise (forMs 0: none) and the marks durably; rejects when it cannot. */
  save(r: { readonly untilSystemMs: number; readonly forMs: number; readonly answered: readonly AnsweredMark[] }): Promise<void> {
    const answered = r.answered.map((a) => ({ node: a.node, term: a.term, seq: a.seq }));
    const text = JSON.stringify({ boot_id: this.bootId, until_system_ms: r.untilSystemMs, for_ms: r.forMs, answered });
    const write = this.queue.then(() => this.fs.writeFileAtomic(this.file, text, 0o600));
    this.queue = write.catch(() => undefined);
    return write;
  }
}

const isCount = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 1;
const NODE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function mark(x: unknown): AnsweredMark | null {
  const a = (typeof x === "object" && x !== null ? x : {}) as { node?: unknown; term?: unknown; seq?: unknown };
  return typeof a.node === "string" && NODE.test(a.node) && isCount(a.term) && isCount(a.seq) ? { node: a.node, term: a.term, seq: a.seq } : null;
}

function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}
