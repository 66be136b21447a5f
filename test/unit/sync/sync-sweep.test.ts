// The periodic reconcile (primary) and verify (standby) run beside the passes
// (src/sync/sweep.ts), never in one: a pull or a publish does not wait for a
// sweep of a big root, and what a sweep finds still goes through the pass.
// A gated hasher holds a sweep in the middle of a root, as hashing a big file
// would.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { FileHash, FileHashService } from "../../../src/sync/hasher.js";
import { makeTree } from "../../fakes/tree.js";
import { SETTINGS, SSH, makeNode, newCase, primary, recordFor, standby, synced, syncedStandby, waitFor } from "./engine-harness.js";

/** Hashes in the calling thread; while `hold` is set, a file whose path contains it waits for release(). */
function gatedHasher() {
  let release: () => void = () => {};
  const state = { hold: null as string | null, held: 0, gate: Promise.resolve() };
  const service: FileHashService = {
    hash: async (abs: string): Promise<FileHash> => {
      if (state.hold !== null && abs.includes(state.hold)) {
        state.held++;
        await state.gate;
      }
      const data = await readFile(abs);
      return { size: data.length, sha256: createHash("sha256").update(data).digest("hex") };
    },
    close: async () => {},
  };
  return {
    service,
    state,
    hold(fragment: string): void {
      state.hold = fragment;
      state.gate = new Promise<void>((r) => (release = r));
    },
    release(): void {
      state.hold = null;
      release();
    },
  };
}

