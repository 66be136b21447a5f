// The sftp probe (src/probes/sftp.ts) against an in-process ssh2 Server on
// 127.0.0.1: key and password logins, host-key pinning, refused logins, a
// server stuck in authentication, a refused subsystem, abort, and the files
// it reads once when built.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import ssh2 from "ssh2";
import { ed25519KeyPair } from "../../fakes/ssh-keys.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { createProbe, type ProbeConfig } from "../../../src/probes/index.js";
import { sshFingerprint } from "../../../src/probes/sftp.js";

const clock = new SystemClock();
const HOST = "127.0.0.1";
const TIMEOUT = 2000;
const PASSWORD = "probe-secret-1";

function fingerprintOf(publicKey: string): string {
  const parsed = ssh2.utils.parseKey(publicKey);
  if (parsed instanceof Error) throw parsed;
  return sshFingerprint(parsed.getPublicSSH());
}

interface Behaviour {
  /** Never answer the authentication request (a daemon whose user database hangs). */
  hangOnAuth?: boolean;
  /** Refuse the sftp subsystem. */
  noSftp?: boolean;
}

/** An SFTP server that accepts user "probe" with `clientPublic` or PASSWORD, and answers REALPATH with /home/probe. */
async function sftpServer(hostPrivate: string, clientPublic: string, behaviour: Behaviour = {}) {
  const allowed = ssh2.utils.parseKey(clientPublic);
  if (allowed instanceof Error) throw allowed;
  let open = 0;
  let logins = 0;
  const server = new ssh2.Server({ hostKeys: [hostPrivate] }, (client) => {
    open++;
    client.on("close", () => open--);
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (behaviour.hangOnAuth) return;
      if (ctx.username !== "probe") return ctx.reject();
      if (ctx.method === "password" && ctx.password === PASSWORD) return ctx.accept();
      if (ctx.method === "publickey" && ctx.key.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH())) {
        if (!ctx.signature) return ctx.accept(); // the "would this key do?" query
        if (ctx.blob && allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      }
      ctx.reject(["publickey", "password"]);
    });
    client.on("ready", () => {
      logins++;
      client.on("session", (accept) => {
        const session = accept();
        session.on("sftp", (acceptSftp, reject) => {
          if (behaviour.noSftp) return reject();
          const sftp = acceptSftp();
          sftp.on("REALPATH", (reqid) => sftp.name(reqid, [{ filename: "/home/probe", longname: "/home/probe", attrs: {} as ssh2.Attributes }]));
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return { server, port: (server.address() as AddressInfo).port, open: () => open, logins: () => logins };
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

describe("sftp probe against an ssh2 server on 127.0.0.1", () => {
  const hostKey = ed25519KeyPair();
  const otherHostKey = ed25519KeyPair();
  const clientKey = ed25519KeyPair();
  const strangerKey = ed25519KeyPair();
  const pinned = fingerprintOf(hostKey.public);
  let dir: string;
  let good: Awaited<ReturnType<typeof sftpServer>>;
  let hanging: Awaited<ReturnType<typeof sftpServer>>;
  let noSftp: Awaited<ReturnType<typeof sftpServer>>;
  let silent: NetServer;
  let silentPort: number;
  const silentSockets = new Set<Socket>();
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };

  const probe = (port: number, extra: Partial<ProbeConfig> = {}) => {
    const config: ProbeConfig = {
      name: "sftp-login",
      type: "sftp",
      host: HOST,
      port,
      expect_status: 200,
      interval: 5000,
      timeout: TIMEOUT,
      rise: 1,
      fall: 1,
      critical: true,
      user: "probe",
      private_key: join(dir, "id_probe"),
      host_key_fingerprint: pinned,
      ...extra,
    };
    return createProbe(config, clock);
  };
  const check = (p: ReturnType<typeof probe>, signal = new AbortController().signal) => p.check(signal);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-sftp-probe-"));
    file("id_probe", clientKey.private);
    file("id_stranger", strangerKey.private);
    file("password", `${PASSWORD}\n`);
    file("wrong-password", "not-it\n");
    good = await sftpServer(hostKey.private, clientKey.public);
    hanging = await sftpServer(hostKey.private, clientKey.public, { hangOnAuth: true });
    noSftp = await sftpServer(hostKey.private, clientKey.public, { noSftp: true });
    silent = createServer((s) => {
      silentSockets.add(s);
      s.on("close", () => silentSockets.delete(s));
      s.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
    silentPort = (silent.address() as AddressInfo).port;
  });

  after(async () => {
    for (const s of [good, hanging, noSftp]) s.server.close();
    silent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("computes the fingerprint ssh-keygen -lf prints", { skip: spawnSync("ssh-keygen", ["-?"]).error ? "no ssh-keygen" : false }, () => {
    const pub = file("host.pub", `${hostKey.public}\n`);
    const out = spawnSync("ssh-keygen", ["-lf", pub], { encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    assert.equal(out.stdout.split(" ")[1], pinned);
    assert.match(pinned, /^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it("logs in with a key, opens sftp and reports realpath; then closes its connection", async () => {
    const before = good.logins();
    const r = await check(probe(good.port));
    assert.deepEqual([r.ok, r.detail], [true, "sftp login ok, realpath /home/probe"]);
    assert.ok(r.latencyMs >= 0 && r.latencyMs < TIMEOUT, "r.latencyMs >= 0 && r.latencyMs < TIMEOUT");
    assert.equal(good.logins(), before + 1);
    await waitFor(() => good.open() === 0, "the probe closed its SSH connection");
  });

  it("logs in with a password file (trailing newline ignored), and accepts a pin written with its = padding", async () => {
    const r = await check(probe(good.port, { private_key: undefined, password_file: join(dir, "password"), host_key_fingerprint: `${pinned}=` }));
    assert.deepEqual([r.ok, r.detail], [true, "sftp login ok, realpath /home/probe"]);
  });

  it("fails on a host key that is not the pinned one, naming both fingerprints", async () => {
    const otherPin = fingerprintOf(otherHostKey.public);
    const r = await check(probe(good.port, { host_key_fingerprint: otherPin }));
    assert.deepEqual([r.ok, r.detail], [false, `host key ${pinned} does not match the pinned ${otherPin}`]);
    await waitFor(() => good.open() === 0, "connection closed after the mismatch");
  });

  it("fails when the login is refused: an unknown key, a wrong password, another user", async () => {
    const refused = "sftp login as probe refused: All configured authentication methods failed";
    const byKey = await check(probe(good.port, { private_key: join(dir, "id_stranger") }));
    assert.deepEqual([byKey.ok, byKey.detail], [false, refused]);
    const byPassword = await check(probe(good.port, { private_key: undefined, password_file: join(dir, "wrong-password") }));
    assert.deepEqual([byPassword.ok, byPassword.detail], [false, refused]);
    assert.ok(!byPassword.detail.includes("not-it"), "the password is never shown");
    const otherUser = await check(probe(good.port, { user: "root" }));
    assert.deepEqual([otherUser.ok, otherUser.detail], [false, refused.replace("as probe", "as root")]);
  });

  it("fails when the sftp subsystem is refused", async () => {
    const r = await check(probe(noSftp.port));
    assert.equal(r.ok, false);
    assert.match(r.detail, /^sftp subsystem refused: /);
  });

  it("times out within its timeout, naming the stage: a silent port, a server stuck in authentication", async () => {
    const started = performance.now();
    const silentR = await check(probe(silentPort, { timeout: 300 }));
    assert.equal(silentR.ok, false);
    assert.match(silentR.detail, /^timeout after \d+ms while waiting for the SSH greeting$/);
    assert.ok(performance.now() - started < 300 + 200, "resolved within its timeout");
    const stuck = await check(probe(hanging.port, { timeout: 500 }));
    assert.equal(stuck.ok, false);
    assert.match(stuck.detail, /^timeout after \d+ms while authenticating as probe$/);
    await waitFor(() => silentSockets.size === 0 && hanging.open() === 0, "timed-out checks closed their connections");
  });

  it("resolves at once when aborted, and closes its connection", async () => {
    const controller = new AbortController();
    const pending = check(probe(hanging.port, { timeout: 5000 }), controller.signal);
    await waitFor(() => hanging.open() === 1, "connected");
    controller.abort();
    const r = await pending;
    assert.deepEqual([r.ok, r.detail], [false, "aborted"]);
    await waitFor(() => hanging.open() === 0, "aborted check closed its connection");
    const already = new AbortController();
    already.abort();
    assert.equal((await check(probe(good.port), already.signal)).detail, "aborted");
  });

  it("refuses, when built, a missing or encrypted key and an empty password file, without showing their content", () => {
    const encrypted = ed25519KeyPair({ passphrase: "pw", cipher: "aes256-ctr", rounds: 4 });
    const cases: [Partial<ProbeConfig>, RegExp][] = [
      [{ private_key: join(dir, "missing") }, /cannot use private_key .*missing: .*ENOENT/],
      [{ private_key: file("id_encrypted", encrypted.private) }, /cannot use private_key .*: Encrypted private OpenSSH key detected/],
      [{ private_key: file("not-a-key", "hello\n") }, /cannot use private_key .*not-a-key/],
      [{ private_key: undefined, password_file: file("empty", "") }, /cannot use password_file .*: the file is empty/],
    ];
    for (const [extra, message] of cases) {
      assert.throws(
        () => probe(good.port, extra),
        (e: unknown) => {
          assert.ok(isUnderstudyError(e, "US_E_PROBE_FILE"), String(e));
          assert.match(e.message, message);
          assert.ok(!e.message.includes("OPENSSH PRIVATE KEY"), '!e.message.includes("OPENSSH PRIVATE KEY")');
          return true;
        },
      );
    }
  });
});
