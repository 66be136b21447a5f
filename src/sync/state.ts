// What a node knows about its own sync roots across restarts, in
// <state_dir>/sync/: state.json (the generation it holds and, per root, the
// published digest its live files correspond to) and known/<root>.json (the
// manifest it last published or applied, which rescue compares against).
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { DurableFs } from "../platform/durable-fs.js";
import type { Manifest } from "./manifest.js";
import { loadManifest, saveManifest } from "./rescue.js";

export interface HeldState {
  /** The published generation whose files this node holds in full (0: none). */
  readonly generation: number;
  /** Per root: the published manifest digest the live files correspond to. */
  readonly roots: Readonly<Record<string, string>>;
}

export const EMPTY_STATE: HeldState = { generation: 0, roots: {} };

export class SyncStateStore {
  readonly dir: string;
  readonly rescueBase: string;

  /** fs: the durable writes (createSyncEngine passes NODE_DURABLE_FS). */
  constructor(
    stateDir: string,
    private readonly fs: DurableFs,
  ) {
    this.dir = path.join(stateDir, "sync");
    this.rescueBase = path.join(stateDir, "rescue");
  }

  async init(): Promise<void> {
    await mkdir(path.join(this.dir, "known"), { recursive: true, mode: 0o700 });
  }

  private knownFile(root: string): string {
    return path.join(this.dir, "known", `${root}.json`);
  }

  /** Throws US_E_SYNC_STATE when the file exists but cannot be trusted. */
  async loadHeld(): Promise<HeldState> {
    const file = path.join(this.dir, "state.json");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return EMPTY_STATE;
      throw new UnderstudyError("US_E_SYNC_STATE", { file, cause: describeError(e) });
    }
    let problem: string;
    try {
      const v = JSON.parse(text) as Partial<HeldState>;
      const rootsOk = typeof v.roots === "object" && v.roots !== null && !Array.isArray(v.roots) && Object.values(v.roots).every((d) => typeof d === "string");
      if (Number.isSafeInteger(v.generation) && (v.generation as number) >= 0 && rootsOk) return { generation: v.generation as number, roots: { ...(v.roots as Record<string, string>) } };
      problem = "needs a generation and per-root digests";
    } catch (e) {
      problem = describeError(e);
    }
    throw new UnderstudyError("US_E_SYNC_STATE", { file, cause: problem });
  }

  async saveHeld(state: HeldState): Promise<void> {
    await this.fs.writeFileAtomic(path.join(this.dir, "state.json"), `${JSON.stringify(state)}\n`, 0o600);
  }

  loadKnown(root: string): Promise<Manifest | undefined> {
    return loadManifest(this.knownFile(root));
  }

  saveKnown(root: string, manifest: Manifest): Promise<void> {
    return saveManifest(this.knownFile(root), manifest, this.fs);
  }
}
