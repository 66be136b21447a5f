// Sessions still writing after their term's write modules closed (src/data/receiver.ts,
// src/data/writer-sessions.ts): the /proc scan kills exactly the rsync daemon sessions of our
// config chrooted into a data root (or still in their handshake at "/"), never a partner's
// chrooted session or a sync pull; the receiver calls it when a term's modules close, on the
// first write after start, on promotion (closeAll) and at stop, and before `receiving`
// names the new term.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isUnderstudyError, UnderstudyError } from "../../../src/errors/catalogue.js";
import { WriteModules, type ReceiverFiles } from "../../../src/data/receiver.js";
import { barrierProblem } from "../../../src/data/receive.js";
import { ProcWriterSessions, type WriterSessions } from "../../../src/data/writer-sessions.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock, flushMicrotasks } from "../../fakes/clock.js";

const CONF = "/etc/understudy/rsyncd.conf";

/** Lets the receiver's serial runs (write, cut, clear) finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await flushMicrotasks();
}

/** A receiver of one data root (/srv/up) beside one sync root, with the test's files and sessions. */
function writeModules(clock: FakeClock, files: ReceiverFiles, sessions: WriterSessions, onReceivingChanged?: () => void): WriteModules {
  return new WriteModules({
    roots: [{ name: "up", path: "/srv/up" }],
    serve: { configPath: CONF, syncRoots: [{ name: "app", path: "/etc/app" }], daemonUser: "root" },
    files,
    clock,
    log: silentLogger(),
    sessions,
    ...(onReceivingChanged ? { onReceivingChanged } : {}),
  });
}

