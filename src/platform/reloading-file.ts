import { statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { UnderstudyError, describeError } from "../errors/catalogue.js";

// Trust material (CA files, tokens, keys) is renewed while the agent runs. A
// ReloadingFile holds the last good content of one or more files and reads
// them again when their identity changes: a stat per use, which costs a few
// microseconds, against the failover loop a stale CA caused (issue 12).

/**
 * What identifies a file's content without reading it: a renewal by atomic
 * rename changes ino (and ctime), an in-place write changes size or mtime and
 * always ctime. Nanoseconds, so two writes within a millisecond still differ.
 */
export function fileStamp(s: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** The stamps of `files`, joined; a file that cannot be stat'ed counts as "missing:<code>". */
export async function stampOf(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(files.map((f) => stat(f, { bigint: true }).then(fileStamp, (e: unknown) => `missing:${(e as NodeJS.ErrnoException).code ?? "?"}`)));
  return parts.join("|");
}

export function stampOfSync(files: readonly string[]): string {
  return files
    .map((f) => {
      try {
        return fileStamp(statSync(f, { bigint: true }));
      } catch (e) {
        return `missing:${(e as NodeJS.ErrnoException).code ?? "?"}`;
      }
    })
    .join("|");
}

/** Told about every reload, good or refused; the agent logs it (US_E_FILE_RELOAD) and counts it in metrics. */
export interface ReloadReporter {
  reloaded(what: string, files: readonly string[]): void;
  /** A changed file could not be used: the last good content stays in use. Once per change of the files. */
  rejected(what: string, files: readonly string[], problem: string): void;
}

export const SILENT_RELOADS: ReloadReporter = { reloaded: () => undefined, rejected: () => undefined };

/**
 * Hands each reload to every reporter added, in the order added. Parts that
 * read trust files are built before the metrics exist: they get this, and the
 * metrics add themselves when built (reloads before that are only logged).
 */
export class ReloadReporters implements ReloadReporter {
  private readonly reporters: ReloadReporter[] = [];

  add(reporter: ReloadReporter): this {
    this.reporters.push(reporter);
    return this;
  }

  reloaded(what: string, files: readonly string[]): void {
    for (const r of this.reporters) r.reloaded(what, files);
  }

  rejected(what: string, files: readonly string[], problem: string): void {
    for (const r of this.reporters) r.rejected(what, files, problem);
  }
}

/**
 * The content of `files`, loaded by `load` (which throws, with a sentence, on
 * a file it refuses), reloaded when any file's stamp changes. A change that
 * does not load keeps the last good content: a half-written or wrong file
 * never replaces working trust material, and never throws into the caller.
 * Reads of one change are not repeated: a refused file is retried only after
 * it changes again.
 */
export class ReloadingFile<T> {
  private value: T | undefined;
  private stamp: string | undefined;
  private loading: Promise<T> | undefined;

  constructor(
    /** Shown in logs and metrics: "probe ftps ca_file", "api token_file". */
    readonly what: string,
    readonly files: readonly string[],
    private readonly load: () => Promise<T>,
    private readonly reporter: ReloadReporter = SILENT_RELOADS,
  ) {}

  /** Load now; throws what `load` throws (at start-up a bad file is a configuration error). */
  async init(): Promise<T> {
    const stamp = await stampOf(this.files);
    const value = await this.load();
    this.value = value;
    this.stamp = stamp;
    return value;
  }

  /** Start from content the caller already read synchronously (the stamp is taken now, before any later change). */
  prime(value: T, stamp: string = stampOfSync(this.files)): this {
    this.value = value;
    this.stamp = stamp;
    return this;
  }

  /** The last good content, without checking the files. Throws before init()/prime(). */
  peek(): T {
    if (this.stamp === undefined) throw new UnderstudyError("US_E_FILE_NOT_LOADED", { what: this.what });
    return this.value as T;
  }

  /** The content, reloaded first if a file changed since the last load attempt. Never throws after init()/prime(). */
  get(): Promise<T> {
    this.loading ??= this.refresh().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Whether a file changed since the last load attempt, then reload; true when new content is now in use. */
  async check(): Promise<boolean> {
    const before = this.stamp;
    const value = this.value;
    await this.get();
    return this.stamp !== before && this.value !== value;
  }

  private async refresh(): Promise<T> {
    const current = this.peek();
    const stamp = await stampOf(this.files);
    if (stamp === this.stamp) return current;
    // The stamp is taken before the read: a change racing the read is seen again next time.
    this.stamp = stamp;
    try {
      const value = await this.load();
      this.value = value;
      this.reporter.reloaded(this.what, this.files);
      return value;
    } catch (e) {
      this.reporter.rejected(this.what, this.files, describeError(e));
      return current;
    }
  }
}
