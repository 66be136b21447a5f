/**
 * The lab tests that install the understudy .deb for real leave the machine's
 * package state as they found it: an understudy package installed before is
 * purged first (its /etc/understudy and /var/lib/understudy saved) and put
 * back afterwards from the same .deb; otherwise whatever the test installed is
 * purged. Without that .deb (not in build/ nor apt's cache), the test must
 * skip: it could not put the package back.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REPO } from "./harness/index.js";

const SAVED = ["/etc/understudy", "/var/lib/understudy"];

export function sh(argv: string[], opts: { ok?: boolean; timeoutMs?: number; cwd?: string } = {}) {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 300_000,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  const out = { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  if (opts.ok !== false && out.code !== 0) throw new Error(`${argv.join(" ")} exited ${out.code}: ${out.stderr}${out.stdout}`);
  return out;
}

/** The installed understudy's version, or null. */
export function installedVersion(): string | null {
  const r = sh(["dpkg-query", "-W", "-f", "${Status}\t${Version}", "understudy"], { ok: false });
  const [status, version] = r.stdout.split("\t");
  return r.code === 0 && status === "install ok installed" ? version! : null;
}

/** A .deb on this machine holding exactly `version` (where the set-up or apt left it). */
function findDeb(version: string): string | undefined {
  const file = `understudy_${version.replace(":", "%3a")}_amd64.deb`;
  return [join(REPO, "build", file), join("/var/cache/apt/archives", file)].find((p) => existsSync(p) && sh(["dpkg-deb", "-f", p, "Version"], { ok: false }).stdout.trim() === version);
}

export interface SavedDebState {
  /** Why the test cannot run without losing the installed package, or undefined. */
  skip?: string;
  /** Purge what the test left, reinstall what was there, restore its files. Idempotent. */
  restore(): void;
}

/** Save the package state, then purge an installed understudy so the test starts from none. */
export function saveDebState(): SavedDebState {
  const before = installedVersion();
  const deb = before ? findDeb(before) : undefined;
  if (before && !deb) {
    return { skip: `understudy ${before} is installed and its .deb is not in build/ or apt's cache: the test could not put it back`, restore: () => undefined };
  }
  const dir = mkdtempSync(join(tmpdir(), "understudy-debstate-"));
  const tar = join(dir, "saved.tar");
  if (before) {
    sh(["tar", "-cpf", tar, "--ignore-failed-read", ...SAVED.filter((p) => existsSync(p))]);
    sh(["dpkg", "--purge", "understudy"]);
  }
  let done = false;
  return {
    restore() {
      if (done) return;
      done = true;
      if (installedVersion() !== null || sh(["dpkg-query", "-W", "understudy"], { ok: false }).code === 0) sh(["dpkg", "--purge", "understudy"], { ok: false });
      if (before && deb) {
        sh(["dpkg", "-i", "--force-confdef", "--force-confold", deb], { ok: false });
        for (const p of SAVED) rmSync(p, { recursive: true, force: true });
        if (existsSync(tar)) sh(["tar", "-xpf", tar, "-C", "/"], { ok: false });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * .debs built by the lab tests, kept for the next lab file of the same run: ansible.lab builds
 * this tree's .deb (ansible/build-package.sh, i.e. scripts/build-deb.sh), and package.lab needs
 * the same file as its current version. Keyed by a hash of everything build-deb.sh packs (the
 * install-deb.sh stamp's inputs plus deploy/examples, README.md and the build scripts), so a
 * changed tree never gets an old .deb. Other keys' directories go once a few hours old.
 */
const DEB_CACHE = join(process.env.UNDERSTUDY_BUILD_CACHE ?? "/var/cache/understudy-build", "lab-debs");

function treeKey(): string {
  const r = sh(
    [
      "bash",
      "-c",
      "{ find dist packaging systemd deploy/examples -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum package.json package-lock.json README.md scripts/build-deb.sh ansible/build-package.sh; } | sha256sum | cut -c1-32",
    ],
    { timeoutMs: 60_000, cwd: REPO },
  );
  return r.stdout.trim();
}

function debCacheFile(version: string): string {
  return join(DEB_CACHE, treeKey(), `understudy_${version}_amd64.deb`);
}

/** A .deb of this very tree at `version` that an earlier lab file of this run built, or undefined. */
export function cachedDeb(version: string): string | undefined {
  const f = debCacheFile(version);
  return existsSync(f) && sh(["dpkg-deb", "-f", f, "Version"], { ok: false }).stdout.trim() === version ? f : undefined;
}

/** Keep a freshly built .deb of this tree (best effort: a full disk only costs the next file a build). */
export function rememberDeb(deb: string, version: string): void {
  try {
    const f = debCacheFile(version);
    const dir = dirname(f);
    // Other trees' .debs (other checkouts may share the cache): gone once a few hours old.
    const old = Date.now() - 4 * 3600_000;
    if (existsSync(DEB_CACHE)) {
      for (const d of readdirSync(DEB_CACHE)) if (join(DEB_CACHE, d) !== dir && statSync(join(DEB_CACHE, d)).mtimeMs < old) rmSync(join(DEB_CACHE, d), { recursive: true, force: true });
    }
    mkdirSync(dir, { recursive: true });
    copyFileSync(deb, `${f}.tmp`);
    renameSync(`${f}.tmp`, f);
  } catch {
    /* best effort */
  }
}
