// The `sync` section (docs/architecture.md, "File sync", docs/configuration.md): the roots kept
// identical on every node and how they travel.
import { z } from "zod";
import { absolutePath, duration, positiveDuration, programArgv, size } from "./fields.js";
import { cipherSettingProblem } from "./ssh-ciphers.js";

export const DEFAULT_MAX_MODE = "0775";
// Include/exclude globs (sync/glob.ts). The serving rsync daemon enforces them as well, in
// its space-separated filter parameter: write `?` where a name holds a space.
const syncPattern = z
  .string()
  .min(1)
  .regex(/^[^\s]+$/, "must not contain spaces or line breaks (write ? for a space in a name)");

// One synchronized directory (docs/architecture.md, "File sync"). A mode is a quoted octal string:
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

export const syncSection = z
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
        user: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a user name")
          .default("understudy-sync"),
        key: absolutePath,
        known_hosts: absolutePath,
        port: z.number().int().min(1).max(65535).default(22),
        connect_timeout: duration.refine((ms) => ms >= 1000 && ms % 1000 === 0, "must be whole seconds, at least 1s").prefault("5s"),
        ciphers: z
          .string()
          .default("auto")
          .superRefine((v, ctx) => {
            const problem = cipherSettingProblem(v);
            if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
          }),
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
