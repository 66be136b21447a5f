// What the serving side lets a sync key take (issue 11, item 5): the rsync daemon
// enforces each root's include/exclude, and max_mode covers directories and
// special bits. The daemon case runs the real rsync binary over a local pipe.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, test } from "node:test";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { checkModes } from "../../../src/sync/apply.js";
import type { Manifest } from "../../../src/sync/manifest.js";
import { daemonFilter, renderRsyncdConf } from "../../../src/sync/rsyncd.js";

const dir = mkdtempSync(join(tmpdir(), "us-serve-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("daemonFilter: excludes first, includes cover their subtree, then every directory and nothing else", () => {
  assert.equal(daemonFilter({ name: "r", path: "/x" }), null);
  assert.equal(daemonFilter({ name: "r", path: "/x", exclude: ["*.db", "cache/", "logs/old"] }), "- *.db - cache - /logs/old");
  assert.equal(
    daemonFilter({ name: "r", path: "/x", include: ["ssh_host_*", "conf.d/*.conf"], exclude: ["*.bak"] }),
    "- *.bak + ssh_host_* + ssh_host_*/*** + /conf.d/*.conf + /conf.d/*.conf/*** + */ - *",
  );
  assert.throws(
    () => daemonFilter({ name: "r", path: "/x", exclude: ["my file"] }),
    (e) => e instanceof UnderstudyError && e.code === "US_E_SYNC_CONFIG",
  );
});

