// deploy/examples/data/understudy-notify-from-log, run for real against a log
// file written the way ProFTPD's `LogFormat understudy "%m %{transfer-status} %f"`
// writes it (checked by hand with ProFTPD 1.3.8 and DefaultRoot: `STOR success
// /srv/ftp/alice/in box.txt`, `MKD - /srv/ftp/alice/sub`). A stand-in for
// `understudy` records each call's arguments. Only successful STOR/STOU/APPE
// lines with an absolute path count; a burst becomes one call; the reader
// survives a failing `understudy` and a log rotation.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../../../deploy/examples/data/understudy-notify-from-log", import.meta.url));

describe("understudy-notify-from-log (ProFTPD ExtendedLog -> data notify)", () => {
  let dir: string;
  let log: string;
  let calls: string;
  let reader: ChildProcess;

  /** Each call of the stand-in: its arguments, NUL-separated, one call per line. */
  const recorded = (): string[][] =>
    existsSync(calls)
      ? readFileSync(calls, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split("\0").filter(Boolean))
      : [];

  /** Wait (bounded) until at least n calls are recorded. */
  async function calledTimes(n: number, withinMs = 10_000): Promise<string[][]> {
    const deadline = performance.now() + withinMs;
    while (performance.now() < deadline) {
      const got = recorded();
      if (got.length >= n) return got;
      await sleep(50);
    }
    assert.fail(`expected ${n} call(s) within ${withinMs} ms, got ${JSON.stringify(recorded())}`);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-notify-log-"));
    log = join(dir, "uploads.log");
    calls = join(dir, "calls");
    writeFileSync(log, "STOR success /srv/ftp/old/before-start.txt\n");
    const fake = join(dir, "understudy");
    // Records its arguments; fails when asked to (FAIL file present), like an agent that is down under --strict.
    writeFileSync(
      fake,
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done >> ${JSON.stringify(calls)}\necho >> ${JSON.stringify(calls)}\n[ -e ${JSON.stringify(join(dir, "FAIL"))} ] && exit 1\nexit 0\n`,
      { mode: 0o755 },
    );
    reader = spawn(SCRIPT, [log, "--config", "/etc/understudy/understudy.yaml"], { env: { PATH: process.env.PATH, UNDERSTUDY: fake }, detached: true, stdio: ["ignore", "ignore", "pipe"] });
    // tail -F must be reading before lines are appended (it starts at the end: -n 0).
    await sleep(500);
  });

  after(async () => {
    // The reader and its tail are one process group (detached): end that group, by its id.
    if (reader.pid !== undefined && reader.exitCode === null) {
      try {
        process.kill(-reader.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends only successful uploads with absolute paths, spaces kept, options passed through, nothing from before it started", async () => {
    appendFileSync(
      log,
      [
        "STOR success /srv/ftp/alice/in box.txt",
        "MKD - /srv/ftp/alice/sub",
        "STOR failed /srv/ftp/alice/partial.bin",
        "RETR success /srv/ftp/alice/download.txt",
        "APPE success /srv/ftp/alice/log.txt",
        "STOU success relative/name",
        "STOU success /srv/ftp/bob/unique.1",
        "",
      ].join("\n"),
    );
    const got = await calledTimes(1);
    const all = got.flat();
    assert.deepEqual(got[0]!.slice(0, 5), ["data", "notify", "--config", "/etc/understudy/understudy.yaml", "--"]);
    const paths = got.flatMap((c) => c.slice(5));
    assert.deepEqual(paths, ["/srv/ftp/alice/in box.txt", "/srv/ftp/alice/log.txt", "/srv/ftp/bob/unique.1"]);
    assert.ok(!all.includes("/srv/ftp/old/before-start.txt"), "lines before the start are not sent again");
    assert.equal(got.length, 1, "one burst, one call");
  });

  it("keeps going when `understudy` fails, and follows the log across a rotation", async () => {
    writeFileSync(join(dir, "FAIL"), "");
    appendFileSync(log, "STOR success /srv/ftp/alice/a.csv\n");
    await calledTimes(2);
    rmSync(join(dir, "FAIL"));
    renameSync(log, `${log}.1`);
    writeFileSync(log, "");
    // tail -F notices the new file within its poll (1 s), or at once with inotify.
    let got: string[][] = [];
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      appendFileSync(log, "STOR success /srv/ftp/alice/after-rotation.csv\n");
      await sleep(1500);
      got = recorded();
      if (got.flat().includes("/srv/ftp/alice/after-rotation.csv")) break;
    }
    assert.ok(got.flat().includes("/srv/ftp/alice/after-rotation.csv"), JSON.stringify(got));
    assert.equal(reader.exitCode, null, "still running");
  });

  it("usage: no LOG (or an option first) exits 2", async () => {
    for (const args of [[], ["--config"]]) {
      const p = spawn(SCRIPT, args, { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      p.stderr!.on("data", (c: Buffer) => (err += c.toString()));
      const code = await new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
      assert.equal(code, 2);
      assert.match(err, /usage:/);
    }
  });
});
