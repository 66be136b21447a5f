// Sync roots are independent (src/sync/root-pass.ts): one failing root does not
// stop the others; `{staged:NAME}` in a validator names the copy of another
// root that goes live with it; post_publish runs on the primary after its own
// edits were published (src/sync/change-hooks.ts). Real temp directories, a
// fake puller copying a local "primary" tree, a FakeClock for the retries and
// a StrictCommandRunner for validators and hooks (the engine harness,
// engine-harness.ts, with a puller that fails the roots named).
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { SyncGeneration } from "../../../src/coordinator/port.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { stagingDirFor } from "../../../src/sync/apply.js";
import { rootHookEnv } from "../../../src/sync/change-hooks.js";
import type { EngineRoot, SyncView } from "../../../src/sync/engine.js";
import { applyOrder, stagedRefs, substitutePlaceholders } from "../../../src/sync/placeholders.js";
import type { PullRequest, PullResult } from "../../../src/sync/transport.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { FakePuller } from "../../fakes/sync.js";
import { makeTree, type TreeSpec } from "../../fakes/tree.js";
import { SETTINGS, newCase as newHarnessCase, recordFor, started } from "./engine-harness.js";

const CONF: TreeSpec = { "proftpd.conf": "AuthUserFile /etc/proftpd-users/ftpd.passwd\n" };
const USERS: TreeSpec = { "ftpd.passwd": { content: "alice:x:1000:1000::/srv:/bin/false\n", mode: 0o600 } };
const TLS: TreeSpec = { "proftpd.crt": "CERT\n" };

/** A puller that fails the roots named in `failing`. */
class PerRootPuller extends FakePuller {
  readonly failing = new Set<string>();
  override async pull(req: PullRequest): Promise<PullResult> {
    if (this.failing.has(req.root)) {
      this.requests.push(req);
      throw Object.assign(new Error(`rsync: ${req.root}: connection reset`), {});
    }
    return super.pull(req);
  }
}

/** A runner whose commands wait until release() (a hook hung in a reload). */
class GatedRunner implements CommandRunner {
  readonly calls: { argv: readonly string[]; options?: CommandOptions }[] = [];
  private gate: (() => void) | undefined;
  private wait: Promise<void> = Promise.resolve();
  hold(): void {
    this.wait = new Promise((r) => (this.gate = r));
  }
  release(): void {
    this.gate?.();
  }
  async run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    this.calls.push({ argv, ...(options ? { options } : {}) });
    await this.wait;
    return { code: 0, signal: null, stdout: "", stderr: "" };
  }
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

interface Opts {
  readonly node?: string;
  readonly roots: Readonly<Record<string, Partial<EngineRoot>>>;
  readonly runner?: CommandRunner;
}

/** A started node of the engine harness with a PerRootPuller, the staging dir of a root, and the record of the "primary" trees. */
async function makeNode(caseDir: string, o: Opts) {
  let puller!: PerRootPuller;
  const h = await started(caseDir, { ...o, puller: (copyFrom) => (puller = new PerRootPuller(copyFrom)) });
  const stage = (name: string) => stagingDirFor(h.roots.find((r) => r.name === name)!);
  const record = (generation: number) => recordFor(h, { generation, files: 0 });
  return { ...h, puller, stage, record };
}

const standby = (published: SyncGeneration): SyncView => ({ acting: "standby", term: null, leader: { node: "n1", term: 7, address: "198.18.0.11" }, published });

async function newCase(trees: Record<string, TreeSpec>): Promise<string> {
  const dir = await newHarnessCase();
  for (const [name, spec] of Object.entries(trees)) await makeTree(path.join(dir, "primary", name), spec);
  return dir;
}

