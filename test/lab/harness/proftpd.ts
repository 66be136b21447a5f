/**
 * Real ProFTPD (Debian proftpd-core + proftpd-mod-crypto) as the cold transfer daemon of a lab
 * cluster: FTPS on 21 (mod_tls, explicit AUTH TLS, TLS required) and SFTP on 2022 (mod_sftp),
 * virtual users in an AuthUserFile, a TLS pair issued by a lab CA, SFTP host keys.
 *
 * Everything the daemon needs sits in four sync roots per node, as a real shop would split
 * /etc/proftpd, the users file, /etc/ssl/proftpd and the host keys:
 *
 *   <node>/proftpd/conf      proftpd.conf                      root "proftpd"
 *   <node>/proftpd/users     ftpd.passwd, ftpd.group, keys/    root "users"
 *   <node>/proftpd/tls       proftpd.crt, proftpd.key (0600)   root "tls"
 *   <node>/proftpd/hostkeys  ssh_host_{rsa,ed25519}_key (0600) root "hostkeys"
 *
 * The synced proftpd.conf is byte-identical on every node, but each lab node keeps its files
 * under its own directory (the namespaces share one filesystem): the config names them through
 * %{env:US_PROFTPD_ETC}, which the daemon command sets per node. On real hosts the paths are
 * simply the same everywhere. The users' home is one directory for all nodes (shared storage,
 * like /srv/ftp in deploy/examples/proftpd-ftps.yaml).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab, LabNode } from "./lab.js";
import { runOk } from "./exec.js";
import { LabPki } from "./pki.js";

export const FTPS_PORT = 21;
export const SFTP_PORT = 2022;
export const FTP_USER = "alice";
export const FTP_UID = 2001;
/** The name the FTPS certificate carries besides the VIP and 127.0.0.1 (the probe's servername). */
export const FTPS_NAME = "ftp.lab.invalid";
export const ROOT_NAMES = ["proftpd", "users", "tls", "hostkeys"] as const;
export type ProftpdRootName = (typeof ROOT_NAMES)[number];

/** The cluster-wide ProFTPD material: what clients trust and how they log in. */
export interface ProftpdSite {
  readonly lab: Lab;
  /** The lab CA that signs the FTPS certificate (clients' --cacert, the ftps probe's ca_file). */
  readonly ca: string;
  readonly caKey: string;
  readonly password: string;
  /** netrc for curl (so the password is not on a command line). */
  readonly netrc: string;
  /** known_hosts for [VIP]:2022 made from the host keys on the first primary. */
  readonly knownHosts: string;
  /** The users' home (shared by every node). */
  readonly home: string;
}

export function rootPath(n: LabNode, root: ProftpdRootName): string {
  return join(n.dir, "proftpd", root === "proftpd" ? "conf" : root);
}

export function runDir(n: LabNode): string {
  return join(n.dir, "proftpd-run");
}

/** The sync roots' paths of a node, in ROOT_NAMES order. */
export function proftpdRootPaths(n: LabNode): string[] {
  return ROOT_NAMES.map((r) => rootPath(n, r));
}

/** The process backend's command: proftpd in the foreground with this node's paths in its environment. */
export function proftpdCommand(n: LabNode): string[] {
  mkdirSync(runDir(n), { recursive: true });
  return ["/usr/bin/env", `US_PROFTPD_ETC=${join(n.dir, "proftpd")}`, `US_PROFTPD_RUN=${runDir(n)}`, "/usr/sbin/proftpd", "--nodaemon", "-c", join(rootPath(n, "proftpd"), "proftpd.conf")];
}

/**
 * The nodes' sync roots (YAML items under sync.roots, indent 4). No validator reads a live path:
 * `proftpd -t -c {staged}/proftpd.conf` would read the live AuthUserFile and TLS files, which a fresh
 * standby does not have yet. The TLS pair's validator checks only staged files.
 */
