import { open } from "node:fs/promises";
import { constants, existsSync } from "node:fs";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { configSchema, type ParsedConfig } from "./schema.js";
import { watchdogTimeoutS } from "./watchdog.js";
import { fileKind, readSecretFile } from "../platform/secret-file.js";
import { readEtcdSecurity } from "./etcd-security.js";

/** A real config uses a handful of YAML aliases; thousands of expansions are an attack. */
const MAX_ALIAS_COUNT = 100;

export interface ElectionTiming {
  /** Requested lease TTL; etcd may grant more (never less). */
  readonly ttlMs: number;
  /** Safety margin between our local deadline and etcd's expiry of the lease. */
  readonly fenceMarginMs: number;
  /** How often the lease is kept alive. */
  readonly renewIntervalMs: number;
  /** Extra wait before a lower-ranked standby campaigns. */
  readonly rankingDelayMs: number;
  /** Flap damping (election.flap); absent in hand-built configs: the defaults apply. */
  readonly flap?: { readonly maxMoves: number; readonly windowMs: number };
  /** election.failsafe (docs/failsafe-design.md); absent in hand-built configs: off. */
  readonly failsafe?: "off" | "on";
}

export type Config = Omit<ParsedConfig, "election"> & { readonly election: ElectionTiming };

export interface LoadOptions {
  /** Check facts about this host (the VIP interface exists). Off for checking another node's file. */
  readonly hostChecks?: boolean;
  /** Where network interfaces are listed; injectable for tests. */
  readonly sysClassNet?: string;
}

/** Read, parse and validate a config file. Throws UnderstudyError; never returns a half-valid config. */
export async function loadConfigFile(file: string, options: LoadOptions = {}): Promise<Config> {
  const read = await readConfigText(file);
  if ("problem" in read) throw new UnderstudyError("US_E_CONFIG_READ", { file, cause: read.problem });
  const config = parseConfigText(read.text, file, options);
  if (options.hostChecks && config.api?.token_file) {
    // The agent refuses to start on a bad token file: `config check` says so first.
    const token = await readSecretFile(config.api.token_file);
    const problem = "problem" in token ? token.problem : token.text.trim().length < 16 ? "the token is empty or shorter than 16 characters" : null;
    if (problem) throw new UnderstudyError("US_E_CONFIG_INVALID", { file, path: "api.token_file", problem, value: JSON.stringify(config.api.token_file) });
  }
  if (options.hostChecks && (config.etcd.tls || config.etcd.auth)) await readEtcdSecurity(file, config.etcd);
  return config;
}

/** A config file is a regular file of at most 1 MiB: a FIFO or /dev/zero must not hang or exhaust `config check`. */
const MAX_CONFIG_BYTES = 1024 * 1024;

async function readConfigText(file: string): Promise<{ text: string } | { problem: string }> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    return { problem: describeError(e) };
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { problem: `not a regular file (${fileKind(st)})` };
    if (st.size > MAX_CONFIG_BYTES) return { problem: `${st.size} bytes, more than ${MAX_CONFIG_BYTES}` };
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_CONFIG_BYTES) return { problem: `more than ${MAX_CONFIG_BYTES} bytes` };
    return { text: buf.subarray(0, bytesRead).toString("utf8") };
  } catch (e) {
    return { problem: describeError(e) };
  } finally {
    await handle.close();
  }
}

export function parseConfigText(text: string, file: string, options: LoadOptions = {}): Config {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new UnderstudyError("US_E_CONFIG_PARSE", { file, cause: doc.errors[0]!.message.split("\n")[0] });
  }
  let raw: unknown;
  try {
    // An alias bomb (a billion laughs) expands past maxAliasCount and throws here, not later.
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    throw new UnderstudyError("US_E_CONFIG_PARSE", { file, cause: `${describeError(e).split("\n")[0]} (at most ${MAX_ALIAS_COUNT} alias expansions)` });
  }
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw fromZod(file, raw, result.error);
  const config = withTiming(file, result.data);
  if (options.hostChecks && config.vip && config.vip.backend === "ip") {
    const dir = options.sysClassNet ?? "/sys/class/net";
    if (!existsSync(`${dir}/${config.vip.interface}`)) {
      throw new UnderstudyError("US_E_CONFIG_INTERFACE", { file, value: config.vip.interface });
    }
  }
  return config;
}

