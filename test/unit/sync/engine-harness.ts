// The SyncEngine test harness (sync-engine.test.ts, sync-sweep.test.ts): one
// node's engine on real temp directories, a FakePuller that copies a local
// "primary" directory into the staging dir, a FakePublisher, a FakeWatchSource
// and a FakeClock (timers fire only when a test advances it). Engines made
// here are closed after each test, the temp directory after the file.
import assert from "node:assert/strict";
import { lstat, mkdir } from "node:fs/promises";
import path from "node:path";
import { after, afterEach, before } from "node:test";
import type { SyncGeneration } from "../../../src/coordinator/port.js";
import type { CommandRunner } from "../../../src/platform/command.js";
import { silentLogger, type Logger } from "../../../src/platform/logger.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { stagingDirFor } from "../../../src/sync/apply.js";
import { SyncEngine, combinedDigest, type EngineRoot, type SyncEvent, type SyncView } from "../../../src/sync/engine.js";
import type { FileHashService } from "../../../src/sync/hasher.js";
import { buildManifest } from "../../../src/sync/manifest.js";
import { SyncStateStore } from "../../../src/sync/state.js";
import type { PullRequest } from "../../../src/sync/transport.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { FakePublisher, FakePuller, FakeWatchSource } from "../../fakes/sync.js";
import { makeTree, tempDir, type TreeSpec } from "../../fakes/tree.js";

let base = "";
let cleanup = async () => {};
let n = 0;
const open: SyncEngine[] = [];
before(async () => ({ dir: base, cleanup } = await tempDir("engine")));
afterEach(async () => {
  for (const e of open.splice(0)) await e.close();
});
after(() => cleanup());

export const SETTINGS = { debounceMs: 20, maxDelayMs: 250, reconcileMs: 60_000, validateTimeoutMs: 4000, postSyncTimeoutMs: 3000, retryMaxMs: 30_000, maximumLagMs: 60_000 };
export const ADDRESS = "198.18.0.11";
export const SSH: TreeSpec = { ssh_host_ed25519_key: { content: "PRIVATE", mode: 0o600 }, sshd_config: "Port 22\n", "conf.d": { dir: true }, "conf.d/extra.conf": "X\n" };
export const WEB: TreeSpec = { "site.conf": "listen 80\n" };

export async function newCase(): Promise<string> {
  const dir = path.join(base, `case${n++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

export interface NodeOptions {
  readonly node?: string;
  readonly roots?: Readonly<Record<string, Partial<EngineRoot>>>;
  readonly runner?: CommandRunner;
  /** Where the puller copies a root from; default <case>/primary/<root>. */
  readonly source?: (root: string) => string;
  /** The hash service (default: none, files hashed in the calling thread). */
  readonly hasher?: FileHashService;
  /** Another FakePuller (one that fails some roots), given where each request copies from. */
  readonly puller?: (copyFrom: (req: PullRequest) => string) => FakePuller;
  /** The engine's logger (default: silent). */
  readonly log?: Logger;
}

export type TestNode = Awaited<ReturnType<typeof makeNode>>;

/** One node: live roots under <case>/<node>/roots, state under <case>/<node>/state. Not started. */
export async function makeNode(caseDir: string, o: NodeOptions = {}) {
  const node = o.node ?? "n2";
  const home = path.join(caseDir, node);
  const roots: EngineRoot[] = Object.entries(o.roots ?? { ssh: {} }).map(([name, over]) => ({
    name,
    path: path.join(home, "roots", name),
    include: [],
    exclude: [],
    maxFileBytes: 1 << 20,
    ...over,
  }));
  const source = o.source ?? ((name: string) => path.join(caseDir, "primary", name));
  const nameOf = new Map(roots.map((r) => [r.path, r.name]));
  // req.root names the root (the module the primary's rsync daemon serves it as).
  const copyFrom = (req: PullRequest) => source(nameOf.get(req.root) ?? req.root);
  const puller = o.puller ? o.puller(copyFrom) : new FakePuller(copyFrom);
  const coord = new FakePublisher();
  const watch = new FakeWatchSource();
  const clock = new FakeClock();
  const stateDir = path.join(home, "state");
  const store = new SyncStateStore(stateDir, NODE_DURABLE_FS);
  const events: SyncEvent[] = [];
  const counter = { progress: 0 };
  const engine = new SyncEngine({
    fs: NODE_DURABLE_FS,
    node,
    settings: { ...SETTINGS, roots },
    store,
    coordinator: coord,
    puller,
    runner: o.runner ?? new StrictCommandRunner(),
    clock,
    log: o.log ?? silentLogger(),
    watch: watch.factory,
    ...(o.hasher ? { hasher: o.hasher } : {}),
    onProgress: () => void counter.progress++,
  });
  engine.onEvent((e) => void events.push(e));
  open.push(engine);
  const live = (name: string) => roots.find((r) => r.name === name)!.path;
  const of = <T extends SyncEvent["type"]>(type: T) => events.filter((e): e is Extract<SyncEvent, { type: T }> => e.type === type);
  return { node, engine, roots, puller, coord, watch, clock, store, stateDir, events, counter, live, source, of };
}

export async function started(caseDir: string, o: NodeOptions = {}): Promise<TestNode> {
  const h = await makeNode(caseDir, o);
  await h.engine.start();
  return h;
}

/** What a primary holding `source`'s trees would publish. */
export async function recordFor(h: TestNode, over: Partial<SyncGeneration> = {}): Promise<SyncGeneration> {
  const roots: Record<string, string> = {};
  let files = 0;
  for (const r of h.roots) {
    const m = await buildManifest({ ...r, path: h.source(r.name) });
    roots[r.name] = m.digest;
    files += m.entries.filter((e) => e.type === "file").length;
  }
  return { generation: 1, digest: combinedDigest(roots), roots, files, source: "n1", term: 7, publishedAt: "2026-01-01T00:00:00.000Z", ...over };
}

export const leader = (node = "n1", term = 7, address: string | null = ADDRESS) => ({ node, term, address });
export const standby = (published: SyncGeneration | null | undefined, l: SyncView["leader"] = leader()): SyncView => ({ acting: "standby", term: null, leader: l, published });
export const primary = (node: string, term: number, published: SyncGeneration | null = null): SyncView => ({ acting: "primary", term, leader: leader(node, term), published });

/** Bounded poll: 2 s in 10 ms steps. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

export const modeOf = async (p: string) => (await lstat(p)).mode & 0o7777;
export const synced = (h: TestNode, generation: number) => waitFor(`synced ${generation}`, () => h.of("synced").some((e) => e.generation === generation));

/** The staging dir of root `name` on node n2 of a case. */
export const stageOf = (caseDir: string, name: string) => stagingDirFor({ name, path: path.join(caseDir, "n2", "roots", name), include: [], exclude: [], maxFileBytes: 1 });

/** A standby (n2) that synced generation 1 of the SSH tree from <case>/primary. */
export async function syncedStandby(o: NodeOptions = {}, caseDir?: string) {
  caseDir ??= await newCase();
  await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
  if (o.roots && "web" in o.roots) await makeTree(path.join(caseDir, "primary", "web"), WEB);
  const h = await started(caseDir, o);
  const rec1 = await recordFor(h);
  h.engine.follow(standby(rec1));
  await synced(h, 1);
  return { caseDir, h, rec1 };
}