function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, n.name);
      out.push(relative(root, p) + (n.isDirectory() ? "/" : ""));
      if (n.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

test("the real rsync daemon refuses excluded and not-included files, even when the client asks for them by name", () => {
  const src = join(dir, "etc-sftpgo");
  mkdirSync(join(src, "certs"), { recursive: true });
  mkdirSync(join(src, "keys"), { recursive: true });
  for (const f of ["sftpgo.json", "sftpgo.db", "certs/server.crt", "keys/id_ed25519", "keys/notes.txt"]) writeFileSync(join(src, f), f);
  const conf = join(dir, "rsyncd.conf");
  writeFileSync(conf, renderRsyncdConf([{ name: "sftpgo", path: src, include: ["*.json", "certs", "keys/id_*"], exclude: ["*.db"] }]));
  // rsync starts this as its "remote shell": it ignores the host and runs the daemon the forced command would.
  const rsh = join(dir, "rsh");
  writeFileSync(rsh, `#!/bin/sh\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  const pull = (what: string, dest: string) => spawnSync("rsync", ["-a", "-e", rsh, `local::${what}`, `${dest}/`], { encoding: "utf8", timeout: 30_000 });

  const whole = join(dir, "whole");
  mkdirSync(whole);
  const r = pull("sftpgo/", whole);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(tree(whole), ["certs/", "certs/server.crt", "keys/", "keys/id_ed25519", "sftpgo.json"]);

  // Asking for the excluded files by name gets nothing (the daemon treats them as non-existent).
  for (const name of ["sftpgo.db", "keys/notes.txt"]) {
    const dest = join(dir, `byname-${name.replace("/", "_")}`);
    mkdirSync(dest);
    const b = pull(`sftpgo/${name}`, dest);
    assert.notEqual(b.status, 0, `${name} was served: ${b.stdout}`);
    assert.deepEqual(readdirSync(dest), [], `${name} did not arrive`);
  }
});

test("a symlink in a root that points out of it cannot be used to read an outside file through the daemon", (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("the daemon chroots only as root (the sync key's account in the role and the lab)");
    return;
  }
  const base = join(dir, "escape");
  const src = join(base, "root");
  mkdirSync(join(base, "outside"), { recursive: true });
  mkdirSync(join(src, "sub"), { recursive: true });
  writeFileSync(join(base, "outside", "secret"), "outside the root\n");
  writeFileSync(join(src, "sub", "file"), "inside\n");
  symlinkSync(join(base, "outside"), join(src, "out"));
  symlinkSync("../outside/secret", join(src, "rel"));
  symlinkSync("sub", join(src, "in"));
  // rsync >= 3.5 also refuses out-of-module links by itself ("insecure links = false"); turn that off
  // so the test shows what the chroot alone stops, as on Debian 12's original rsync 3.2.7.
  const version = /version (\d+)\.(\d+)/.exec(spawnSync("rsync", ["--version"], { encoding: "utf8" }).stdout);
  const legacy = version && (Number(version[1]) > 3 || (Number(version[1]) === 3 && Number(version[2]) >= 5)) ? "    insecure links = true\n" : "";
  const conf = join(base, "rsyncd.conf");
  writeFileSync(conf, `${renderRsyncdConf([{ name: "r", path: src }])}`.replace("    path = ", `${legacy}    path = `));
  const rsh = join(base, "rsh");
  writeFileSync(rsh, `#!/bin/sh\nexec /usr/bin/rsync --server --daemon --config=${conf} .\n`);
  chmodSync(rsh, 0o755);
  let n = 0;
  const pull = (what: string) => {
    const dest = join(base, `d${++n}`);
    mkdirSync(dest);
    const r = spawnSync("rsync", ["-a", "-e", rsh, `local::${what}`, `${dest}/`], { encoding: "utf8", timeout: 30_000 });
    return { r, dest };
  };
  // The whole root: every symlink arrives as a symlink with its value unchanged; nothing is followed.
  const whole = pull("r/");
  assert.equal(whole.r.status, 0, whole.r.stderr);
  assert.deepEqual(tree(whole.dest), ["in", "out", "rel", "sub/", "sub/file"]);
  assert.equal(readlinkSync(join(whole.dest, "out")), join(base, "outside"));
  assert.equal(readlinkSync(join(whole.dest, "rel")), "../outside/secret");
  assert.equal(readlinkSync(join(whole.dest, "in")), "sub");
  // Through the links by name: nothing from outside arrives.
  for (const what of ["r/out/secret", "r/out/", "r/rel/", "r/out/../outside/secret"]) {
    const p = pull(what);
    assert.deepEqual(tree(p.dest), [], `${what} served: ${tree(p.dest).join(", ")}`);
  }
  // A link inside the root still works by name.
  const inside = pull("r/in/file");
  assert.equal(inside.r.status, 0, inside.r.stderr);
  assert.deepEqual(tree(inside.dest), ["file"]);
});

const manifest = (entries: { path: string; type: "file" | "dir" | "symlink"; mode: number }[]): Manifest =>
  ({ root: "r", digest: "x", entries: entries.map((e) => ({ ...e, uid: 0, gid: 0, size: 0, mtimeMs: 0 })) }) as unknown as Manifest;
const root = { name: "r", path: "/x", include: [], exclude: [], maxFileBytes: 1 };

test("max_mode: directories are checked too (x allowed where r is), and special bits never pass", () => {
  const ok = (entries: Parameters<typeof manifest>[0], max: number) => checkModes(root, manifest(entries), max);
  const refused = (entries: Parameters<typeof manifest>[0], max: number, path: string) =>
    assert.throws(
      () => ok(entries, max),
      (e) => e instanceof UnderstudyError && e.code === "US_E_SYNC_MODE" && e.details.path === path,
    );
  ok(
    [
      { path: "d", type: "dir", mode: 0o755 },
      { path: "d/k", type: "file", mode: 0o644 },
    ],
    0o644,
  );
  ok(
    [
      { path: "d", type: "dir", mode: 0o700 },
      { path: "d/k", type: "file", mode: 0o600 },
    ],
    0o600,
  );
  ok([{ path: "l", type: "symlink", mode: 0o777 }], 0o644);
  refused([{ path: "d", type: "dir", mode: 0o777 }], 0o775, "d");
  refused([{ path: "d", type: "dir", mode: 0o2775 }], 0o775, "d");
  refused([{ path: "t", type: "dir", mode: 0o1775 }], 0o775, "t");
  refused([{ path: "f", type: "file", mode: 0o4755 }], 0o777, "f");
  refused([{ path: "f", type: "file", mode: 0o755 }], 0o644, "f");
});