export function proftpdRootsYaml(n: LabNode, extra: Partial<Record<ProftpdRootName, string[]>> = {}): string {
  const item = (root: ProftpdRootName, lines: string[]) => [`    - name: ${root}`, `      path: ${rootPath(n, root)}`, ...lines, ...(extra[root] ?? [])].join("\n");
  return [
    item("proftpd", ['      max_mode: "0644"']),
    item("users", ['      max_mode: "0755"']),
    item("tls", [
      "      include: [proftpd.crt, proftpd.key]",
      '      max_mode: "0644"',
      '      validate: [/bin/sh, -c, \'test "$(/usr/bin/openssl x509 -noout -pubkey -in "$1/proftpd.crt")" = "$(/usr/bin/openssl pkey -pubout -in "$1/proftpd.key")"\', sh, "{staged}"]',
    ]),
    item("hostkeys", ['      include: ["ssh_host_*"]', '      max_mode: "0644"']),
  ].join("\n");
}

/** The agent's probes (YAML, `probes:` list items at indent 2): FTPS with the lab CA, and the SFTP banner. */
export function proftpdProbesYaml(site: ProftpdSite, opts: { interval?: string; timeout?: string; fall?: number; critical?: boolean } = {}): string {
  const interval = opts.interval ?? "1s";
  const timeout = opts.timeout ?? "1s";
  const fall = `${opts.fall ?? 2}${opts.critical === false ? ", critical: false" : ""}`;
  return [
    `  - { name: ftps, type: ftps, host: 127.0.0.1, port: ${FTPS_PORT}, servername: ${FTPS_NAME}, ca_file: ${site.ca}, interval: ${interval}, timeout: ${timeout}, fall: ${fall} }`,
    `  - { name: sftp, type: ssh, host: 127.0.0.1, port: ${SFTP_PORT}, interval: ${interval}, timeout: ${timeout}, fall: ${fall} }`,
  ].join("\n");
}

export function proftpdConf(lab: Lab): string {
  const etc = "%{env:US_PROFTPD_ETC}";
  const run = "%{env:US_PROFTPD_RUN}";
  return `# understudy lab ProFTPD: FTPS on ${FTPS_PORT} (explicit AUTH TLS), SFTP on ${SFTP_PORT}. Synced from the primary.
ModulePath /usr/lib/proftpd
LoadModule mod_tls.c
LoadModule mod_sftp.c

ServerName "understudy lab"
ServerType standalone
DefaultServer on
Port ${FTPS_PORT}
UseIPv6 off
User nobody
Group nogroup
Umask 022
MaxInstances 200
PidFile ${run}/proftpd.pid
ScoreboardFile ${run}/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
SystemLog ${run}/proftpd.log
TransferLog none
PassivePorts 50000 50099
MasqueradeAddress ${lab.vipAddress}

<Global>
  AuthOrder mod_auth_file.c
  AuthUserFile ${etc}/users/ftpd.passwd
  AuthGroupFile ${etc}/users/ftpd.group
  RequireValidShell off
  DefaultRoot ~
  AllowOverwrite on
</Global>

<IfModule mod_tls.c>
  TLSEngine on
  TLSRequired on
  TLSProtocol TLSv1.2 TLSv1.3
  TLSRSACertificateFile ${etc}/tls/proftpd.crt
  TLSRSACertificateKeyFile ${etc}/tls/proftpd.key
  TLSVerifyClient off
  TLSLog ${run}/tls.log
</IfModule>

<VirtualHost 0.0.0.0>
  Port ${SFTP_PORT}
  ServerName "understudy lab sftp"
  SFTPEngine on
  SFTPLog ${run}/sftp.log
  SFTPHostKey ${etc}/hostkeys/ssh_host_rsa_key
  SFTPHostKey ${etc}/hostkeys/ssh_host_ed25519_key
  SFTPAuthMethods publickey
  SFTPAuthorizedUserKeys file:${etc}/users/keys/%u
  SFTPCompression off
</VirtualHost>
`;
}

