import { isIP } from "node:net";
import { z } from "zod";
import { defaultApiListen } from "./defaults.js";
import { LISTEN_ADDRESS, isListenPort, parseListenAddress } from "../platform/listen-address.js";
import { absolutePath, argv, cidr, duration, name, positiveDuration, programArgv, vipInterval } from "./fields.js";
import { probe } from "./probe-schema.js";
import { syncSection } from "./sync-schema.js";
import { dataSection } from "./data-schema.js";
import { drainSection } from "./drain-schema.js";

export { DEFAULT_MAX_MODE } from "./sync-schema.js";

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
            server_name: z
              .string()
              .regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a DNS name")
              .optional(),
          })
          .strict()
          .superRefine((t, ctx) => {
            if ((t.cert === undefined) !== (t.key === undefined))
              ctx.addIssue({ code: "custom", path: [t.cert ? "key" : "cert"], message: "cert and key go together (a client certificate needs its key)" });
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
        // Failsafe mode (docs/failsafe-design.md): keep serving through an etcd outage while every member grants it.
        failsafe: z.enum(["off", "on"]).default("off"),
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
        if (v.backend === "keepalived" && v.keepalived === undefined)
          ctx.addIssue({ code: "custom", path: ["keepalived"], message: "is required for backend keepalived (virtual_router_id at least)" });
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
        unit: z
          .string()
          .regex(/^[A-Za-z0-9@_.:][A-Za-z0-9@_.:-]*\.service$/, "must be a systemd service name ending in .service")
          .optional(),
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
          for (const k of ["start", "stop", "status"] as const) if (!d[k]) ctx.addIssue({ code: "custom", path: [k], message: "is required for the command backend" });
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
            headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name"), z.string().regex(/^[^\r\n\0]*$/, "must not contain line breaks")).optional(),
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
    /** Files kept identical on every node, primary to standbys (src/sync/, docs/architecture.md, "File sync"). */
    sync: syncSection.optional(),
    /** Upload and home directories replicated continuously, primary to standbys (src/data/, docs/data.md). */
    data: dataSection.optional(),
    /** Drained switchover: refusing new sessions and counting the running ones (docs/operations.md, "Drained switchover"). */
    drain: drainSection.optional(),
    // Hardware-grade fencing (docs/architecture.md, "The fence guard"): the fence guard holds this device while primary.
    watchdog: z
      .object({
        mode: z.enum(["off", "automatic", "required"]).default("off"),
        device: absolutePath.default("/dev/watchdog"),
        safety_margin: duration.prefault("500ms"),
      })
      .strict()
      .prefault({}),
    state_dir: absolutePath.default("/var/lib/understudy"),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error"]).default("info") })
      .strict()
      .prefault({}),
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
    // Data roots travel over the sync transport (sync.ssh), and never inside a config root or the state dir.
    if (c.data && !c.sync) ctx.addIssue({ code: "custom", path: ["data"], message: "needs a sync section: data roots are shipped over sync.ssh" });
    // The receiving rsync runs as the sync key's account and sets every owner and mode exactly (-a --numeric-ids):
    // only root can. Any other account would fail each batch on the first partner-owned file.
    if (c.data && c.sync && c.sync.ssh.user !== "root") {
      ctx.addIssue({
        code: "custom",
        path: ["sync", "ssh", "user"],
        message: `must be root when data roots are configured (the standby's receiving rsync sets partners' owners), not ${c.sync.ssh.user}`,
      });
    }
    c.data?.roots.forEach((r, i) => {
      const root = r.path.replace(/\/+$/, "");
      const inside = (a: string, b: string) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
      if (inside(state, root)) ctx.addIssue({ code: "custom", path: ["data", "roots", i, "path"], message: `overlaps state_dir (${c.state_dir})` });
      const cfg = c.sync?.roots.find((s) => inside(s.path.replace(/\/+$/, ""), root));
      if (cfg) ctx.addIssue({ code: "custom", path: ["data", "roots", i, "path"], message: `overlaps sync root ${cfg.name} (${cfg.path})` });
    });
  })
  // The API listens on the node's own address unless told otherwise: the address its member
  // key advertises to peers and operators, never every interface (0.0.0.0) by default.
  .transform((c) => (c.api ? { ...c, api: { ...c.api, listen: c.api.listen ?? defaultApiListen(c.node.address) } } : { ...c, api: undefined }));

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
