/**
 * The workload of a chaos run, every loop bounded in count and time:
 *  - UploadLoop:   real SFTP uploads through the VIP from the client namespace, each with a unique name and
 *                  content; acknowledged = sftp exit 0 and the file listed back
 *  - EditLoop:     config edits: a new file with unique content written into the sync root of the node the
 *                  leader key names
 *  - OperatorLoop: `understudy switchover` through a random node's API, every so often
 * and the file-system scans the checker needs (rescue folders, final roots, shared upload storage).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { sleep } from "../lab/harness/exec.js";
import type { Lab } from "../lab/harness/lab.js";
import type { LabCluster } from "../lab/harness/cluster.js";
import type { Prng } from "./prng.js";
import type { EditRecord, OperatorRecord, RescuedFile, UploadRecord } from "./types.js";

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** Bounded background loop: runs `step` until stopped, `maxIterations` reached or `maxMs` elapsed. */
abstract class Loop {
  private done: Promise<void> | undefined;
  protected stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly maxIterations: number,
    private readonly maxMs: number,
  ) {}

  protected abstract step(i: number): Promise<void>;
  protected abstract pauseMs(): number;

  start(): void {
    const until = Date.now() + this.maxMs;
    this.done = (async () => {
      for (let i = 0; i < this.maxIterations && !this.stopped && Date.now() < until; i++) {
        await this.step(i).catch(() => undefined);
        if (this.stopped) break;
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, this.pauseMs());
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.done;
  }
}

/** The lab client's SSH options (lab.ts keeps its own private; same values). */
export function sshClientOptions(lab: Lab, connectTimeoutS = 1): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    lab.clientKey,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${lab.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "CheckHostIP=no",
    "-o",
    `ConnectTimeout=${connectTimeoutS}`,
    "-o",
    "ServerAliveInterval=1",
    "-o",
    "ServerAliveCountMax=2",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "KexAlgorithms=curve25519-sha256",
  ];
}

export class UploadLoop extends Loop {
  readonly records: UploadRecord[] = [];
  private readonly dir: string;

  constructor(
    private readonly lab: Lab,
    private readonly prng: Prng,
    private readonly opts: { pauseMs?: number; timeoutMs?: number; maxUploads?: number; maxMs?: number } = {},
  ) {
    super(opts.maxUploads ?? 100_000, opts.maxMs ?? 4 * 3600_000);
    this.dir = join(lab.dir, "client", "uploads");
    mkdirSync(this.dir, { recursive: true });
  }

  protected pauseMs(): number {
    return this.opts.pauseMs ?? 100;
  }

  /** Last acknowledged upload that started at or after `since`. */
  okSince(since: number): UploadRecord | undefined {
    for (let i = this.records.length - 1; i >= 0; i--) {
      const r = this.records[i]!;
      if (r.start < since) return undefined;
      if (r.ok) return r;
    }
    return undefined;
  }

  protected async step(i: number): Promise<void> {
    const name = `up-${String(i).padStart(6, "0")}-${randomBytes(4).toString("hex")}.bin`;
    const body = Buffer.concat([Buffer.from(`${name}\n`), randomBytes(this.prng.int(512, 8192))]);
    const local = join(this.dir, name);
    writeFileSync(local, body);
    const start = Date.now();
    const argv = ["sftp", ...sshClientOptions(this.lab), "-b", "-", `root@${this.lab.vipAddress}`];
    const r = await this.lab.exec(this.lab.client, argv, { timeoutMs: this.opts.timeoutMs ?? 6000, input: `put ${local} ${name}\nls -l ${name}\n` });
    const ok = r.code === 0 && r.stdout.includes(name);
    const rec: UploadRecord = { name, sha256: sha256(body), bytes: body.length, start, end: Date.now(), ok };
    if (!ok) rec.detail = r.timedOut ? "timed out" : `exit ${r.code}: ${r.stderr.trim().split("\n").pop() ?? ""}`.slice(0, 200);
    this.records.push(rec);
    rmSync(local, { force: true });
  }
}

export class EditLoop extends Loop {
  readonly records: EditRecord[] = [];
  private seq = 0;

