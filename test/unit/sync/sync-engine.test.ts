// SyncEngine (src/sync/engine.ts) on real temp directories: the primary side
// publishing generations guarded by its term, the standby side pulling,
// verifying, applying, rescuing, retrying. The transport is a FakePuller that
// copies a local "primary" directory into the staging dir; timers run on a
// FakeClock, so retries fire only when a test advances it (engine-harness.ts).
import assert from "node:assert/strict";
import { chmod, lstat, readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { SyncGeneration } from "../../../src/coordinator/port.js";
import { stagingDirFor } from "../../../src/sync/apply.js";
import { combinedDigest } from "../../../src/sync/engine.js";
import { buildManifest } from "../../../src/sync/manifest.js";
import { EMPTY_STATE } from "../../../src/sync/state.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { makeTree, snapshot, type TreeSpec } from "../../fakes/tree.js";
import { ADDRESS, SETTINGS, SSH, WEB, leader, makeNode, modeOf, newCase, primary, recordFor, stageOf, standby, started, synced, syncedStandby, waitFor } from "./engine-harness.js";

describe("SyncEngine: primary side", () => {
  async function primaryNode(roots: Record<string, TreeSpec> = { ssh: SSH, web: WEB }) {
    const caseDir = await newCase();
    const h = await makeNode(caseDir, { node: "n1", roots: Object.fromEntries(Object.keys(roots).map((k) => [k, {}])) });
    for (const [name, spec] of Object.entries(roots)) await makeTree(h.live(name), spec);
    await h.engine.start();
    return h;
  }

  it("publishes generation 1 with per-root and combined digests, guarded by its term, and records it", async () => {
    const h = await primaryNode();
    h.engine.follow(primary("n1", 7));
    await waitFor("published", () => h.of("published").length === 1);
    assert.equal(h.coord.calls.length, 1);
    const { term, generation: g } = h.coord.calls[0]!;
    const ssh = await buildManifest(h.roots[0]!);
    const web = await buildManifest(h.roots[1]!);
    assert.equal(term, 7);
    assert.deepEqual(
      { ...g, publishedAt: "" },
      { generation: 1, digest: combinedDigest({ ssh: ssh.digest, web: web.digest }), roots: { ssh: ssh.digest, web: web.digest }, files: 4, source: "n1", term: 7, publishedAt: "" },
    );
    assert.equal(combinedDigest({ web: web.digest, ssh: ssh.digest }), g.digest, "independent of key order");
    assert.notEqual(combinedDigest({ ssh: ssh.digest }), g.digest);
    assert.deepEqual(h.of("published"), [{ type: "published", generation: 1, files: 4, roots: ["ssh", "web"], local: [] }], "nothing known before: no local change");
    assert.equal((await h.store.loadKnown("ssh"))?.digest, ssh.digest, "published manifests are the known ones");
    assert.equal((await h.store.loadKnown("web"))?.digest, web.digest);
    assert.deepEqual(await h.store.loadHeld(), { generation: 1, roots: { ssh: ssh.digest, web: web.digest } });
    const s = h.engine.status();
    assert.equal(s.role, "primary");
    assert.equal(s.generation, 1);
    assert.equal(h.engine.generation(), 1);
    assert.equal(s.inSync, true);
    assert.equal(s.published?.generation, 1);
    assert.deepEqual(
      s.roots.map((r) => [r.name, r.digest, r.files, r.bytes]),
      [
        ["ssh", ssh.digest, 3, 7 + 8 + 2],
        ["web", web.digest, 1, 10],
      ],
    );
    assert.equal(h.engine.manifest("ssh")?.digest, ssh.digest);
    assert.deepEqual([...h.watch.roots].sort(), h.roots.map((r) => r.path).sort(), "watches every root");
    assert.equal(h.engine.behindSince(), null);
    assert.ok(h.counter.progress > 0, "onProgress called");
  });

  it("a watched change publishes the next generation for that root only; an unchanged tree is not republished", async () => {
    const h = await primaryNode();
    h.engine.follow(primary("n1", 7));
    await waitFor("generation 1", () => h.of("published").length === 1);
    const g1 = h.coord.last()!;
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "Port 2222\n");
    h.watch.emit(path.join(h.live("ssh"), "sshd_config"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 2", () => h.of("published").length === 2);
    const g2 = h.coord.last()!;
    assert.equal(g2.generation, 2);
    assert.equal(g2.term, 7);
    assert.equal(g2.roots.web, g1.roots.web);
    assert.notEqual(g2.roots.ssh, g1.roots.ssh);
    assert.equal(g2.roots.ssh, (await buildManifest(h.roots[0]!)).digest);
    assert.deepEqual(h.of("published")[1]!.roots, ["ssh"]);
    assert.equal((await h.store.loadKnown("ssh"))?.digest, g2.roots.ssh);
    assert.equal(h.engine.generation(), 2);

    // A stale read of an older record does not lower the next generation.
    h.engine.follow(primary("n1", 7, g1));
    await h.clock.advance(1000);
    const before = h.engine.status().lastSuccessAt;
    h.engine.resync();
    await waitFor("resync pass", () => h.engine.status().lastSuccessAt !== before);
    assert.equal(h.coord.calls.length, 2, "same tree, same term: nothing to publish");

    await writeFile(path.join(h.live("web"), "site.conf"), "listen 8080\n");
    h.watch.emit(path.join(h.live("web"), "site.conf"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 3", () => h.of("published").length === 3);
    assert.equal(h.coord.last()!.generation, 3);
  });

  it("a publish refused (my term is no longer the leader's) saves neither the known manifest nor the held generation", async () => {
    const h = await primaryNode({ ssh: SSH });
    h.coord.accept = false;
    h.engine.follow(primary("n1", 7));
    await waitFor("publish attempt", () => h.coord.calls.length === 1);
    await h.engine.close(); // waits for the pass
    assert.equal(h.engine.generation(), 0);
    assert.equal(h.engine.status().published, null);
    assert.equal(await h.store.loadKnown("ssh"), undefined);
    assert.deepEqual(await h.store.loadHeld(), EMPTY_STATE);
    assert.deepEqual(h.of("published"), []);
    assert.ok(h.puller.closed >= 1, "close() closes the puller");
    assert.equal(h.watch.closed, 1, "close() stops the watcher");
  });

  it("a save that fails after the put is not taken for done: the retry puts and saves the record again", async () => {
    const h = await primaryNode({ ssh: SSH });
    const save = h.store.saveHeld.bind(h.store);
    let failNext = true;
    h.store.saveHeld = async (held) => {
      if (failNext) {
        failNext = false;
        throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
      }
      return save(held);
    };
    h.engine.follow(primary("n1", 7));
    await waitFor("the put", () => h.coord.calls.length === 1);
    await waitFor("the failed pass", () => h.engine.status().failures === 1);
    assert.equal(h.engine.generation(), 0, "not held: the save failed");
    await h.clock.advance(200); // the first retry
    await waitFor("put again", () => h.coord.calls.length === 2);
    // Held once its save returned (the file may be on disk a moment before that): wait for the engine.
    await waitFor("held", () => h.engine.generation() === 1);
    assert.equal((await h.store.loadHeld()).generation, 1, "saved");
    assert.equal(h.coord.calls[1]!.generation.generation, 1, "the same generation, put again");
    assert.equal(h.engine.status().failures, 0);
  });

  it("taking over: the same tree is republished under my term with the same generation", async () => {
    const h = await primaryNode({ ssh: SSH });
    const mine = (await buildManifest(h.roots[0]!)).digest;
    const prev: SyncGeneration = { generation: 5, digest: combinedDigest({ ssh: mine }), roots: { ssh: mine }, files: 3, source: "n0", term: 6, publishedAt: "x" };
    h.engine.follow(primary("n1", 7, prev));
    await waitFor("republished", () => h.of("published").length === 1);
    assert.deepEqual(
      h.coord.calls.map((c) => [c.term, c.generation.generation, c.generation.term, c.generation.source, c.generation.digest]),
      [[7, 5, 7, "n1", prev.digest]],
    );
    assert.deepEqual(h.of("published")[0]!.roots, [], "no root changed");
    assert.equal(h.engine.generation(), 5);
  });

  it("taking over: a different tree is published as the previous generation + 1", async () => {
    const h = await primaryNode({ ssh: SSH });
    const prev: SyncGeneration = { generation: 5, digest: combinedDigest({ ssh: "0".repeat(64) }), roots: { ssh: "0".repeat(64) }, files: 3, source: "n0", term: 6, publishedAt: "x" };
    h.engine.follow(primary("n1", 7, prev));
    await waitFor("published", () => h.of("published").length === 1);
    assert.equal(h.coord.last()!.generation, 6);
    assert.equal(h.coord.last()!.term, 7);
    assert.deepEqual(
      h.of("published").map((e) => e.roots),
      [["ssh"]],
    );
  });
});

describe("SyncEngine: standby side", () => {
  it("pulls and applies a primary engine's generation: same bytes and modes, generation held, synced event", async () => {
    const caseDir = await newCase();
    const p = await makeNode(caseDir, { node: "n1", roots: { ssh: {}, web: {} } });
    await makeTree(p.live("ssh"), SSH);
    await makeTree(p.live("web"), WEB);
    await p.engine.start();
    p.engine.follow(primary("n1", 7));
    await waitFor("primary published", () => p.of("published").length === 1);
    const rec = p.coord.last()!;

    const h = await started(caseDir, { node: "n2", roots: { ssh: {}, web: {} }, source: p.live });
    h.engine.follow(standby(rec));
    assert.equal(typeof h.engine.behindSince(), "number", "behind from the moment the generation is seen");
    assert.equal(h.engine.status().inSync, false);
    await synced(h, 1);

    assert.deepEqual(
      h.puller.requests.map((r) => ({ ...r })),
      h.roots.map((r) => ({ primary: ADDRESS, root: r.name, staging: stagingDirFor(r), exclude: [], checksum: false, copyDest: r.path })),
    );
    for (const r of h.roots) assert.equal((await buildManifest(r)).digest, rec.roots[r.name], `${r.name} is the primary's tree`);
    const key = path.join(h.live("ssh"), "ssh_host_ed25519_key");
    assert.equal(await readFile(key, "utf8"), "PRIVATE");
    assert.equal(await modeOf(key), 0o600);
    assert.equal(await readFile(path.join(h.live("ssh"), "conf.d/extra.conf"), "utf8"), "X\n");
    assert.equal(h.engine.generation(), 1);
    const s = h.engine.status();
    assert.deepEqual([s.role, s.inSync, s.lagMs, s.failures, s.lastError, s.waiting], ["standby", true, 0, 0, null, null]);
    assert.notEqual(s.lastSuccessAt, null);
    assert.equal(h.engine.behindSince(), null);
    assert.deepEqual(
      h.of("applied").map((e) => [e.root, e.generation, e.summary.added.length]),
      [
        ["ssh", 1, 4],
        ["web", 1, 1],
      ],
    );
    for (const e of h.of("applied"))
      assert.ok(
        [e.pullMs, e.checkMs, e.applyMs].every((ms) => Number.isFinite(ms) && ms >= 0),
        "each step timed",
      );
    assert.ok(h.counter.progress > 0, "h.counter.progress > 0");
    assert.deepEqual(await h.store.loadHeld(), { generation: 1, roots: rec.roots });
    assert.equal((await h.store.loadKnown("ssh"))?.digest, rec.roots.ssh);
    assert.equal(h.engine.manifest("ssh")?.digest, rec.roots.ssh);

    h.engine.follow(standby(rec)); // the same record again: nothing to do
    h.engine.follow(standby(undefined)); // etcd unreadable this cycle: keep the last record
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.puller.requests.length, 2);
    assert.equal(h.engine.status().published?.generation, 1);
    assert.equal(h.engine.status().inSync, true);
  });

  it("waits without pulling until the new leader republishes under its own term", async () => {
    const caseDir = await newCase();
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await started(caseDir, { node: "n3" });
    const old = await recordFor(h, { source: "n1", term: 6 });
    h.engine.follow(standby(old, leader("n2", 7)));
    await waitFor("waiting", () => h.engine.status().waiting !== null);
    assert.match(h.engine.status().waiting!, /waiting for n2 to publish its files under term 7/);
    assert.equal(h.engine.memberSummary().waiting, h.engine.status().waiting);
    assert.equal(h.puller.requests.length, 0);
    assert.equal(h.engine.generation(), 0);
    assert.equal(typeof h.engine.behindSince(), "number");

    const mine = { ...old, source: "n2", term: 7 };
    h.engine.follow(standby(mine, leader("n2", 7, null)));
    await waitFor("no address", () => /no address published for n2/.test(h.engine.status().waiting ?? ""));
    h.engine.follow(standby(mine, leader("n3", 8)));
    await waitFor("self leader", () => /no primary to pull from/.test(h.engine.status().waiting ?? ""));
    assert.equal(h.puller.requests.length, 0);

    h.engine.follow(standby(mine, leader("n2", 7)));
    await synced(h, 1);
    assert.equal(h.puller.requests.length, 1);
    assert.equal(h.puller.requests[0]!.primary, ADDRESS);
    assert.equal(h.puller.requests[0]!.root, "ssh", "the root by name: the primary's rsync daemon maps it to its own path");
    assert.equal(h.engine.status().waiting, null);
  });

  it("a validator failure leaves the live files untouched, keeps the generation, and retries with backoff", async () => {
    const runner = new StrictCommandRunner();
    const argv = ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"];
    const caseDir = await newCase();
    const expected = ["/usr/sbin/sshd", "-t", "-f", `${stageOf(caseDir, "ssh")}/sshd_config`];
    runner.expect(expected).expect(expected, { code: 255, stderr: "line 2: Bogus: unsupported option\n" }).expect(expected);
    const { h } = await syncedStandby({ runner, roots: { ssh: { validate: argv } } }, caseDir);
    const live = h.live("ssh");
    const before = await snapshot(live);

    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 22\nBogus yes\n");
    const rec2 = await recordFor(h, { generation: 2 });
    h.engine.follow(standby(rec2));
    await waitFor("failed", () => h.of("failed").length === 1);
    const s = h.engine.status();
    assert.equal(s.lastError?.code, "US_E_SYNC_VALIDATOR_FAILED");
    assert.match(s.lastError!.message, /Bogus: unsupported option/);
    assert.equal(s.failures, 1);
    assert.equal(h.engine.generation(), 1);
    assert.equal(s.inSync, false);
    assert.deepEqual(await snapshot(live), before, "live tree untouched, byte for byte and inode for inode");
    assert.equal((await h.store.loadHeld()).generation, 1);
    assert.match(h.engine.memberSummary().lastError ?? "", /US_E_SYNC_VALIDATOR_FAILED|validator/);
    assert.equal(runner.calls[1]!.options?.timeoutMs, SETTINGS.validateTimeoutMs);

    await h.clock.advance(199);
    assert.equal(runner.calls.length, 2, "first retry after 200 ms, not before");
    await h.clock.advance(1);
    await synced(h, 2);
    assert.equal(runner.calls.length, 3);
    runner.done();
    assert.equal(h.engine.status().failures, 0);
    assert.equal(h.engine.status().lastError, null);
    assert.equal(await readFile(path.join(live, "sshd_config"), "utf8"), "Port 22\nBogus yes\n");
  });

  it("a staged tree that does not match the published digest is refused and re-pulled with checksums", async () => {
    const { caseDir, h } = await syncedStandby();
    const src = path.join(caseDir, "primary", "ssh", "sshd_config");
    const live = h.live("ssh");
    const before = await snapshot(live);
    await writeFile(src, "Port 2200\n");
    const rec2 = await recordFor(h, { generation: 2 });
    await writeFile(src, "Port 2201\n"); // changed again while the standby pulls
    h.engine.follow(standby(rec2));
    await waitFor("mismatch", () => h.of("failed").length === 1);
    assert.equal(h.engine.status().lastError?.code, "US_E_SYNC_DIGEST_MISMATCH");
    assert.deepEqual(await snapshot(live), before);
    assert.equal(h.puller.requests[1]!.checksum, false);

    await h.clock.advance(100); // a mismatch retries quickly
    await waitFor("second mismatch", () => h.of("failed").length === 2);
    assert.equal(h.puller.requests[2]!.checksum, true, "re-pulled with --checksum");
    await writeFile(src, "Port 2200\n");
    await h.clock.advance(100);
    await synced(h, 2);
    assert.equal(h.puller.requests[3]!.checksum, true);
    assert.equal(await readFile(path.join(live, "sshd_config"), "utf8"), "Port 2200\n");

    await writeFile(src, "Port 2300\n");
    h.engine.follow(standby(await recordFor(h, { generation: 3 })));
    await synced(h, 3);
    assert.equal(h.puller.requests[4]!.checksum, false, "back to the quick check after a success");
  });

  it("published roots that differ from the local ones are refused with US_E_SYNC_ROOTS_MISMATCH", async () => {
    const caseDir = await newCase();
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await started(caseDir);
    const rec = await recordFor(h);
    h.engine.follow(standby({ ...rec, roots: { ...rec.roots, web: rec.roots.ssh! } }));
    await waitFor("failed", () => h.of("failed").length === 1);
    const e = h.engine.status().lastError!;
    assert.equal(e.code, "US_E_SYNC_ROOTS_MISMATCH");
    assert.match(e.message, /primary n1: it publishes \[ssh, web\], this node syncs \[ssh\]/);
    assert.equal(h.puller.requests.length, 0);
    assert.equal(h.engine.generation(), 0);
  });

  it("behindSince: null in sync, a monotonic time from when a newer generation is seen until it is applied", async () => {
    const { caseDir, h } = await syncedStandby();
    assert.equal(h.engine.behindSince(), null);
    assert.equal(h.engine.memberSummary().behindSince, null);
    let release = () => {};
    h.puller.gate = new Promise<void>((r) => (release = r));
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 2222\n");
    await h.clock.advance(500);
    const seenAt = h.clock.monotonicMs();
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    assert.equal(h.engine.behindSince(), seenAt);
    await waitFor("pull started", () => h.puller.requests.length === 2);
    await h.clock.advance(300);
    const s = h.engine.status();
    assert.equal(s.lagMs, 300);
    assert.equal(s.inSync, false);
    assert.equal(s.behindSince, new Date(h.clock.wallMs() - 300).toISOString());
    assert.equal(h.engine.generation(), 1);
    h.puller.gate = undefined;
    release();
    await synced(h, 2);
    assert.equal(h.engine.behindSince(), null);
    assert.equal(h.engine.status().lagMs, 0);
  });

  it("a pull still in flight when the node is promoted is not applied over the new primary's files", async () => {
    const { caseDir, h } = await syncedStandby();
    const live = path.join(h.live("ssh"), "sshd_config");
    const mine = await readFile(live, "utf8");
    let release = () => {};
    h.puller.gate = new Promise<void>((r) => (release = r));
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 2222\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await waitFor("pull started", () => h.puller.requests.length === 2);
    // Promoted while rsync runs: this node's files are the source now.
    h.engine.follow(primary("n2", 9, await recordFor(h, { generation: 2 })));
    h.puller.gate = undefined;
    release();
    await waitFor("pull returned", async () => h.coord.calls.length > 0);
    await h.clock.advance(1000);
    assert.equal(await readFile(live, "utf8"), mine, "the old primary's newer file was not applied over the promoted node's own");
    assert.equal(h.of("applied").length, 1, "only generation 1 was ever applied");
    assert.equal(
      h.of("synced").some((e) => e.generation === 2),
      false,
    );
  });

  it("promoted while a verify runs: one more pass (a publish), not a failure", async () => {
    const { h } = await syncedStandby();
    const rec = await recordFor(h);
    const failedBefore = h.of("failed").length;
    // resync() starts a pass at once: when it returns, the pass is inside the verify (reading the root)...
    h.engine.resync();
    // ...and the node is promoted before the pass plans its next step, which is now a publish. The
    // same path takes a verify asked again meanwhile (the periodic verify landing on a long one).
    h.engine.follow(primary("n2", 9, rec));
    await waitFor("published as primary", () => h.coord.calls.length > 0);
    assert.deepEqual(
      h
        .of("failed")
        .slice(failedBefore)
        .map((e) => e.code),
      [],
      "not reported as a failed sync (it was US_E_UNEXPECTED, retried with backoff)",
    );
    assert.equal(h.engine.status().failures, 0);
  });

  it("post_sync runs only for a root whose files changed, with its env; a failing one is reported but the generation is held", async () => {
    const runner = new StrictCommandRunner();
    const reload = (unit: string) => ["/usr/bin/systemctl", "reload", unit];
    runner.expect(reload("ssh")).expect(reload("web")).expect(reload("web")).expect(reload("ssh"), { code: 1, stderr: "Job failed\n" });
    const { caseDir, h } = await syncedStandby({ runner, roots: { ssh: { postSync: reload("ssh") }, web: { postSync: reload("web") } } });
    assert.equal(runner.calls.length, 2);
    assert.equal(runner.calls[0]!.options?.timeoutMs, SETTINGS.postSyncTimeoutMs);
    assert.deepEqual(runner.calls[0]!.options?.env, {
      UNDERSTUDY_EVENT: "post_sync",
      UNDERSTUDY_SYNC_ROOT: "ssh",
      UNDERSTUDY_SYNC_PATH: h.live("ssh"),
      UNDERSTUDY_GENERATION: "1",
      UNDERSTUDY_CHANGED_COUNT: "4",
      UNDERSTUDY_CHANGED_PATHS: "conf.d\nconf.d/extra.conf\nssh_host_ed25519_key\nsshd_config",
    });
    assert.equal(runner.calls[1]!.options?.env?.UNDERSTUDY_SYNC_ROOT, "web");

    await writeFile(path.join(caseDir, "primary", "web", "site.conf"), "listen 8080\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await synced(h, 2);
    assert.deepEqual(
      runner.calls.slice(2).map((c) => c.argv),
      [reload("web")],
      "ssh did not change: neither pulled nor reloaded",
    );
    assert.equal(h.puller.requests.length, 3);

    h.engine.resync(); // re-pulls every root with checksums; nothing changed, nothing reloaded
    assert.equal(h.engine.generation(), 0);
    await waitFor("resynced", () => h.of("synced").length === 3);
    assert.deepEqual(
      h.puller.requests.slice(3).map((r) => r.checksum),
      [true, true],
    );
    assert.equal(runner.calls.length, 3);
    assert.equal(h.engine.generation(), 2);

    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 2022\n");
    h.engine.follow(standby(await recordFor(h, { generation: 3 })));
    await synced(h, 3);
    runner.done();
    const s = h.engine.status();
    assert.equal(s.lastError?.code, "US_E_SYNC_POST_SYNC_FAILED");
    assert.match(s.lastError!.message, /ssh.*systemctl.*exit 1: Job failed/);
    assert.equal(s.generation, 3);
    assert.equal(s.inSync, true);
    assert.equal(s.failures, 0, "the sync itself succeeded");
    assert.ok(
      h.of("failed").some((e) => e.code === "US_E_SYNC_POST_SYNC_FAILED"),
      'h.of("failed").some((e) => e.code === "US_E_SYNC_POST_SYNC_FAILED")',
    );
    assert.equal(await readFile(path.join(h.live("ssh"), "sshd_config"), "utf8"), "Port 2022\n", "the new files stay live");
  });

  it("a forced owner goes live and is what is known (no rescue after a restart); max_mode refuses a wider file", async () => {
    const roots = { ssh: { owner: { uid: 1234, gid: 5678 }, maxMode: 0o644 } };
    const { caseDir, h, rec1 } = await syncedStandby({ roots });
    const st = await lstat(path.join(h.live("ssh"), "sshd_config"));
    assert.deepEqual([st.uid, st.gid], [1234, 5678]);
    await chmod(path.join(caseDir, "primary", "ssh", "sshd_config"), 0o664);
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await waitFor("failed", () => h.of("failed").length === 1);
    assert.equal(h.engine.status().lastError?.code, "US_E_SYNC_MODE");
    assert.equal(h.engine.generation(), 1);
    await h.engine.close();
    const h2 = await started(caseDir, { roots });
    h2.engine.follow(standby(rec1));
    await h2.engine.close(); // waits for the verify pass
    assert.deepEqual(h2.of("rescued"), []);
    assert.equal(h2.puller.requests.length, 0, "generation 1 still held: nothing to pull");
  });

  it("an unusable state.json counts as holding nothing: every root is pulled again", async () => {
    const { caseDir, h, rec1 } = await syncedStandby();
    await h.engine.close();
    await writeFile(path.join(h.stateDir, "sync", "state.json"), "{ not json");
    const h2 = await started(caseDir);
    assert.equal(h2.engine.generation(), 0);
    h2.engine.follow(standby(rec1));
    await synced(h2, 1);
    assert.equal(h2.puller.requests.length, 1);
    assert.deepEqual(h2.of("rescued"), [], "live files match the known manifest: nothing to rescue");
  });
});

describe("SyncEngine: rescue", () => {
  it("a restarted standby moves locally edited and added files into the rescue folder before pulling", async () => {
    const { caseDir, h, rec1 } = await syncedStandby();
    await h.engine.close();
    const live = h.live("ssh");
    await writeFile(path.join(live, "sshd_config"), "Port 2222 # local edit\n");
    await writeFile(path.join(live, "local.conf"), "mine\n");
    const h2 = await started(caseDir);
    assert.equal(h2.engine.generation(), 1, "held state loaded");
    h2.engine.follow(standby(rec1));
    await synced(h2, 1);
    const [r] = h2.of("rescued");
    assert.ok(r, "a rescued event");
    assert.equal(r.root, "ssh");
    assert.deepEqual(r.result.files, ["local.conf", "sshd_config"]);
    assert.ok(r.result.dir.startsWith(path.join(h2.stateDir, "rescue") + path.sep), r.result.dir);
    assert.equal(await readFile(path.join(r.result.dir, "sshd_config"), "utf8"), "Port 2222 # local edit\n", "the edit is not lost");
    assert.equal(await readFile(path.join(r.result.dir, "local.conf"), "utf8"), "mine\n");
    assert.equal(JSON.parse(await readFile(`${r.result.dir}.json`, "utf8")).lastKnownDigest, rec1.roots.ssh);
    assert.equal(await readFile(path.join(live, "sshd_config"), "utf8"), "Port 22\n", "then the primary's file was pulled");
    await assert.rejects(stat(path.join(live, "local.conf")), { code: "ENOENT" });
    assert.equal(h2.puller.requests.length, 1);
    assert.equal(h2.engine.status().rescues.length, 1);
    assert.equal(h2.engine.memberSummary().rescues, 1);
  });

  it("a primary that steps down rescues what it changed but never published, then follows the new primary", async () => {
    const caseDir = await newCase();
    const h = await makeNode(caseDir, { node: "n1" });
    await makeTree(h.live("ssh"), SSH);
    await h.engine.start();
    h.engine.follow(primary("n1", 7));
    await waitFor("published", () => h.of("published").length === 1);
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "unpublished edit\n"); // no watch event: never published
    await makeTree(path.join(caseDir, "primary", "ssh"), { ...SSH, sshd_config: "Port 22 # n2\n" });
    const rec = await recordFor(h, { generation: 2, source: "n2", term: 8 });
    h.engine.follow(standby(rec, leader("n2", 8)));
    await synced(h, 2);
    assert.equal(h.engine.status().role, "standby");
    assert.equal(h.watch.closed, 1, "stopped watching");
    const [r] = h.of("rescued");
    assert.deepEqual(r?.result.files, ["sshd_config"]);
    assert.equal(await readFile(path.join(r!.result.dir, "sshd_config"), "utf8"), "unpublished edit\n");
    assert.equal(await readFile(path.join(h.live("ssh"), "sshd_config"), "utf8"), "Port 22 # n2\n");
    assert.equal(h.coord.calls.length, 1, "a standby publishes nothing");
  });

  it("after a stale promotion, the displaced primary rescues the files it published that nobody pulled, once", async () => {
    const caseDir = await newCase();
    const h = await makeNode(caseDir, { node: "n1" });
    await makeTree(h.live("ssh"), SSH);
    await h.engine.start();
    h.engine.follow(primary("n1", 7));
    await waitFor("generation 1", () => h.of("published").length === 1);
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "Port 2200 # published, never pulled\n");
    await writeFile(path.join(h.live("ssh"), "new.conf"), "published too\n");
    h.watch.emit(path.join(h.live("ssh"), "sshd_config"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 2", () => h.of("published").length === 2);
    // n2 held only generation 1 when it was promoted: its generations say so.
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const rec = await recordFor(h, { generation: 3, source: "n2", term: 8, displaced: { source: "n1", generation: 2 } });
    h.engine.follow(standby(rec, leader("n2", 8)));
    await synced(h, 3);
    const [r] = h.of("rescued");
    assert.ok(r, "rescued, although the live files were exactly what n1 last published");
    assert.deepEqual(r.result.files, ["new.conf", "sshd_config"]);
    assert.equal(await readFile(path.join(r.result.dir, "sshd_config"), "utf8"), "Port 2200 # published, never pulled\n");
    assert.equal(await readFile(path.join(h.live("ssh"), "sshd_config"), "utf8"), "Port 22\n", "then the new primary's files went live");
    // The next generation of the same term: an ordinary pull, nothing rescued again.
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 23\n");
    h.engine.follow(standby(await recordFor(h, { generation: 4, source: "n2", term: 8, displaced: { source: "n1", generation: 2 } }), leader("n2", 8)));
    await synced(h, 4);
    assert.equal(h.of("rescued").length, 1);
  });

  it("a standby promoted while behind the published generation names it as displaced in its generations", async () => {
    const { caseDir, h, rec1 } = await syncedStandby();
    await writeFile(path.join(caseDir, "primary", "ssh", "sshd_config"), "Port 2222\n");
    const rec2 = await recordFor(h, { generation: 2 });
    h.puller.fail = new Error("rsync: connection refused"); // the primary died before n2 pulled generation 2
    h.engine.follow(standby(rec2));
    await waitFor("pull failed", () => h.of("failed").length >= 1);
    h.engine.follow(primary("n2", 9, rec2));
    await waitFor("published", () => h.coord.calls.length === 1);
    const g = h.coord.last()!;
    assert.deepEqual(g.displaced, { source: "n1", generation: 2 });
    assert.equal(g.generation, 3, "above the generation it did not have");
    assert.equal(g.roots.ssh, rec1.roots.ssh, "its own files: generation 1's");
    // An in-sync standby promoted displaces nothing.
    const t = await syncedStandby();
    t.h.engine.follow(primary("n2", 9, t.rec1));
    await waitFor("published", () => t.h.coord.calls.length === 1);
    assert.equal(t.h.coord.last()!.displaced, undefined);
  });

  it("first sync of a never-synced node: identical local files stay in place and nothing is rescued", async () => {
    const caseDir = await newCase();
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await makeNode(caseDir);
    await makeTree(h.live("ssh"), SSH);
    const before = await snapshot(h.live("ssh"));
    await h.engine.start();
    h.engine.follow(standby(await recordFor(h)));
    await synced(h, 1);
    assert.deepEqual(h.of("rescued"), []);
    await assert.rejects(stat(path.join(h.stateDir, "rescue")), { code: "ENOENT" });
    const [a] = h.of("applied");
    assert.deepEqual([a!.summary.added, a!.summary.changed, a!.summary.removed], [[], [], []]);
    assert.deepEqual(await snapshot(h.live("ssh")), before);
  });

  it("first sync of a never-synced node: a differing local file is rescued before the primary's replaces it", async () => {
    const caseDir = await newCase();
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await makeNode(caseDir);
    await makeTree(h.live("ssh"), { ...SSH, sshd_config: "Port 2222\n" });
    await h.engine.start();
    h.engine.follow(standby(await recordFor(h)));
    await synced(h, 1);
    const r = h.of("rescued");
    assert.equal(r.length, 1);
    assert.deepEqual(r[0]!.result.files, ["sshd_config"]);
    assert.equal(await readFile(path.join(r[0]!.result.dir, "sshd_config"), "utf8"), "Port 2222\n");
    assert.equal(await readFile(path.join(h.live("ssh"), "sshd_config"), "utf8"), "Port 22\n");
    assert.deepEqual((await readdir(path.join(h.stateDir, "rescue"))).length, 1);
  });
});

// Found by these tests and fixed: empty rescues, repeated rescues, a first-sync rescue before the checks.
describe("SyncEngine: rescue only what must be kept, and only after the checks", () => {
  it("first sync into a missing root rescues nothing (there is nothing local to keep)", async () => {
    const caseDir = await newCase();
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await started(caseDir);
    h.engine.follow(standby(await recordFor(h)));
    await synced(h, 1);
    assert.deepEqual(h.of("rescued"), []);
    assert.equal(h.engine.memberSummary().rescues, 0);
  });

  it("a local edit made on a synced standby since its last verify is rescued by the next pull, not deleted or overwritten", async () => {
    const { h } = await syncedStandby();
    // Between two verifies: a new file and an edit on the standby itself (found by the chaos checker).
    await writeFile(path.join(h.live("ssh"), "local-only.conf"), "made on the standby\n");
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "Port 2200\n");
    // The primary changes another file: generation 2.
    await writeFile(path.join(h.source("ssh"), "conf.d", "extra.conf"), "Y\n");
    h.engine.follow(standby(await recordFor(h, { generation: 2 })));
    await synced(h, 2);
    const rescued = h.of("rescued");
    assert.equal(rescued.length, 1, "one rescue");
    assert.deepEqual(rescued[0]!.result.files, ["local-only.conf", "sshd_config"]);
    assert.equal(await readFile(path.join(rescued[0]!.result.dir, "local-only.conf"), "utf8"), "made on the standby\n");
    assert.equal(await readFile(path.join(rescued[0]!.result.dir, "sshd_config"), "utf8"), "Port 2200\n");
    assert.equal(await readFile(path.join(h.live("ssh"), "sshd_config"), "utf8"), "Port 22\n", "the primary's file is live again");
    await h.engine.close();
  });

  it("a standby that cannot pull yet rescues a local edit once, not again at every verify", async () => {
    const { caseDir, h, rec1 } = await syncedStandby();
    await h.engine.close();
    await writeFile(path.join(h.live("ssh"), "sshd_config"), "local edit\n");
    const rescued: number[] = [];
    for (let i = 0; i < 2; i++) {
      const hi = await started(caseDir);
      hi.engine.follow(standby(rec1, leader("n3", 8))); // the new leader has not republished: verify, then wait
      await hi.engine.close(); // waits for the pass
      rescued.push(hi.of("rescued").length);
    }
    assert.deepEqual(rescued, [1, 0]);
  });

  it("first sync: a staged tree its validator refuses changes nothing live, not even by a rescue", async () => {
    const caseDir = await newCase();
    const runner = new StrictCommandRunner().expect(["/usr/sbin/sshd", "-t", "-f", `${stageOf(caseDir, "ssh")}/sshd_config`], { code: 255, stderr: "bad\n" });
    await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
    const h = await makeNode(caseDir, { runner, roots: { ssh: { validate: ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"] } } });
    await makeTree(h.live("ssh"), { ...SSH, sshd_config: "Port 2222\n" });
    const before = await snapshot(h.live("ssh"));
    await h.engine.start();
    h.engine.follow(standby(await recordFor(h)));
    await waitFor("failed", () => h.of("failed").length === 1);
    assert.equal(h.engine.status().lastError?.code, "US_E_SYNC_VALIDATOR_FAILED");
    assert.deepEqual(await snapshot(h.live("ssh")), before);
  });
});
