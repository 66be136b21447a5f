// A refused staged sync tree leaves the live root byte-identical (issue 11, item 5,
// "nothing changed"). A primary (or whoever writes its sync roots) publishes trees
// with setuid/setgid/sticky bits, world-writable files and directories, modes
// wider than the root's max_mode, and a staged copy that differs from what was
// published; a standby refuses each whole tree with its code, and its live root
// (every path, content, mode, owner and inode, and the root's own mode) is what
// it was before.
import assert from "node:assert/strict";
import { lstat, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { DEFAULT_MAX_MODE } from "../../../src/config/schema.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { applyStaged, prepareStagingDir, stagingDirFor } from "../../../src/sync/apply.js";
import { buildManifest, type SyncRoot } from "../../../src/sync/manifest.js";
import { copyTree, makeTree, snapshot, tempDir, type TreeSpec } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";
import { SpawnCommandRunner } from "../../../src/platform/command.js";

let base = "";
let cleanup = async () => {};
before(async () => ({ dir: base, cleanup } = await tempDir("bad-tree")));
after(() => cleanup());

const LIVE: TreeSpec = {
  "users.json": { content: '{"users":[]}\n', mode: 0o640 },
  keys: { dir: true, mode: 0o750 },
  "keys/alice.pub": { content: "ssh-ed25519 AAAA alice\n", mode: 0o644 },
};
const GOOD: TreeSpec = {
  "users.json": { content: '{"users":["bob"]}\n', mode: 0o640 },
  keys: { dir: true, mode: 0o755 },
  "keys/bob.pub": { content: "ssh-ed25519 AAAA bob\n", mode: 0o644 },
  bin: { dir: true, mode: 0o755 },
  "bin/reload": { content: "#!/bin/sh\n", mode: 0o755 },
};
const DEFAULT = parseInt(String(DEFAULT_MAX_MODE), 8);

// [what, the primary's tree (GOOD with changes), max_mode, code]
const MODES: [string, TreeSpec, number, string][] = [
  ["a setuid file 4755", { "bin/reload": { content: "#!/bin/sh\n", mode: 0o4755 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a setgid file 2755", { "bin/reload": { content: "#!/bin/sh\n", mode: 0o2755 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a setuid+setgid file 6755", { "bin/reload": { content: "#!/bin/sh\n", mode: 0o6755 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a sticky file 1644", { "users.json": { content: "x", mode: 0o1644 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a world-writable file 0666", { "users.json": { content: "x", mode: 0o666 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a world-writable file 0602", { "users.json": { content: "x", mode: 0o602 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a 0777 file", { "bin/reload": { content: "#!/bin/sh\n", mode: 0o777 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a world-writable directory 0777", { keys: { dir: true, mode: 0o777 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a setgid world-writable directory 2777", { keys: { dir: true, mode: 0o2777 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a sticky world-writable directory 1777", { keys: { dir: true, mode: 0o1777 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a setgid directory 2755", { keys: { dir: true, mode: 0o2755 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a sticky directory 1755", { bin: { dir: true, mode: 0o1755 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a world-writable directory 0757", { bin: { dir: true, mode: 0o757 } }, DEFAULT, "US_E_SYNC_MODE"],
  ["a 0644 file under max_mode 0600", { "keys/bob.pub": { content: "k", mode: 0o644 } }, 0o600, "US_E_SYNC_MODE"],
  ["a 0755 directory under max_mode 0600", {}, 0o600, "US_E_SYNC_MODE"],
  ["a group-writable file 0664 under max_mode 0644", { "users.json": { content: "x", mode: 0o664 } }, 0o644, "US_E_SYNC_MODE"],
  ["a 0775 directory under max_mode 0644", { keys: { dir: true, mode: 0o775 } }, 0o644, "US_E_SYNC_MODE"],
  ["a 0750 file under max_mode 0640 (x not granted)", { bin: { dir: true, mode: 0o750 }, "bin/reload": { content: "#!/bin/sh\n", mode: 0o750 } }, 0o640, "US_E_SYNC_MODE"],
];

let n = 0;
async function attempt(what: string, primarySpec: TreeSpec, maxMode: number, code: string, tamper?: (stage: string) => Promise<void>): Promise<void> {
  const caseDir = path.join(base, `case${n++}`);
  const root: SyncRoot = { name: "users", path: path.join(caseDir, "live"), include: [], exclude: [], maxFileBytes: 1 << 20 };
  const primary = path.join(caseDir, "primary");
  await makeTree(primary, primarySpec);
  await makeTree(root.path, LIVE);
  const stage = stagingDirFor(root);
  await rm(stage, { recursive: true, force: true });
  await prepareStagingDir(root);
  copyTree(primary, stage);
  const expected = await buildManifest(root, primary);
  if (tamper) await tamper(stage);
  const rootMode = async () => (await lstat(root.path)).mode;
  const beforeTree = await snapshot(root.path);
  const beforeMode = await rootMode();
  await assert.rejects(
    applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root, stagedDir: stage, expected, requiredMode: maxMode }),
    (e) => {
      assert.ok(isUnderstudyError(e), `${what}: ${String(e)}`);
      assert.equal(e.code, code, `${what}: ${e.message}`);
      return true;
    },
    `${what} was applied`,
  );
  assert.deepEqual(await snapshot(root.path), beforeTree, `${what}: the live root changed`);
  assert.equal(await rootMode(), beforeMode);
}

test("the good tree applies under the default max_mode (the refusals below are about the modes)", async () => {
  const caseDir = path.join(base, "good");
  const root: SyncRoot = { name: "users", path: path.join(caseDir, "live"), include: [], exclude: [], maxFileBytes: 1 << 20 };
  await makeTree(path.join(caseDir, "primary"), GOOD);
  await makeTree(root.path, LIVE);
  await prepareStagingDir(root);
  copyTree(path.join(caseDir, "primary"), stagingDirFor(root));
  const expected = await buildManifest(root, path.join(caseDir, "primary"));
  await applyStaged({ fs: NODE_DURABLE_FS, runner: new SpawnCommandRunner(), root, stagedDir: stagingDirFor(root), expected, requiredMode: DEFAULT });
  assert.equal((await buildManifest(root)).digest, expected.digest);
});

test("each tree with a mode wider than max_mode is refused whole (US_E_SYNC_MODE), the live root byte-identical", async () => {
  assert.equal(DEFAULT, 0o775);
  for (const [what, change, maxMode, code] of MODES) await attempt(what, { ...GOOD, ...change }, maxMode, code);
});

test("a staged copy that differs from what was published is refused (digest mismatch; a link out of the root: unsafe path), the live root byte-identical", async () => {
  const tampers: [string, (stage: string) => Promise<void>, string?][] = [
    ["an extra file slipped into the staging dir", (s) => writeFile(path.join(s, "keys/mallory.pub"), "ssh-ed25519 AAAA mallory\n")],
    ["a file's content changed after the manifest", (s) => writeFile(path.join(s, "users.json"), '{"users":["root"]}\n')],
    [
      "a file replaced by a symlink to /etc/shadow",
      async (s) => {
        await rm(path.join(s, "users.json"));
        await symlink("/etc/shadow", path.join(s, "users.json"));
      },
      "US_E_SYNC_UNSAFE_PATH",
    ],
    ["a file removed from the staging dir", (s) => rm(path.join(s, "keys/bob.pub"))],
  ];
  for (const [what, tamper, code] of tampers) await attempt(what, GOOD, DEFAULT, code ?? "US_E_SYNC_DIGEST_MISMATCH", tamper);
});
