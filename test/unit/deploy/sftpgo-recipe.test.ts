// The SFTPGo recipe (deploy/examples/sftpgo*.yaml, docs/sftpgo.md), tested as
// far as it can be without SFTPGo (not packaged for Debian 12):
//   * the three examples pass `understudy config check`, and say what their
//     comments promise (warm/cold, a probe per listener, the sync roots);
//   * their sync roots, through the real manifest, mode check and validators:
//     the TLS key stays 0600, no database is ever synced, a mismatched pair or
//     a broken sftpgo.json is refused;
//   * every probe of every example, retargeted only in address and trust files,
//     passes against stand-ins of SFTPGo's listeners on 127.0.0.1
//     (test/unit/deploy/sftpgo-standins.ts) and fails, with a reason that names the
//     problem, against broken ones.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ed25519KeyPair } from "../../fakes/ssh-keys.js";
import { parse, stringify } from "yaml";
import { loadConfigFile, parseConfigText, type Config } from "../../../src/config/load.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SpawnCommandRunner } from "../../../src/platform/command.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { createProbe, type ProbeConfig } from "../../../src/probes/index.js";
import type { ProbeResult } from "../../../src/probes/port.js";
import { checkModes } from "../../../src/sync/apply.js";
import { buildManifest } from "../../../src/sync/manifest.js";
import { runValidator } from "../../../src/sync/validate.js";
import { cli } from "../cli/cli-helpers.js";
import {
  HOST,
  ftpsStandIn,
  httpStandIn,
  httpsStandIn,
  makeCa,
  makeServerCert,
  reloadableHttpsStandIn,
  sftpStandIn,
  wrongBannerStandIn,
  type Listening,
  type Pem,
  type SftpStandIn,
} from "./sftpgo-standins.js";

const EXAMPLES = fileURLToPath(new URL("../../../deploy/examples/", import.meta.url));
const SYSTEMD_DROPINS = fileURLToPath(new URL("../../../systemd/daemon-dropins/", import.meta.url));
const FILES = ["sftpgo.yaml", "sftpgo-cluster.yaml", "sftpgo-cold.yaml"] as const;
const NAME = "sftp.example.com";
const DAY = 86_400_000;
const load = (f: string): Promise<Config> => loadConfigFile(join(EXAMPLES, f), { hostChecks: false });
const root = (c: Config, name: string) => {
  const r = c.sync?.roots.find((x) => x.name === name);
  assert.ok(r, `sync root ${name}`);
  return r;
};

/** The real clock, with the wall clock moved `shiftMs` ahead (openssl cannot backdate a certificate). */
class ShiftedClock extends SystemClock {
  constructor(private readonly shiftMs: number) {
    super();
  }
  override wallMs(): number {
    return super.wallMs() + this.shiftMs;
  }
}