  constructor(
    private readonly rootOf: (node: string) => string,
    private readonly primary: () => string | undefined,
    private readonly prng: Prng,
    private readonly opts: {
      everyMs?: [number, number];
      maxEdits?: number;
      maxMs?: number;
      /** Ask the node before editing (e.g. its API's GET /primary); no edit when it says no. */
      confirm?: (node: string) => Promise<boolean>;
    } = {},
  ) {
    super(opts.maxEdits ?? 5000, opts.maxMs ?? 4 * 3600_000);
  }

  protected pauseMs(): number {
    const [a, b] = this.opts.everyMs ?? [1000, 3000];
    return this.prng.int(a, b);
  }

  protected async step(): Promise<void> {
    const node = this.primary();
    if (!node) return;
    if (this.opts.confirm && !(await this.opts.confirm(node).catch(() => false))) return;
    const seq = ++this.seq;
    const file = `edits/e-${String(seq).padStart(5, "0")}-${node}.conf`;
    const content = `# chaos edit ${seq} on ${node} at ${new Date().toISOString()}\nsetting_${seq} = ${randomBytes(8).toString("hex")}\n`;
    const rec: EditRecord = { seq, node, file, sha256: sha256(content), t: Date.now(), written: false };
    try {
      mkdirSync(join(this.rootOf(node), "edits"), { recursive: true });
      writeFileSync(join(this.rootOf(node), file), content);
      rec.written = true;
    } catch (e) {
      rec.detail = (e as Error).message.slice(0, 200);
    }
    this.records.push(rec);
  }
}

export class OperatorLoop extends Loop {
  readonly records: OperatorRecord[] = [];

  constructor(
    private readonly cluster: LabCluster,
    private readonly primary: () => string | undefined,
    private readonly prng: Prng,
    private readonly opts: { everyMs?: [number, number]; maxActions?: number; maxMs?: number } = {},
  ) {
    super(opts.maxActions ?? 1000, opts.maxMs ?? 4 * 3600_000);
  }

  protected pauseMs(): number {
    const [a, b] = this.opts.everyMs ?? [10_000, 20_000];
    return this.prng.int(a, b);
  }

  private first = true;

  protected async step(): Promise<void> {
    if (this.first) {
      // Start after one pause, not at once.
      this.first = false;
      return;
    }
    const nodes = this.cluster.lab.nodes.map((n) => n.name);
    const via = this.prng.pick(nodes);
    // Always to a named standby: an untargeted switchover away from the top-priority node livelocks
    // (see docs/reliability.md, "Bugs found"), which would turn this run into a test of that one bug.
    const primary = this.primary();
    const to = this.prng.pick(nodes.filter((n) => n !== primary));
    const t = Date.now();
    const r = await this.cluster.cli(["switchover", "--to", to, "--json", "--wait", "15", "--reason", "chaos operator", "--requested-by", "chaos"], { via, timeoutMs: 25_000 });
    const rec: OperatorRecord = { t, end: Date.now(), action: `switchover to ${to}`, via, code: r.code };
    if (r.code !== 0) rec.detail = `${r.stdout} ${r.stderr}`.trim().slice(0, 200);
    this.records.push(rec);
  }
}

/** Every regular file under dir, relative path → sha256 (bounded walk). */
export function hashTree(dir: string, maxFiles = 100_000): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  const walk = (p: string) => {
    if (n >= maxFiles) return;
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of readdirSync(p).sort()) walk(join(p, e));
    } else if (st.isFile()) {
      n++;
      try {
        out[relative(dir, p)] = sha256(readFileSync(p));
      } catch {
        /* vanished */
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/**
 * Files found in a node's rescue folders (<state>/rescue/<stamp>/<root>/...),
 * as paths relative to the root. Scanned during the run as well as at the
 * end, because old rescue folders are pruned.
 */
export class RescueScanner {
  readonly found: RescuedFile[] = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly rescueBase: (node: string) => string,
    private readonly rootName: string,
  ) {}

  scan(nodes: readonly string[]): void {
    for (const node of nodes) {
      const base = this.rescueBase(node);
      if (!existsSync(base)) continue;
      let stamps: string[] = [];
      try {
        stamps = readdirSync(base);
      } catch {
        continue;
      }
      for (const stamp of stamps) {
        const dir = join(base, stamp, this.rootName);
        for (const [file, hash] of Object.entries(hashTree(dir, 10_000))) {
          const id = `${node}:${file}:${hash}`;
          if (this.seen.has(id)) continue;
          this.seen.add(id);
          this.found.push({ node, file, sha256: hash });
        }
      }
    }
  }
}

export { sleep };
