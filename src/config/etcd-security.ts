import { readFile } from "node:fs/promises";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { readSecretFile } from "../platform/secret-file.js";

/** What the config says about reaching etcd securely (config etcd.tls / etcd.auth). */
export interface EtcdSecuritySettings {
  readonly tls?: { readonly ca: string; readonly cert?: string | undefined; readonly key?: string | undefined; readonly server_name?: string | undefined } | undefined;
  readonly auth?: { readonly user: string; readonly password_file: string } | undefined;
}

/** The material, read and checked: what the etcd client is built with. Never logged. */
export interface EtcdSecurity {
  readonly tls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer; readonly serverName?: string };
  readonly auth?: { readonly user: string; readonly password: string };
}

/** A private key in PEM: a few KiB at most, even RSA 8192. */
const KEY_MAX_BYTES = 64 * 1024;
const CERT_MAX_BYTES = 1024 * 1024;

/**
 * Read the CA, client certificate and key, and the password file, once, before
 * anything starts. A key or password file others may read, a symlink, a FIFO
 * or a device is refused (platform/secret-file.ts); every refusal names the
 * config key and the file (US_E_CONFIG_INVALID), the content never.
 */
export async function readEtcdSecurity(file: string, s: EtcdSecuritySettings): Promise<EtcdSecurity> {
  const refuse = (path: string, value: string, problem: string) => new UnderstudyError("US_E_CONFIG_INVALID", { file, path, problem, value: JSON.stringify(value) });
  const secret = async (path: string, f: string, max: number) => {
    const r = await readSecretFile(f, max);
    if ("problem" in r) throw refuse(path, f, r.problem);
    return r.text;
  };
  const pem = async (path: string, f: string) => {
    const b = await readFile(f).catch((e: unknown) => {
      throw refuse(path, f, `cannot be read: ${describeError(e)}`);
    });
    if (b.length > CERT_MAX_BYTES) throw refuse(path, f, `is ${b.length} bytes, more than a certificate file holds`);
    if (!b.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) throw refuse(path, f, "holds no PEM certificate");
    return b;
  };
  const out: { tls?: NonNullable<EtcdSecurity["tls"]>; auth?: NonNullable<EtcdSecurity["auth"]> } = {};
  if (s.tls) {
    const ca = await pem("etcd.tls.ca", s.tls.ca);
    const cert = s.tls.cert ? await pem("etcd.tls.cert", s.tls.cert) : undefined;
    const key = s.tls.key ? Buffer.from(await secret("etcd.tls.key", s.tls.key, KEY_MAX_BYTES)) : undefined;
    if (key && !key.toString("latin1").includes("PRIVATE KEY-----")) throw refuse("etcd.tls.key", s.tls.key!, "holds no PEM private key");
    out.tls = { ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(s.tls.server_name ? { serverName: s.tls.server_name } : {}) };
  }
  if (s.auth) {
    const password = (await secret("etcd.auth.password_file", s.auth.password_file, 4096)).replace(/\r?\n$/, "");
    if (password.length === 0 || /[\n\r\0]/.test(password)) throw refuse("etcd.auth.password_file", s.auth.password_file, "must hold the password on one line");
    out.auth = { user: s.auth.user, password };
  }
  return out;
}