describe("SyncEngine: the periodic sweep never holds up a pass", () => {
  it("standby: a pull lands while the verify is stuck in another root; the local edit it then finds is rescued", async () => {
    const hasher = gatedHasher();
    const { caseDir, h } = await syncedStandby({ roots: { ssh: {}, web: {} }, hasher: hasher.service });
    const edited = path.join(h.live("ssh"), "sshd_config");
    await writeFile(edited, "Port 2222\n"); // a local edit on the standby: not in the hash cache
    hasher.hold(`${path.sep}ssh${path.sep}`);
    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("the sweep reading the edited file", () => hasher.state.held > 0);

    // Meanwhile the primary publishes a change of the other root: it is pulled and applied at once.
    await writeFile(path.join(caseDir, "primary", "web", "site.conf"), "listen 8080\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await synced(h, 2);
    assert.equal(await readFile(path.join(h.live("web"), "site.conf"), "utf8"), "listen 8080\n");
    assert.deepEqual(h.engine.sweepCounts(), { sweeps: 0, drifts: 0 }, "the sweep is still inside ssh");
    assert.equal(h.of("rescued").length, 0, "nothing rescued before the sweep's finding reaches the pass");

    hasher.release();
    await waitFor("the edit rescued", () => h.of("rescued").length === 1);
    await waitFor("ssh pulled again", () => h.of("synced").filter((e) => e.generation === 2).length === 2);
    assert.equal(h.of("rescued")[0]!.root, "ssh");
    assert.equal(await readFile(edited, "utf8"), "Port 22\n", "the primary's file is live again; the edit is in the rescue folder");
    // The sweep hands ssh over, then reads web: it may end after the pull.
    await waitFor("the sweep ended", () => h.engine.sweepCounts().sweeps === 1);
    assert.deepEqual(h.engine.sweepCounts(), { sweeps: 1, drifts: 1 });
    assert.equal(h.engine.status().failures, 0);
  });

  it("standby: a sweep that finds the last synced files changes nothing and starts no pull", async () => {
    const { h } = await syncedStandby();
    const pulls = h.puller.requests.length;
    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("one sweep", () => h.engine.sweepCounts().sweeps === 1);
    assert.equal(h.engine.sweepCounts().drifts, 0);
    assert.equal(h.puller.requests.length, pulls);
    assert.equal(h.of("rescued").length, 0);
  });

  it("primary: a change the watcher missed is published after the sweep; an unchanged tree is not republished", async () => {
    const hasher = gatedHasher();
    const caseDir = await newCase();
    const h = await makeNode(caseDir, { node: "n1", roots: { ssh: {}, web: {} }, hasher: hasher.service });
    await makeTree(h.live("ssh"), SSH);
    await makeTree(h.live("web"), { "site.conf": "listen 80\n" });
    await h.engine.start();
    h.engine.follow(primary("n1", 7));
    await waitFor("generation 1", () => h.of("published").length === 1);

    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("one sweep", () => h.engine.sweepCounts().sweeps === 1);
    assert.equal(h.coord.calls.length, 1, "nothing changed: nothing published");

    // Both roots change with no watch event; the sweep is held inside ssh while web's change
    // is published through a watch event: the sweep does not delay it.
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "Port 2200\n");
    await writeFile(path.join(h.live("web"), "site.conf"), "listen 81\n");
    hasher.hold(`${path.sep}ssh${path.sep}`);
    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("the sweep reading the changed file", () => hasher.state.held > 0);
    h.watch.emit(path.join(h.live("web"), "site.conf"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 2 (web)", () => h.of("published").length === 2);
    assert.deepEqual(h.of("published")[1]!.roots, ["web"]);

    hasher.release();
    await waitFor("generation 3 (ssh, found by the sweep)", () => h.of("published").length === 3);
    assert.deepEqual(h.of("published")[2]!.roots, ["ssh"]);
    // The sweep hands ssh over, then reads web: it may end after generation 3 is out.
    await waitFor("the second sweep ended", () => h.engine.sweepCounts().sweeps === 2);
    assert.deepEqual(h.engine.sweepCounts(), { sweeps: 2, drifts: 1 });
  });

  it("a sweep is dropped when the node changes sides while it runs", async () => {
    const hasher = gatedHasher();
    const { h } = await syncedStandby({ hasher: hasher.service });
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "Port 2222\n");
    hasher.hold(`${path.sep}ssh${path.sep}`);
    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("the sweep reading the edited file", () => hasher.state.held > 0);
    h.engine.follow(primary("n2", 9, await recordFor(h)));
    hasher.release();
    await waitFor("published as primary", () => h.coord.calls.length > 0);
    assert.equal(h.of("rescued").length, 0, "the standby's finding is not acted on by the primary");
    assert.equal(h.engine.sweepCounts().drifts, 0);
    assert.equal(h.coord.calls[0]!.generation.generation, 2, "the promoted node publishes its own edit");
  });

  it("a sweep waits between directories while a pass runs (at most 1 s each time), so it does not slow the pull", async () => {
    const { caseDir, h } = await syncedStandby();
    let release: () => void = () => {};
    h.puller.gate = new Promise<void>((r) => (release = r));
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 23\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await waitFor("pull started", () => h.puller.requests.length === 2);
    await h.clock.advance(SETTINGS.reconcileMs);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.engine.sweepCounts().sweeps, 0, "the sweep waits while the pull runs");
    release();
    h.puller.gate = undefined;
    await synced(h, 2);
    await waitFor("the sweep after the pass", () => h.engine.sweepCounts().sweeps === 1);

    // A pass that does not end (until the test releases it): the sweep goes on after 1 s per directory.
    h.puller.gate = new Promise<void>((r) => (release = r));
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 24\n");
    h.engine.follow(standby(await recordFor(h, { generation: 3 })));
    await waitFor("pull started", () => h.puller.requests.length === 3);
    await h.clock.advance(SETTINGS.reconcileMs);
    // Each step lets the sweep reach its next wait (real time), then ends that wait (fake time); a
    // step that finds no wait armed yet is wasted, so there are more steps than directories.
    for (let i = 0; i < 100 && h.engine.sweepCounts().sweeps < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await h.clock.advance(1000);
    }
    assert.equal(h.engine.sweepCounts().sweeps, 2, "not starved by a pass that never ends");
    h.puller.gate = undefined;
    release();
    await synced(h, 3);
  });

  it("primary: each period also runs a pass, so a record left unpublished (a refused put) is put again", async () => {
    const caseDir = await newCase();
    const h = await makeNode(caseDir, { node: "n1", roots: { ssh: {} } });
    await makeTree(h.live("ssh"), SSH);
    await h.engine.start();
    h.coord.accept = false;
    h.engine.follow(primary("n1", 7));
    await waitFor("the put refused", () => h.coord.calls.length === 1);
    assert.equal(h.of("published").length, 0);
    h.coord.accept = true;
    await h.clock.advance(SETTINGS.reconcileMs);
    await waitFor("put again by the periodic pass", () => h.of("published").length === 1);
    assert.equal(h.coord.calls.length, 2);
  });
});
