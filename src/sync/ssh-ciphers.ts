// Which ciphers the sync transport's ssh prefers (sync.ssh.ciphers; docs/configuration.md). Pure:
// the CPU's AES support is read by platform/cpu-features.ts and passed in.
//
// Every byte of config sync, data shipping and rejoin pulls crosses ssh twice (the primary's ssh,
// the standby's sshd), and on a data stream that is most of the work: 600 MiB over loopback cost
// ssh + sshd 2.97 CPU-s with OpenSSH's first choice, chacha20-poly1305, against 2.43 with
// aes128-gcm on a CPU with AES instructions (docs/benchmarks.md). Without them software AES is
// slower than ChaCha20, which is why OpenSSH puts ChaCha20 first; `auto` decides per host.
// `^` puts the named ciphers at the head of OpenSSH's default set, so a peer that allows only
// others still connects.

/** What `auto` asks for on a CPU with AES instructions. */
export const AES_FIRST = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com";

export interface CipherChoice {
  /** The value of ssh's `-o Ciphers=`, or null: OpenSSH's default order. */
  readonly ciphers: string | null;
  readonly reason: string;
}

/**
 * The Ciphers option for the setting. `cpuAes`: whether the CPU advertises AES instructions
 * (null: unknown, /proc/cpuinfo unreadable), with `cpuProblem` saying why it is unknown.
 */
export function chooseSshCiphers(setting: string, cpuAes: boolean | null, cpuProblem?: string): CipherChoice {
  if (setting === "default") return { ciphers: null, reason: "ssh ciphers: OpenSSH's default order (sync.ssh.ciphers default)" };
  if (setting !== "auto") return { ciphers: setting, reason: `ssh ciphers: ${setting} (sync.ssh.ciphers)` };
  if (cpuAes === true) return { ciphers: AES_FIRST, reason: "ssh ciphers: AES-GCM first, the CPU has AES instructions (sync.ssh.ciphers auto)" };
  if (cpuAes === false) return { ciphers: null, reason: "ssh ciphers: OpenSSH's default order (ChaCha20 first), the CPU has no AES instructions (sync.ssh.ciphers auto)" };
  return { ciphers: null, reason: `ssh ciphers: OpenSSH's default order, the CPU's AES support is unknown${cpuProblem ? ` (${cpuProblem})` : ""} (sync.ssh.ciphers auto)` };
}
