// The few settings a client command needs from a node's config (cluster, etcd
// endpoints and prefix, the API's listen address, token file and TLS), read
// without building the full zod schema: that costs ~0.15 s of a `status
// --config` run (docs/benchmarks.md, CLI). Whenever a needed field is missing
// or not what the schema accepts, or the file cannot be read or parsed, the
// full loader runs instead and its coded error (US_E_CONFIG_*, exit 2) is what
// the user sees. Settings the command does not use are not checked here;
// `understudy config check` checks everything. test/unit/cli/cli-config.test.ts
// holds this equal to the full loader on the example configs.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { EtcdSecuritySettings } from "../config/etcd-security.js";
import { defaultApiListen } from "../config/defaults.js";
import { LISTEN_ADDRESS } from "../platform/listen-address.js";

/** Where the package puts a node's config (scripts/build-deb.sh). */
export const DEFAULT_CONFIG = "/etc/understudy/understudy.yaml";

/**
 * The config a client command reads when its command line names no target
 * (no --api, --config, --etcd or --cluster): $UNDERSTUDY_CONFIG, else the
 * package's file when it exists, so that on a node `understudy switchover
 * --to n2` works as the docs show it. undefined: none (the command's usage
 * error says what to name).
 */
export function implicitConfig(env: Readonly<Record<string, string | undefined>>, defaultPath = DEFAULT_CONFIG): string | undefined {
  if (env.UNDERSTUDY_CONFIG) return env.UNDERSTUDY_CONFIG;
  // Not named by the user: only a file this user can read with a setting in it (the package
  // installs a fully commented example; an operator without the agent's group cannot read it).
  try {
    return readFileSync(defaultPath, "utf8")
      .split("\n")
      .some((l) => l.trim() !== "" && !l.trim().startsWith("#"))
      ? defaultPath
      : undefined;
  } catch {
    return undefined;
  }
}

/** What a usage error says when no target was named and implicitConfig found none. */
export const NO_IMPLICIT_CONFIG = `no ${DEFAULT_CONFIG} with settings readable here, and UNDERSTUDY_CONFIG not set`;

export interface ClientConfig {
  readonly cluster: string;
  readonly etcd: { readonly endpoints: readonly string[]; readonly prefix: string } & EtcdSecuritySettings;
  readonly api?: { readonly listen: string; readonly token_file?: string | undefined; readonly tls: boolean } | undefined;
}

// The same rules as src/config/schema.ts for these fields.
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isUrl(v: unknown): v is string {
  if (typeof v !== "string") return false;
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
}

const isPath = (v: unknown): v is string => typeof v === "string" && v.startsWith("/") && !v.split("/").includes("..");

/** etcd.tls / etcd.auth when absent or well-formed (null: malformed, use the full loader). */
function pickSecurity(etcd: Record<string, unknown>): EtcdSecuritySettings | null {
  const out: { tls?: EtcdSecuritySettings["tls"]; auth?: EtcdSecuritySettings["auth"] } = {};
  const { tls, auth } = etcd;
  if (tls !== undefined) {
    if (!isObject(tls) || !isPath(tls.ca) || (tls.cert !== undefined && !isPath(tls.cert)) || (tls.key !== undefined && !isPath(tls.key))) return null;
    if ((tls.cert === undefined) !== (tls.key === undefined) || (tls.server_name !== undefined && typeof tls.server_name !== "string")) return null;
    // Only the keys the file sets, like the full loader (no `server_name: undefined`).
    out.tls = {
      ca: tls.ca,
      ...(tls.cert !== undefined ? { cert: tls.cert as string } : {}),
      ...(tls.key !== undefined ? { key: tls.key as string } : {}),
      ...(tls.server_name !== undefined ? { server_name: tls.server_name as string } : {}),
    };
  }
  if (auth !== undefined) {
    if (!isObject(auth) || typeof auth.user !== "string" || !isPath(auth.password_file)) return null;
    out.auth = { user: auth.user, password_file: auth.password_file };
  }
  return out;
}

/** The client settings when every one of them is well-formed; undefined sends the caller to the full loader. */
export function pickClientConfig(raw: unknown): ClientConfig | undefined {
  if (!isObject(raw) || typeof raw.cluster !== "string" || !NAME.test(raw.cluster)) return undefined;
  const etcd = raw.etcd;
  if (!isObject(etcd) || !Array.isArray(etcd.endpoints) || etcd.endpoints.length === 0 || !etcd.endpoints.every(isUrl)) return undefined;
  if (etcd.prefix !== undefined && (typeof etcd.prefix !== "string" || !etcd.prefix.startsWith("/"))) return undefined;
  const prefix = (etcd.prefix as string | undefined) ?? "/understudy";
  const security = pickSecurity(etcd);
  if (security === null) return undefined;
  const api = raw.api;
  if (api === undefined || api === null) return { cluster: raw.cluster, etcd: { endpoints: etcd.endpoints as string[], prefix, ...security } };
  if (!isObject(api)) return undefined;
  if (api.listen !== undefined && (typeof api.listen !== "string" || !LISTEN_ADDRESS.test(api.listen))) return undefined;
  if (api.token_file !== undefined && (typeof api.token_file !== "string" || !api.token_file.startsWith("/"))) return undefined;
  if (api.tls !== undefined && !isObject(api.tls)) return undefined;
  // Without api.listen the API listens on node.address (the schema's default).
  const node = raw.node;
  if (api.listen === undefined && (!isObject(node) || typeof node.address !== "string")) return undefined;
  return {
    cluster: raw.cluster,
    etcd: { endpoints: etcd.endpoints as string[], prefix, ...security },
    api: { listen: (api.listen as string | undefined) ?? defaultApiListen((node as { address: string }).address), token_file: api.token_file as string | undefined, tls: api.tls !== undefined },
  };
}

/** The full loader's answer in the same shape (and its coded error when the file is bad). */
export async function fullClientConfig(file: string): Promise<ClientConfig> {
  const { loadConfigFile } = await import("../config/load.js");
  const c = await loadConfigFile(file, { hostChecks: false });
  return {
    cluster: c.cluster,
    etcd: { endpoints: c.etcd.endpoints, prefix: c.etcd.prefix, ...(c.etcd.tls ? { tls: c.etcd.tls } : {}), ...(c.etcd.auth ? { auth: c.etcd.auth } : {}) },
    ...(c.api ? { api: { listen: c.api.listen, token_file: c.api.token_file, tls: c.api.tls !== undefined } } : {}),
  };
}

export async function readClientConfig(file: string): Promise<ClientConfig> {
  let raw: unknown;
  try {
    const text = await readFile(file, "utf8");
    const { parseDocument } = await import("yaml");
    const doc = parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length > 0) return fullClientConfig(file);
    raw = doc.toJS();
  } catch {
    return fullClientConfig(file);
  }
  return pickClientConfig(raw) ?? fullClientConfig(file);
}