describe("placeholders", () => {
  it("{staged:NAME} references, substitution inside arguments, and the check/apply order", () => {
    const argv = ["/x", "{staged}/proftpd.conf", "/etc/u={staged:users}", "--y={staged:tls}/c:{staged:users}", "{staged:}", "{staged:users"];
    assert.deepEqual(stagedRefs(argv), ["users", "tls"]);
    assert.deepEqual(stagedRefs(undefined), []);
    const named = (r: string) => ({ users: "/s/users", tls: "/etc/tls" })[r];
    assert.deepEqual(substitutePlaceholders(argv, "/s/conf", named), ["/x", "/s/conf/proftpd.conf", "/etc/u=/s/users", "--y=/etc/tls/c:/s/users", "{staged:}", "{staged:users"]);
    assert.throws(() => substitutePlaceholders(["{staged:nope}"], "/s", named), /no path for \{staged:nope\}/);
    const r = (name: string, validate?: string[]) => ({ name, ...(validate ? { validate } : {}) });
    assert.deepEqual(
      applyOrder([r("conf", ["{staged:users}", "{staged:tls}"]), r("tls"), r("users"), r("web")]).map((x) => x.name),
      ["users", "tls", "conf", "web"],
      "referenced roots first, in the order the validator names them",
    );
    assert.deepEqual(
      applyOrder([r("a", ["{staged:b}"]), r("b", ["{staged:a}"]), r("c")]).map((x) => x.name),
      ["b", "a", "c"],
      "a cycle keeps a stable order",
    );
    assert.deepEqual(
      applyOrder([r("a", ["{staged:a}", "{staged:zz}"])]).map((x) => x.name),
      ["a"],
      "self and unknown references are ignored",
    );
  });

  it("a root hook's environment: event, root, path, generation, changed paths (bounded)", () => {
    const many = Array.from({ length: 150 }, (_, i) => `f${String(i).padStart(3, "0")}`);
    const env = rootHookEnv({ hook: "post_publish", root: "tls", path: "/etc/ssl/x", argv: ["/bin/true"], generation: 9, changed: many });
    assert.equal(env.UNDERSTUDY_EVENT, "post_publish");
    assert.equal(env.UNDERSTUDY_SYNC_ROOT, "tls");
    assert.equal(env.UNDERSTUDY_SYNC_PATH, "/etc/ssl/x");
    assert.equal(env.UNDERSTUDY_GENERATION, "9");
    assert.equal(env.UNDERSTUDY_CHANGED_COUNT, "150");
    assert.equal(env.UNDERSTUDY_CHANGED_PATHS!.split("\n").length, 100);
  });
});

