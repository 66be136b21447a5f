/**
 * The lab tests that install the understudy .deb for real leave the machine's
 * package state as they found it: an understudy package installed before is
 * purged first (its /etc/understudy and /var/lib/understudy saved) and put
 * back afterwards from the same .deb; otherwise whatever the test installed is
 * purged. Without that .deb (not in build/ nor apt's cache), the test must
 * skip: it could not put the package back.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './harness/index.js';

const SAVED = ['/etc/understudy', '/var/lib/understudy'];

export function sh(argv: string[], opts: { ok?: boolean; timeoutMs?: number } = {}) {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8', timeout: opts.timeoutMs ?? 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const out = { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (opts.ok !== false && out.code !== 0) throw new Error(`${argv.join(' ')} exited ${out.code}: ${out.stderr}${out.stdout}`);
  return out;
}

/** The installed understudy's version, or null. */
export function installedVersion(): string | null {
  const r = sh(['dpkg-query', '-W', '-f', '${Status}\t${Version}', 'understudy'], { ok: false });
  const [status, version] = r.stdout.split('\t');
  return r.code === 0 && status === 'install ok installed' ? version! : null;
}

/** A .deb on this machine holding exactly `version` (where the set-up or apt left it). */
function findDeb(version: string): string | undefined {
  const file = `understudy_${version.replace(':', '%3a')}_amd64.deb`;
  return [join(REPO, 'build', file), join('/var/cache/apt/archives', file)].find(
    (p) => existsSync(p) && sh(['dpkg-deb', '-f', p, 'Version'], { ok: false }).stdout.trim() === version,
  );
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
  const dir = mkdtempSync(join(tmpdir(), 'understudy-debstate-'));
  const tar = join(dir, 'saved.tar');
  if (before) {
    sh(['tar', '-cpf', tar, '--ignore-failed-read', ...SAVED.filter((p) => existsSync(p))]);
    sh(['dpkg', '--purge', 'understudy']);
  }
  let done = false;
  return {
    restore() {
      if (done) return;
      done = true;
      if (installedVersion() !== null || sh(['dpkg-query', '-W', 'understudy'], { ok: false }).code === 0) sh(['dpkg', '--purge', 'understudy'], { ok: false });
      if (before && deb) {
        sh(['dpkg', '-i', '--force-confdef', '--force-confold', deb], { ok: false });
        for (const p of SAVED) rmSync(p, { recursive: true, force: true });
        if (existsSync(tar)) sh(['tar', '-xpf', tar, '-C', '/'], { ok: false });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
