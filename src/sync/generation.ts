// What a sync generation is, in the two ways every node compares one: the
// digest the primary publishes over its roots, and whether a node is behind.
import { createHash } from "node:crypto";

/** Digest over every root's manifest digest, as published in sync/generation. */
export function combinedDigest(roots: Readonly<Record<string, string>>): string {
  const h = createHash("sha256").update("understudy-generation/1");
  for (const name of Object.keys(roots).sort()) h.update(`\n${name}=${roots[name]}`);
  return h.digest("hex");
}

// isBehind, the one definition of lagging a generation, lives with the record
// it compares against (coordinator/port.ts), so the HA core reads it from a port.
export { isBehind } from "../coordinator/port.js";
