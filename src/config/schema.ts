import { isIP } from "node:net";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { defaultApiListen } from "./defaults.js";
import { LISTEN_ADDRESS, isListenPort, parseListenAddress } from "../platform/listen-address.js";

// Durations are written as "5s" / "250ms" in YAML and held as milliseconds.
const duration = z
  .string({ error: "must be a duration like 5s or 250ms" })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: "must be a duration like 5s or 250ms" });
      return z.NEVER;
    }
    return ms;
  });
// The daemon, probe and VIP adapters refuse a zero interval or timeout when the agent
// builds them; these bounds make `config check` refuse the same files up front.
const positiveDuration = duration.refine((ms) => ms > 0, "must be greater than 0");
const vipInterval = duration.refine((ms) => ms >= 100, "must be at least 100ms");

const name = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be lower-case letters, digits and dashes");

const cidr = z.string().refine((text) => {
  const [addr, prefix, ...rest] = text.split("/");
  if (rest.length > 0 || addr === undefined || prefix === undefined || !/^\d+$/.test(prefix)) return false;
  const family = isIP(addr);
  const p = Number(prefix);
  return (family === 4 && p >= 0 && p <= 32) || (family === 6 && p >= 0 && p <= 128);
}, "must be an address with a prefix length, like 198.18.0.100/24");

// Sizes are written as "500MiB" / "1GiB" and held as bytes.
const size = z
  .string({ error: "must be a size like 500MiB or 1GiB" })
  .transform((text, ctx) => {
    const m = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB|PiB)$/.exec(text.trim());
    if (!m) {
      ctx.addIssue({ code: "custom", message: "must be a size like 500MiB or 1GiB (units B, KiB, MiB, GiB, TiB, PiB)" });
      return z.NEVER;
    }
    return Math.round(Number(m[1]) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB"].indexOf(m[2]!));
  });

const argv = z.array(z.string().min(1)).min(1, "must name a program and its arguments");
// Hooks, validators and post_sync run as the agent's user: a bare name would be looked up
// on whatever PATH the agent inherited, so the program must be named by its absolute path.
const programArgv = argv.refine((a) => a.length === 0 || (a[0]!.startsWith("/") && !a[0]!.split("/").includes("..")), "must start with the program's absolute path (no PATH lookup, no '..')");

// Every file the agent reads or writes: absolute, without '..' segments or NUL bytes.
const absolutePath = z
  .string()
  .startsWith("/", "must be an absolute path")
  .refine((p) => !p.split("/").includes("..") && !p.includes("\0"), "must be an absolute path without '..' segments");

