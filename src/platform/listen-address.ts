// host:port listen addresses (api.listen), parsed and printed in one place: the
// config schema, the CLI's config reader, the agent and the CLI's API URL all
// used to cut at the last colon and strip brackets each in their own way.

/** What api.listen accepts: an IPv4 address, a bracketed IPv6 address or a host name, a colon, a port. */
export const LISTEN_ADDRESS = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/;

export interface ListenAddress {
  /** Without brackets: "0.0.0.0", "::1", "node1.example". */
  readonly host: string;
  readonly port: number;
}

/** Split at the last colon and drop IPv6 brackets. Checks nothing: match LISTEN_ADDRESS first. */
export function parseListenAddress(listen: string): ListenAddress {
  const colon = listen.lastIndexOf(":");
  return { host: listen.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(listen.slice(colon + 1)) };
}

/** A loopback host (127.0.0.0/8, ::1, localhost): other hosts cannot reach what listens there. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A TCP port one can listen on. */
export function isListenPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** A host as it goes before ":port" or into a URL: an IPv6 address in brackets (a name or IPv4 address never has a colon). */
export function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** "host:port", brackets added for IPv6. */
export function formatListenAddress(host: string, port: number): string {
  return `${hostForUrl(host)}:${port}`;
}

/** Whether the host means "every address" (a client then talks to the loopback address). */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}
