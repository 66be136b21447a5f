// Downloads exact package versions from the npm registry into DIR and checks
// each tarball against the registry's `dist.integrity` (sha512 SRI), as
// `npm pack` does; prints each tarball's path. For scripts/install-node.sh,
// which needs it where only Debian's nodejs (18, no npm) is present: Debian's
// npm package pulls ~380 packages (node-gyp, a compiler, python3, webpack).
// Runs on Node >= 18 (global fetch), no dependencies. Bounded: 120 s per request.
//
//   node scripts/npm-fetch.mjs DIR name@version [name@version ...]
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const REGISTRY = (process.env.npm_config_registry || "https://registry.npmjs.org/").replace(/\/?$/, "/");
const TIMEOUT_MS = 120_000;

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

async function fetchOne(dir, spec) {
  const at = spec.lastIndexOf("@");
  if (at <= 0) throw new Error(`${spec}: expected name@version`);
  const name = spec.slice(0, at);
  const version = spec.slice(at + 1);
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`${spec}: expected an exact version (x.y.z)`);
  const meta = await (await get(`${REGISTRY}${name.replace("/", "%2f")}/${version}`)).json();
  const { tarball, integrity } = meta.dist ?? {};
  const m = /^sha512-([A-Za-z0-9+/=]+)$/.exec(
    String(integrity ?? "")
      .split(/\s+/)
      .find((s) => s.startsWith("sha512-")) ?? "",
  );
  if (!tarball || !m) throw new Error(`${spec}: the registry gave no tarball or sha512 integrity`);
  const body = Buffer.from(await (await get(tarball)).arrayBuffer());
  const got = createHash("sha512").update(body).digest("base64");
  if (got !== m[1]) throw new Error(`${spec}: integrity mismatch for ${tarball} (got sha512-${got}, registry says ${integrity})`);
  const file = join(dir, `${name.replace("@", "").replace("/", "-")}-${version}.tgz`);
  writeFileSync(file, body);
  return file;
}

const [dir, ...specs] = process.argv.slice(2);
if (!dir || specs.length === 0) {
  process.stderr.write("usage: node scripts/npm-fetch.mjs DIR name@version [name@version ...]\n");
  process.exit(2);
}
try {
  for (const spec of specs) process.stdout.write(`${await fetchOne(dir, spec)}\n`);
} catch (e) {
  process.stderr.write(`npm-fetch: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
