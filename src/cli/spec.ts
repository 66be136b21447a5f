// The one definition of the command line: every command, its options and
// positionals, the help text, and the exit codes. Parsing (./run.ts), `--help`
// and docs/cli.md (test/unit/cli/cli-docs.test.ts) are all made from this table,
// so they cannot drift. Each command's code is loaded lazily (`import()`), so
// `--help` and `--version` load nothing but this file.
import type { Io } from "./io.js";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  /** The value's placeholder in help, for string options. */
  readonly arg?: string;
  readonly help: string;
  readonly required?: boolean;
}

export interface Parsed {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: readonly string[];
}

export type Handler = (p: Parsed, io: Io) => Promise<number>;

export interface CommandSpec {
  /** Words that name it: "status", "sync status". */
  readonly name: string;
  readonly summary: string;
  /** Positional arguments as help shows them ("NODE", "FILE"); none when absent. */
  readonly args?: string;
  readonly positionals?: { readonly min: number; readonly max: number };
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra help paragraphs. */
  readonly notes?: readonly string[];
  readonly load: () => Promise<Handler>;
}

/** Exit codes: one table for every command, printed by `--help` and in docs/cli.md. */
export const EXIT = {
  OK: { code: 0, meaning: "success (`status`: the cluster has a primary)" },
  FAILURE: { code: 1, meaning: "runtime failure: etcd or the API unreachable, timed out, a move that did not finish" },
  USAGE: { code: 2, meaning: "invalid usage or config: unknown command or option, bad value, invalid config file, unreadable or malformed token file" },
  REFUSED: { code: 3, meaning: "refused by the cluster: not possible now (the reason is printed)" },
  UNAUTHORIZED: { code: 4, meaning: "unauthorized: the API rejected the token (missing or wrong)" },
  UNKNOWN_CLUSTER: { code: 5, meaning: "unknown cluster: etcd holds no key under `<prefix>/<cluster>/` (`US_E_CLUSTER_UNKNOWN`: a typo, or no agent ever started)" },
  NO_PRIMARY: { code: 6, meaning: "`status` only: the cluster exists but nobody holds the leader key now (the table is still printed)" },
  NODE_VIEW: {
    code: 7,
    meaning: "`status` only: etcd is out of reach from here and from the node asked; only that node's own view was printed (its role, lease, VIP, daemon, decision), not the cluster's",
  },
} as const;