const probe = z
  .object({
    name,
    type: z.enum(["tcp", "ssh", "ftp", "http", "sftp", "ftps", "disk", "tls_file"]),
    host: z.string().default("127.0.0.1"),
    port: z.number().int().min(1).max(65535).optional(),
    url: z.url().optional(),
    expect_status: z.number().int().min(100).max(599).default(200),
    // sftp: the probe account and the server's pinned host key. Files are read once, when the agent starts.
    user: z.string().min(1).optional(),
    private_key: absolutePath.optional(),
    password_file: absolutePath.optional(),
    host_key_fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "must be a fingerprint as `ssh-keygen -lf` prints it, like SHA256:<43 base64 characters>").optional(),
    // ftps (and https URLs): TLS checks. Defaults (in src/probes/index.ts): tls_verify true, cert_warning 14d.
    // servername: the certificate's name when probing 127.0.0.1 (ftps, and https URLs since SFTPGo's WebDAV/API recipe).
    servername: z.string().min(1).optional(),
    tls_verify: z.boolean().optional(),
    ca_file: absolutePath.optional(),
    cert_warning: z
      .string({ error: "must be a duration like 14d or 72h" })
      .transform((text, ctx) => {
        const days = /^(\d+(?:\.\d+)?)d$/.exec(text.trim());
        const ms = days ? Math.round(Number(days[1]) * 86_400_000) : parseDuration(text);
        if (ms === undefined) {
          ctx.addIssue({ code: "custom", message: "must be a duration like 14d or 72h" });
          return z.NEVER;
        }
        return ms;
      })
      .optional(),
    // disk: a path on the watched volume and the free space it needs, in bytes once parsed.
    path: absolutePath.optional(),
    min_free: size.optional(),
    // tls_file: PEM certificate files whose expiry is watched.
    files: z.array(absolutePath).min(1, "must list at least one file").optional(),
    // interval, timeout and critical have per-type defaults, applied below.
    interval: positiveDuration.optional(),
    timeout: positiveDuration.optional(),
    rise: z.number().int().min(1).max(100).default(1),
    fall: z.number().int().min(1).max(100).default(3),
    critical: z.boolean().optional(),
    // Certificate failures (ftps/http: expired, untrusted; tls_file: any) count as shared with the standbys (synced TLS files): no handover for them.
    shared_failures: z.boolean().optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: "custom", path: [key], message });
    if (p.type === "http" && p.url === undefined) issue("url", "is required for an http probe");
    if (["tcp", "ssh", "ftp", "sftp", "ftps"].includes(p.type) && p.port === undefined) issue("port", `is required for a ${p.type} probe`);
    if (p.type === "sftp") {
      if (p.user === undefined) issue("user", "is required for an sftp probe");
      if (p.host_key_fingerprint === undefined) issue("host_key_fingerprint", "is required for an sftp probe (`ssh-keygen -lf` on the server's host key)");
      if ((p.private_key === undefined) === (p.password_file === undefined)) {
        issue(p.private_key === undefined ? "private_key" : "password_file", "an sftp probe needs exactly one of private_key and password_file");
      }
    }
    if (p.type === "disk") {
      if (p.path === undefined) issue("path", "is required for a disk probe");
      if (p.min_free === undefined) issue("min_free", "is required for a disk probe");
    }
    if (p.type === "tls_file" && p.files === undefined) issue("files", "is required for a tls_file probe");
    // A key of another probe type is a mistake (a wrong type, or a key on the wrong entry): say so.
    const only: Record<string, readonly string[]> = {
      user: ["sftp"], private_key: ["sftp"], password_file: ["sftp"], host_key_fingerprint: ["sftp"], servername: ["ftps", "http"],
      tls_verify: ["ftps", "http"], ca_file: ["ftps", "http"], cert_warning: ["ftps", "http", "tls_file"],
      path: ["disk"], min_free: ["disk"], files: ["tls_file"],
    };
    for (const [key, types] of Object.entries(only)) {
      if ((p as Record<string, unknown>)[key] !== undefined && !types.includes(p.type)) issue(key, `applies only to ${types.join(", ")} probes`);
    }
  })
  .transform((p) => {
    // Per-type defaults. A login (sftp) or a TLS handshake (ftps) every second would flood the daemon's
    // logs, and they need more time than a banner. Failing over cannot cure a full shared volume or a
    // certificate that every node shares, and a critical probe's interval × fall stretches the grace
    // after a daemon start, so disk and tls_file only report unless made critical. tls_file: see
    // TLS_FILE_INTERVAL_MS in src/probes/tlsfile.ts (1h: expiry moves in days).
    const defaults = {
      tcp: [1000, 1000, true], ssh: [1000, 1000, true], ftp: [1000, 1000, true], http: [1000, 1000, true],
      sftp: [5000, 5000, true], ftps: [5000, 2000, true], disk: [30_000, 2000, false], tls_file: [3_600_000, 1000, false],
    } as const satisfies Record<typeof p.type, readonly [number, number, boolean]>;
    const [interval, timeout, critical] = defaults[p.type];
    return { ...p, interval: p.interval ?? interval, timeout: p.timeout ?? timeout, critical: p.critical ?? critical };
  });

export const DEFAULT_MAX_MODE = "0775";
// Include/exclude globs (sync/glob.ts). The serving rsync daemon enforces them as well, in
// its space-separated filter parameter: write `?` where a name holds a space.
const syncPattern = z.string().min(1).regex(/^[^\s]+$/, "must not contain spaces or line breaks (write ? for a space in a name)");

