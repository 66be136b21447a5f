// The two Debian arping packages, which conflict (only one is ever installed)
// and take different flags:
//   iputils-arping  /usr/bin/arping   `-I IFACE`, `-D` duplicate address detection
//                   (exit 0: no reply), `-U` unsolicited ARP, whole seconds for -w.
//   arping (Habets) /usr/sbin/arping  `-i IFACE`, `-0` source 0.0.0.0 (a DAD probe),
//                   `-S IP` source address, `-U` broadcast; exit 0 when a reply
//                   came, 1 when none came (also for -U, which nobody answers)
//                   and 1 on errors, told apart by its statistics line.
// The flavour is found by asking the binary (`arping -V`), never from its path.
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { CommandResult, CommandRunner } from "../platform/command.js";
import { findProgram, notExecutable } from "../platform/programs.js";
import { stampOfSync } from "../platform/reloading-file.js";

export type ArpingFlavour = "iputils" | "habets";

export interface ArpingTool {
  readonly path: string;
  readonly flavour: ArpingFlavour;
}

/** Which Debian package provides each flavour. */
export const ARPING_PACKAGES: Readonly<Record<ArpingFlavour, string>> = { iputils: "iputils-arping", habets: "arping" };
const EITHER_PACKAGE = "iputils-arping (or arping)";

/** `arping -V`: iputils prints "arping from iputils 20221126"; Habets' prints its usage, "ARPing 2.23, by Thomas Habets". */
export const FLAVOUR_PROBE = ["-V"] as const;
const PROBE_TIMEOUT_MS = 3_000;

export function flavourOf(r: CommandResult): ArpingFlavour | null {
  const text = `${r.stdout}\n${r.stderr}`;
  if (/\biputils\b/i.test(text)) return "iputils";
  if (/Habets/i.test(text)) return "habets";
  return null;
}

/** One gratuitous ARP (RFC 5227 announcement: sender = target = VIP), then about 1 s until arping exits. */
export function announceArgv(a: ArpingTool, iface: string, ip: string): string[] {
  // Habets' -U alone keeps the interface's own address as sender: neighbours would not update the VIP's entry.
  return a.flavour === "iputils" ? [a.path, "-U", "-c", "1", "-I", iface, ip] : [a.path, "-U", "-S", ip, "-c", "1", "-i", iface, ip];
}

/** Whether an announcement run sent its packet. */
export function announced(a: ArpingTool, r: CommandResult): boolean {
  if (r.code === 0) return true;
  return a.flavour === "habets" && r.code === 1 && /\b1 packets transmitted\b/.test(r.stdout);
}

/**
 * Who answers ARP for `ip`, asked from 0.0.0.0 so no neighbour learns anything.
 * iputils rejects a fractional -w, so whole seconds (the caller kills it at its own
 * timeout); Habets' takes fractions. Habets' -d (exit 1 on answers from two MACs) is not
 * what is needed: any answer at all means another host holds the address.
 */
export function duplicateArgv(a: ArpingTool, iface: string, ip: string, timeoutMs: number): string[] {
  if (a.flavour === "iputils") {
    const s = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    return [a.path, "-D", "-c", s, "-w", s, "-I", iface, ip];
  }
  return [a.path, "-0", "-C", "1", "-c", "1", "-w", String(Math.max(0.05, timeoutMs / 1000)), "-i", iface, ip];
}

/**
 * When the caller kills the duplicate check (no reply by then counts as no reply). iputils
 * starts in milliseconds and would wait whole seconds: killed at the timeout. Habets' opens a
 * pcap handle first (100-400 ms on a busy host, measured) and keeps its own fractional -w:
 * killed only if it overstays that by a second, so its probe is always sent.
 */
export function duplicateKillMs(a: ArpingTool, timeoutMs: number): number {
  return a.flavour === "iputils" ? timeoutMs : timeoutMs + 1000;
}

export type DuplicateAnswer = { readonly kind: "free" } | { readonly kind: "taken"; readonly mac: string } | { readonly kind: "error" };

