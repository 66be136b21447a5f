import ssh2 from "ssh2";

type KeyPair = ReturnType<typeof ssh2.utils.generateKeyPairSync>;

/**
 * An ed25519 pair from ssh2's generator that ssh2 itself can parse. About one pair in 256
 * comes out with a 31-byte public key (a leading zero byte dropped), which parseKey then
 * rejects as "Malformed OpenSSH public key": a flaky test, not a product bug (ssh-keygen's
 * keys are fine). Bounded retry.
 */
export function ed25519KeyPair(options?: Parameters<typeof ssh2.utils.generateKeyPairSync>[1]): KeyPair {
  for (let i = 0; i < 16; i++) {
    const pair = options ? ssh2.utils.generateKeyPairSync("ed25519", options) : ssh2.utils.generateKeyPairSync("ed25519");
    if (!(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error("ssh2 generated 16 unparseable ed25519 keys in a row");
}
