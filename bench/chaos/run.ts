/**
 * Long chaos run (see test/chaos/run.ts): a seeded schedule of faults over the
 * namespace lab while SFTP uploads, config edits and operator switchovers go
 * on; the independent checker reports violations by kind and unavailability
 * per fault kind. With --keepalived, the same schedule runs against the
 * keepalived peer (VRRP moves the VIP, sshd warm on every node), checked by
 * the same checker.
 *
 *   npm run bench:chaos                              # 200 faults, seed 1, then the keepalived comparison
 *   npm run bench:chaos -- --faults 30 --seed 7      # shorter
 *   npm run bench:chaos -- --only understudy         # or --only keepalived / --keepalived
 *   npm run bench:chaos -- --kinds agent_kill9,packet_loss --faults 10
 *   npm run bench:chaos -- --only understudy --failsafe on   # agents with election.failsafe: on
 *
 * Writes bench/chaos/results-latest.json (or --json FILE). Needs root, the lab
 * packages and `npm run build`.
 */
import { forEachArg } from "../failover/lib.js";
import { cpus } from "node:os";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runChaos, type ChaosResult } from "../../test/chaos/run.js";
import { FAULT_KINDS, type FaultKind } from "../../test/chaos/faults.js";
import { failsafeFaults, failsafeTable } from "./failsafe-figures.js";

interface Options {
  faults: number;
  seed: number;
  only: "both" | "understudy" | "keepalived";
  kinds?: FaultKind[];
  json: string;
  recording?: string;
  holdScale: number;
  editTarget: "api" | "leader-key";
  /** understudy's `election.failsafe` (the keepalived peer has no such thing). */
  failsafe: "on" | "off";
}

function parseArgs(argv: string[]): Options {
  const o: Options = { faults: 200, seed: 1, only: "both", json: join(import.meta.dirname, "results-latest.json"), holdScale: 1, editTarget: "api", failsafe: "off" };
  forEachArg(argv, (a, next) => {
    if (a === "--faults") o.faults = Number(next());
    else if (a === "--seed") o.seed = Number(next());
    else if (a === "--keepalived") o.only = "keepalived";
    else if (a === "--only") o.only = next() as Options["only"];
    else if (a === "--kinds") o.kinds = next().split(",") as FaultKind[];
    else if (a === "--json") o.json = next();
    else if (a === "--recording") o.recording = next();
    else if (a === "--hold-scale") o.holdScale = Number(next());
    else if (a === "--edit-target") o.editTarget = next() as Options["editTarget"];
    else if (a === "--failsafe") o.failsafe = next() as Options["failsafe"];
    else if (a === "--help" || a === "-h") {
      console.log(
        "usage: bench/chaos/run.ts [--faults N] [--seed S] [--keepalived | --only understudy|keepalived|both] [--kinds k1,k2] [--hold-scale X] [--edit-target api|leader-key] [--failsafe on|off] [--json FILE] [--recording PREFIX]",
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (!Number.isInteger(o.faults) || o.faults < 1 || o.faults > 5000) throw new Error("--faults takes 1..5000");
  if (!Number.isInteger(o.seed)) throw new Error("--seed takes an integer");
  for (const k of o.kinds ?? []) if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind ${k}; known: ${FAULT_KINDS.join(", ")}`);
  if (!["api", "leader-key"].includes(o.editTarget)) throw new Error("--edit-target takes api or leader-key");
  if (!["on", "off"].includes(o.failsafe)) throw new Error("--failsafe takes on or off");
  if (!["both", "understudy", "keepalived"].includes(o.only)) throw new Error("--only takes understudy, keepalived or both");
  return o;
}

function summary(r: ChaosResult) {
  return {
    controller: r.report.controller,
    ...(r.recording.failsafe !== undefined ? { failsafe: r.recording.failsafe ? "on" : "off" } : {}),
    wallSeconds: Math.round(r.wallMs / 1000),
    faultsScheduled: r.schedule.length,
    faultsInjected: r.report.faults.length,
    faultsDropped: r.dropped,
    counts: r.report.counts,
    byFault: r.report.byFault,
    table: r.report.table,
    // The same measures grouped by whether the fault hit the primary, with fences and failovers (bench/chaos/failsafe-figures.ts).
    ...(r.recording.controller === "understudy" ? { failsafeFigures: failsafeTable(failsafeFaults(r.recording)) } : {}),
    uploads: r.report.uploads,
    edits: r.report.edits,
    promotions: r.report.promotions,
    operator: r.report.operator,
    samples: r.report.samples,
    violations: r.report.violations.slice(0, 200),
    faults: r.report.faults,
    notInjected: r.notInjected,
    report: r.text.split("\n"),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const log = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${s}`);
  // With --only, the other controller's figures are kept from the previous file.
  const results: Record<string, unknown> = {};
  if (o.only !== "both" && existsSync(o.json)) {
    try {
      const prev = JSON.parse(readFileSync(o.json, "utf8")) as { results?: Record<string, unknown>; seed?: number; faults?: number; failsafe?: string };
      for (const [k, v] of Object.entries(prev.results ?? {}))
        if (k !== o.only) results[k] = { ...(v as object), keptFromRun: { seed: prev.seed, faults: prev.faults, failsafe: prev.failsafe ?? "off" } };
    } catch {
      /* unreadable: start afresh */
    }
  }
  const write = () =>
    writeFileSync(
      o.json,
      `${JSON.stringify({ date: new Date().toISOString(), seed: o.seed, faults: o.faults, kinds: o.kinds ?? "all", editTarget: o.editTarget, failsafe: o.failsafe, node: process.version, cores: cpus().length, results }, null, 2)}\n`,
    );
  for (const controller of ["understudy", "keepalived"] as const) {
    if (o.only !== "both" && o.only !== controller) continue;
    log(`=== ${controller}${controller === "understudy" ? `, failsafe ${o.failsafe}` : ""}: ${o.faults} faults, seed ${o.seed}`);
    const r = await runChaos({
      seed: o.seed,
      faults: o.faults,
      controller,
      holdScale: o.holdScale,
      editTarget: o.editTarget,
      failsafe: o.failsafe === "on",
      log,
      ...(o.kinds ? { kinds: o.kinds } : {}),
      ...(o.recording ? { recordingFile: `${o.recording}-${controller}.json` } : {}),
    });
    results[controller] = summary(r);
    write();
    console.log(`\n${r.text}\n`);
    console.log("Not injected:");
    for (const [k, why] of Object.entries(r.notInjected)) console.log(`  ${k}: ${why}`);
    console.log("");
  }
  log(`wrote ${o.json}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