describe("standby: roots are independent", () => {
  it("a root whose validator fails does not stop the others; the generation is held only when every root is; the root is retried with backoff", async () => {
    const caseDir = await newCase({ conf: CONF, users: USERS, tls: TLS });
    const runner = new StrictCommandRunner();
    const h0 = { conf: { validate: ["/usr/sbin/proftpd", "-t", "-c", "{staged}/proftpd.conf"] }, users: {}, tls: {} };
    const h = await makeNode(caseDir, { roots: h0, runner });
    const check = ["/usr/sbin/proftpd", "-t", "-c", `${h.stage("conf")}/proftpd.conf`];
    runner.expect(check, { code: 1, stderr: "fatal: AuthUserFile: unable to use /etc/proftpd-users/ftpd.passwd\n" }).expect(check);
    h.engine.follow(standby(await h.record(1)));
    await waitFor("failed conf", () => h.of("failed").some((e) => e.root === "conf"));
    await waitFor("pass failed", () => h.engine.status().failures === 1);
    assert.deepEqual(
      h
        .of("applied")
        .map((e) => e.root)
        .sort(),
      ["tls", "users"],
      "the other roots went live in the same pass",
    );
    assert.equal(await readFile(path.join(h.live("users"), "ftpd.passwd"), "utf8"), "alice:x:1000:1000::/srv:/bin/false\n");
    await assert.rejects(readFile(path.join(h.live("conf"), "proftpd.conf")), /ENOENT/, "nothing of conf went live");
    const s = h.engine.status();
    assert.equal(s.generation, 0, "not in sync until every root is");
    assert.equal(s.inSync, false);
    assert.equal(h.engine.generation(), 0, "the member key's generation: still behind for the promotion gate");
    assert.ok(h.engine.behindSince() !== null, "h.engine.behindSince() !== null");
    assert.equal(s.lastError?.code, "US_E_SYNC_VALIDATOR_FAILED");
    const byName = Object.fromEntries(s.roots.map((r) => [r.name, r]));
    assert.equal(byName.conf!.inSync, false);
    assert.equal(byName.conf!.failures, 1);
    assert.equal(byName.conf!.lastError?.code, "US_E_SYNC_VALIDATOR_FAILED");
    assert.equal(byName.users!.inSync, true);
    assert.equal(byName.users!.failures, 0);
    assert.ok(byName.users!.lastSuccessAt, "byName.users!.lastSuccessAt");
    assert.deepEqual(h.engine.memberSummary().failedRoots, ["conf"]);
    assert.deepEqual((await h.store.loadHeld()).generation, 0);

    // The retry (after the first backoff step) pulls only conf.
    const pulls = h.puller.requests.length;
    await h.clock.advance(200);
    await waitFor("synced", () => h.of("synced").length === 1);
    runner.done();
    assert.deepEqual(
      h.puller.requests.slice(pulls).map((r) => r.root),
      ["conf"],
    );
    assert.equal(h.engine.generation(), 1);
    assert.deepEqual(h.engine.memberSummary().failedRoots, []);
    assert.equal(
      h.engine.status().roots.every((r) => r.inSync && r.failures === 0 && r.lastError === null),
      true,
    );
  });

  it("a fresh standby validates a config against the staged copy of the root it names, and applies that root first", async () => {
    const caseDir = await newCase({ conf: CONF, users: USERS });
    const runner = new StrictCommandRunner();
    const validate = ["/usr/bin/check", "{staged}/proftpd.conf", "/etc/proftpd-users={staged:users}"];
    const h = await makeNode(caseDir, { roots: { conf: { validate }, users: {} }, runner });
    runner.expect(["/usr/bin/check", `${h.stage("conf")}/proftpd.conf`, `/etc/proftpd-users=${h.stage("users")}`]);
    h.engine.follow(standby(await h.record(1)));
    await waitFor("synced", () => h.of("synced").length === 1);
    runner.done();
    assert.deepEqual(
      h.of("applied").map((e) => e.root),
      ["users", "conf"],
      "the referenced root goes live first",
    );

    // users unchanged, conf changed: {staged:users} is users' live path (it holds the published files).
    await writeFile(path.join(h.source("conf"), "proftpd.conf"), "AuthUserFile /etc/proftpd-users/ftpd.passwd\nPort 2121\n");
    runner.expect(["/usr/bin/check", `${h.stage("conf")}/proftpd.conf`, `/etc/proftpd-users=${h.live("users")}`]);
    h.engine.follow(standby(await h.record(2)));
    await waitFor("synced 2", () => h.of("synced").length === 2);
    runner.done();
  });

  it("a root whose referenced root failed to pull is not validated against stale files (US_E_SYNC_STAGED_REF); unrelated roots go on", async () => {
    const caseDir = await newCase({ conf: CONF, users: USERS, tls: TLS });
    const runner = new StrictCommandRunner();
    const validate = ["/usr/bin/check", "{staged}/proftpd.conf", "{staged:users}"];
    const h = await makeNode(caseDir, { roots: { conf: { validate }, users: {}, tls: {} }, runner });
    h.puller.failing.add("users");
    h.engine.follow(standby(await h.record(1)));
    await waitFor("pass failed", () => h.engine.status().failures === 1);
    assert.equal(runner.calls.length, 0, "the validator did not run");
    assert.deepEqual(
      h.of("applied").map((e) => e.root),
      ["tls"],
    );
    const roots = Object.fromEntries(h.engine.status().roots.map((r) => [r.name, r]));
    assert.equal(roots.conf!.lastError?.code, "US_E_SYNC_STAGED_REF");
    assert.match(roots.conf!.lastError!.message, /names \{staged:users\}, but root users failed/);
    assert.match(roots.users!.lastError!.message, /connection reset/);
    assert.deepEqual(h.engine.memberSummary().failedRoots, ["conf", "users"]);
    assert.match(h.engine.status().lastError!.message, /and 1 more failing root\(s\)/);

    h.puller.failing.clear();
    runner.expect(["/usr/bin/check", `${h.stage("conf")}/proftpd.conf`, h.stage("users")]);
    await h.clock.advance(200);
    await waitFor("synced", () => h.of("synced").length === 1);
    runner.done();
    assert.equal(h.engine.generation(), 1);
  });
});

