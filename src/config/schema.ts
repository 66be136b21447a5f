import { isIP } from "node:net";
import { z } from "zod";
import { parseDuration } from "./duration.js";

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

const argv = z.array(z.string().min(1)).min(1, "must name a program and its arguments");

const probe = z
  .object({
    name,
    type: z.enum(["tcp", "ssh", "ftp", "http"]),
    host: z.string().default("127.0.0.1"),
    port: z.number().int().min(1).max(65535).optional(),
    url: z.url().optional(),
    expect_status: z.number().int().min(100).max(599).default(200),
    interval: positiveDuration.prefault("1s"),
    timeout: positiveDuration.prefault("1s"),
    rise: z.number().int().min(1).max(100).default(1),
    fall: z.number().int().min(1).max(100).default(3),
    critical: z.boolean().default(true),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.type === "http" && p.url === undefined) ctx.addIssue({ code: "custom", path: ["url"], message: "is required for an http probe" });
    if (p.type !== "http" && p.port === undefined) ctx.addIssue({ code: "custom", path: ["port"], message: `is required for a ${p.type} probe` });
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
        endpoints: z.array(z.url()).min(1, "must list at least one etcd endpoint"),
        prefix: z.string().startsWith("/").default("/understudy"),
        dial_timeout: positiveDuration.prefault("2s"),
        request_timeout: positiveDuration.prefault("1s"),
      })
      .strict(),
    election: z
      .object({
        ttl: duration.prefault("5s"),
        fence_margin: duration.prefault("1s"),
        renew_interval: duration.optional(),
        ranking_delay: duration.prefault("500ms"),
      })
      .strict()
      .prefault({}),
    vip: z
      .object({
        address: cidr,
        interface: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/, "must be a network interface name"),
        backend: z.enum(["ip", "none"]).default("ip"),
        duplicate_check: z.boolean().default(true),
        duplicate_check_timeout: duration.prefault("100ms"),
        arp_count: z.number().int().min(0).max(20).default(3),
        announce_interval: vipInterval.prefault("10s"),
        reconcile_interval: vipInterval.prefault("5s"),
      })
      .strict()
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
        listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/, "must be host:port, like 0.0.0.0:8470").default("0.0.0.0:8470"),
        /** File holding the bearer token for mutations (POST). Without it, mutations are refused. */
        token_file: z.string().startsWith("/").optional(),
        /** Whether GET endpoints need the token too. */
        auth_reads: z.boolean().default(false),
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
    state_dir: z.string().startsWith("/").default("/var/lib/understudy"),
    log: z.object({ level: z.enum(["trace", "debug", "info", "warn", "error"]).default("info") }).strict().prefault({}),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
