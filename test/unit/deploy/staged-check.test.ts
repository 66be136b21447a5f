// deploy/examples/understudy-staged-check: the validator wrapper that points the
// paths a config names at the staged copies of the sync roots, so `proftpd -t`
// and `sshd -t` pass on a fresh standby (nothing under the live paths yet).
// Runs the script itself; the real checkers where they are installed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { tempDir } from "../../fakes/tree.js";

const SCRIPT = path.resolve(import.meta.dirname, "../../../deploy/examples/understudy-staged-check");
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  promisify(execFile)(SCRIPT, args, { env: { PATH: "/usr/bin:/bin", ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

let dir = "";
let cleanup = async () => {};
before(async () => ({ dir, cleanup } = await tempDir("staged-check")));
after(() => cleanup());

describe("understudy-staged-check", () => {
  it("rewrites paths under a LIVE root to the staged copy where the staged tree has them, longest root first", async () => {
    const live = path.join(dir, "etc");
    const st = (n: string) => path.join(dir, "stage", n);
    for (const n of ["conf", "users"]) await mkdir(st(n), { recursive: true });
    await writeFile(path.join(st("users"), "ftpd.passwd"), "u\n");
    await writeFile(path.join(st("conf"), "extra.conf"), "#\n");
    const conf = path.join(st("conf"), "proftpd.conf");
    await writeFile(
      conf,
      [
        `AuthUserFile ${live}/proftpd-users/ftpd.passwd`,
        `Include "${live}/proftpd/extra.conf"`,
        `Include ${live}/proftpd/missing.conf`,
        `ModulePath ${live}/proftpd-other/x`,
        `Root=${live}/proftpd`,
        "",
      ].join("\n"),
    );
    const tmp = path.join(dir, "tmp");
    await mkdir(tmp);
    const r = await run([conf, `${live}/proftpd=${st("conf")}`, `${live}/proftpd-users/=${st("users")}`, "--", "/bin/cat", "{config}"], { TMPDIR: tmp });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [`AuthUserFile ${st("users")}/ftpd.passwd`, `Include "${st("conf")}/extra.conf"`, `Include ${live}/proftpd/missing.conf`, `ModulePath ${live}/proftpd-other/x`, `Root=${st("conf")}`, ""].join(
        "\n",
      ),
      "staged where the staged copy has the file; live otherwise; /etc/proftpd-other is not /etc/proftpd",
    );
    assert.deepEqual(await readdir(tmp), [], "the temporary copy is removed");
  });

  it("passes the checker's exit status through; usage errors exit 2; no shell", async () => {
    const conf = path.join(dir, "c.conf");
    await writeFile(conf, "x\n");
    assert.equal((await run([conf, "--", "/bin/sh", "-c", "exit 7"])).code, 7);
    assert.equal((await run([conf, "--", "/bin/echo", "$(id)", "{config};true"])).stdout.startsWith("$(id) /"), true);
    assert.equal((await run([conf, "relative=/x", "--", "/bin/true"])).code, 2);
    assert.equal((await run([conf, "/x=/y"])).code, 2);
    assert.equal((await run([conf, "--", "/nonexistent/checker"])).code, 127);
  });

  const proftpd = existsSync("/usr/sbin/proftpd");
  it("real proftpd -t: fails on a fresh standby without the wrapper, passes with it", { skip: !proftpd && "proftpd not installed" }, async () => {
    const live = path.join(dir, "live");
    const st = (n: string) => path.join(dir, "pstage", n);
    for (const n of ["conf", "users", "tls"]) await mkdir(st(n), { recursive: true });
    await writeFile(path.join(st("users"), "ftpd.passwd"), "alice:$1$abc$0123456789abcdefghijkl:1000:1000::/srv/ftp:/bin/false\n");
    await chmod(path.join(st("users"), "ftpd.passwd"), 0o600);
    await promisify(execFile)("/usr/bin/openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      path.join(st("tls"), "p.key"),
      "-out",
      path.join(st("tls"), "p.crt"),
      "-days",
      "1",
      "-subj",
      "/CN=ftp.example.com",
    ]);
    const conf = path.join(st("conf"), "proftpd.conf");
    await writeFile(
      conf,
      [
        "ServerType standalone",
        "DefaultServer on",
        "Port 2121",
        "User nobody",
        "Group nogroup",
        `PidFile ${dir}/p.pid`,
        `ScoreboardFile ${dir}/p.score`,
        "AuthOrder mod_auth_file.c",
        `AuthUserFile ${live}/users/ftpd.passwd`,
        "<IfModule !mod_tls.c>",
        "LoadModule mod_tls.c",
        "</IfModule>",
        "TLSEngine on",
        `TLSRSACertificateFile ${live}/tls/p.crt`,
        `TLSRSACertificateKeyFile ${live}/tls/p.key`,
        "",
      ].join("\n"),
    );
    const bare = await promisify(execFile)("/usr/sbin/proftpd", ["-t", "-c", conf]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    assert.notEqual(bare, 0, "the documented validator alone fails on a fresh standby");
    const r = await run([conf, `${live}/conf=${st("conf")}`, `${live}/users=${st("users")}`, `${live}/tls=${st("tls")}`, "--", "/usr/sbin/proftpd", "-t", "-c", "{config}"]);
    assert.equal(r.code, 0, r.stderr);
  });

  const sshd = existsSync("/usr/sbin/sshd");
  it("real sshd -t: the staged host key is the one checked", { skip: !sshd && "sshd not installed" }, async () => {
    const live = path.join(dir, "ssh-live");
    const st = path.join(dir, "ssh-stage");
    await mkdir(st, { recursive: true });
    await promisify(execFile)("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(st, "sftp_host_ed25519_key")]);
    const conf = path.join(st, "sshd_config_sftp");
    await writeFile(conf, `Port 2222\nHostKey ${live}/sftp_host_ed25519_key\nPidFile ${dir}/s.pid\nSubsystem sftp internal-sftp\n`);
    const bare = await promisify(execFile)("/usr/sbin/sshd", ["-t", "-f", conf]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    assert.notEqual(bare, 0, "no host key at the live path");
    const r = await run([conf, `${live}=${st}`, "--", "/usr/sbin/sshd", "-t", "-f", "{config}"]);
    assert.equal(r.code, 0, r.stderr);
  });
});
