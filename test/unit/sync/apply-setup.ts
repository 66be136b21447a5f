// One case directory per call, under a temporary base made for the test file:
// the primary's tree, the live root, and a staging dir the "transport" fills.
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before } from "node:test";
import { prepareStagingDir, stagingDirFor } from "../../../src/sync/apply.js";
import { buildManifest, type Manifest, type SyncRoot } from "../../../src/sync/manifest.js";
import { copyTree, makeTree, tempDir, type TreeSpec } from "../../fakes/tree.js";

export interface Setup {
  readonly root: SyncRoot;
  /** The primary's tree (what the transport copies from). */
  readonly primary: string;
  readonly stage: string;
  /** Copy the primary's tree into a fresh staging dir (stands in for the rsync transport); returns the primary's manifest. */
  restage(): Promise<Manifest>;
}

/** Registers the file's before/after hooks; returns setup(primary tree, live tree or none, root overrides). */
export function applySetups(prefix: string): (primarySpec: TreeSpec, liveSpec: TreeSpec | undefined, over?: Partial<SyncRoot>) => Promise<Setup> {
  let base = "";
  let cleanup = async () => {};
  let n = 0;
  before(async () => ({ dir: base, cleanup } = await tempDir(prefix)));
  after(() => cleanup());
  return async (primarySpec, liveSpec, over = {}) => {
    const caseDir = path.join(base, `case${n++}`);
    const root: SyncRoot = { name: "ssh", path: path.join(caseDir, "etc-ssh"), include: [], exclude: [], maxFileBytes: 1 << 20, ...over };
    const primary = path.join(caseDir, "primary");
    await makeTree(primary, primarySpec);
    if (liveSpec) await makeTree(root.path, liveSpec);
    const stage = stagingDirFor(root);
    const restage = async () => {
      await rm(stage, { recursive: true, force: true });
      await prepareStagingDir(root);
      copyTree(primary, stage);
      return buildManifest(root, primary);
    };
    return { root, primary, stage, restage };
  };
}
