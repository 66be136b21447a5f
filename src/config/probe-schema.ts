// One entry of `probes` (docs/configuration.md): per-type keys, required keys
// and per-type defaults for interval, timeout and critical.
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { absolutePath, name, positiveDuration, size } from "./fields.js";

export const probe = z
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
    host_key_fingerprint: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "must be a fingerprint as `ssh-keygen -lf` prints it, like SHA256:<43 base64 characters>")
      .optional(),
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
      user: ["sftp"],
      private_key: ["sftp"],
      password_file: ["sftp"],
      host_key_fingerprint: ["sftp"],
      servername: ["ftps", "http"],
      tls_verify: ["ftps", "http"],
      ca_file: ["ftps", "http"],
      cert_warning: ["ftps", "http", "tls_file"],
      path: ["disk"],
      min_free: ["disk"],
      files: ["tls_file"],
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
      tcp: [1000, 1000, true],
      ssh: [1000, 1000, true],
      ftp: [1000, 1000, true],
      http: [1000, 1000, true],
      sftp: [5000, 5000, true],
      ftps: [5000, 2000, true],
      disk: [30_000, 2000, false],
      tls_file: [3_600_000, 1000, false],
    } as const satisfies Record<typeof p.type, readonly [number, number, boolean]>;
    const [interval, timeout, critical] = defaults[p.type];
    return { ...p, interval: p.interval ?? interval, timeout: p.timeout ?? timeout, critical: p.critical ?? critical };
  });
