// Path containment for the sync engine (the durable writes that once lived
// beside it are the DurableFs port in platform/).
import path from "node:path";

/** True when `inner` is `outer` or lies below it (lexically). */
export function isWithin(outer: string, inner: string): boolean {
  const r = path.relative(path.resolve(outer), path.resolve(inner));
  return r === "" || (r !== ".." && !r.startsWith("../") && !path.isAbsolute(r));
}
