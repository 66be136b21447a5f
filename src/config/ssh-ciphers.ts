// sync.ssh.ciphers values (the schema checks them here; sync/ssh-ciphers.ts turns one into ssh's
// Ciphers option).

/** OpenSSH's cipher names (`ssh -Q cipher`, OpenSSH 9.2). */
export const SSH_CIPHERS: readonly string[] = [
  "3des-cbc",
  "aes128-cbc",
  "aes192-cbc",
  "aes256-cbc",
  "aes128-ctr",
  "aes192-ctr",
  "aes256-ctr",
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
];

/**
 * Why a sync.ssh.ciphers value is refused, or null when it is one of `auto`, `default`, or an
 * OpenSSH Ciphers list (comma-separated known names, optionally after one of `+`, `-`, `^`).
 */
export function cipherSettingProblem(value: string): string | null {
  if (value === "auto" || value === "default") return null;
  const list = /^[+^-]/.test(value) ? value.slice(1) : value;
  if (list === "") return "must be auto, default, or a comma-separated list of OpenSSH cipher names";
  const unknown = list.split(",").filter((c) => !SSH_CIPHERS.includes(c));
  if (unknown.length > 0) return `unknown cipher ${JSON.stringify(unknown[0])} (known: ${SSH_CIPHERS.join(", ")})`;
  return null;
}
