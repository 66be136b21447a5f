// deploy/examples/volume-check.sh, the pre_promote hook of sftpgo-cold.yaml,
// run for real: each case in its own private mount namespace (`unshare -m`),
// where a tmpfs stands for the volume, so nothing is mounted on the host. For
// --mount, a stand-in for systemctl is bind-mounted over /usr/bin/systemctl
// in that namespace only: it mounts a tmpfs (the fstab entry works) or fails
// the way systemd does when the device is missing. Needs root (unshare -m).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../../../deploy/examples/volume-check.sh", import.meta.url));
const canUnshare = spawnSync("unshare", ["-m", "true"]).status === 0;
const skip = canUnshare ? false : "needs root for `unshare -m` (a private mount namespace)";

interface Ran {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

describe("volume-check.sh (pre_promote mount check)", { skip }, () => {
  let dir: string;
  let mp: string;
  let fakeSystemctl: string;
  let log: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-volume-check-"));
    mp = join(dir, "srv", "sftpgo");
    mkdirSync(mp, { recursive: true });
    log = join(dir, "systemctl.log");
    fakeSystemctl = join(dir, "systemctl");
    // start: mount a tmpfs with the database on it unless FAKE_MOUNT says otherwise; stop: unmount.
    writeFileSync(
      fakeSystemctl,
      `#!/bin/sh
echo "$*" >> ${log}
unit=$2
path=$(systemd-escape -u -p "\${unit%.mount}")
case "$1:$FAKE_MOUNT" in
  start:fail) echo "A dependency job for $unit failed. See 'journalctl -xe' for details." >&2; exit 1 ;;
  start:empty) mount -t tmpfs -o size=1m tmpfs "$path" ;;
  start:*) mount -t tmpfs -o size=1m tmpfs "$path" && mkdir "$path/state" && touch "$path/state/sftpgo.db" ;;
  stop:*) umount "$path" ;;
esac
`,
      { mode: 0o755 },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Run `setup` (shell, as root in a fresh mount namespace), then the script with `args`; report the script's exit. */
  const run = (setup: string, args: readonly string[], env: Record<string, string> = {}): Ran => {
    writeFileSync(log, "");
    const inner = `{ ${setup}; } || { echo "test setup failed" >&2; exit 99; }\nsh "$0" "$@"; rc=$?\nif mountpoint -q "${mp}"; then echo MOUNTED-AFTER >&2; fi\nexit $rc`;
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", inner, SCRIPT, ...args], {
      encoding: "utf8",
      timeout: 20_000,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    });
    return { code: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
  };
  const withVolume = (files: string, options = "rw") => `mount -t tmpfs -o size=1m,${options} tmpfs "${mp}" && ${files || "true"}`;
  const withDb = () => `mkdir "${mp}/state" && touch "${mp}/state/sftpgo.db"`;
  const fake = () => `mount --bind "${fakeSystemctl}" /usr/bin/systemctl`;

  it("passes when the volume is mounted read-write with the database on it", () => {
    const r = run(withVolume(withDb()), [mp, "state/sftpgo.db"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `ok: ${mp} mounted read-write from tmpfs, state/sftpgo.db present`);
  });

  it("refuses, saying why: not mounted, mounted read-only, no database (an empty or wrong volume)", () => {
    const notMounted = run("true", [mp, "state/sftpgo.db"]);
    assert.deepEqual([notMounted.code, notMounted.err], [1, `refusing promotion: ${mp} is not mounted (volume not attached, or its mount failed); nothing to serve from`]);
    const readOnly = run(withVolume(withDb()) + ` && mount -o remount,ro "${mp}"`, [mp, "state/sftpgo.db"]);
    assert.equal(readOnly.code, 1);
    assert.match(readOnly.err, new RegExp(`^refusing promotion: ${mp} \\(tmpfs\\) is mounted read-only \\(ro,`));
    const empty = run(withVolume(""), [mp, "state/sftpgo.db"]);
    assert.equal(empty.code, 1);
    assert.match(empty.err, new RegExp(`^refusing promotion: ${mp} \\(tmpfs\\) has no state/sftpgo\\.db: the wrong volume, an empty one`));
    const missingDir = run("true", [join(dir, "nowhere")]);
    assert.deepEqual([missingDir.code, missingDir.err], [1, `refusing promotion: ${join(dir, "nowhere")} does not exist or is not a directory`]);
  });

  it("--mount: has systemd mount the volume (the escaped .mount unit), then checks it", () => {
    const r = run(fake(), ["--mount", `${mp}/`, "state/sftpgo.db"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^ok: .* mounted read-write from tmpfs, state\/sftpgo\.db present$/);
    const unit = spawnSync("systemd-escape", ["-p", "--suffix=mount", mp], { encoding: "utf8" }).stdout.trim();
    assert.equal(spawnSync("cat", [log], { encoding: "utf8" }).stdout, `start ${unit}\n`);
    assert.match(r.err, /MOUNTED-AFTER/, "the volume stays mounted for SFTPGo");
  });

  it("--mount: a failed mount is a refusal with systemd's words; a wrong volume is unmounted again", () => {
    const failed = run(fake(), ["--mount", mp, "state/sftpgo.db"], { FAKE_MOUNT: "fail" });
    assert.equal(failed.code, 1);
    assert.match(failed.err, /^refusing promotion: .* is not mounted and 'systemctl start .*\.mount' failed: A dependency job for .*\.mount failed/);
    const empty = run(fake(), ["--mount", mp, "state/sftpgo.db"], { FAKE_MOUNT: "empty" });
    assert.equal(empty.code, 1);
    assert.match(empty.err, /has no state\/sftpgo\.db/);
    assert.doesNotMatch(empty.err, /MOUNTED-AFTER/, "what the script mounted for a refused promotion is unmounted");
    assert.match(spawnSync("cat", [log], { encoding: "utf8" }).stdout, /^start (\S+)\nstop \1\n$/);
  });

  it("rejects bad usage with exit 2: no mount point, a relative one, /, a FILE escaping the volume", () => {
    for (const args of [[], ["srv/sftpgo"], ["/"], [mp, "../etc/passwd"], [mp, "/etc/passwd"], ["--mount"]]) {
      const r = run("true", args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, /^usage: volume-check\.sh \[--mount\] MOUNTPOINT \[FILE\.\.\.\]/);
    }
  });
});
