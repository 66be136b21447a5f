// The digest the primary publishes over its roots as one sync generation.
// Whether a node is behind is isBehind in coordinator/port.ts, beside the
// record it reads.
import { createHash } from "node:crypto";

/** Digest over every root's manifest digest, as published in sync/generation. */
export function combinedDigest(roots: Readonly<Record<string, string>>): string {
  const h = createHash("sha256").update("understudy-generation/1");
  for (const name of Object.keys(roots).sort()) h.update(`\n${name}=${roots[name]}`);
  return h.digest("hex");
}
