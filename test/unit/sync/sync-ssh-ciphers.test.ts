// sync.ssh.ciphers: which Ciphers value ssh gets (the pure choice), how a setting is refused,
// the CPU's AES flag read from /proc/cpuinfo text, and the option in the ssh argv rsync runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AES_FIRST, chooseSshCiphers } from "../../../src/sync/ssh-ciphers.js";
import { cipherSettingProblem } from "../../../src/config/ssh-ciphers.js";
import { cpuinfoHasAes, readCpuAes } from "../../../src/platform/cpu-features.js";
import { sshArgv, validateSshTransport } from "../../../src/sync/transport-ssh.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";

const SSH = { user: "understudy-sync", key: "/etc/understudy/sync_ed25519", knownHosts: "/etc/understudy/known_hosts", stateDir: "/var/lib/understudy" };

test("auto: AES-GCM put first on a CPU with AES instructions, OpenSSH's order otherwise, each with its reason", () => {
  const rows: [boolean | null, string | null, RegExp][] = [
    [true, AES_FIRST, /AES-GCM first, the CPU has AES instructions/],
    [false, null, /default order \(ChaCha20 first\), the CPU has no AES instructions/],
    [null, null, /AES support is unknown \(\/proc\/cpuinfo: EACCES\)/],
  ];
  for (const [aes, ciphers, reason] of rows) {
    const c = chooseSshCiphers("auto", aes, "/proc/cpuinfo: EACCES");
    assert.equal(c.ciphers, ciphers, String(aes));
    assert.match(c.reason, reason);
  }
  assert.equal(AES_FIRST.startsWith("^"), true, "put at the head of the default set, never a replacement of it");
});

test("default and an explicit list ignore the CPU", () => {
  assert.equal(chooseSshCiphers("default", true).ciphers, null);
  assert.equal(chooseSshCiphers("chacha20-poly1305@openssh.com", true).ciphers, "chacha20-poly1305@openssh.com");
  assert.equal(chooseSshCiphers("^aes256-gcm@openssh.com", false).ciphers, "^aes256-gcm@openssh.com");
});

test("a setting is auto, default, or OpenSSH cipher names after an optional + - ^", () => {
  for (const ok of ["auto", "default", "aes128-ctr", "+aes128-cbc", "-3des-cbc", "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"]) assert.equal(cipherSettingProblem(ok), null, ok);
  const bad: [string, RegExp][] = [
    ["", /must be auto, default/],
    ["^", /must be auto, default/],
    ["aes128-gcm", /unknown cipher "aes128-gcm"/],
    ["aes128-ctr,,aes256-ctr", /unknown cipher ""/],
    ["aes128-ctr -o ProxyCommand=x", /unknown cipher/],
    ["AUTO", /unknown cipher "AUTO"/],
  ];
  for (const [v, problem] of bad) assert.match(cipherSettingProblem(v) ?? "", problem, v);
});

test("cpuinfo: the aes flag on every processor (x86 flags, arm64 Features); none listed is unknown", () => {
  const x86 = (flags: string) => `processor\t: 0\nflags\t\t: fpu vme ${flags} avx2\n\n`;
  assert.equal(cpuinfoHasAes(x86("sse2 aes pclmulqdq") + x86("aes")), true);
  assert.equal(cpuinfoHasAes(x86("sse2 pclmulqdq") + x86("aes")), false, "one processor without it");
  assert.equal(cpuinfoHasAes(x86("vaes")), false, "a longer flag name is not aes");
  assert.equal(cpuinfoHasAes("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1\n"), true);
  assert.equal(cpuinfoHasAes("processor\t: 0\nFeatures\t: fp asimd evtstrm\n"), false);
  assert.equal(cpuinfoHasAes("processor\t: 0\nmodel name\t: something\n"), null);
});

test("readCpuAes: a file it cannot read is unknown, with the reason", async () => {
  const dir = mkdtempSync(join(tmpdir(), "us-cpuinfo-"));
  try {
    const f = join(dir, "cpuinfo");
    writeFileSync(f, "processor\t: 0\nflags\t\t: fpu aes\n");
    assert.deepEqual(await readCpuAes(f), { aes: true });
    writeFileSync(f, "nothing here\n");
    assert.deepEqual(await readCpuAes(f), { aes: null, problem: `${f} lists no CPU features` });
    const missing = await readCpuAes(join(dir, "absent"));
    assert.equal(missing.aes, null);
    assert.match(missing.problem ?? "", /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ssh argv: -o Ciphers=VALUE before the port when chosen, nothing when OpenSSH's order is kept", () => {
  const withAes = sshArgv(validateSshTransport({ ...SSH, ciphers: AES_FIRST }));
  assert.deepEqual(withAes.slice(-4), ["-o", `Ciphers=${AES_FIRST}`, "-p", "22"]);
  assert.equal(withAes.join(" ").split(" ").length, withAes.length, "rsync splits -e on spaces: no token holds one");
  const plain = sshArgv(validateSshTransport({ ...SSH, ciphers: null }));
  assert.equal(
    plain.some((a) => a.startsWith("Ciphers=")),
    false,
  );
  assert.deepEqual(sshArgv(validateSshTransport(SSH)), plain);
});

test("ssh transport: an unresolved or unknown Ciphers value is refused with the setting named", () => {
  for (const v of ["auto", "default", "aes128-ctr x"]) {
    assert.throws(
      () => validateSshTransport({ ...SSH, ciphers: v }),
      (e: unknown) => isUnderstudyError(e) && e.code === "US_E_SYNC_CONFIG" && /sync\.ssh\.ciphers/.test(e.message),
      v,
    );
  }
});
