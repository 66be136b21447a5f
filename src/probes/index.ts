import type { Config } from "../config/load.js";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { DEFAULT_CERT_WARNING_MS } from "./certs.js";
import { DiskProbe } from "./disk.js";
import { judgeFtpGreeting } from "./ftp.js";
import { FtpsProbe, reloadingCaFile, type TlsOptions } from "./ftps.js";
import type { ReloadReporter } from "../platform/reloading-file.js";
import { ProbeHealth } from "./health.js";
import { HttpProbe } from "./http.js";
import type { Probe } from "./port.js";
import { SftpProbe, loadSftpCredentials } from "./sftp.js";
import { judgeSshBanner } from "./ssh.js";
import { SocketProbe } from "./tcp.js";
import { TlsFileProbe } from "./tlsfile.js";

export type ProbeConfig = Config["probes"][number];

/**
 * Build one probe from its config entry. Throws US_E_PROBE_CONFIG when its
 * target is missing, US_E_PROBE_FILE when a file it reads once (key, password,
 * CA) cannot be used.
 */
export function createProbe(config: ProbeConfig, clock: Clock, reporter?: ReloadReporter): Probe {
  const { name } = config;
  const fail = (problem: string): never => {
    throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem });
  };
  if (!(config.timeout > 0)) fail("timeout must be greater than 0");
  const tls = (): TlsOptions => ({
    verify: config.tls_verify ?? true,
    warningMs: config.cert_warning ?? DEFAULT_CERT_WARNING_MS,
    // Re-read when it changes: a renewed CA must not fail the probe until the agent restarts (issue 12).
    ...(config.ca_file !== undefined ? { caFile: reloadingCaFile(name, config.ca_file, reporter) } : {}),
    sharedCertFailures: config.shared_failures !== false,
    ...(config.servername !== undefined ? { servername: config.servername } : {}),
  });
  switch (config.type) {
    case "http":
      if (config.url === undefined) return fail("url is required for an http probe");
      return new HttpProbe({ name, url: config.url, expectStatus: config.expect_status, timeoutMs: config.timeout, tls: tls() }, clock);
    case "disk":
      if (config.path === undefined || config.min_free === undefined) return fail("path and min_free are required for a disk probe");
      return new DiskProbe({ name, path: config.path, minFreeBytes: config.min_free, timeoutMs: config.timeout }, clock);
    case "tls_file":
      if (config.files === undefined || config.files.length === 0) return fail("files is required for a tls_file probe");
      return new TlsFileProbe(
        { name, files: config.files, warningMs: config.cert_warning ?? DEFAULT_CERT_WARNING_MS, timeoutMs: config.timeout, sharedFailures: config.shared_failures !== false },
        clock,
      );
  }
  if (config.port === undefined) return fail(`port is required for a ${config.type} probe`);
  const target = { name, host: config.host, port: config.port, timeoutMs: config.timeout };
  switch (config.type) {
    case "tcp":
      return new SocketProbe("tcp", target, clock);
    case "ssh":
      return new SocketProbe("ssh", target, clock, judgeSshBanner);
    case "ftp":
      return new SocketProbe("ftp", target, clock, judgeFtpGreeting);
    case "ftps":
      return new FtpsProbe({ ...target, tls: tls() }, clock);
    case "sftp": {
      if (config.user === undefined) return fail("user is required for an sftp probe");
      if (config.host_key_fingerprint === undefined) return fail("host_key_fingerprint is required for an sftp probe");
      if ((config.private_key === undefined) === (config.password_file === undefined)) return fail("an sftp probe needs exactly one of private_key and password_file");
      const files = config.private_key !== undefined ? { privateKey: config.private_key } : { passwordFile: config.password_file! };
      const credentials = loadSftpCredentials(name, files);
      return new SftpProbe({ ...target, user: config.user, credentials, hostKeyFingerprint: config.host_key_fingerprint }, clock);
    }
  }
}

/** The whole `probes:` section, scheduled and debounced. Not started. */
export function createProbeHealth(configs: readonly ProbeConfig[], deps: { clock: Clock; logger?: Logger; reloads?: ReloadReporter }): ProbeHealth {
  const watched = configs.map((c) => ({
    probe: createProbe(c, deps.clock, deps.reloads),
    intervalMs: c.interval,
    timeoutMs: c.timeout,
    rise: c.rise,
    fall: c.fall,
    critical: c.critical,
  }));
  return new ProbeHealth(watched, deps);
}
