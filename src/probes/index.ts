import type { Config } from "../config/load.js";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { judgeFtpGreeting } from "./ftp.js";
import { ProbeHealth } from "./health.js";
import { HttpProbe } from "./http.js";
import type { Probe } from "./port.js";
import { judgeSshBanner } from "./ssh.js";
import { SocketProbe } from "./tcp.js";

export type ProbeConfig = Config["probes"][number];

/** Build one probe from its config entry. Throws US_E_PROBE_CONFIG when its target is missing. */
export function createProbe(config: ProbeConfig, clock: Clock): Probe {
  const { name } = config;
  if (!(config.timeout > 0)) throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem: "timeout must be greater than 0" });
  if (config.type === "http") {
    if (config.url === undefined) throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem: "url is required for an http probe" });
    return new HttpProbe({ name, url: config.url, expectStatus: config.expect_status, timeoutMs: config.timeout }, clock);
  }
  if (config.port === undefined) throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem: `port is required for a ${config.type} probe` });
  const target = { name, host: config.host, port: config.port, timeoutMs: config.timeout };
  switch (config.type) {
    case "tcp":
      return new SocketProbe("tcp", target, clock);
    case "ssh":
      return new SocketProbe("ssh", target, clock, judgeSshBanner);
    case "ftp":
      return new SocketProbe("ftp", target, clock, judgeFtpGreeting);
  }
}

/** The whole `probes:` section, scheduled and debounced. Not started. */
export function createProbeHealth(configs: readonly ProbeConfig[], deps: { clock: Clock; logger?: Logger }): ProbeHealth {
  const watched = configs.map((c) => ({
    probe: createProbe(c, deps.clock),
    intervalMs: c.interval,
    timeoutMs: c.timeout,
    rise: c.rise,
    fall: c.fall,
    critical: c.critical,
  }));
  return new ProbeHealth(watched, deps);
}
