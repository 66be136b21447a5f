// The field types every config section uses: durations, sizes, names,
// addresses, argv and paths, each with the error message a user sees.
import { isIP } from "node:net";
import { z } from "zod";
import { parseDuration } from "./duration.js";

// Durations are written as "5s" / "250ms" in YAML and held as milliseconds.
export const duration = z.string({ error: "must be a duration like 5s or 250ms" }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: "must be a duration like 5s or 250ms" });
    return z.NEVER;
  }
  return ms;
});
// The daemon, probe and VIP adapters refuse a zero interval or timeout when the agent
// builds them; these bounds make `config check` refuse the same files up front.
export const positiveDuration = duration.refine((ms) => ms > 0, "must be greater than 0");
export const vipInterval = duration.refine((ms) => ms >= 100, "must be at least 100ms");

export const name = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be lower-case letters, digits and dashes");

export const cidr = z.string().refine((text) => {
  const [addr, prefix, ...rest] = text.split("/");
  if (rest.length > 0 || addr === undefined || prefix === undefined || !/^\d+$/.test(prefix)) return false;
  const family = isIP(addr);
  const p = Number(prefix);
  return (family === 4 && p >= 0 && p <= 32) || (family === 6 && p >= 0 && p <= 128);
}, "must be an address with a prefix length, like 198.18.0.100/24");

// Sizes are written as "500MiB" / "1GiB" and held as bytes.
export const size = z.string({ error: "must be a size like 500MiB or 1GiB" }).transform((text, ctx) => {
  const m = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB|PiB)$/.exec(text.trim());
  if (!m) {
    ctx.addIssue({ code: "custom", message: "must be a size like 500MiB or 1GiB (units B, KiB, MiB, GiB, TiB, PiB)" });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB"].indexOf(m[2]!));
});

export const argv = z.array(z.string().min(1)).min(1, "must name a program and its arguments");
// Hooks, validators and post_sync run as the agent's user: a bare name would be looked up
// on whatever PATH the agent inherited, so the program must be named by its absolute path.
export const programArgv = argv.refine((a) => a.length === 0 || (a[0]!.startsWith("/") && !a[0]!.split("/").includes("..")), "must start with the program's absolute path (no PATH lookup, no '..')");

// Every file the agent reads or writes: absolute, without '..' segments or NUL bytes.
export const absolutePath = z
  .string()
  .startsWith("/", "must be an absolute path")
  .refine((p) => !p.split("/").includes("..") && !p.includes("\0"), "must be an absolute path without '..' segments");
