// `understudy etcd setup`: the least-privilege etcd role and user for one
// cluster (readwrite on <prefix>/<cluster>/ and nothing else), printed as the
// etcdctl commands an operator runs, or applied with --apply. Applying runs
// etcdctl with argv arrays; the etcd root credentials travel in ETCDCTL_USER
// (environment, readable only by this user), the new user's password on stdin.
import { UnderstudyError } from "../errors/catalogue.js";
import type { Io } from "./io.js";
import type { Parsed } from "./spec.js";

export interface EtcdSetupPlan {
  readonly user: string;
  readonly role: string;
  readonly prefix: string;
  /** etcdctl arguments after the connection flags; `stdin` marks the step that reads the password. */
  readonly steps: readonly { readonly args: readonly string[]; readonly stdin?: "password"; readonly ifExists?: "ok" }[];
}

/** Pure: the role, its one permission, the user, the grant. */
export function etcdSetupPlan(prefix: string, cluster: string, user: string, role = user): EtcdSetupPlan {
  const base = `${prefix.replace(/\/+$/, "")}/${cluster}/`;
  return {
    user,
    role,
    prefix: base,
    steps: [
      { args: ["role", "add", role], ifExists: "ok" },
      { args: ["role", "grant-permission", role, "readwrite", base, "--prefix=true"] },
      { args: ["user", "add", user, "--interactive=false"], stdin: "password", ifExists: "ok" },
      { args: ["user", "grant-role", user, role] },
    ],
  };
}

const quote = (a: string) => (/^[A-Za-z0-9_./:=@,+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);

export async function etcdSetup(p: Parsed, io: Io): Promise<number> {
  const file = p.values.config as string;
  const { loadConfigFile } = await import("../config/load.js");
  const config = await loadConfigFile(file, { hostChecks: false });
  const user = (p.values.user as string | undefined) ?? config.etcd.auth?.user ?? `understudy-${config.cluster}`;
  const plan = etcdSetupPlan(config.etcd.prefix, config.cluster, user, (p.values.role as string | undefined) ?? user);
  const tls = config.etcd.tls;
  const conn = [`--endpoints=${config.etcd.endpoints.join(",")}`, ...(tls ? [`--cacert=${tls.ca}`, ...(tls.cert ? [`--cert=${tls.cert}`, `--key=${tls.key}`] : [])] : [])];
  const passwordFile = config.etcd.auth?.password_file;
  if (!p.values.apply) {
    io.out(`# Least-privilege etcd access for cluster ${config.cluster}: role ${plan.role} may read and write ${plan.prefix} and nothing else.`);
    io.out("# Run as etcd's root user (ETCDCTL_USER=root:PASSWORD in the environment), once per cluster; auth must be enabled once per etcd:");
    io.out("#   etcdctl user add root; etcdctl role add root; etcdctl user grant-role root root; etcdctl auth enable");
    for (const s of plan.steps) {
      const line = ["etcdctl", ...conn, ...s.args].map(quote).join(" ");
      io.out(s.stdin ? `${line} < ${quote(passwordFile ?? "/etc/understudy/etcd-password")}` : line);
    }
    io.out(`# Then in every node's config: etcd.auth: { user: ${plan.user}, password_file: ${passwordFile ?? "/etc/understudy/etcd-password"} }`);
    return 0;
  }
  if (!passwordFile) throw new UnderstudyError("US_E_CLI_USAGE", { problem: "--apply needs etcd.auth.password_file in the config: the new user's password is read from it" });
  const rootFile = p.values["root-password-file"] as string | undefined;
  if (!rootFile) throw new UnderstudyError("US_E_CLI_USAGE", { problem: "--apply needs --root-password-file FILE (etcd's root password)" });
  const { readSecretFile } = await import("../platform/secret-file.js");
  const [pw, root] = [await readSecretFile(passwordFile), await readSecretFile(rootFile)];
  if ("problem" in pw) throw new UnderstudyError("US_E_CONFIG_INVALID", { file, path: "etcd.auth.password_file", problem: pw.problem, value: JSON.stringify(passwordFile) });
  if ("problem" in root) throw new UnderstudyError("US_E_CLI_USAGE", { problem: `--root-password-file ${rootFile} ${root.problem}` });
  const { SpawnCommandRunner } = await import("../platform/command.js");
  const runner = new SpawnCommandRunner();
  const env = { ETCDCTL_API: "3", ETCDCTL_USER: `${(p.values["root-user"] as string | undefined) ?? "root"}:${root.text.trim()}` };
  for (const s of plan.steps) {
    const argv = ["etcdctl", ...conn, ...s.args];
    const r = await runner.run(argv, { timeoutMs: 15_000, env, input: s.stdin ? `${pw.text.trim()}\n` : "" });
    const exists = /already exists/.test(r.stderr);
    if (r.code !== 0 && !(s.ifExists === "ok" && exists)) {
      throw new UnderstudyError("US_E_COMMAND_FAILED", { argv0: argv.slice(0, 1).concat(s.args).join(" "), code: r.code ?? `signal ${r.signal}`, stderr: r.stderr.trim().slice(0, 300) });
    }
    io.out(`${exists ? "exists" : "done"}: etcdctl ${s.args.join(" ")}`);
  }
  return 0;
}
