// The probe types added for the SFTPGo outage checklist, as the config file
// declares them (src/config/schema.ts): per-type defaults, parsed sizes and
// durations, and every refusal with its key path.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { parseConfigText } from "../../../src/config/load.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";

const FINGERPRINT = "SHA256:2iqaOjl9/NBqShifVumD9cxmbZYu3siZAQI3xx0Fam8";
const SFTP = { name: "login", type: "sftp", port: 2022, user: "probe", private_key: "/etc/understudy/probe_ed25519", host_key_fingerprint: FINGERPRINT };

function probes(...list: Record<string, unknown>[]) {
  const text = stringify({
    cluster: "c",
    node: { name: "n1", address: "198.18.0.11" },
    etcd: { endpoints: ["http://198.18.0.2:2379"] },
    daemon: { backend: "systemd", unit: "sftpgo.service" },
    probes: list,
  });
  return parseConfigText(text, "/etc/understudy/understudy.yaml").probes;
}

function refused(probe: Record<string, unknown>, path: string, problem: string | RegExp): void {
  assert.throws(
    () => probes(probe),
    (e: unknown) => {
      assert.ok(isUnderstudyError(e, "US_E_CONFIG_INVALID"), String(e));
      assert.equal(e.details.path, `probes.0.${path}`, e.message);
      if (typeof problem === "string") assert.ok(String(e.details.problem).includes(problem), e.message);
      else assert.match(String(e.details.problem), problem);
      return true;
    },
  );
}

describe("probe config: sftp, ftps, disk, tls_file", () => {
  it("gives each type its defaults, and leaves the old types' defaults alone", () => {
    const [sftp, ftps, disk, tls, ssh] = probes(
      SFTP,
      { name: "ftps", type: "ftps", port: 21 },
      { name: "data", type: "disk", path: "/srv/sftpgo", min_free: "1.5GiB" },
      { name: "certs", type: "tls_file", files: ["/etc/ssl/a.pem"] },
      { name: "banner", type: "ssh", port: 2022 },
    );
    assert.deepEqual(sftp, { ...SFTP, host: "127.0.0.1", expect_status: 200, interval: 5000, timeout: 5000, rise: 1, fall: 3, critical: true });
    assert.deepEqual([ftps!.interval, ftps!.timeout, ftps!.critical, ftps!.tls_verify, ftps!.cert_warning], [5000, 2000, true, undefined, undefined]);
    assert.deepEqual([disk!.interval, disk!.timeout, disk!.critical, disk!.min_free], [30_000, 2000, false, 1.5 * 1024 ** 3]);
    assert.deepEqual([tls!.interval, tls!.timeout, tls!.critical], [3_600_000, 1000, false]);
    assert.deepEqual([ssh!.interval, ssh!.timeout, ssh!.critical], [1000, 1000, true]);
  });

  it("keeps explicit interval, timeout and critical; reads cert_warning in days or as a duration", () => {
    const [tls, ftps] = probes(
      { name: "certs", type: "tls_file", files: ["/etc/ssl/a.pem"], interval: "10m", timeout: "3s", critical: true, cert_warning: "30d" },
      { name: "ftps", type: "ftps", port: 21, cert_warning: "72h", tls_verify: false, ca_file: "/etc/ca.pem", servername: "ftp.example.com" },
    );
    assert.deepEqual([tls!.interval, tls!.timeout, tls!.critical, tls!.cert_warning], [600_000, 3000, true, 30 * 86_400_000]);
    assert.deepEqual([ftps!.cert_warning, ftps!.tls_verify, ftps!.ca_file, ftps!.servername], [72 * 3_600_000, false, "/etc/ca.pem", "ftp.example.com"]);
    assert.equal(probes({ ...SFTP, private_key: undefined, password_file: "/etc/understudy/pw" })[0]!.password_file, "/etc/understudy/pw");
  });

  it("refuses an incomplete sftp probe", () => {
    refused({ ...SFTP, port: undefined }, "port", "required for a sftp probe");
    refused({ ...SFTP, user: undefined }, "user", "required for an sftp probe");
    refused({ ...SFTP, host_key_fingerprint: undefined }, "host_key_fingerprint", "required for an sftp probe");
    refused({ ...SFTP, private_key: undefined }, "private_key", "exactly one of private_key and password_file");
    refused({ ...SFTP, password_file: "/etc/pw" }, "password_file", "exactly one of private_key and password_file");
    refused({ ...SFTP, private_key: "probe_ed25519" }, "private_key", "absolute path");
  });

  it("refuses a host key fingerprint not in ssh-keygen's SHA256 form", () => {
    for (const bad of ["2iqaOjl9/NBqShifVumD9cxmbZYu3siZAQI3xx0Fam8", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48", "SHA256:short", `${FINGERPRINT}x`]) {
      refused({ ...SFTP, host_key_fingerprint: bad }, "host_key_fingerprint", "ssh-keygen -lf");
    }
  });

  it("refuses incomplete ftps, disk and tls_file probes", () => {
    refused({ name: "f", type: "ftps" }, "port", "required for a ftps probe");
    refused({ name: "d", type: "disk", min_free: "1GiB" }, "path", "required for a disk probe");
    refused({ name: "d", type: "disk", path: "/srv" }, "min_free", "required for a disk probe");
    refused({ name: "d", type: "disk", path: "/srv", min_free: "1GB" }, "min_free", "must be a size like 500MiB or 1GiB");
    refused({ name: "d", type: "disk", path: "/srv", min_free: 1024 }, "min_free", "must be a size");
    refused({ name: "t", type: "tls_file" }, "files", "required for a tls_file probe");
    refused({ name: "t", type: "tls_file", files: [] }, "files", "at least one file");
    refused({ name: "t", type: "tls_file", files: ["/etc/a.pem", "b.pem"] }, "files.1", "absolute path");
    refused({ name: "t", type: "tls_file", files: ["/etc/a.pem"], cert_warning: "2w" }, "cert_warning", "like 14d or 72h");
  });

  it("refuses a key that belongs to another probe type", () => {
    refused({ name: "b", type: "ssh", port: 22, user: "probe" }, "user", "applies only to sftp probes");
    refused({ name: "b", type: "ftp", port: 21, cert_warning: "14d" }, "cert_warning", "applies only to ftps, http, tls_file probes");
    refused({ name: "d", type: "disk", path: "/srv", min_free: "1GiB", files: ["/a.pem"] }, "files", "applies only to tls_file probes");
  });
});
