// The walk before an apply: applyStaged walks the staged tree again (every check
// but the validator) unless given the manifest the checks just built; the
// standby engine gives it only when no validator or hook is configured, so a
// validator that writes into its staged tree is still caught.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { SpawnCommandRunner } from "../../../src/platform/command.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { applyStaged, checkStaged } from "../../../src/sync/apply.js";
import { HashCache, buildManifest } from "../../../src/sync/manifest.js";
import { snapshot } from "../../fakes/tree.js";
import { applySetups } from "./apply-setup.js";
import { newCase, recordFor, stageOf, standby, syncedStandby, waitFor } from "./engine-harness.js";

const setup = applySetups("recheck");

/** Counts lookups of paths under `prefix` (each walked file is one lookup). */
class LookupCounter extends HashCache {
  lookups = 0;
  constructor(private readonly prefix: string) {
    super();
  }
  override get(abs: string, key: string): string | undefined {
    if (abs.startsWith(this.prefix)) this.lookups++;
    return super.get(abs, key);
  }
}

const TREE = { "a.conf": "a", "d/b.conf": "b", "d/e/c.conf": "c" };

describe("applyStaged and the manifest the checks built", () => {
  for (const [what, give, walks] of [
    ["without it, the staged tree is walked again", "none", true],
    ["with it, the staged tree is not walked again", "checked", false],
    ["with one of another digest, it is walked again", "stale", true],
  ] as const) {
    it(what, async () => {
      const s = await setup(TREE, undefined);
      const expected = await s.restage();
      const cache = new LookupCounter(s.stage);
      const opts = { fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root: s.root, stagedDir: s.stage, expected, cache };
      const { staged } = await checkStaged(opts);
      cache.lookups = 0;
      const checked = give === "none" ? undefined : give === "checked" ? staged : { ...staged, digest: "0".repeat(64) };
      const r = await applyStaged({ ...opts, ...(checked ? { checked } : {}) });
      assert.equal(cache.lookups > 0, walks, `lookups under staging: ${cache.lookups}`);
      assert.equal(r.manifest.digest, expected.digest);
      assert.equal((await buildManifest(s.root)).digest, expected.digest, "the primary's tree is live");
    });
  }
});

describe("a standby's pass with a validator configured", () => {
  it("a validator that writes into its staged tree: the apply's walk sees it, nothing goes live", async () => {
    const caseDir = await newCase();
    const argv = ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"];
    let validations = 0;
    // Passes, but from the second run on appends to the file it checks (as a validator that "fixes" its input would).
    const runner: CommandRunner = {
      run: async (a): Promise<CommandResult> => {
        assert.equal(a[0], argv[0], "only the validator runs here");
        if (validations++ > 0) await writeFile(a[3]!, `${await readFile(a[3]!, "utf8")}# fixed\n`);
        return { code: 0, signal: null, stdout: "", stderr: "" };
      },
    };
    const { h } = await syncedStandby({ runner, roots: { ssh: { validate: argv } } }, caseDir);
    const live = h.live("ssh");
    const before = await snapshot(live);
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 2200\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await waitFor("failed", () => h.of("failed").length === 1);
    assert.equal(h.engine.status().lastError?.code, "US_E_SYNC_DIGEST_MISMATCH");
    assert.match(await readFile(path.join(stageOf(caseDir, "ssh"), "sshd_config"), "utf8"), /# fixed/, "the validator did write into staging");
    assert.deepEqual(await snapshot(live), before, "live tree untouched");
  });
});
