import type { Action, Decision, Observation } from "./observation.js";
import { flapSummary, isDamped } from "./flap.js";

// When a primary that fails its health would hand over, two rules keep it
// where it is (issue 12: a certificate renewal turned into a failover loop):
//  * a failure the target shares: every failing critical probe failed for a
//    shared reason (ProbeData.shared: an expired or untrusted certificate, a
//    broken tls_file target; the TLS files are synced, so the standby has the
//    same ones): a handover cannot cure it;
//  * flap damping (flap.ts): max_moves health-driven handovers within the
//    window, counted cluster-wide from history, until an operator clears it.
// Either way the primary keeps serving as well as it can: it restarts a daemon
// that is not running, and otherwise leaves a running one alone.

export function stayInsteadOfHandover(o: Observation, what: string, heir: string): Decision | null {
  const serve: Action[] = o.daemon.running ? [] : [{ kind: "restart_daemon" }];
  const serving = o.daemon.running ? "keeping the daemon running" : "restarting the daemon";
  const shared = o.daemon.sharedFailure ?? null;
  if (shared !== null) {
    return {
      actions: serve,
      reason: `holding, not handing over: ${what} for a reason ${heir} would share (${shared}); the certificate files are synced, so a handover cannot help; ${serving} — renew or fix the certificate`,
    };
  }
  if (isDamped(o.flap)) {
    const f = o.flap!;
    const why = f.damped?.reason ?? flapSummary(f);
    const record: Action[] = f.damped === null ? [{ kind: "record_flap_damped", reason: `${why}; ${what} on ${o.self.name}, kept as primary instead of handing over to ${heir}` }] : [];
    return {
      actions: [...serve, ...record],
      reason: `holding, not handing over: flap damping (${why}); ${what}; ${serving} until \`understudy flap clear\``,
    };
  }
  return null;
}

/** A healthy primary while damped: no failback either (the cluster stays put), and the reason says why. */
export function dampedNote(o: Observation): string | null {
  if (!isDamped(o.flap)) return null;
  const f = o.flap!;
  return `flap damping holds the cluster (${f.damped?.reason ?? flapSummary(f)}): \`understudy flap clear\` resumes automatic moves`;
}