/** A TLS pair for the FTPS listener, signed by the site CA, valid for the VIP, 127.0.0.1 and FTPS_NAME. */
export async function issueFtpsPair(site: { lab: Lab; ca: string; caKey: string }, dir: string, tag: string): Promise<void> {
  const work = join(site.lab.dir, "proftpd-pki");
  mkdirSync(work, { recursive: true });
  const ext = join(work, `${tag}.ext`);
  writeFileSync(ext, `extendedKeyUsage=serverAuth\nsubjectAltName=DNS:${FTPS_NAME},IP:${site.lab.vipAddress},IP:127.0.0.1\n`);
  const key = join(work, `${tag}.key`);
  const csr = join(work, `${tag}.csr`);
  const crt = join(work, `${tag}.crt`);
  await runOk(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${FTPS_NAME}`, "-keyout", key, "-out", csr], { timeoutMs: 30_000 });
  await runOk(["openssl", "x509", "-req", "-in", csr, "-CA", site.ca, "-CAkey", site.caKey, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt], { timeoutMs: 30_000 });
  mkdirSync(dir, { recursive: true });
  // mod_tls reads both files at every session start: write each under a temporary name and
  // rename it into place (a session never reads a half-written file), key first.
  for (const [from, name, mode] of [
    [key, "proftpd.key", 0o600],
    [crt, "proftpd.crt", 0o644],
  ] as const) {
    const tmp = join(dir, `.${name}.tmp`);
    writeFileSync(tmp, readFileSync(from), { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, join(dir, name));
  }
}

/**
 * Write the whole ProFTPD material into `primary`'s roots (config, users, TLS pair, host keys)
 * and the client's trust (CA, netrc, known_hosts for [VIP]:2022). The other nodes' roots stay
 * empty: they get everything through sync.
 */
export async function makeProftpdSite(lab: Lab, primary: LabNode): Promise<ProftpdSite> {
  mkdirSync(join(lab.dir, "proftpd-pki"), { recursive: true, mode: 0o700 });
  const pki = await LabPki.create(join(lab.dir, "proftpd-pki"), "ftps");
  const password = `pw-${lab.prefix}-${Math.random().toString(36).slice(2, 10)}`;
  const home = join(lab.dir, "ftp-home", FTP_USER);
  mkdirSync(home, { recursive: true });
  // The session runs as FTP_UID: it must traverse the lab dir (0700 from mkdtemp) to its home.
  for (const d of [lab.dir, join(lab.dir, "ftp-home")]) chmodSync(d, 0o711);
  await runOk(["chown", `${FTP_UID}:${FTP_UID}`, home]);

  for (const r of ROOT_NAMES) mkdirSync(rootPath(primary, r), { recursive: true });
  writeFileSync(join(rootPath(primary, "proftpd"), "proftpd.conf"), proftpdConf(lab), { mode: 0o644 });

  const users = rootPath(primary, "users");
  const hash = (await runOk(["openssl", "passwd", "-6", "-stdin"], { input: `${password}\n`, timeoutMs: 10_000 })).stdout.trim();
  writeFileSync(join(users, "ftpd.passwd"), `${FTP_USER}:${hash}:${FTP_UID}:${FTP_UID}::${home}:/bin/false\n`, { mode: 0o600 });
  chmodSync(join(users, "ftpd.passwd"), 0o600);
  writeFileSync(join(users, "ftpd.group"), `ftpusers:x:${FTP_UID}:${FTP_USER}\n`, { mode: 0o644 });
  mkdirSync(join(users, "keys"), { recursive: true, mode: 0o755 });
  // mod_sftp reads user keys in RFC 4716 format, not OpenSSH's one-line format.
  const rfc4716 = (await runOk(["ssh-keygen", "-e", "-f", `${lab.clientKey}.pub`], { timeoutMs: 10_000 })).stdout;
  writeFileSync(join(users, "keys", FTP_USER), rfc4716, { mode: 0o644 });

  const site = { lab, ca: pki.ca.cert, caKey: pki.ca.key };
  await issueFtpsPair(site, rootPath(primary, "tls"), "first");

  const hostkeys = rootPath(primary, "hostkeys");
  // PEM for RSA: the format every mod_sftp release reads. mod_sftp refuses group/world-readable keys.
  await runOk(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "proftpd-lab", "-f", join(hostkeys, "ssh_host_rsa_key")], { timeoutMs: 30_000 });
  await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "proftpd-lab", "-f", join(hostkeys, "ssh_host_ed25519_key")], { timeoutMs: 30_000 });

  const client = join(lab.dir, "client");
  const netrc = join(client, "ftps-netrc");
  writeFileSync(netrc, `machine ${lab.vipAddress} login ${FTP_USER} password ${password}\n`, { mode: 0o600 });
  const knownHosts = join(client, "proftpd_known_hosts");
  const lines = ["ssh_host_rsa_key.pub", "ssh_host_ed25519_key.pub"].map((f) => {
    const [type, key] = readFileSync(join(hostkeys, f), "utf8").trim().split(/\s+/);
    return `[${lab.vipAddress}]:${SFTP_PORT} ${type} ${key}`;
  });
  writeFileSync(knownHosts, `${lines.join("\n")}\n`);
  return { lab, ca: pki.ca.cert, caKey: pki.ca.key, password, netrc, knownHosts, home };
}

export interface LoginResult {
  ok: boolean;
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A real FTPS login through the VIP from the client namespace: curl, explicit TLS required
 * (AUTH TLS), the certificate verified against the site CA and the VIP, then a directory listing
 * over a protected passive data connection.
 */
export async function ftpsLogin(site: ProftpdSite, opts: { timeoutMs?: number; path?: string } = {}): Promise<LoginResult> {
  const lab = site.lab;
  const r = await lab.exec(
    lab.client,
    [
      "curl",
      "-sS",
      "--ssl-reqd",
      "--cacert",
      site.ca,
      "--netrc-file",
      site.netrc,
      "--connect-timeout",
      "2",
      "--max-time",
      "4",
      "--list-only",
      `ftp://${lab.vipAddress}:${FTPS_PORT}/${opts.path ?? ""}`,
    ],
    { timeoutMs: opts.timeoutMs ?? 6000 },
  );
  return { ok: r.code === 0, ms: r.ms, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** A real SFTP login through the VIP: publickey auth, host key checked against site.knownHosts (StrictHostKeyChecking=yes), `ls`. */
export async function sftpLogin(site: ProftpdSite, opts: { timeoutMs?: number } = {}): Promise<LoginResult> {
  const lab = site.lab;
  const r = await lab.exec(
    lab.client,
    [
      "sftp",
      "-F",
      "/dev/null",
      "-i",
      lab.clientKey,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${site.knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "UpdateHostKeys=no",
      "-o",
      "CheckHostIP=no",
      "-o",
      "ConnectTimeout=2",
      "-o",
      "LogLevel=ERROR",
      "-b",
      "-",
      "-P",
      String(SFTP_PORT),
      `${FTP_USER}@${lab.vipAddress}`,
    ],
    { timeoutMs: opts.timeoutMs ?? 8000, input: "ls -la\n" },
  );
  return { ok: r.code === 0, ms: r.ms, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Both logins through the VIP. */
export async function bothLogins(site: ProftpdSite): Promise<{ ftps: LoginResult; sftp: LoginResult }> {
  return { ftps: await ftpsLogin(site), sftp: await sftpLogin(site) };
}

export function proftpdLogTail(n: LabNode, file = "proftpd.log", chars = 2000): string {
  const p = join(runDir(n), file);
  return existsSync(p) ? readFileSync(p, "utf8").slice(-chars) : "";
}
