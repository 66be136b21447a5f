// What a sync generation is, in the two ways every node compares one: the
// digest the primary publishes over its roots, and whether a node is behind.
import { createHash } from "node:crypto";

/** Digest over every root's manifest digest, as published in sync/generation. */
export function combinedDigest(roots: Readonly<Record<string, string>>): string {
  const h = createHash("sha256").update("understudy-generation/1");
  for (const name of Object.keys(roots).sort()) h.update(`\n${name}=${roots[name]}`);
  return h.digest("hex");
}

/**
 * Whether a node that holds generation `held` in full lags the published
 * generation. Generations are totally ordered: each publication is numbered
 * max(published, held by the publisher) + 1 under a term-guarded txn, so a
 * higher number is always a later publication. A node holding a number above
 * the record's (an etcd restored from a backup) is not behind: it holds newer
 * files than the record names. No published record: nothing to lag.
 * The one definition used by the sync engine (lag, displacement) and by the
 * promotion gate (src/ha/decide.ts syncGate).
 */
export function isBehind(held: number, published: { readonly generation: number } | null | undefined): boolean {
  return published != null && held < published.generation;
}
