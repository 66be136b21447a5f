// FloatingIp through iproute2 `ip addr` and arping: either Debian package
// (iputils-arping or Habets' arping), found and told apart by arping.ts.
import { isIP } from "node:net";
import type { ParsedConfig } from "../config/schema.js";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { CommandResult, CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { announceArgv, announced, duplicateArgv, duplicateKillMs, readDuplicate, type ArpingLocator } from "./arping.js";
import type { GarpSender } from "./garp.js";
import type { FloatingIp } from "./port.js";

export type VipConfig = NonNullable<ParsedConfig["vip"]>;

const IP_TIMEOUT_MS = 5_000;
// One `arping -c 1` sends its packet at once, then waits a 1 s interval before exiting.
const ARPING_PACKET_TIMEOUT_MS = 3_000;
/** Between the packets of one announcement series (arping's own interval). */
const ANNOUNCE_SPACING_MS = 1_000;
/** understudy-garp answers in well under a millisecond; past this it is killed and arping used. */
const GARP_TIMEOUT_MS = 1_000;

export interface VipAddress {
  readonly ip: string; // canonical text, as `ip -j` prints it
  readonly prefix: number;
  readonly family: 4 | 6;
}

/** Parse "198.18.0.100/24" or "2001:db8::100/64"; the config schema has already validated it. */
export function parseVipAddress(cidr: string): VipAddress {
  const [addr = "", prefixText = ""] = cidr.split("/");
  const family = isIP(addr);
  const prefix = Number(prefixText);
  if ((family !== 4 && family !== 6) || !/^\d+$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
    throw new TypeError(`not an address with a prefix length: ${cidr}`);
  }
  return { ip: canonicalIp(addr), prefix, family };
}

/** `ip -j` prints IPv6 in RFC 5952 form; the URL parser applies the same form to config text. */
export function canonicalIp(addr: string): string {
  if (isIP(addr) !== 6) return addr;
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

/**
 * Prefix lengths with which the interface holds this address (usually zero or
 * one). Any prefix counts as held: a copy added by hand as /32 still makes this
 * host answer ARP for it. Throws TypeError on JSON that iproute2 would not print.
 */
export function heldPrefixes(ipJson: string, vip: VipAddress): number[] {
  const links: unknown = JSON.parse(ipJson);
  if (!Array.isArray(links)) throw new TypeError("expected a JSON array of links");
  const family = vip.family === 4 ? "inet" : "inet6";
  const prefixes: number[] = [];
  for (const link of links) {
    const infos: unknown = (link as { addr_info?: unknown } | null)?.addr_info;
    if (!Array.isArray(infos)) continue;
    for (const info of infos as ({ family?: unknown; local?: unknown; prefixlen?: unknown } | null)[]) {
      // some iproute2 versions print `{}` for addresses a filter left out
      if (info?.family !== family || typeof info.local !== "string" || typeof info.prefixlen !== "number") continue;
      if (canonicalIp(info.local) === vip.ip) prefixes.push(info.prefixlen);
    }
  }
  return prefixes;
}

// Kernels with extended ACKs say "Address already assigned" / "Address not found";
// older ones let iproute2 print strerror (EEXIST / EADDRNOTAVAIL).
const ALREADY_THERE = /File exists|already assigned/i;
const NOT_THERE = /Cannot assign requested address|Address not found/i;

export class IpFloatingIp implements FloatingIp {
  readonly address: string;
  private readonly vip: VipAddress;
  /** Bumped by remove(): an announcement loop started earlier sends nothing more. */
  private generation = 0;
  private announcing: { generation: number; promise: Promise<void> } | undefined;
  /** When the last packet left through understudy-garp (the next one waits out the spacing); null after arping. */
  private lastViaGarpMs: number | null = null;
  /** The last announcement through understudy-garp failed (logged once until one succeeds). */
  private garpFailing = false;

  constructor(
    private readonly config: VipConfig,
    private readonly runner: CommandRunner,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly arping: ArpingLocator,
    /** The resident gratuitous-ARP sender; without one, every packet is an `arping` run. */
    private readonly garp?: GarpSender,
  ) {
    this.vip = parseVipAddress(config.address);
    this.address = `${this.vip.ip}/${this.vip.prefix}`;
  }

  async isHeld(): Promise<boolean> {
    return (await this.observe()).length > 0;
  }

  async add(options: { skipDuplicateCheck?: boolean; notHeld?: boolean } = {}): Promise<void> {
    const started = this.clock.monotonicMs();
    if (!options.notHeld && (await this.isHeld())) {
      this.announceInBackground();
      return;
    }
    if (this.config.duplicate_check && !options.skipDuplicateCheck) await this.checkDuplicate();
    const argv = [...this.ipCmd(), "addr", "add", this.address, "dev", this.config.interface, ...this.nodad()];
    const r = await this.run(argv, IP_TIMEOUT_MS, "US_E_VIP_ADD");
    // Lost a race with another add (ours, or someone's by hand): the address is here, which is what we want.
    if (r.code !== 0 && !ALREADY_THERE.test(r.stderr)) {
      throw new UnderstudyError("US_E_VIP_ADD", { ...this.where(), cause: oneLine(r) });
    }
    this.announceInBackground();
    this.logger.info({ vip: this.address, interface: this.config.interface, ms: Math.round(this.clock.monotonicMs() - started) }, "floating IP added");
  }

  async remove(): Promise<void> {
    this.generation++; // stop any announcement loop first: after failover it would pull traffic back here
    const r = await this.del(this.vip.prefix);
    if (r.code === 0) {
      this.logger.info({ vip: this.address, interface: this.config.interface }, "floating IP removed");
      return;
    }
    // "Not found" may mean gone, or held with another prefix (added by hand): the kernel matches both.
    for (const prefix of await this.observe()) {
      const again = await this.del(prefix);
      if (again.code !== 0 && !NOT_THERE.test(again.stderr)) {
        throw new UnderstudyError("US_E_VIP_DEL", { ...this.where(), cause: oneLine(again) });
      }
      this.logger.warn({ vip: this.address, prefix }, "floating IP was held with another prefix; removed it");
    }
  }

  /**
   * Gratuitous ARP: an ARP request with sender = target = VIP (the RFC 5227
   * announcement, what `arping -U` sends), from the resident understudy-garp
   * when the agent has one (garp.ts), else one `arping -U` run per packet. Linux neighbours update an existing entry from -U and -A alike
   * (neither creates one while arp_accept=0), routers and Windows honour -U; packets go
   * one at a time, a second apart, so remove() can stop the series between them.
   * IPv6: Debian ships no tool that sends an unsolicited neighbour advertisement
   * (ndisc6 only solicits), so this is a no-op and neighbours relearn through NUD.
   * Concurrent calls share one series.
   */
  announce(): Promise<void> {
    if (this.vip.family === 6 || this.config.arp_count === 0) return Promise.resolve();
    const generation = this.generation;
    if (this.announcing?.generation === generation) return this.announcing.promise;
    const promise: Promise<void> = this.sendAnnouncements(generation).finally(() => {
      if (this.announcing?.promise === promise) this.announcing = undefined;
    });
    this.announcing = { generation, promise };
    return promise;
  }

  private async sendAnnouncements(generation: number): Promise<void> {
    for (let i = 0; i < this.config.arp_count && generation === this.generation; i++) {
      if (i > 0 && this.lastViaGarpMs !== null) {
        // understudy-garp returns at once; arping spaced its packets by its own 1 s wait.
        const wait = ANNOUNCE_SPACING_MS - (this.clock.monotonicMs() - this.lastViaGarpMs);
        if (wait > 0) await this.clock.sleep(wait);
        if (generation !== this.generation) return;
      }
      await this.announceOnce();
    }
  }

  /** One packet: through the resident sender when there is one, else (or when it fails) one `arping` run. */
  private async announceOnce(): Promise<void> {
    this.lastViaGarpMs = null;
    if (this.garp) {
      const started = this.clock.monotonicMs();
      try {
        await this.garp.announce(this.config.interface, this.vip.ip, GARP_TIMEOUT_MS);
        this.lastViaGarpMs = started;
        if (this.garpFailing) this.logger.info({ vip: this.address }, "understudy-garp announces again");
        this.garpFailing = false;
        return;
      } catch (e) {
        // Once per change, not per packet: a sender that cannot run would log every announce_interval.
        if (!this.garpFailing) this.logger.warn({ vip: this.address, err: describeError(e) }, "understudy-garp could not announce; using arping");
        this.garpFailing = true;
      }
    }
    const tool = await this.arping.locate();
    const argv = announceArgv(tool, this.config.interface, this.vip.ip);
    const r = await this.run(argv, ARPING_PACKET_TIMEOUT_MS, "US_E_VIP_ANNOUNCE");
    if (!announced(tool, r)) throw new UnderstudyError("US_E_VIP_ANNOUNCE", { ...this.where(), cause: oneLine(r) });
  }

  /** Start announcing without waiting for the series: the first packet leaves at once. */
  private announceInBackground(): void {
    this.announce().catch((e: unknown) => {
      this.logger.warn({ vip: this.address, err: describeError(e) }, "gratuitous ARP failed; the reconciler will announce again");
    });
  }

  /**
   * Ask who has the VIP (arping.ts builds the argv for the flavour found). A reply
   * naming a MAC: a duplicate. A failing check refuses the add (US_E_VIP_CHECK; a
   * missing arping: US_E_TOOL_MISSING). arping is killed at duplicate_check_timeout:
   * no reply by then is the same answer as no reply by its own deadline. A
   * neighbour's kernel replies in under a millisecond.
   */
  private async checkDuplicate(): Promise<void> {
    if (this.vip.family === 6) {
      this.logger.warn({ vip: this.address }, "no duplicate-address check for IPv6 (arping is IPv4-only)");
      return;
    }
    const tool = await this.arping.locate();
    const timeoutMs = this.config.duplicate_check_timeout;
    const argv = duplicateArgv(tool, this.config.interface, this.vip.ip, timeoutMs);
    let r: CommandResult;
    try {
      r = await this.runner.run(argv, { timeoutMs: duplicateKillMs(tool, timeoutMs) });
    } catch (e) {
      if (isUnderstudyError(e, "US_E_COMMAND_TIMEOUT")) return;
      throw new UnderstudyError("US_E_VIP_CHECK", { ...this.where(), cause: describeError(e) }, { cause: e });
    }
    const answer = readDuplicate(tool, r);
    if (answer.kind === "free") return;
    if (answer.kind === "taken") {
      this.logger.warn({ vip: this.address, mac: answer.mac }, "another host answers ARP for the floating IP; not adding it");
      throw new UnderstudyError("US_E_VIP_DUPLICATE", { address: this.address, mac: answer.mac });
    }
    throw new UnderstudyError("US_E_VIP_CHECK", { ...this.where(), cause: oneLine(r) });
  }

  private async observe(): Promise<number[]> {
    const argv = ["ip", "-j", "addr", "show", "dev", this.config.interface];
    const r = await this.run(argv, IP_TIMEOUT_MS, "US_E_COMMAND_FAILED");
    const fail = (why: string) => new UnderstudyError("US_E_COMMAND_FAILED", { argv0: argv.join(" "), code: r.code ?? `signal ${r.signal}`, stderr: why });
    if (r.code !== 0) throw fail(r.stderr.trim().slice(0, 500));
    try {
      return heldPrefixes(r.stdout, this.vip);
    } catch (e) {
      throw fail(`output is not iproute2 JSON: ${describeError(e)}`);
    }
  }

  private async del(prefix: number): Promise<CommandResult> {
    const argv = [...this.ipCmd(), "addr", "del", `${this.vip.ip}/${prefix}`, "dev", this.config.interface];
    const r = await this.run(argv, IP_TIMEOUT_MS, "US_E_VIP_DEL");
    if (r.code !== 0 && !NOT_THERE.test(r.stderr)) {
      throw new UnderstudyError("US_E_VIP_DEL", { ...this.where(), cause: oneLine(r) });
    }
    return r;
  }

  /** Run, turning a spawn failure or timeout into the operation's own error code. */
  private async run(argv: string[], timeoutMs: number, code: "US_E_VIP_ADD" | "US_E_VIP_DEL" | "US_E_VIP_ANNOUNCE" | "US_E_COMMAND_FAILED"): Promise<CommandResult> {
    try {
      return await this.runner.run(argv, { timeoutMs });
    } catch (e) {
      if (code === "US_E_COMMAND_FAILED") throw e;
      throw new UnderstudyError(code, { ...this.where(), cause: describeError(e) }, { cause: e });
    }
  }

  private ipCmd(): string[] {
    return this.vip.family === 6 ? ["ip", "-6"] : ["ip"];
  }
  /** IPv6 DAD would leave the address "tentative" (unusable) for a second after takeover. */
  private nodad(): string[] {
    return this.vip.family === 6 ? ["nodad"] : [];
  }
  private where(): { address: string; interface: string } {
    return { address: this.address, interface: this.config.interface };
  }
}

function oneLine(r: CommandResult): string {
  const text = (r.stderr.trim() || r.stdout.trim()).split("\n")[0] ?? "";
  return `exit ${r.code ?? r.signal}: ${text}`.slice(0, 300);
}
