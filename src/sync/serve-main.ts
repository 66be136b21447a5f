#!/usr/bin/env node
// Entry of `understudy sync-serve ROOT...`, the forced command of the sync key.
// Kept free of heavy imports (etcd, fastify, pino): sshd starts it for every
// pull, so its start-up time is part of the sync latency. It can be run
// directly as `node .../sync/serve-main.js ROOT...` for the same reason.
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { constants } from "node:os";
import { pathToFileURL } from "node:url";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { checkServeCommand, type ServeOptions } from "./serve.js";

export interface SyncServeIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stderr: { write(s: string): unknown };
}

/** rsync gets a fixed environment: nothing the client (AcceptEnv) or the login shell set leaks in. */
const RSYNC_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };

/**
 * Check SSH_ORIGINAL_COMMAND against `roots` and run the allowed rsync with
 * stdio inherited (it speaks the rsync protocol over the SSH channel).
 * Resolves to the exit code to use: rsync's own, 1 when refused, 2 for a bad
 * root list (the authorized_keys line itself is wrong).
 */
export async function runSyncServe(roots: readonly string[], io: SyncServeIo, opts: ServeOptions = {}): Promise<number> {
  const rsyncPath = opts.rsyncPath ?? "/usr/bin/rsync";
  let decision;
  try {
    // Checked once without --confine-root so a refusal costs no extra process.
    decision = checkServeCommand(io.env.SSH_ORIGINAL_COMMAND, roots, { rsyncPath, confineRoot: false });
    if (decision.ok && (opts.confineRoot ?? (await supportsConfineRoot(rsyncPath)))) {
      decision = checkServeCommand(io.env.SSH_ORIGINAL_COMMAND, roots, { rsyncPath, confineRoot: true });
    }
  } catch (e) {
    io.stderr.write(`understudy sync-serve: ${describeError(e)}\n`);
    return 2;
  }
  if (!decision.ok) {
    // The client's rsync prints this line first, so the standby's US_E_SYNC_PULL_FAILED carries it.
    io.stderr.write(`understudy sync-serve: ${new UnderstudyError("US_E_SYNC_SERVE_REFUSED", { why: decision.why }).message}\n`);
    return 1;
  }
  const [file, ...args] = decision.argv;
  return new Promise<number>((resolve) => {
    const child = spawn(file!, args, { stdio: "inherit", env: RSYNC_ENV });
    child.on("error", (e) => {
      io.stderr.write(`understudy sync-serve: cannot run ${file}: ${describeError(e)}\n`);
      resolve(1);
    });
    child.on("close", (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
  });
}

/**
 * --confine-root exists only in newer rsync builds, and an older server would
 * reject the option and fail every pull; `rsync --help` costs a few ms.
 */
function supportsConfineRoot(rsyncPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    let out = "";
    const child = spawn(rsyncPath, ["--help"], { stdio: ["ignore", "pipe", "ignore"], env: RSYNC_ENV });
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("error", () => resolve(false));
    child.on("close", () => resolve(out.includes("--confine-root")));
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) || 1;
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  void runSyncServe(process.argv.slice(2), { env: process.env, stderr: process.stderr }).then((code) => {
    process.exitCode = code;
  });
}