// One synchronized directory (DESIGN.md §7). A mode is a quoted octal string:
// YAML 1.2 reads an unquoted 0600 as the decimal number 600.
const syncRoot = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be letters, digits, '.', '_' or '-', starting with a letter or digit"),
    path: absolutePath.refine((p) => p.replace(/\/+$/, "") !== "" && !p.split("/").includes(".."), "must be an absolute directory other than /, without '..'"),
    include: z.array(syncPattern).default([]),
    exclude: z.array(syncPattern).default([]),
    // Three octal digits: setuid, setgid and sticky bits can never be allowed. The default
    // refuses world-writable files and directories.
    max_mode: z
      .string({ error: 'must be a quoted octal mode like "0644"' })
      .regex(/^0?[0-7]{3}$/, 'must be a quoted octal mode like "0644"')
      .transform((m) => parseInt(m, 8))
      .prefault(DEFAULT_MAX_MODE),
    owner: z
      .string()
      .regex(/^([a-z_][a-z0-9_-]*\$?|\d+):([a-z_][a-z0-9_-]*\$?|\d+)$/, "must be user:group, by name or number, like root:root or 0:0")
      .optional(),
    validate: programArgv.optional(),
    post_sync: programArgv.optional(),
    post_publish: programArgv.optional(),
    max_file_size: size.prefault("64MiB"),
  })
  .strict();

const syncSection = z
  .object({
    roots: z
      .array(syncRoot)
      .min(1, "must list at least one root")
      .superRefine((roots, ctx) => {
        const names = new Set<string>();
        const norm = roots.map((r) => r.path.replace(/\/+$/, ""));
        roots.forEach((r, i) => {
          if (names.has(r.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: "is used by another root" });
          names.add(r.name);
          // {staged:NAME} in a validator must name a root of this list (sync/placeholders.ts).
          for (const ref of new Set((r.validate ?? []).flatMap((a) => [...a.matchAll(/\{staged:([^}]*)\}/g)].map((m) => m[1]!)))) {
            if (!roots.some((o) => o.name === ref)) ctx.addIssue({ code: "custom", path: [i, "validate"], message: `names {staged:${ref}}, but there is no sync root ${ref}` });
          }
          norm.forEach((other, j) => {
            if (j !== i && (norm[i] === other || norm[i]!.startsWith(`${other}/`))) {
              ctx.addIssue({ code: "custom", path: [i, "path"], message: `overlaps root ${roots[j]!.name} (${other}): roots must not nest` });
            }
          });
        });
      }),
    ssh: z
      .object({
        user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a user name").default("understudy-sync"),
        key: absolutePath,
        known_hosts: absolutePath,
        port: z.number().int().min(1).max(65535).default(22),
        connect_timeout: duration.refine((ms) => ms >= 1000 && ms % 1000 === 0, "must be whole seconds, at least 1s").prefault("5s"),
      })
      .strict(),
    debounce: duration.prefault("20ms"),
    max_delay: duration.prefault("250ms"),
    reconcile_interval: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("1m"),
    pull_timeout: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("5m"),
    validate_timeout: positiveDuration.prefault("30s"),
    post_sync_timeout: positiveDuration.prefault("30s"),
    retry_max: duration.refine((ms) => ms >= 100, "must be at least 100ms").prefault("30s"),
    maximum_lag_on_failover: duration.prefault("1m"),
    rsync_path: absolutePath.default("/usr/bin/rsync"),
    /** The rsync daemon config the agent writes at start; the sync key's forced command reads it. */
    serve_config: absolutePath.default("/etc/understudy/sync-rsyncd.conf"),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.max_delay < s.debounce) ctx.addIssue({ code: "custom", path: ["max_delay"], message: "must be at least sync.debounce" });
  });