describe("SFTPGo examples: config check and what they show", () => {
  it("`understudy config check` accepts all three", async () => {
    for (const f of FILES) {
      const r = await cli(["config", "check", "--no-host-checks", join(EXAMPLES, f)]);
      assert.equal(r.code, 0, `${f}: ${r.err}`);
      assert.match(r.out, /: valid \(cluster /);
    }
  });

  it("warm: sftpgo.service everywhere; a critical probe for SFTP, FTPS, WebDAV and the HTTPS API", async () => {
    for (const f of ["sftpgo.yaml", "sftpgo-cluster.yaml"]) {
      const c = await load(f);
      assert.deepEqual([c.daemon.backend, c.daemon.mode, c.daemon.unit], ["systemd", "warm", "sftpgo.service"], f);
    }
    const c = await load("sftpgo-cluster.yaml");
    const probe = (name: string) => c.probes.find((p) => p.name === name)!;
    assert.deepEqual([probe("sftp").type, probe("sftp").port, probe("sftp").critical], ["sftp", 2022, true]);
    assert.deepEqual([probe("ftps").type, probe("ftps").port, probe("ftps").servername, probe("ftps").critical], ["ftps", 21, NAME, true]);
    assert.deepEqual([probe("webdav").url, probe("webdav").expect_status, probe("webdav").servername], ["https://127.0.0.1:10443/", 401, NAME]);
    assert.deepEqual([probe("api").url, probe("api").expect_status, probe("api").critical], ["https://127.0.0.1:8443/healthz", 200, true]);
    assert.deepEqual([probe("certs").type, probe("certs").files, probe("certs").critical], ["tls_file", ["/etc/ssl/sftpgo/sftpgo.crt"], false]);
    // Reload on SIGHUP for the certificate; restart for what SIGHUP does not re-read (sftpgo.json, host keys).
    assert.deepEqual(root(c, "sftpgo-tls").post_sync, ["/usr/bin/systemctl", "reload", "sftpgo.service"]);
    assert.deepEqual(root(c, "sftpgo-config").post_sync, ["/usr/bin/systemctl", "try-restart", "sftpgo.service"]);
    assert.deepEqual(root(c, "sftpgo-host-keys").post_sync, ["/usr/bin/systemctl", "try-restart", "sftpgo.service"]);
  });

  it("cold: the database volume checked (and mounted) by the pre_promote script, no post_sync on cold standbys", async () => {
    const c = await load("sftpgo-cold.yaml");
    assert.deepEqual([c.daemon.mode, c.daemon.unit], ["cold", "sftpgo.service"]);
    assert.deepEqual(c.hooks?.pre_promote, ["/usr/local/libexec/understudy/volume-check.sh", "--mount", "/srv/sftpgo", "state/sftpgo.db"]);
    assert.deepEqual(c.hooks?.on_demote, ["/usr/bin/systemctl", "stop", "srv-sftpgo.mount"]);
    assert.ok(c.hooks!.timeout >= 20_000, "a mount gets more than the 10s default");
    for (const r of c.sync!.roots) assert.equal(r.post_sync, undefined, `${r.name}: SFTPGo is stopped on a cold standby`);
    // The systemd drop-ins shipped for it name the same mount point and mount unit.
    const mountPoint = c.hooks!.pre_promote![2]!;
    const unit = spawnSync("systemd-escape", ["-p", "--suffix=mount", mountPoint], { encoding: "utf8" }).stdout.trim();
    assert.equal(c.hooks?.on_demote?.[2], unit);
    assert.match(readFileSync(join(SYSTEMD_DROPINS, "sftpgo.service.d", "volume.conf"), "utf8"), new RegExp(`^RequiresMountsFor=${mountPoint}$`, "m"));
    assert.match(readFileSync(join(SYSTEMD_DROPINS, `${unit}.d`, "understudy.conf"), "utf8"), /^StopPropagatedFrom=understudy\.service$/m);
    assert.ok(
      c.probes.some((p) => p.type === "disk" && p.path === mountPoint),
      'c.probes.some((p) => p.type === "disk" && p.path === mountPoint)',
    );
    const cluster = await load("sftpgo-cluster.yaml");
    assert.deepEqual(
      c.probes.map((p) => [p.name, p.type]),
      cluster.probes.map((p) => [p.name, p.type]),
      "the same listeners, probed the same way",
    );
  });
});

describe("SFTPGo examples: the sync roots through the real manifest, mode check and validators", () => {
  let dir: string;
  const runner = new SpawnCommandRunner();
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-sftpgo-roots-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const manifestOf = async (c: Config, name: string, path: string) => {
    const r = root(c, name);
    const m = await buildManifest({ name: r.name, path, include: r.include, exclude: r.exclude, maxFileBytes: r.max_file_size });
    return { r, m };
  };

  for (const f of ["sftpgo-cluster.yaml", "sftpgo-cold.yaml"]) {
    it(`${f}: the TLS pair keeps its modes (key 0600); a wider key is refused; a pair that does not match is refused`, async () => {
      const c = await load(f);
      const ca = makeCa(mkdtempSync(join(dir, "ca-")));
      const tls = mkdtempSync(join(dir, "tls-"));
      const pem = makeServerCert(tls, "sftpgo", NAME, ca);
      chmodSync(pem.certFile, 0o644);
      chmodSync(pem.keyFile, 0o600);
      writeFileSync(join(tls, "sftpgo.csr.bak"), "not synced\n", { mode: 0o644 });
      const { r, m } = await manifestOf(c, "sftpgo-tls", tls);
      assert.deepEqual(
        m.entries.filter((e) => e.type === "file").map((e) => [e.path, e.mode]),
        [
          ["sftpgo.crt", 0o644],
          ["sftpgo.key", 0o600],
        ],
      );
      checkModes({ name: r.name, path: tls, include: r.include, exclude: r.exclude, maxFileBytes: r.max_file_size }, m, r.max_mode);
      await runValidator(r.validate!, tls, runner, 10_000);

      chmodSync(pem.keyFile, 0o666);
      const wide = await manifestOf(c, "sftpgo-tls", tls);
      assert.throws(
        () => checkModes({ name: r.name, path: tls, include: r.include, exclude: r.exclude, maxFileBytes: r.max_file_size }, wide.m, r.max_mode),
        (e: unknown) => isUnderstudyError(e, "US_E_SYNC_MODE") && /sftpgo\.key/.test(e.message),
      );
      chmodSync(pem.keyFile, 0o600);

      // A renewal half done: the new certificate beside the old key.
      const renewed = makeServerCert(mkdtempSync(join(dir, "renewed-")), "sftpgo", NAME, ca);
      writeFileSync(pem.certFile, renewed.cert);
      await assert.rejects(runValidator(r.validate!, tls, runner, 10_000), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED"));
    });

    it(`${f}: sftpgo.json and sftpgo.env are synced, never a database; a broken sftpgo.json is refused`, async () => {
      const c = await load(f);
      const etc = mkdtempSync(join(dir, "etc-"));
      for (const name of ["sftpgo.json", "sftpgo.env", "sftpgo.db", "sftpgo.db-wal", "sftpgo.db-journal", "sftpgo.bolt"]) {
        writeFileSync(join(etc, name), name === "sftpgo.json" ? '{"data_provider": {"driver": "sqlite"}}\n' : "x\n", { mode: 0o640 });
      }
      mkdirSync(join(etc, "backups"));
      writeFileSync(join(etc, "backups", "sftpgo.db"), "x\n");
      const { r, m } = await manifestOf(c, "sftpgo-config", etc);
      assert.deepEqual(
        m.entries.filter((e) => e.type === "file").map((e) => e.path),
        ["sftpgo.env", "sftpgo.json"],
      );
      await runValidator(r.validate!, etc, runner, 10_000);
      writeFileSync(join(etc, "sftpgo.json"), '{"data_provider": {"driver": "sqlite",}\n');
      await assert.rejects(runValidator(r.validate!, etc, runner, 10_000), (e: unknown) => isUnderstudyError(e, "US_E_SYNC_VALIDATOR_FAILED"));
      // Even a root that included everything would keep the database out.
      const all = await buildManifest({ name: r.name, path: etc, include: [], exclude: r.exclude, maxFileBytes: r.max_file_size });
      assert.ok(!all.entries.some((e) => /\.(db|bolt)(-|$)/.test(e.path)), all.entries.map((e) => e.path).join(", "));
    });
  }
});

describe("SFTPGo examples: every probe against stand-ins of SFTPGo's listeners", () => {
  const clock = new SystemClock();
  const clientKey = ed25519KeyPair();
  let dir: string;
  let ca: Pem, good: Pem, wrongName: Pem, selfSigned: Pem;
  let clientKeyFile: string;
  const open: Listening[] = [];
  let sftp: SftpStandIn, https: Listening, plain: Listening, ftps: Listening;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-sftpgo-probes-"));
    ca = makeCa(dir);
    good = makeServerCert(dir, "good", NAME, ca);
    wrongName = makeServerCert(dir, "wrong-name", "other.example.com", ca);
    selfSigned = makeServerCert(dir, "self-signed", NAME, undefined);
    clientKeyFile = join(dir, "probe_ed25519");
    writeFileSync(clientKeyFile, clientKey.private, { mode: 0o600 });
    sftp = await sftpStandIn("understudy-probe", clientKey.public);
    https = await httpsStandIn(good);
    plain = await httpStandIn();
    ftps = await ftpsStandIn(good);
    open.push(sftp, https, plain, ftps);
  });
  after(async () => {
    await Promise.all(open.map((l) => l.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const url = (u: string, port: number) => {
    const x = new URL(u);
    x.port = String(port);
    return x.toString();
  };
  /**
   * The example's probe, changed only where it must be: the stand-in's port, the test CA as ca_file
   * (the examples' comments say to add it for a private CA), the test's key and host key pin,
   * and temporary files for tls_file and disk.
   */
  const retarget = (p: ProbeConfig, to: { sftp?: SftpStandIn; https?: Listening; ftps?: Listening; http?: Listening; ssh?: Listening; certFile?: string } = {}): ProbeConfig => {
    switch (p.type) {
      case "sftp": {
        const s = to.sftp ?? sftp;
        return { ...p, port: s.port, private_key: clientKeyFile, host_key_fingerprint: s.fingerprint };
      }
      case "ssh":
        return { ...p, port: (to.ssh ?? sftp).port };
      case "ftps":
        return { ...p, port: (to.ftps ?? ftps).port, ca_file: ca.certFile };
      case "http":
        return p.url!.startsWith("https:") ? { ...p, url: url(p.url!, (to.https ?? https).port), ca_file: ca.certFile } : { ...p, url: url(p.url!, (to.http ?? plain).port) };
      case "tls_file":
        return { ...p, files: [to.certFile ?? good.certFile] };
      case "disk":
        return { ...p, path: dir };
      default:
        throw new Error(`no stand-in for probe type ${p.type}`);
    }
  };
  const check = (p: ProbeConfig, c = clock): Promise<ProbeResult> => createProbe(p, c).check(new AbortController().signal);

  for (const f of FILES) {
    it(`${f}: every probe passes against healthy stand-ins`, async () => {
      const c = await load(f);
      assert.ok(c.probes.length >= 2, "c.probes.length >= 2");
      for (const p of c.probes) {
        const r = await check(retarget(p));
        assert.equal(r.ok, true, `${f} probe ${p.name} (${p.type}): ${r.detail}`);
      }
    });
  }

  it("what each healthy listener reports", async () => {
    const c = await load("sftpgo-cluster.yaml");
    const detail = async (name: string) => (await check(retarget(c.probes.find((p) => p.name === name)!))).detail;
    assert.equal(await detail("sftp"), "sftp login ok, realpath /");
    assert.match(await detail("ftps"), /^AUTH TLS ok \(TLSv1\.[23]\), certificate expires in 36[45] days/);
    assert.match(await detail("webdav"), /^HTTP 401, certificate expires in 36[45] days/);
    assert.match(await detail("api"), /^HTTP 200, certificate expires in 36[45] days/);
    const minimal = await load("sftpgo.yaml");
    assert.equal((await check(retarget(minimal.probes.find((p) => p.type === "ssh")!))).detail, "SSH-2.0-SFTPGo_2.6.4");
  });

  it("a renewal reloaded in place (SIGHUP) is seen by the next check: new expiry, no failed check", async () => {
    const c = await load("sftpgo-cluster.yaml");
    const server = await reloadableHttpsStandIn(good);
    open.push(server);
    const api = createProbe(
      retarget(
        c.probes.find((p) => p.name === "api")!,
        { https: server },
      ),
      clock,
    );
    const before = await api.check(new AbortController().signal);
    assert.match(before.detail, /^HTTP 200, certificate expires in 36[45] days/);
    const renewed = makeServerCert(mkdtempSync(join(dir, "renewed-")), "sftpgo", NAME, ca, 730);
    server.reload(renewed);
    const afterReload = await api.check(new AbortController().signal);
    assert.equal(afterReload.ok, true, afterReload.detail);
    assert.match(afterReload.detail, /^HTTP 200, certificate expires in 7(29|30) days/, "the same probe object, the new certificate");
    assert.notDeepEqual(afterReload.data?.certExpiresAt, before.data?.certExpiresAt);
  });

  it("servername is what lets a probe of 127.0.0.1 check the certificate of sftp.example.com", async () => {
    const c = await load("sftpgo-cluster.yaml");
    const webdav = retarget(c.probes.find((p) => p.name === "webdav")!);
    const { servername: _drop, ...without } = webdav;
    const r = await check(without);
    assert.equal(r.ok, false);
    assert.equal(r.detail, "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list:");
    // The key is for TLS probes only: on the sftp probe it is a mistake, said with its path.
    const raw = parse(readFileSync(join(EXAMPLES, "sftpgo-cluster.yaml"), "utf8")) as { probes: Record<string, unknown>[] };
    raw.probes[0] = { ...raw.probes[0], servername: NAME };
    assert.throws(
      () => parseConfigText(stringify(raw), "edited.yaml"),
      (e: unknown) => isUnderstudyError(e, "US_E_CONFIG_INVALID") && e.details.path === "probes.0.servername" && /applies only to ftps, http probes/.test(e.message),
    );
  });

  it("each listener fails with a reason naming the problem when it is broken", async () => {
    const c = await load("sftpgo-cluster.yaml");
    const minimal = await load("sftpgo.yaml");
    const probe = (name: string) => c.probes.find((p) => p.name === name)!;
    const standIns = {
      healthz503: await httpsStandIn(good, { healthz: 503 }),
      webdav503: await httpsStandIn(good, { other: 503 }),
      wrongName: await httpsStandIn(wrongName),
      selfSigned: await httpsStandIn(selfSigned),
      ftpsWrongName: await ftpsStandIn(wrongName),
      ftpsSelfSigned: await ftpsStandIn(selfSigned),
      ftpsBusy: await ftpsStandIn(good, "421 Too many connections\r\n"),
      providerDown: await sftpStandIn("understudy-probe", clientKey.public, { providerDown: true }),
      otherHostKey: await sftpStandIn("understudy-probe", clientKey.public),
      notSsh: await wrongBannerStandIn("220 ProFTPD Server ready\r\n"),
      plain503: await httpStandIn({ healthz: 503 }),
    };
    open.push(...Object.values(standIns));
    const expectFail = async (p: ProbeConfig, detail: RegExp, c2 = clock) => {
      const r = await check(p, c2);
      assert.equal(r.ok, false, `${p.name} should fail: ${r.detail}`);
      assert.match(r.detail, detail, p.name);
    };

    await expectFail(retarget(probe("api"), { https: standIns.healthz503 }), /^HTTP 503, certificate expires in/);
    await expectFail(retarget(probe("webdav"), { https: standIns.webdav503 }), /^HTTP 503, certificate expires in/);
    await expectFail(retarget(probe("webdav"), { https: standIns.wrongName }), /Host: sftp\.example\.com\. is not in the cert's altnames: DNS:other\.example\.com/);
    await expectFail(retarget(probe("api"), { https: standIns.selfSigned }), /self-signed certificate/);
    await expectFail(retarget(probe("api")), /^HTTP 200, certificate expired \d+ days ago/, new ShiftedClock(400 * DAY));
    await expectFail(retarget(probe("ftps"), { ftps: standIns.ftpsWrongName }), /certificate not issued for sftp\.example\.com \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
    await expectFail(retarget(probe("ftps"), { ftps: standIns.ftpsSelfSigned }), /certificate not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    await expectFail(retarget(probe("ftps"), { ftps: standIns.ftpsBusy }), /^421 Too many connections$/);
    await expectFail(retarget(probe("sftp"), { sftp: standIns.providerDown }), /^sftp login as understudy-probe refused: /);
    const pinnedElsewhere = { ...retarget(probe("sftp"), { sftp: standIns.otherHostKey }), host_key_fingerprint: sftp.fingerprint };
    await expectFail(pinnedElsewhere, /^host key SHA256:\S+ does not match the pinned SHA256:/);
    await expectFail(retarget(probe("certs")), /sftpgo-probes-.*\/good\.crt expired \d+ days ago/, new ShiftedClock(400 * DAY));
    await expectFail(retarget(probe("certs"), { certFile: join(dir, "missing.crt") }), /^cannot read .*missing\.crt: ENOENT/);

    await expectFail(
      retarget(
        minimal.probes.find((p) => p.type === "ssh")!,
        { ssh: standIns.notSsh },
      ),
      /220 ProFTPD Server ready/,
    );
    await expectFail(
      retarget(
        minimal.probes.find((p) => p.type === "http")!,
        { http: standIns.plain503 },
      ),
      /^HTTP 503$/,
    );
    const gone = await httpStandIn();
    await gone.close();
    await expectFail(
      retarget(
        minimal.probes.find((p) => p.type === "http")!,
        { http: gone },
      ),
      new RegExp(`^connect ECONNREFUSED ${HOST}:${gone.port}$`),
    );
  });
});
