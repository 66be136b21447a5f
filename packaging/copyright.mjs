// Writes debian/copyright (DEP-5) for the .deb: understudy itself, the
// bundled Node.js (its LICENSE, which lists the licences of the libraries
// built into the binary, ships next to it), and one paragraph per production
// npm dependency with the licence its package.json declares.
// Usage: node packaging/copyright.mjs NODE_MODULES_DIR
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const [modulesDir] = process.argv.slice(2);
const packages = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".")) continue;
    const path = join(dir, name);
    if (name.startsWith("@")) {
      walk(path);
      continue;
    }
    const manifest = join(path, "package.json");
    if (existsSync(manifest)) {
      const p = JSON.parse(readFileSync(manifest, "utf8"));
      packages.push({
        rel: path.slice(modulesDir.length + 1),
        name: p.name ?? name,
        version: p.version ?? "?",
        license: typeof p.license === "string" ? p.license : (p.license?.type ?? "see-package"),
      });
    }
    if (existsSync(join(path, "node_modules"))) walk(join(path, "node_modules"));
  }
};
walk(modulesDir);

const out = [
  "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
  "Upstream-Name: understudy",
  "Comment: The npm dependencies under usr/lib/understudy/node_modules carry their",
  " own licence files; the paragraphs below name each one's declared licence.",
  "",
  "Files: *",
  `Copyright: ${new Date((Number(process.env.SOURCE_DATE_EPOCH) || Date.now() / 1000) * 1000).getUTCFullYear()} understudy contributors`,
  "License: Apache-2.0",
  " On Debian systems the full text of the Apache License 2.0 is in",
  " /usr/share/common-licenses/Apache-2.0.",
  "",
  "Files: usr/lib/understudy/node/*",
  "Copyright: Node.js contributors and the authors of the libraries it bundles",
  "License: Node.js",
  " Node.js is MIT-licensed; the libraries built into the binary (V8, libuv,",
  " OpenSSL, zlib, ICU, ...) carry their own licences. All are listed, in full,",
  " in /usr/lib/understudy/node/LICENSE, installed with the binary.",
];
const seen = new Set();
for (const p of packages) {
  out.push("", `Files: usr/lib/understudy/node_modules/${p.rel}/*`, `Copyright: the authors of ${p.name} ${p.version}`, `License: ${p.license}`);
  if (!seen.has(p.license)) {
    seen.add(p.license);
    out.push(` See the licence file in usr/lib/understudy/node_modules/${p.rel}/.`);
  }
}
process.stdout.write(out.join("\n") + "\n");
