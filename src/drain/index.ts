import { join } from "node:path";
import type { Config } from "../config/load.js";
import type { CommandRunner } from "../platform/command.js";
import { findProgram } from "../platform/programs.js";
import { CommandDrainGate } from "./command-gate.js";
import { NftDrainGate } from "./nft.js";
import type { SessionCounter, SessionGate } from "./port.js";
import { ProcNetSessions } from "./proc-net.js";

const PROBED_SERVICES = new Set(["ssh", "sftp", "ftp", "ftps", "tcp"]);

/** The ports sessions are counted on: drain.ports, else the ports of the service probes (ssh, sftp, ftp, ftps, tcp). */
export function drainPorts(config: Config): number[] {
  if (config.drain?.ports) return [...new Set(config.drain.ports)];
  return [...new Set(config.probes.flatMap((p) => (PROBED_SERVICES.has(p.type) && p.port !== undefined ? [p.port] : [])))].sort((a, b) => a - b);
}

/** The drain's gate and counter from config, or why this node cannot drain. */
export function createDrain(config: Config, runner: CommandRunner): { gate: SessionGate; counter: SessionCounter } | { unavailable: string } {
  const ports = drainPorts(config);
  if (ports.length === 0) return { unavailable: "no service port to count sessions on (set drain.ports, or add an ssh, ftp or tcp probe with a port)" };
  const d = config.drain;
  const gateKind = d?.gate ?? (d?.stop_accepting ? "command" : "firewall");
  const vip = config.vip && config.vip.backend !== "none" ? config.vip.address.split("/")[0]! : null;
  // With a floating IP, only the sessions through it: those are the ones the move cuts.
  const counter = new ProcNetSessions(ports, undefined, undefined, vip);
  if (gateKind === "command") return { gate: new CommandDrainGate(runner, d!.stop_accepting!, d!.resume_accepting ?? [], join(config.state_dir, "drain-refusing")), counter };
  if (gateKind === "none") return { gate: NO_GATE, counter };
  const nft = findProgram("nft");
  // Said up front (the planner cancels a drained switchover with this reason) rather than on the first drain.
  if (nft === null) return { unavailable: "the firewall gate needs nft, which was not found: install the Debian package nftables, or set drain.gate" };
  return { gate: new NftDrainGate(runner, nft, vip, ports), counter };
}

/** drain.gate none: nothing refuses new sessions; the drain only waits for the count to reach 0. */
const NO_GATE: SessionGate = {
  method: "nothing (drain.gate none)",
  stopAccepting: async () => undefined,
  resumeAccepting: async () => undefined,
  clearLeftover: async () => undefined,
};