describe("primary: post_publish after its own changes", () => {
  async function primaryWith(runner: CommandRunner, publish = ["/usr/bin/systemctl", "reload", "proftpd.service"]) {
    const caseDir = await newCase({});
    const h = await makeNode(caseDir, { node: "n1", roots: { conf: { postPublish: publish }, tls: { postPublish: publish }, web: {} }, runner });
    for (const [name, spec] of Object.entries({ conf: CONF, tls: TLS, web: { "site.conf": "x\n" } })) await makeTree(h.live(name), spec);
    h.engine.follow({ acting: "primary", term: 7, leader: { node: "n1", term: 7, address: null }, published: null });
    await waitFor("generation 1", () => h.of("published").length === 1);
    return h;
  }

  it("runs only the changed root's hook, once, with its changed paths; not for the first publication", async () => {
    const runner = new GatedRunner();
    const h = await primaryWith(runner);
    assert.equal(runner.calls.length, 0, "first publication: nothing changed locally");
    await writeFile(path.join(h.live("tls"), "proftpd.crt"), "RENEWED\n");
    await writeFile(path.join(h.live("tls"), "proftpd.key"), "KEY\n");
    h.watch.emit(path.join(h.live("tls"), "proftpd.crt"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 2", () => h.of("published").length === 2);
    assert.deepEqual(h.of("published")[1]!.local, [{ root: "tls", paths: ["proftpd.crt", "proftpd.key"] }]);
    await waitFor("hook", () => h.of("hook").length === 1);
    assert.equal(runner.calls.length, 1);
    assert.deepEqual(runner.calls[0]!.argv, ["/usr/bin/systemctl", "reload", "proftpd.service"]);
    assert.equal(runner.calls[0]!.options?.timeoutMs, SETTINGS.postSyncTimeoutMs);
    assert.deepEqual(runner.calls[0]!.options?.env, {
      UNDERSTUDY_EVENT: "post_publish",
      UNDERSTUDY_SYNC_ROOT: "tls",
      UNDERSTUDY_SYNC_PATH: h.live("tls"),
      UNDERSTUDY_GENERATION: "2",
      UNDERSTUDY_CHANGED_COUNT: "2",
      UNDERSTUDY_CHANGED_PATHS: "proftpd.crt\nproftpd.key",
    });
    assert.deepEqual(h.of("hook")[0], { type: "hook", hook: "post_publish", root: "tls", ok: true, ms: 0 });
    assert.equal(h.engine.status().roots.find((r) => r.name === "tls")!.lastHook?.hook, "post_publish");

    // A root without post_publish: published, no hook.
    await writeFile(path.join(h.live("web"), "site.conf"), "y\n");
    h.watch.emit(path.join(h.live("web"), "site.conf"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 3", () => h.of("published").length === 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(runner.calls.length, 1);
  });

  it("a hung hook never holds up publishing; a failing one is reported with a code and changes nothing else", async () => {
    const runner = new GatedRunner();
    const h = await primaryWith(runner);
    runner.hold();
    await writeFile(path.join(h.live("conf"), "proftpd.conf"), "Port 21\n");
    h.watch.emit(path.join(h.live("conf"), "proftpd.conf"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("hook started", () => runner.calls.length === 1);
    await writeFile(path.join(h.live("tls"), "proftpd.crt"), "RENEWED\n");
    h.watch.emit(path.join(h.live("tls"), "proftpd.crt"));
    await h.clock.advance(SETTINGS.debounceMs);
    await waitFor("generation 3 while the hook hangs", () => h.of("published").length === 3);
    assert.equal(h.coord.last()?.generation, 3);
    runner.release();
    await waitFor("both hooks", () => h.of("hook").length === 2);
    assert.deepEqual(
      runner.calls.map((c) => c.options?.env?.UNDERSTUDY_SYNC_ROOT),
      ["conf", "tls"],
    );

    const failing = new StrictCommandRunner().expect(["/usr/bin/false"], { code: 1, stderr: "Job for proftpd.service failed\n" });
    const g = await primaryWith(failing, ["/usr/bin/false"]);
    await writeFile(path.join(g.live("tls"), "proftpd.crt"), "RENEWED\n");
    g.watch.emit(path.join(g.live("tls"), "proftpd.crt"));
    await g.clock.advance(SETTINGS.debounceMs);
    await waitFor("hook failed", () => g.of("hook").length === 1);
    failing.done();
    const e = g.of("hook")[0]!;
    assert.equal(e.ok, false);
    assert.equal(e.code, "US_E_SYNC_POST_PUBLISH_FAILED");
    assert.match(e.message!, /post_publish of sync root tls \(\/usr\/bin\/false\) failed after its changes were published: exit 1: Job for proftpd.service failed/);
    const s = g.engine.status();
    assert.equal(s.lastError?.code, "US_E_SYNC_POST_PUBLISH_FAILED");
    assert.equal(s.generation, 2, "published all the same");
    assert.equal(s.roots.find((r) => r.name === "tls")!.lastHook?.ok, false);
  });
});

describe("config and the global hook", () => {
  const yaml = (validate: string[], extra = "") => `cluster: c1
node: { name: n1, address: 198.18.0.11 }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
daemon: { backend: systemd, unit: proftpd.service }
hooks: { post_publish: [/usr/local/libexec/reload] }
sync:
  ssh: { key: /etc/understudy/k, known_hosts: /etc/understudy/kh }
  roots:
    - { name: conf, path: /etc/proftpd, validate: ${JSON.stringify(validate)}, post_publish: [/usr/bin/systemctl, reload, proftpd.service] }
    - { name: users, path: /etc/proftpd-users }${extra}
`;

  it("{staged:NAME} must name a sync root; post_publish is accepted per root and in hooks", async () => {
    const { parseConfigText } = await import("../../../src/config/load.js");
    const ok = parseConfigText(yaml(["/x", "{staged}/a", "{staged:users}"]), "/etc/understudy/u.yaml");
    assert.deepEqual(ok.sync?.roots[0]?.post_publish, ["/usr/bin/systemctl", "reload", "proftpd.service"]);
    assert.deepEqual(ok.hooks?.post_publish, ["/usr/local/libexec/reload"]);
    assert.throws(
      () => parseConfigText(yaml(["/x", "{staged:nope}/a"]), "/etc/understudy/u.yaml"),
      (e: Error) => {
        assert.match(e.message, /sync\.roots\.0\.validate/);
        assert.match(e.message, /names \{staged:nope\}, but there is no sync root nope/);
        return true;
      },
    );
  });

  it("hooks.post_publish gets the generation and the roots this primary changed", async () => {
    const { hookEnv } = await import("../../../src/hooks/runner.js");
    const env = hookEnv("post_publish", { role: "primary", term: 7, node: "n1", cluster: "c1", reason: "own changes published", generation: 4, roots: ["tls", "conf"] });
    assert.equal(env.UNDERSTUDY_EVENT, "post_publish");
    assert.equal(env.UNDERSTUDY_GENERATION, "4");
    assert.equal(env.UNDERSTUDY_SYNC_ROOTS, "tls conf");
    assert.equal(hookEnv("post_sync", { role: "standby", term: null, node: "n1", cluster: "c1", reason: "x" }).UNDERSTUDY_SYNC_ROOTS, undefined);
  });
});
