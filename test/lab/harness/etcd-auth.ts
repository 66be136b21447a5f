/**
 * The lab's etcd is the secure setup by default (docs/operations.md): client TLS
 * with client-certificate verification, and etcd authentication with a
 * least-privilege role for the lab cluster (readwrite on /understudy/lab/
 * only), made the way docs/security.md and `understudy etcd setup` describe.
 * Tests inspect and fault etcd as its root user.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { LabPki } from "./pki.js";

export interface LabEtcdCredentials {
  /** CA that signed etcd's server certificate and every client certificate. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** The agents' (and etcdctl's) client certificate. */
  readonly cert: string;
  readonly key: string;
  /** The agents' etcd user, its password file (0600), and the prefix its role reaches. */
  readonly user: string;
  readonly passwordFile: string;
  readonly rolePrefix: string;
  /** etcd's root user, for the lab's own inspection and faults. */
  readonly rootPassword: string;
}

export const LAB_ETCD_USER = "understudy-lab";
export const LAB_ROLE_PREFIX = "/understudy/lab/";

/** A CA, etcd's server certificate (its addresses and loopback), a client certificate, and passwords. */
export async function makeEtcdCredentials(dir: string, addresses: readonly string[]): Promise<LabEtcdCredentials> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = await LabPki.create(dir, "etcd");
  const server = await pki.issue("etcd-server", { sans: [...addresses.map((a) => `IP:${a}`), "IP:127.0.0.1", "DNS:localhost"], usage: "both" });
  const client = await pki.issue("understudy-lab-client", { usage: "client" });
  const passwordFile = join(dir, "etcd-password");
  writeFileSync(passwordFile, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  return {
    ca: pki.ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    cert: client.cert,
    key: client.key,
    user: LAB_ETCD_USER,
    passwordFile,
    rolePrefix: LAB_ROLE_PREFIX,
    rootPassword: randomBytes(18).toString("base64url"),
  };
}

/** etcd's flags for client TLS with client-certificate verification. */
export function etcdServerTlsArgs(c: LabEtcdCredentials): string[] {
  return ["--client-cert-auth", "--trusted-ca-file", c.ca, "--cert-file", c.serverCert, "--key-file", c.serverKey];
}

/** etcdctl's connection flags (the client certificate); `--user` is added once auth is on. */
export function etcdctlTlsArgs(c: LabEtcdCredentials): string[] {
  return [`--cacert=${c.ca}`, `--cert=${c.cert}`, `--key=${c.key}`];
}

/** The etcdctl steps that turn auth on and give the agents their role: root first, then the lab's user. */
export function authSetupSteps(c: LabEtcdCredentials, agentPassword: string): { args: string[]; input?: string }[] {
  return [
    { args: ["user", "add", "root", "--interactive=false"], input: `${c.rootPassword}\n` },
    { args: ["role", "add", "root"] },
    { args: ["user", "grant-role", "root", "root"] },
    { args: ["role", "add", c.user] },
    { args: ["role", "grant-permission", c.user, "readwrite", c.rolePrefix, "--prefix=true"] },
    { args: ["user", "add", c.user, "--interactive=false"], input: `${agentPassword}\n` },
    { args: ["user", "grant-role", c.user, c.user] },
    { args: ["auth", "enable"] },
  ];
}