export const configSchema = z
  .object({
    cluster: name,
    node: z
      .object({
        name,
        address: z.string().refine((a) => isIP(a) !== 0, "must be an IP address"),
        priority: z.number().int().min(0).max(1_000_000).default(100),
        nofailover: z.boolean().default(false),
      })
      .strict(),
    etcd: z
      .object({
        endpoints: z.array(z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })).min(1, "must list at least one etcd endpoint"),
        prefix: z.string().startsWith("/").default("/understudy"),
        dial_timeout: positiveDuration.prefault("2s"),
        request_timeout: positiveDuration.prefault("1s"),
        /** TLS to etcd: the CA that signed etcd's server certificates, and this node's client certificate. Verification cannot be turned off. */
        tls: z
          .object({
            ca: absolutePath,
            cert: absolutePath.optional(),
            key: absolutePath.optional(),
            /** The name etcd's certificate carries, when the endpoints are addresses it does not list. */
            server_name: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a DNS name").optional(),
          })
          .strict()
          .superRefine((t, ctx) => {
            if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: "custom", path: [t.cert ? "key" : "cert"], message: "cert and key go together (a client certificate needs its key)" });
          })
          .optional(),
        /** etcd's own authentication: a user whose role reaches only <prefix>/<cluster>/. */
        auth: z
          .object({
            user: z.string().regex(/^[A-Za-z0-9._@-]{1,128}$/, "must be an etcd user name"),
            password_file: absolutePath,
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine((e, ctx) => {
        const https = e.endpoints.map((u) => u.startsWith("https://"));
        if (https.some((h) => h !== https[0])) ctx.addIssue({ code: "custom", path: ["endpoints"], message: "must all be http:// or all https://" });
        if (e.tls && !https[0]) ctx.addIssue({ code: "custom", path: ["endpoints"], message: "must be https:// URLs when etcd.tls is set" });
        if (e.auth && !https[0]) ctx.addIssue({ code: "custom", path: ["auth"], message: "needs https:// endpoints (and etcd.tls): a password must not cross the network in clear" });
      }),
    election: z
      .object({
        ttl: duration.prefault("5s"),
        fence_margin: duration.prefault("1s"),
        renew_interval: duration.optional(),
        ranking_delay: duration.prefault("500ms"),
        // Flap damping (Pacemaker's migration-threshold): after max_moves health-driven handovers within window, cluster-wide, the cluster stays put until `understudy flap clear`. 0 turns it off.
        flap: z
          .object({
            max_moves: z.number().int().min(0).max(100).default(3),
            window: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("10m"),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    vip: z
      .object({
        address: cidr,
        interface: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/, "must be a network interface name"),
        backend: z.enum(["ip", "keepalived", "none"]).default("ip"),
        duplicate_check: z.boolean().default(true),
        duplicate_check_timeout: duration.prefault("100ms"),
        arp_count: z.number().int().min(0).max(20).default(3),
        announce_interval: vipInterval.prefault("10s"),
        reconcile_interval: vipInterval.prefault("5s"),
        // arping to use (either Debian package; the flavour is probed); default: `arping` on PATH, /usr/sbin, /usr/bin.
        arping: absolutePath.optional(),
        // A primary that has not held its VIP this long hands over to a healthy standby (src/ha/decide.ts).
        hold_timeout: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("30s"),
        // backend keepalived: keepalived owns the address; only the etcd primary passes its track file.
        keepalived: z
          .object({
            track_file: absolutePath.default("/run/understudy/keepalived-track"),
            virtual_router_id: z.number().int().min(1).max(255),
            priority: z.number().int().min(1).max(254).default(100),
            advert_int: duration.refine((ms) => ms >= 1000 && ms % 1000 === 0, "must be whole seconds, at least 1s (VRRPv2)").prefault("1s"),
            unicast_peers: z.array(z.string().refine((a) => isIP(a) !== 0, "must be an IP address")).default([]),
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine((v, ctx) => {
        if (v.backend === "keepalived" && v.keepalived === undefined) ctx.addIssue({ code: "custom", path: ["keepalived"], message: "is required for backend keepalived (virtual_router_id at least)" });
        if (v.backend !== "keepalived" && v.keepalived !== undefined) ctx.addIssue({ code: "custom", path: ["keepalived"], message: "applies only to backend keepalived" });
      })
      .optional(),
    daemon: z
      .object({
        backend: z.enum(["process", "command", "systemd"]),
        mode: z.enum(["cold", "warm"]).default("cold"),
        command: argv.optional(),
        start: argv.optional(),
        stop: argv.optional(),
        status: argv.optional(),
        unit: z.string().regex(/^[A-Za-z0-9@_.:][A-Za-z0-9@_.:-]*\.service$/, "must be a systemd service name ending in .service").optional(),
        stop_timeout: positiveDuration.prefault("5s"),
        restart_backoff: duration.prefault("100ms"),
        restart_backoff_max: duration.prefault("5s"),
        restarts_before_handover: z.number().int().min(0).max(100).default(1),
        /** Run on standbys (cold mode): a failing check means "not ready to take over", so no campaign. */
        check: argv.optional(),
        check_interval: positiveDuration.prefault("10s"),
      })
      .strict()
      .superRefine((d, ctx) => {
        if (d.backend === "process" && !d.command) ctx.addIssue({ code: "custom", path: ["command"], message: "is required for the process backend" });
        if (d.backend === "command") {
          for (const k of ["start", "stop", "status"] as const)
            if (!d[k]) ctx.addIssue({ code: "custom", path: [k], message: "is required for the command backend" });
        }
        if (d.backend === "systemd" && !d.unit) ctx.addIssue({ code: "custom", path: ["unit"], message: "is required for the systemd backend" });
      }),
    api: z
      .object({
        /** host:port; the member key advertises http://<node.address>:<port>. */
        listen: z
          .string()
          .regex(LISTEN_ADDRESS, "must be host:port, like 0.0.0.0:8470")
          .refine((l) => isListenPort(parseListenAddress(l).port), "must have a port from 1 to 65535")
          .optional(),
        /** File holding the bearer token for mutations (POST). Without it, mutations are refused. */
        token_file: absolutePath.optional(),
        /** Whether GET endpoints need the token too. */
        auth_reads: z.boolean().default(false),
        /** Serve HTTPS; with client_ca, a client certificate it signed authorizes mutations too (mTLS). */
        tls: z
          .object({
            cert: absolutePath,
            key: absolutePath,
            client_ca: absolutePath.optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** User commands run on role changes and syncs (src/hooks/); pre_promote may veto a promotion. */
    hooks: z
      .object({
        on_role_change: programArgv.optional(),
        pre_promote: programArgv.optional(),
        post_promote: programArgv.optional(),
        on_demote: programArgv.optional(),
        post_sync: programArgv.optional(),
        post_publish: programArgv.optional(),
        timeout: positiveDuration.prefault("10s"),
        webhook: z
          .object({
            url: z.url({ protocol: /^https?$/, error: "must be an http or https URL" }),
            timeout: positiveDuration.prefault("2s"),
            retries: z.number().int().min(0).max(10).default(3),
            // Values may hold credentials: never logged.
            headers: z
              .record(
                z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name"),
                z.string().regex(/^[^\r\n\0]*$/, "must not contain line breaks"),
              )
              .optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    failback: z
      .object({
        policy: z.enum(["manual", "auto"]).default("manual"),
        preferred: name.optional(),
        delay: duration.prefault("5m"),
      })
      .strict()
      .superRefine((f, ctx) => {
        if (f.policy === "auto" && !f.preferred) ctx.addIssue({ code: "custom", path: ["preferred"], message: "is required for policy auto" });
      })
      .prefault({}),
    probes: z
      .array(probe)
      .default([])
      .superRefine((probes, ctx) => {
        // Probe names key the health report and metrics; the agent refuses duplicates.
        const seen = new Set<string>();
        probes.forEach((p, i) => {
          if (seen.has(p.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: "is used by another probe" });
          seen.add(p.name);
        });
      }),
    /** Files kept identical on every node, primary to standbys (src/sync/, DESIGN.md §7). */
    sync: syncSection.optional(),
    // Hardware-grade fencing (DESIGN.md §4): the fence guard holds this device while primary.
    watchdog: z
      .object({
        mode: z.enum(["off", "automatic", "required"]).default("off"),
        device: absolutePath.default("/dev/watchdog"),
        safety_margin: duration.prefault("500ms"),
      })
      .strict()
      .prefault({}),
    state_dir: absolutePath.default("/var/lib/understudy"),
    log: z.object({ level: z.enum(["trace", "debug", "info", "warn", "error"]).default("info") }).strict().prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    // The state dir holds the rescue folders and the last known manifests: never inside a root.
    const state = c.state_dir.replace(/\/+$/, "");
    c.sync?.roots.forEach((r, i) => {
      const root = r.path.replace(/\/+$/, "");
      if (state === root || state.startsWith(`${root}/`) || root.startsWith(`${state}/`)) {
        ctx.addIssue({ code: "custom", path: ["sync", "roots", i, "path"], message: `overlaps state_dir (${c.state_dir})` });
      }
    });
  })
  // The API listens on the node's own address unless told otherwise: the address its member
  // key advertises to peers and operators, never every interface (0.0.0.0) by default.
  .transform((c) => (c.api ? { ...c, api: { ...c.api, listen: c.api.listen ?? defaultApiListen(c.node.address) } } : { ...c, api: undefined }));


export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
