import { isIP } from "node:net";
import { UnderstudyError } from "../errors/catalogue.js";
import { checkResult, type CommandRunner } from "../platform/command.js";
import type { SessionGate } from "./port.js";

// The generic gate: an nftables table owned by understudy that resets NEW TCP
// connections (a SYN without ACK, so no conntrack is needed) to the service
// ports on the floating IP. Established sessions pass untouched. Every change
// is one `nft -f -` transaction; "add table, delete table" first makes each
// one idempotent (no error when the table is absent or already there).

export const DRAIN_TABLE = "understudy_drain";
const TIMEOUT_MS = 5000;

/** The nft script that refuses new connections (pure, for tests). `address` null: every non-loopback address. */
export function refuseScript(address: string | null, ports: readonly number[]): string {
  const family = address === null ? null : isIP(address) === 6 ? "ip6" : "ip";
  // Never loopback: the agent's own probes (and local checks) of the VIP keep working while it drains.
  const where = address === null ? 'iif != "lo"' : `iif != "lo" ${family} daddr ${address}`;
  return [
    `table inet ${DRAIN_TABLE}`,
    `delete table inet ${DRAIN_TABLE}`,
    `table inet ${DRAIN_TABLE} {`,
    "  chain input {",
    "    type filter hook input priority -10; policy accept;",
    `    ${where} tcp dport { ${ports.join(", ")} } tcp flags & (syn | ack) == syn reject with tcp reset`,
    "  }",
    "}",
    "",
  ].join("\n");
}

/** The nft script that removes the table, present or not. */
export const REMOVE_SCRIPT = `table inet ${DRAIN_TABLE}\ndelete table inet ${DRAIN_TABLE}\n`;

export class NftDrainGate implements SessionGate {
  readonly method: string;

  /** `nft`: the program's absolute path, or null when it is not installed (stopAccepting then says so). */
  constructor(
    private readonly runner: CommandRunner,
    private readonly nft: string | null,
    private readonly address: string | null,
    private readonly ports: readonly number[],
  ) {
    this.method = `an nftables rule (table inet ${DRAIN_TABLE}) on ${address ?? "every address"} port ${ports.join(", ")}`;
  }

  async stopAccepting(): Promise<void> {
    await this.apply(refuseScript(this.address, this.ports));
  }

  async resumeAccepting(): Promise<void> {
    await this.apply(REMOVE_SCRIPT);
  }

  async clearLeftover(): Promise<void> {
    // Without nft no table can have been left: nothing to do.
    if (this.nft !== null) await this.apply(REMOVE_SCRIPT);
  }

  private async apply(script: string): Promise<void> {
    if (this.nft === null) {
      throw new UnderstudyError("US_E_TOOL_MISSING", { program: "nft", setting: "drain.gate firewall", problem: "was not found", package: "nftables" });
    }
    const argv = [this.nft, "-f", "-"];
    checkResult(argv, await this.runner.run(argv, { input: script, timeoutMs: TIMEOUT_MS }));
  }
}
