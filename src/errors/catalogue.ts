// One catalogue of stable error codes. docs/errors.md lists the same codes;
// test/unit/errors/errors.test.ts keeps the two in step.

export interface ErrorSpec {
  /** Message template; `{name}` placeholders are filled from the error's details. */
  readonly message: string;
  /** True when retrying the same operation later may succeed. */
  readonly transient: boolean;
}

export const ERROR_CATALOGUE = {
  US_E_CONFIG_READ: { message: "cannot read config file {file}: {cause}", transient: false },
  US_E_CONFIG_PARSE: { message: "config file {file} is not valid YAML: {cause}", transient: false },
  US_E_CONFIG_INVALID: { message: "config file {file}: {path}: {problem} (got {value})", transient: false },
  US_E_CONFIG_TIMING: { message: "config file {file}: {path}: {problem} (got {value})", transient: false },
  US_E_CONFIG_INTERFACE: { message: "config file {file}: vip.interface: no network interface named {value} on this host", transient: false },
  US_E_ETCD_UNREACHABLE: { message: "etcd is unreachable at {endpoints}: {cause}", transient: true },
  US_E_ETCD_TLS: { message: "TLS with etcd at {endpoints} failed: {cause}", transient: true },
  US_E_ETCD_AUTH: { message: "etcd at {endpoints} refused this node's credentials: {cause}", transient: true },
  US_E_DAEMON_START: { message: "daemon backend {backend} failed to start: {cause}", transient: true },
  US_E_DAEMON_STOP: { message: "daemon backend {backend} failed to stop: {cause}", transient: true },
  US_E_COMMAND_FAILED: { message: "command {argv0} exited with {code}: {stderr}", transient: true },
  US_E_COMMAND_TIMEOUT: { message: "command {argv0} did not finish within {timeout_ms} ms", transient: true },
  US_E_COMMAND_SPAWN: { message: "cannot start {argv0}: {cause}", transient: true },
  US_E_VIP_DUPLICATE: { message: "refusing to add {address}: another host answers ARP for it ({mac})", transient: true },
  US_E_VIP_ADD: { message: "cannot add {address} to {interface}: {cause}", transient: true },
  US_E_VIP_DEL: { message: "cannot remove {address} from {interface}: {cause}", transient: true },
  US_E_DAEMON_CONFIG: { message: "daemon backend {backend}: {problem}", transient: false },
  US_E_PROBE_CONFIG: { message: "probe {name}: {problem}", transient: false },
  US_E_VIP_CHECK: { message: "duplicate-address check for {address} on {interface} failed, not adding it: {cause}", transient: true },
  US_E_VIP_ANNOUNCE: { message: "cannot announce {address} on {interface}: {cause}", transient: true },
  US_E_API_UNAUTHORIZED: { message: "API request refused: {why}", transient: false },
  US_E_API_BAD_REQUEST: { message: "API request is malformed: {why}", transient: false },
  US_E_API_PRECONDITION: { message: "API request not possible now: {why}", transient: true },
  US_E_API_UNREACHABLE: { message: "cannot reach the understudy API at {url}: {cause}", transient: true },
  US_E_API_TOKEN: { message: "cannot use API credential file {file}: {cause}", transient: false },
  US_E_SYNC_CONFIG: { message: "sync transport setting {setting}: {problem} (got {value})", transient: false },
  US_E_SYNC_PULL_FAILED: { message: "pulling {root} from {primary} failed: rsync exit {code} ({meaning}): {stderr}", transient: true },
  US_E_SYNC_WATCH: { message: "watching sync roots failed: {cause}", transient: true },
  US_E_SYNC_ROOT_INVALID: { message: "sync root {name}: {problem}", transient: false },
  US_E_SYNC_UNSAFE_PATH: { message: "sync root {root}: unsafe path {path}: {problem}", transient: false },
  US_E_SYNC_FILE_TOO_LARGE: { message: "sync root {root}: {path} is {size} bytes, over the {limit}-byte limit", transient: false },
  US_E_SYNC_UNREADABLE: { message: "sync root {root}: cannot read {path}: {cause}", transient: false },
  US_E_SYNC_DIGEST_MISMATCH: { message: "sync root {root}: staged files do not match the published manifest (expected digest {expected}, got {actual}; first difference at {path})", transient: true },
  US_E_SYNC_VALIDATOR_FAILED: { message: "validator {argv0} rejected the staged files in {staged}: exit {code}: {stderr}", transient: false },
  US_E_SYNC_STAGING_FS: { message: "sync root {root}: staging directory {staged} cannot be used: {problem}", transient: false },
  US_E_SYNC_MODE: { message: "sync root {root}: {path} has mode {mode}, wider than the required {required}", transient: false },
  US_E_SYNC_LIVE_BUSY: { message: "sync root {root}: local files kept changing while they were being rescued ({rounds} rounds, last: {paths}); nothing was applied", transient: true },
  US_E_SYNC_APPLY_FAILED: { message: "sync root {root}: applying {path} failed after {applied_count} change(s) went live: {cause}", transient: true },
  US_E_SYNC_STATE: { message: "sync state file {file} cannot be used: {cause}", transient: false },
  US_E_SYNC_RESCUE_FAILED: { message: "sync root {root}: cannot rescue {path} into {dir}: {cause}", transient: true },
  US_E_SYNC_ROOTS_MISMATCH: { message: "sync roots differ from the primary {primary}: it publishes [{published}], this node syncs [{local}]", transient: false },
  US_E_SYNC_POST_SYNC_FAILED: { message: "post_sync of sync root {root} ({program}) failed after the files went live: {problem}", transient: true },
  US_E_SYNC_POST_PUBLISH_FAILED: { message: "post_publish of sync root {root} ({program}) failed after its changes were published: {problem}", transient: true },
  US_E_SYNC_STAGED_REF: { message: "sync root {root}: its validator names {staged:{ref}}, but root {ref} {problem}; nothing of {root} went live", transient: true },
  US_E_HOOK_CONFIG: { message: "hook setting {setting}: {problem}", transient: false },
  US_E_HOOK_FAILED: { message: "hook {event} ({program}) failed: {problem}", transient: true },
  US_E_HOOK_VETO: { message: "pre_promote hook {program} vetoed the promotion: {problem}", transient: true },
  US_E_WEBHOOK_FAILED: { message: "webhook event {event} to {origin} not delivered after {attempts} attempt(s): {cause}", transient: true },
  US_E_WEBHOOK_DROPPED: { message: "webhook queue full ({limit} events): dropped the oldest event {event}", transient: true },
  US_E_PROBE_FILE: { message: "probe {name}: cannot use {key} {file}: {cause}", transient: false },
  US_E_FILE_RELOAD: { message: "{what} changed but cannot be used ({files}): {problem}; keeping the last good content", transient: true },
  US_E_CLI_USAGE: { message: "{problem}; see `understudy --help`", transient: false },
  US_E_CLUSTER_UNKNOWN: { message: "no cluster {cluster} in etcd at {endpoints}: no key under {base} (no member, no leader, no history); {known}", transient: false },
  US_E_STOP_LINGERING: { message: "agent stopped, but {resources} still held the process {grace_ms} ms later: exiting anyway", transient: false },
  US_E_TOOL_MISSING: { message: "{program} (needed by {setting}) {problem}; install the Debian package {package}", transient: true },
  US_E_TOOL_FLAVOUR: { message: "{program} is not an arping understudy knows (it says {said}); install one of: {known}", transient: false },
  US_E_API_ANSWER: { message: "the understudy API at {url} answered {path} with something this CLI cannot use: {problem}", transient: false },
  US_E_ETCD_TIMEOUT: { message: "etcd did not answer {request} within {timeout_ms} ms", transient: true },
  US_E_ETCD_KEEPALIVE: { message: "the lease keepalive stream to etcd {problem}", transient: true },
  US_E_ETCD_GATEWAY: { message: "etcd's JSON gateway at {endpoint} refused {path}: {answer}", transient: true },
  US_E_CLUSTER_LIST: { message: "cannot list the clusters under {prefix}: {problem}", transient: false },
  US_E_HTTP_TIMEOUT: { message: "{url} did not answer within {timeout_ms} ms", transient: true },
  US_E_HTTP_TOO_LARGE: { message: "{url} answered with more than {limit} bytes", transient: false },
  US_E_DAEMON_STILL_RUNNING: { message: "the status command still reports running {timeout_ms} ms after the stop command", transient: true },
  US_E_PROBE_ABORTED: { message: "probe {name} check abandoned: {why}", transient: true },
  US_E_CERT_PEM: { message: "not a usable PEM certificate file: {problem}", transient: false },
  US_E_KEY_MODE: { message: "mode {mode} lets others read the private key; use 0600", transient: false },
  US_E_FILE_NOT_LOADED: { message: "{what} was read before it was loaded (a bug)", transient: false },
  US_E_SYNC_PLACEHOLDER: { message: "no path for {staged:{name}}: the validator names no sync root with a staged copy", transient: false },
  US_E_SYNC_HASH_WORKER: { message: "the sync hash worker failed: {problem}", transient: true },
  US_E_UNEXPECTED: { message: "an error with no code of its own: {cause}", transient: true },
  US_E_DATA_CONFIG: { message: "data replication setting {setting}: {problem} (got {value})", transient: false },
  US_E_DATA_WATCH_LIMIT: {
    message:
      "data root {root} ({path}) cannot be watched: the kernel's limit on inotify {what} is reached; raise {knob}, e.g. in /etc/sysctl.d/; until then every standby gets a full pass after each watcher retry (every {retry_s} s) and its lag shows as unknown",
    transient: true,
  },
  US_E_DATA_REJOIN: { message: "rejoin of {from}'s data root {root} stopped: {problem}", transient: true },
  US_E_DATA_FENCE: { message: "cannot look for rsync sessions still writing into the data roots ({proc}): {cause}", transient: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export type ErrorDetails = Record<string, string | number | boolean | undefined>;

/** The one error type understudy throws for conditions it knows about. */
export class UnderstudyError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  readonly transient: boolean;

  constructor(code: ErrorCode, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(`${code}: ${render(ERROR_CATALOGUE[code].message, details)}`, options);
    this.name = "UnderstudyError";
    this.code = code;
    this.details = details;
    this.transient = ERROR_CATALOGUE[code].transient;
  }
}

function render(template: string, details: ErrorDetails): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    const v = details[key];
    return v === undefined ? `{${key}}` : String(v);
  });
}

export function isUnderstudyError(e: unknown, code?: ErrorCode): e is UnderstudyError {
  return e instanceof UnderstudyError && (code === undefined || e.code === code);
}

/** A short, single-line description of any thrown value, for logs and reasons. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