test("/proc scan: kills our daemon's sessions (and their process groups) in a data root or in their handshake, nothing else", async () => {
  const proc = mkdtempSync(join(tmpdir(), "us-proc-"));
  try {
    const fake = (pid: number | string, comm: string, argv: string[], root: string, pgid: number = Number(pid)) => {
      mkdirSync(join(proc, String(pid)));
      writeFileSync(join(proc, String(pid), "comm"), `${comm}\n`);
      writeFileSync(join(proc, String(pid), "cmdline"), `${argv.join("\0")}\0`);
      writeFileSync(join(proc, String(pid), "stat"), `${pid} (${comm}) S 1 ${pgid} ${pgid} 0 -1 4194560 0 0 0 0\n`);
      symlinkSync(root, join(proc, String(pid), "root"));
    };
    const daemon = ["/usr/bin/rsync", "--server", "--daemon", `--config=${CONF}`, "."];
    fake(101, "rsync", daemon, "/srv/up"); // writing into a data root, leads its group: killed with the group
    fake(102, "rsync", daemon, "/etc/app"); // a sync pull from a config root: kept
    fake(103, "sshd", ["sshd: acme@notty"], "/srv/up"); // a partner chrooted in the root: kept
    fake(104, "rsync", ["/usr/bin/rsync", "--server", "--daemon", "--config=/etc/other.conf", "."], "/srv/up"); // not our daemon
    fake(105, "rsync", daemon, "/"); // our daemon in its handshake (read the old config): killed
    fake(106, "rsync", daemon, "/srv/up"); // this process: kept
    fake(107, "rsync", ["/usr/bin/rsync", "-a", "/srv/up/", "x::m/"], "/"); // a client, not a daemon
    fake(108, "rsync", ["/usr/bin/rsync", "--server", "--daemon", "--config=/etc/understudy//rsyncd.conf", "."], "/srv/homes/"); // second root, path spelt otherwise
    fake(1, "systemd", ["/sbin/init"], "/");
    fake(50, "bash", ["bash"], "/");
    fake(110, "rsync", daemon, "/srv/up", 50); // our daemon in a group led by something else: only itself
    mkdirSync(join(proc, "self"));
    const killed: [number, string][] = [];
    let forked = false;
    const s = new ProcWriterSessions({
      configPath: CONF,
      procRoot: proc,
      selfPid: 106,
      kill: (pid, sig) => {
        killed.push([pid, sig]);
        // 101 forks its receiver while the first pass runs: the next pass finds and kills it.
        if (pid === 101 && !forked) {
          forked = true;
          fake(120, "rsync", daemon, "/srv/up", 101);
        }
      },
    });
    const pids = await s.kill(["/srv/up", "/srv/homes"]);
    assert.deepEqual(
      [...pids].sort((a, b) => a - b),
      [101, 105, 108, 110, 120],
    );
    const got = killed.map(([p]) => p);
    for (const want of [-101, 101, -105, 105, -108, 108, 110, -101, 120]) assert.ok(got.includes(want), `kill(${want}) in ${JSON.stringify(got)}`);
    assert.ok(!got.includes(-50), "a group led by something else is not killed");
    assert.ok(
      killed.every(([, sig]) => sig === "SIGKILL"),
      'killed.every(([, sig]) => sig === "SIGKILL")',
    );
    await assert.rejects(
      new ProcWriterSessions({ configPath: CONF, procRoot: join(proc, "missing") }).kill(["/srv/up"]),
      (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_FENCE" && e.message.includes("missing"),
      "no /proc: a coded error, never 'nothing found'",
    );
    // Root's processes hidden (the unit's ProtectProc=invisible): pid 1 missing is said, never "nothing found".
    const hidden = mkdtempSync(join(tmpdir(), "us-proc-hidden-"));
    try {
      await assert.rejects(
        new ProcWriterSessions({ configPath: CONF, procRoot: hidden }).kill(["/srv/up"]),
        (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_FENCE" && /pid 1 is not listed.*ProtectProc=default/.test(e.message),
      );
    } finally {
      rmSync(hidden, { recursive: true, force: true });
    }
    // A session it may not kill (no CAP_KILL for root's daemon): an error, not "killed"; gone (ESRCH) is fine.
    const refuse = (code: string) => () => {
      throw Object.assign(new Error(`kill: ${code}`), { code });
    };
    await assert.rejects(
      new ProcWriterSessions({ configPath: CONF, procRoot: proc, selfPid: 106, kill: refuse("EPERM") }).kill(["/srv/up"]),
      (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_FENCE" && /CAP_KILL/.test(e.message),
    );
    assert.deepEqual(await new ProcWriterSessions({ configPath: CONF, procRoot: proc, selfPid: 106, kill: refuse("ESRCH") }).kill(["/srv/up"]), [101, 105, 110, 120]);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});

test("receiver: sessions are cut when a term's modules close, at start, on promotion and at stop, before `receiving` moves", async () => {
  const clock = new FakeClock();
  const events: string[] = [];
  const files: ReceiverFiles = {
    prepareRoot: async () => undefined,
    writeIfChanged: async (_f, text) => {
      events.push(`write ${/\[d(\d+)-up\]/.exec(text)?.[1] ?? "none"}`);
      return true;
    },
    clearTemp: async (dir) => {
      events.push(`clear ${dir}`);
      return 0;
    },
  };
  const sessions: WriterSessions = {
    kill: async (roots) => {
      events.push(`kill ${roots.join(",")}`);
      return [];
    },
  };
  let modules: WriteModules | undefined;
  const m = writeModules(clock, files, sessions, () => events.push(`receiving ${modules?.receiving ?? "none"}`));
  modules = m;
  m.start();
  await settle();
  assert.deepEqual(events.splice(0), ["write none", "kill /srv/up", "clear /srv/up/.understudy-tmp"], "at start: an earlier run may have left sessions");
  m.set({ term: 4, leaderAddress: "198.18.0.11" });
  await settle();
  assert.deepEqual(events.splice(0), ["write 4", "receiving 4"], "opening modules cuts nothing");
  m.set({ term: 5, leaderAddress: "198.18.0.12" });
  await settle();
  assert.deepEqual(events.splice(0), ["write 5", "kill /srv/up", "clear /srv/up/.understudy-tmp", "receiving 5"], "term 4's sessions are cut before term 5 is announced");
  await m.closeAll();
  assert.deepEqual(events.splice(0), ["write none", "kill /srv/up", "clear /srv/up/.understudy-tmp"], "promotion: cut before closeAll resolves, i.e. before this node serves");
  assert.equal(m.receiving, null);
  await m.closeAll();
  assert.deepEqual(events.splice(0), [], "nothing open: nothing to cut");
  m.set({ term: 6, leaderAddress: "198.18.0.12" });
  await settle();
  events.splice(0);
  await m.stop();
  assert.deepEqual(events.splice(0), ["write none", "kill /srv/up", "clear /srv/up/.understudy-tmp", "receiving none"], "agent stop: no one may go on writing");
});

test("receiver: a config that cannot be rewritten still cuts the closed term's sessions (and retries the write)", async () => {
  const clock = new FakeClock();
  let failing = false;
  const kills: string[] = [];
  const m = writeModules(
    clock,
    {
      prepareRoot: async () => undefined,
      writeIfChanged: async () => {
        if (failing) throw new Error("EROFS: read-only file system");
        return true;
      },
    },
    { kill: async (roots) => (kills.push(roots.join(",")), [4242]) },
  );
  m.start();
  await settle();
  m.set({ term: 4, leaderAddress: "198.18.0.11" });
  await settle();
  kills.splice(0);
  failing = true;
  await assert.rejects(m.closeAll(), /US_E_DATA_CONFIG.*could not close the data write modules before serving \(EROFS: read-only file system\)/);
  assert.deepEqual(kills, ["/srv/up"], "term 4's sessions are cut although the file still lists its module");
  failing = false;
  await clock.advance(5000);
  await settle();
  assert.equal(m.receiving, null);
  await m.stop();
});

test("receiver: a cut that cannot look (US_E_DATA_FENCE) does not announce the new term; the retry cuts, then announces", async () => {
  const clock = new FakeClock();
  let blind = false;
  let attempts = 0;
  const kills: string[] = [];
  const m = writeModules(
    clock,
    { prepareRoot: async () => undefined, writeIfChanged: async () => true },
    {
      kill: async (roots) => {
        attempts += 1;
        if (blind) throw new UnderstudyError("US_E_DATA_FENCE", { proc: "/proc", cause: "EACCES" });
        kills.push(roots.join(","));
        return [];
      },
    },
  );
  m.start();
  await settle();
  m.set({ term: 4, leaderAddress: "198.18.0.11" });
  await settle();
  assert.equal(m.receiving, 4);
  kills.splice(0);
  blind = true;
  m.set({ term: 5, leaderAddress: "198.18.0.12" });
  await settle();
  assert.equal(m.receiving, null, "term 4's sessions may still write: term 5 is not announced");
  const tried = attempts;
  for (let i = 0; i < 3; i++) {
    m.set({ term: 5, leaderAddress: "198.18.0.12" }); // HA cycles repeating the same wish
    await settle();
  }
  assert.equal(attempts, tried, "the same wish waits for the armed retry (no scan per HA cycle)");
  await clock.advance(5000);
  await settle();
  assert.equal(m.receiving, null, "still blind at the retry");
  blind = false;
  await clock.advance(5000);
  await settle();
  assert.deepEqual(kills, ["/srv/up"], "the retry cut term 4's sessions");
  assert.equal(m.receiving, 5, "then announced term 5");
  // Promotion while blind: closeAll names the fence, not the config file.
  blind = true;
  await assert.rejects(m.closeAll(), (e: unknown) => e instanceof UnderstudyError && e.code === "US_E_DATA_FENCE" && /EACCES/.test(e.message));
  blind = false;
  await m.stop();
});

test("receiver files: clearTemp removes the partial files killed sessions left, never a rejoin inbox", async () => {
  const { NODE_RECEIVER_FILES } = await import("../../../src/data/index.js");
  const dir = mkdtempSync(join(tmpdir(), "us-tmpclear-"));
  try {
    writeFileSync(join(dir, ".report.csv.Ab12Cd"), "half a file");
    writeFileSync(join(dir, ".big.bin.XyZ987"), "more");
    mkdirSync(join(dir, "inbox-7-n1"));
    writeFileSync(join(dir, "inbox-7-n1", "merged.txt"), "kept");
    assert.equal(await NODE_RECEIVER_FILES.clearTemp!(dir), 2);
    assert.deepEqual(readdirSync(dir), ["inbox-7-n1"]);
    assert.deepEqual(readdirSync(join(dir, "inbox-7-n1")), ["merged.txt"]);
    assert.equal(await NODE_RECEIVER_FILES.clearTemp!(join(dir, "missing")), 0, "no temp dir yet: nothing to do");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("receiver: a root one sync would not cover (mounts below, no sync binary, or cannot tell) gets no barrier module", async () => {
  const clock = new FakeClock();
  let conf = "";
  let problem: () => Promise<string | null> = async () => null;
  const files: ReceiverFiles = {
    prepareRoot: async () => undefined,
    writeIfChanged: async (_f, text) => ((conf = text), true),
    barrierProblem: (root) => (assert.equal(root, "/srv/up"), problem()),
  };
  const m = writeModules(clock, files, { kill: async () => [] });
  m.start();
  m.set({ term: 4, leaderAddress: "198.18.0.11" });
  await settle();
  assert.match(conf, /\[d4-up\][\s\S]*\[s4-up\]/, "no problem: write module and barrier");
  problem = async () => barrierProblem(true, ["/srv/up/alice"]);
  m.set({ term: 5, leaderAddress: "198.18.0.11" });
  await settle();
  assert.match(conf, /\[d5-up\]/);
  assert.doesNotMatch(conf, /\[s5-up\]/, "sync --file-system /srv/up would not reach /srv/up/alice's filesystem");
  problem = async () => {
    throw new Error("EACCES: /proc/self/mountinfo");
  };
  m.set({ term: 6, leaderAddress: "198.18.0.11" });
  await settle();
  assert.match(conf, /\[d6-up\]/, "still receiving");
  assert.doesNotMatch(conf, /\[s6-up\]/, "unknown counts as a problem");
  await m.stop();
  assert.equal(barrierProblem(false, []), "/usr/bin/sync is not an executable file here");
  assert.equal(barrierProblem(true, []), null);
  assert.match(barrierProblem(true, ["/a/1", "/a/2", "/a/3", "/a/4"]) ?? "", /^4 filesystem\(s\) mounted below it \(\/a\/1, \/a\/2, \/a\/3, …\)$/);
});
