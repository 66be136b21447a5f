// Path containment for the sync engine. The durable writes that used to live
// here (writeFileAtomic, fsyncDir) are the DurableFs port in platform/; they
// are re-exported for sync code written before the move.
import path from "node:path";

export { fsyncDir, writeFileAtomic } from "../platform/node-durable-fs.js";

/** True when `inner` is `outer` or lies below it (lexically). */
export function isWithin(outer: string, inner: string): boolean {
  const r = path.relative(path.resolve(outer), path.resolve(inner));
  return r === "" || (r !== ".." && !r.startsWith("../") && !path.isAbsolute(r));
}