const api = {
  api: { type: "string", arg: "URL", help: "a node's REST API, like http://198.18.0.11:8470" },
  config: { type: "string", arg: "FILE", help: "a node's config: its api.listen and api.token_file (default $UNDERSTUDY_CONFIG, else /etc/understudy/understudy.yaml if present)" },
  "token-file": { type: "string", arg: "FILE", help: "API bearer token (else UNDERSTUDY_API_TOKEN, else the config's api.token_file)" },
  json: { type: "boolean", help: "print JSON" },
} as const satisfies Record<string, OptionSpec>;
const change = {
  ...api,
  reason: { type: "string", arg: "TEXT", help: "recorded in history" },
  "requested-by": { type: "string", arg: "NAME", help: "recorded in history (default user@host)" },
} as const satisfies Record<string, OptionSpec>;
const wait = { type: "string", arg: "SECONDS", help: "follow the move this long, 0 to return at once (default 30)" } as const satisfies OptionSpec;
const configFile = (help: string) => ({ config: { type: "string", arg: "FILE", help, required: true } }) as const satisfies Record<string, OptionSpec>;
const API_NOTE = "Through any node's REST API: --api URL, or --config FILE of a node (on a node, its /etc/understudy/understudy.yaml when neither is given).";

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "agent",
    summary: "run the agent (SIGTERM: graceful handover)",
    options: configFile("the node's config (validated before anything starts)"),
    load: async () => (await import("./local.js")).agent,
  },
  {
    name: "status",
    summary: "show the cluster: primary, terms, health, sync generation",
    options: {
      config: {
        type: "string",
        arg: "FILE",
        help: "read etcd endpoints, prefix and cluster from a node's config; if etcd is unreachable, ask that node's API (default $UNDERSTUDY_CONFIG, else /etc/understudy/understudy.yaml if present, unless --etcd, --cluster or --api is given)",
      },
      etcd: { type: "string", arg: "URL[,URL]", help: "etcd client URLs (with --cluster)" },
      cluster: { type: "string", arg: "NAME", help: "the cluster's name (with --etcd)" },
      prefix: { type: "string", arg: "PREFIX", help: "etcd key prefix (default /understudy, or the config's etcd.prefix)" },
      api: { type: "string", arg: "URL", help: "ask this node's REST API (GET /cluster) instead of etcd" },
      "token-file": api["token-file"],
      json: { type: "boolean", help: "print JSON" },
      watch: { type: "boolean", help: "redraw every 2 s until Ctrl-C" },
    },
    notes: [
      "Reads etcd directly over its HTTP/JSON gateway (needs etcd's client port; over gRPC when the config names an etcd client certificate), or a node's API with --api (needs the API port; the token only when the node sets api.auth_reads).",
      "Exit 0 with a primary, 6 when the cluster has none now, 5 when etcd has nothing for the cluster (US_E_CLUSTER_UNKNOWN).",
      'When etcd is unreachable from here, --config asks the node\'s API, which reads etcd itself (the table then ends with `Source: etcd as read by NODE`); when the node cannot read etcd either, it prints that node\'s own view (GET /health, no etcd needed), labelled as such, and exits 7 (--json: `"source": "node"`).',
      "With --config only the settings it uses (cluster, etcd, api) are checked; `understudy config check` checks the whole file.",
    ],
    load: async () => (await import("./status-cmd.js")).status,
  },
  {
    name: "config check",
    summary: "validate a config file (exit 0 valid, 2 invalid)",
    args: "FILE",
    positionals: { min: 1, max: 1 },
    options: {
      "no-host-checks": { type: "boolean", help: "skip checks against this host (network interface, files)" },
      json: { type: "boolean", help: "print the parsed config as JSON" },
    },
    load: async () => (await import("./local.js")).configCheck,
  },
  {
    name: "switchover",
    summary: "planned move of the primary role to a healthy standby",
    options: {
      ...change,
      to: { type: "string", arg: "NODE", help: "the new primary (default: the best candidate; one that answers it is not ready is passed over for the next)" },
      at: { type: "string", arg: "TIME", help: "schedule it, like 2026-12-01T03:00:00Z" },
      drain: { type: "string", arg: "DURATION", help: "first refuse new sessions and wait up to DURATION (like 30s) for running ones" },
      wait,
    },
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).switchover,
  },
  {
    name: "failback",
    summary: "move the primary role back to failback.preferred (or --to)",
    options: { ...change, to: { type: "string", arg: "NODE", help: "the new primary (default: failback.preferred)" }, wait },
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).failback,
  },
  {
    name: "failover",
    summary: "forced move: with --force also to an unhealthy or stale node, or with no primary",
    options: {
      ...change,
      to: { type: "string", arg: "NODE", help: "the new primary", required: true },
      force: { type: "boolean", help: "also to an unhealthy, stale or lagging node" },
      wait,
    },
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).failover,
  },
  {
    name: "pause",
    summary: "maintenance: no automatic failover until `understudy resume`",
    options: change,
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).pause,
  },
  {
    name: "resume",
    summary: "end maintenance: automatic failover is on again",
    options: change,
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).resume,
  },
  {
    name: "ban",
    summary: "keep a node from becoming primary for a while",
    args: "NODE",
    positionals: { min: 1, max: 1 },
    options: { ...change, for: { type: "string", arg: "DURATION", help: "how long, like 30m or 2h", required: true } },
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).ban,
  },
  {
    name: "unban",
    summary: "let a banned node be elected again",
    args: "NODE",
    positionals: { min: 1, max: 1 },
    options: change,
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).unban,
  },
  {
    name: "flap clear",
    summary: "end flap damping: health-driven handovers resume (election.flap)",
    options: change,
    notes: [API_NOTE, "Writes a flap_clear event to history: every node counts health-driven handovers afresh from it."],
    load: async () => (await import("./control.js")).flapClear,
  },
  {
    name: "history",
    summary: "what happened, who asked, how long it took",
    options: { ...api, limit: { type: "string", arg: "N", help: "newest N events, 1 to 1000 (default 20)" } },
    notes: [API_NOTE],
    load: async () => (await import("./control.js")).history,
  },
  {
    name: "sync status",
    summary: "per node: sync generation, lag, last success, last error",
    options: api,
    notes: [API_NOTE],
    load: async () => (await import("./sync.js")).syncStatus,
  },
  {
    name: "resync",
    summary: "re-pull every sync root (standby) or republish (primary)",
    options: { ...change, node: { type: "string", arg: "NODE", help: "the node to resync (default: the --api node)" } },
    notes: [API_NOTE],
    load: async () => (await import("./sync.js")).resync,
  },
  {
    name: "sync authorized-key",
    summary: "print the sync key's authorized_keys line (forced read-only rsync daemon)",
    options: {
      ...configFile("the node's config"),
      "public-key": { type: "string", arg: "FILE", help: "the sync key's public half", required: true },
      from: { type: "string", arg: "ADDR[,ADDR]", help: "restrict the key to these client addresses" },
    },
    load: async () => (await import("./sync.js")).authorizedKey,
  },
  {
    name: "sync rsyncd-conf",
    summary: "print the rsync daemon config the agent writes to sync.serve_config",
    options: configFile("the node's config"),
    load: async () => (await import("./sync.js")).rsyncdConf,
  },
  {
    name: "data notify",
    summary: "ship uploaded files now: an upload hook tells the local agent they are complete",
    args: "PATH",
    positionals: { min: 1, max: 100_000 },
    options: {
      config: { type: "string", arg: "FILE", help: "this node's config: its api.listen and api.token_file (default $UNDERSTUDY_CONFIG, else /etc/understudy/understudy.yaml)" },
      api: api.api,
      "token-file": api["token-file"],
      timeout: { type: "string", arg: "SECONDS", help: "give up after this long, 0.1 to 60 (default 2)" },
      strict: { type: "boolean", help: "exit non-zero when the files were not journaled (standby, outside every data root, agent unreachable)" },
      json: { type: "boolean", help: "print the agent's answers as JSON" },
    },
    notes: [
      "For ProFTPD ExecOnCommand, SFTPGo event actions and other upload hooks (examples: docs/data.md). Relative paths are taken from the working directory.",
      "Never fails an upload: without --strict it exits 0 unless its own command line is wrong (exit 2), and says on stderr when the node is a standby, a path is outside every data root, or the agent is unreachable or slow. The file is on disk already; the watcher or the next full pass ships it.",
    ],
    load: async () => (await import("./data.js")).dataNotify,
  },
  {
    name: "data status",
    summary: "data replication: per standby lag (files, bytes, seconds), step, paused",
    options: api,
    notes: [API_NOTE, "Asked of a standby, it also asks the primary (through GET /cluster) for the per-standby table. Exit 3 when the node has no data section."],
    load: async () => (await import("./data.js")).dataStatus,
  },
  {
    name: "vip release",
    summary: "drop this node's floating IP now (systemd ExecStopPost)",
    options: configFile("the node's config"),
    load: async () => (await import("./local.js")).vipRelease,
  },
  {
    name: "keepalived render",
    summary: "keepalived.conf for vip.backend keepalived (only the etcd primary may be MASTER)",
    options: { ...configFile("the node's config"), out: { type: "string", arg: "FILE", help: "write it here (atomically) instead of stdout" } },
    load: async () => (await import("./local.js")).keepalivedRender,
  },
  {
    name: "etcd setup",
    summary: "the least-privilege etcd role and user for this cluster: print the etcdctl commands, or --apply them",
    options: {
      ...configFile("the node's config: etcd endpoints, TLS, prefix, cluster, etcd.auth"),
      user: { type: "string", arg: "NAME", help: "the etcd user (default etcd.auth.user, else understudy-<cluster>)" },
      role: { type: "string", arg: "NAME", help: "the etcd role (default: the user's name)" },
      apply: { type: "boolean", help: "run the commands with etcdctl as etcd's root user instead of printing them" },
      "root-user": { type: "string", arg: "NAME", help: "with --apply: etcd's admin user (default root)" },
      "root-password-file": { type: "string", arg: "FILE", help: "with --apply: that user's password (mode 0600)" },
    },
    notes: ["The role gets readwrite on <prefix>/<cluster>/ only: the user cannot read or change another cluster's keys."],
    load: async () => (await import("./etcd-setup.js")).etcdSetup,
  },
  {
    name: "version",
    summary: "print the version (also --version)",
    options: {},
    load: async () => async (_p, io) => {
      const { VERSION } = await import("../version.js");
      io.out(VERSION);
      return 0;
    },
  },
];

/** The first words of every command: "status", "sync", "config", ... */
export function topWords(): string[] {
  return [...new Set(COMMANDS.map((c) => c.name.split(" ")[0]!))];
}

/** Commands whose name starts with these words (a group like "sync" has several). */
export function commandsUnder(word: string): CommandSpec[] {
  return COMMANDS.filter((c) => c.name.split(" ")[0] === word);
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment), for "did you mean". */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate within a third of its length (at least 1 edit, fewer than its length), or undefined. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(input, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(1, Math.floor(best.length / 3)) && bestD < best.length ? best : undefined;
}