function withTiming(file: string, parsed: ParsedConfig): Config {
  const e = parsed.election;
  const timing: ElectionTiming = {
    ttlMs: e.ttl,
    fenceMarginMs: e.fence_margin,
    renewIntervalMs: e.renew_interval ?? Math.max(100, Math.floor(e.ttl / 4)),
    rankingDelayMs: e.ranking_delay,
    flap: { maxMoves: e.flap.max_moves, windowMs: e.flap.window },
    failsafe: e.failsafe,
  };
  validateTiming(file, timing);
  validateWatchdog(file, timing, parsed.watchdog);
  // The first round starts when a keepalive has been unanswered for half a renew interval, at the
  // latest 1.5 renew intervals after the last answered one: with no time left before the deadline
  // then, failsafe could never hold (docs/failsafe-design.md, P1).
  const firstRoundByMs = Math.round(timing.renewIntervalMs * 1.5);
  if (e.failsafe === "on" && firstRoundByMs >= e.ttl - e.fence_margin) {
    throw new UnderstudyError("US_E_CONFIG_TIMING", {
      file,
      path: "election.failsafe",
      problem: `needs 1.5 × election.renew_interval (${firstRoundByMs}ms) below ttl - fence_margin (${e.ttl - e.fence_margin}ms): the first failsafe round starts when a keepalive is half a renew interval late`,
      value: "on",
    });
  }
  if (e.failsafe === "on" && !parsed.api?.token_file) {
    // Grants are signed with a key derived from the cluster token: without it a node can neither ask nor answer.
    throw new UnderstudyError("US_E_CONFIG_INVALID", {
      file,
      path: "election.failsafe",
      problem: "needs api.token_file (the failsafe grants are signed with a key derived from the cluster-wide API token)",
      value: '"on"',
    });
  }
  return { ...parsed, election: timing };
}

/**
 * The rules that keep the local lease deadline ahead of etcd's expiry:
 * ttl >= 1s in whole seconds (etcd's unit and its floor on a LAN-tuned cluster), 0 < fence_margin < ttl,
 * and renew_interval short enough that a keepalive lands before the deadline.
 */
export function validateTiming(file: string, t: ElectionTiming): void {
  const fail = (path: string, problem: string, value: number) => {
    throw new UnderstudyError("US_E_CONFIG_TIMING", { file, path, problem, value: `${value}ms` });
  };
  if (t.ttlMs < 1000) fail("election.ttl", "must be at least 1s (etcd's minimum lease TTL)", t.ttlMs);
  if (t.ttlMs % 1000 !== 0) fail("election.ttl", "must be a whole number of seconds (etcd lease TTLs are whole seconds)", t.ttlMs);
  if (t.fenceMarginMs <= 0) fail("election.fence_margin", "must be greater than 0", t.fenceMarginMs);
  if (t.fenceMarginMs >= t.ttlMs) fail("election.fence_margin", `must be less than election.ttl (${t.ttlMs}ms)`, t.fenceMarginMs);
  const renewDeadline = t.ttlMs - t.fenceMarginMs;
  if (t.renewIntervalMs <= 0 || t.renewIntervalMs >= renewDeadline) {
    fail("election.renew_interval", `must be between 0 and ttl - fence_margin (${renewDeadline}ms)`, t.renewIntervalMs);
  }
}

/**
 * A watchdog must be fed while renewals succeed and reset a frozen node before
 * etcd can expire its lease, after the fence guard had its chance: 0 <
 * safety_margin < fence_margin, and a timeout of at least 1s (watchdogTimeoutS).
 */
function validateWatchdog(file: string, t: ElectionTiming, w: ParsedConfig["watchdog"]): void {
  if (w.mode === "off") return;
  const fail = (problem: string, value: number) => {
    throw new UnderstudyError("US_E_CONFIG_TIMING", { file, path: "watchdog.safety_margin", problem, value: `${value}ms` });
  };
  if (w.safety_margin <= 0) fail("must be greater than 0", w.safety_margin);
  if (w.safety_margin >= t.fenceMarginMs) fail(`must be less than election.fence_margin (${t.fenceMarginMs}ms), so the fence guard fences before the watchdog resets`, w.safety_margin);
  const timeoutS = watchdogTimeoutS(t, w.safety_margin);
  if (timeoutS < 1) {
    fail(
      `leaves a watchdog timeout under 1s (ttl − renew_interval − safety_margin − 250ms = ${t.ttlMs - t.renewIntervalMs - w.safety_margin - 250}ms); raise election.ttl (3s or more) or lower the margin`,
      w.safety_margin,
    );
  }
}

function fromZod(file: string, raw: unknown, error: z.ZodError): UnderstudyError {
  const issue = error.issues[0]!;
  let path = issue.path.map(String).join(".");
  let problem = issue.message;
  let value: unknown;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    path = path ? `${path}.${key}` : key;
    problem = "unknown key";
    value = valueAt(raw, [...issue.path, key]);
  } else {
    value = valueAt(raw, issue.path);
  }
  // Webhook URLs and headers often carry tokens: never echo them into logs or a terminal.
  const secret = /^hooks\.webhook(\.|$)|(^|\.)(password|token|secret)(\.|$)/.test(path);
  return new UnderstudyError("US_E_CONFIG_INVALID", { file, path: path || "(root)", problem, value: secret ? "[hidden]" : show(value) });
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