const IPUTILS_REPLY = /reply from \S+ \[([0-9A-Fa-f:]{17})\]/;
const HABETS_REPLY = /bytes from ([0-9A-Fa-f:]{17}) \(/;

export function readDuplicate(a: ArpingTool, r: CommandResult): DuplicateAnswer {
  if (a.flavour === "iputils") {
    if (r.code === 0) return { kind: "free" };
    const mac = IPUTILS_REPLY.exec(r.stdout)?.[1];
    // exit 1 alone is a usage error, 2 a socket error
    return r.code === 1 && mac !== undefined ? { kind: "taken", mac: mac.toLowerCase() } : { kind: "error" };
  }
  const mac = HABETS_REPLY.exec(r.stdout)?.[1];
  if (r.code === 0 && mac !== undefined) return { kind: "taken", mac: mac.toLowerCase() };
  if (r.code === 1 && /\b0 packets received\b/.test(r.stdout)) return { kind: "free" };
  return { kind: "error" };
}

/** Finds arping and its flavour; remembers a success, retries a failure (the package may be installed meanwhile). */
export interface ArpingLocator {
  locate(): Promise<ArpingTool>;
}

/** `vip.arping` when set (checked, not trusted), else `arping` on PATH, /usr/sbin or /usr/bin. */
export class ProbingArpingLocator implements ArpingLocator {
  private found: ArpingTool | undefined;
  /** The found file's stamp (reloading-file.ts: device, inode, size, mtime, ctime): another binary at the same path is probed again. */
  private foundIdentity: string | undefined;

  constructor(
    private readonly runner: CommandRunner,
    private readonly configured: string | undefined,
    private readonly pathEnv: string | undefined = process.env.PATH,
  ) {}

  async locate(): Promise<ArpingTool> {
    // Cheap re-check: swapping one arping package for the other moves the binary; replacing it in place changes its identity.
    if (this.found && notExecutable(this.found.path) === null && stampOfSync([this.found.path]) === this.foundIdentity) return this.found;
    this.found = undefined;
    const setting = this.configured !== undefined ? "vip.arping" : "vip (duplicate check, gratuitous ARP)";
    const missing = (problem: string, program: string) => new UnderstudyError("US_E_TOOL_MISSING", { program, setting, problem, package: EITHER_PACKAGE });
    const file = this.configured ?? findProgram("arping", this.pathEnv);
    if (file === null) throw missing("is not on PATH, /usr/sbin or /usr/bin", "arping");
    const bad = notExecutable(file);
    if (bad) throw missing(bad, file);
    // Taken before the probe: a binary replaced while it runs is probed again next time.
    const identity = stampOfSync([file]);
    let r: CommandResult;
    try {
      r = await this.runner.run([file, ...FLAVOUR_PROBE], { timeoutMs: PROBE_TIMEOUT_MS });
    } catch (e) {
      throw missing(`cannot be run: ${describeError(e)}`, file);
    }
    const flavour = flavourOf(r);
    if (flavour === null) {
      const said = (r.stdout.trim() || r.stderr.trim()).split("\n")[0]?.slice(0, 120) ?? "";
      throw new UnderstudyError("US_E_TOOL_FLAVOUR", { program: file, said: JSON.stringify(said), known: "iputils-arping, arping (Habets)" });
    }
    this.found = { path: file, flavour };
    this.foundIdentity = identity;
    return this.found;
  }
}

/** A known tool, for tests and for callers that never send ARP (keepalived's last-resort remove). */
export function fixedArping(tool: ArpingTool): ArpingLocator {
  return { locate: () => Promise.resolve(tool) };
}

/** For an IpFloatingIp that never sends ARP (duplicate_check false, arp_count 0): fails loudly if it ever does. */
export const UNUSED_ARPING: ArpingLocator = {
  locate: () => Promise.reject(new UnderstudyError("US_E_TOOL_MISSING", { program: "arping", setting: "(none)", problem: "is not used by this backend", package: EITHER_PACKAGE })),
};
