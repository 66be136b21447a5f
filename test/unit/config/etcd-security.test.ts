// etcd.tls / etcd.auth: config rules, the files read before start, and the
// classification of failures into coded errors (the real refusals are in
// test/lab/etcd-security.lab.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { stringify } from "yaml";
import { parseConfigText } from "../../../src/config/load.js";
import { readEtcdSecurity } from "../../../src/config/etcd-security.js";
import { classifyEtcdFailure } from "../../../src/coordinator/etcd-failure.js";
import { UnderstudyError } from "../../../src/errors/catalogue.js";

const dir = mkdtempSync(join(tmpdir(), "us-etcdsec-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const FILE = "/etc/understudy/understudy.yaml";
const base = (etcd: Record<string, unknown>) => stringify({ cluster: "c", node: { name: "n1", address: "198.18.0.11" }, etcd, daemon: { backend: "systemd", unit: "ssh.service" } });

test("config: tls needs https endpoints, auth needs https, cert and key together, no mixed schemes", () => {
  const ok = parseConfigText(
    base({
      endpoints: ["https://198.18.0.2:2379"],
      tls: { ca: "/etc/understudy/ca.pem", cert: "/etc/understudy/c.pem", key: "/etc/understudy/c.key" },
      auth: { user: "understudy-c", password_file: "/etc/understudy/etcd-pw" },
    }),
    FILE,
  );
  assert.equal(ok.etcd.auth?.user, "understudy-c");
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ endpoints: ["http://198.18.0.2:2379"], tls: { ca: "/ca.pem" } }, /etcd\.endpoints: must be https:\/\/ URLs when etcd\.tls is set/],
    [{ endpoints: ["http://198.18.0.2:2379"], auth: { user: "u", password_file: "/p" } }, /etcd\.auth: needs https/],
    [{ endpoints: ["https://a:2379", "http://b:2379"] }, /etcd\.endpoints: must all be http:\/\/ or all https:\/\//],
    [{ endpoints: ["https://a:2379"], tls: { ca: "/ca.pem", cert: "/c.pem" } }, /etcd\.tls\.key: cert and key go together/],
    [{ endpoints: ["https://a:2379"], tls: { ca: "/ca.pem", insecure: true } }, /etcd\.tls\.insecure: unknown key/],
    [{ endpoints: ["ftp://a:2379"] }, /etcd\.endpoints\.0: must be an http/],
  ];
  for (const [etcd, why] of cases)
    assert.throws(
      () => parseConfigText(base(etcd), FILE),
      (e) => e instanceof UnderstudyError && why.test(e.message),
      JSON.stringify(etcd),
    );
});

function file(name: string, content: string, mode = 0o600): string {
  const f = join(dir, name);
  writeFileSync(f, content, { mode });
  return f;
}
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

test("readEtcdSecurity: reads the material; refuses a readable key or password, a missing CA, a key that is not one", async () => {
  const s = await readEtcdSecurity(FILE, {
    tls: { ca: file("ca.pem", PEM, 0o644), cert: file("c.pem", PEM, 0o644), key: file("c.key", KEY) },
    auth: { user: "u", password_file: file("pw", "s3cret\n") },
  });
  assert.equal(s.auth?.password, "s3cret");
  assert.ok(s.tls?.key?.toString().includes("PRIVATE KEY"), 's.tls?.key?.toString().includes("PRIVATE KEY")');
  const refused = async (settings: Parameters<typeof readEtcdSecurity>[1], path: string, why: RegExp) =>
    assert.rejects(
      readEtcdSecurity(FILE, settings),
      (e) => e instanceof UnderstudyError && e.code === "US_E_CONFIG_INVALID" && e.details.path === path && why.test(e.message) && !e.message.includes("s3cret"),
    );
  await refused({ tls: { ca: join(dir, "absent.pem") } }, "etcd.tls.ca", /cannot be read/);
  await refused({ tls: { ca: file("notpem", "hello") } }, "etcd.tls.ca", /no PEM certificate/);
  await refused({ tls: { ca: file("ca2.pem", PEM), cert: file("c2.pem", PEM), key: file("wide.key", KEY, 0o644) } }, "etcd.tls.key", /mode 0644/);
  await refused({ tls: { ca: file("ca3.pem", PEM), cert: file("c3.pem", PEM), key: file("nokey", PEM) } }, "etcd.tls.key", /no PEM private key/);
  await refused({ auth: { user: "u", password_file: file("pw-wide", "s3cret", 0o644) } }, "etcd.auth.password_file", /mode 0644/);
  await refused({ auth: { user: "u", password_file: file("pw-empty", "\n") } }, "etcd.auth.password_file", /one line/);
});

test("classifyEtcdFailure: TLS and auth failures get their code and a cause to act on; the rest is unreachable", () => {
  const cases: [string, string, RegExp][] = [
    ["14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain", "US_E_ETCD_TLS", /not signed by the CA in etcd\.tls\.ca/],
    ["Error: unable to verify the first certificate", "US_E_ETCD_TLS", /not signed by the CA/],
    ["Hostname/IP does not match certificate's altnames: IP: 198.18.0.2 is not in the cert's list", "US_E_ETCD_TLS", /does not name this endpoint/],
    ["Error: certificate has expired", "US_E_ETCD_TLS", /expired/],
    ["Error: write EPROTO ... tlsv13 alert certificate required", "US_E_ETCD_TLS", /refused this node's client certificate/],
    ["EtcdAuthenticationFailedError: etcdserver: authentication failed, invalid user ID or password", "US_E_ETCD_AUTH", /refused the user or password/],
    ["EtcdPermissionDeniedError: etcdserver: permission denied", "US_E_ETCD_AUTH", /role does not allow/],
    ["GRPCUnauthenticatedError: etcdserver: user name is empty", "US_E_ETCD_AUTH", /requires authentication/],
    ["GRPCUnavailableError: 14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379", "US_E_ETCD_UNREACHABLE", /ECONNREFUSED/],
  ];
  for (const [text, code, cause] of cases) {
    const f = classifyEtcdFailure(new Error(text));
    assert.equal(f.code, code, text);
    assert.match(f.cause, cause, text);
  }
});
