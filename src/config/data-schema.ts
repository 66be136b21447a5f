// The `data` section (docs/data.md, docs/configuration.md): upload and home directories
// replicated continuously from the primary to every standby (src/data/). It rides on the
// sync transport (sync.ssh: the same key, known_hosts and forced command), so it needs a
// `sync` section; the top-level schema checks that.
import { z } from "zod";
import { absolutePath, duration, positiveDuration, size } from "./fields.js";

// One replicated directory. Not a config root: no validator, no globs, no manifest.
const dataRoot = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be letters, digits, '.', '_' or '-', starting with a letter or digit"),
    path: absolutePath.refine((p) => p.replace(/\/+$/, "") !== "" && !p.split("/").includes(".."), "must be an absolute directory other than /, without '..'"),
  })
  .strict();

export const dataSection = z
  .object({
    roots: z
      .array(dataRoot)
      .min(1, "must list at least one root")
      .superRefine((roots, ctx) => {
        const names = new Set<string>();
        const norm = roots.map((r) => r.path.replace(/\/+$/, ""));
        roots.forEach((r, i) => {
          if (names.has(r.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: "is used by another data root" });
          names.add(r.name);
          norm.forEach((other, j) => {
            if (j !== i && (norm[i] === other || norm[i]!.startsWith(`${other}/`))) {
              ctx.addIssue({ code: "custom", path: [i, "path"], message: `overlaps data root ${roots[j]!.name} (${other}): roots must not nest` });
            }
          });
        });
      }),
    /** A `change` ships once no event touched the path for this long; `closed` (close-after-write, `data notify`) ships at once. */
    stability_window: positiveDuration.prefault("250ms"),
    /** rsync --fsync on the standby: a batch is acknowledged only once it is on the standby's disk. */
    fsync: z.boolean().default(true),
    max_batch_files: z.number().int().min(1).max(1_000_000).default(1000),
    max_batch_bytes: size.prefault("256MiB"),
    max_pending: z.number().int().min(1).max(10_000_000).default(100_000),
    max_ready: z.number().int().min(1).max(10_000_000).default(100_000),
    /** A full pass stops (and alerts) after this many deletions on a standby: an empty or unmounted root on the primary must not empty every standby. */
    max_delete: z.number().int().min(0).max(100_000_000).default(1000),
    /** How often the primary writes data/progress (the per-standby lag) at most. */
    progress_interval: duration.refine((ms) => ms >= 100, "must be at least 100ms").prefault("500ms"),
    /** A standby whose data volume is full is retried this often (or as soon as it reports free space above `reserve`). */
    disk_full_retry: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("30s"),
    /** Free space a standby keeps on its data volume; below it, shipping to it pauses. */
    reserve: size.prefault("64MiB"),
    /**
     * The next batch's rsync is started ahead, connected to the standby, and waits this long for its
     * list before it is retired; a batch that finds it skips the connection start-up (~0.4 s). 0: off.
     */
    // At most 1m: a waiting session opened its module when it started, so a standby's
    // module closing fences it only by the session kill (writer-sessions.ts), as a batch in flight.
    warm_batch: duration.refine((ms) => ms === 0 || (ms >= 1000 && ms <= 60_000), "must be 0s (off) or between 1s and 1m").prefault("20s"),
    /** One rsync run (batch or full pass) is killed after this long. */
    ship_timeout: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("10m"),
    /** A full pass runs this often to catch what the watcher missed. */
    reconcile_interval: duration.refine((ms) => ms >= 1000, "must be at least 1s").prefault("10m"),
    /** Promotion gate: a candidate whose acknowledged data lag exceeds this many bytes is passed over while a better member is eligible. */
    maximum_data_lag_on_failover: size.prefault("64MiB"),
    /** The inotify reader (inotify-tools). */
    inotifywait_path: absolutePath.default("/usr/bin/inotifywait"),
  })
  .strict();

export type DataSection = z.output<typeof dataSection>;
