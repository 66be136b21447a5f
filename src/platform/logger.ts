import { pino, type Logger } from "pino";

export type { Logger };

/** pino JSON to stdout (journald picks it up); secrets are redacted by path. */
export function createLogger(options: { level?: string; node?: string } = {}): Logger {
  return pino({
    level: options.level ?? process.env.UNDERSTUDY_LOG_LEVEL ?? "info",
    base: options.node ? { node: options.node } : {},
    redact: {
      paths: ["*.password", "*.token", "*.key_material", "config.etcd.auth.password", "headers.authorization"],
      censor: "[redacted]",
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything, for unit tests and one-shot CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
