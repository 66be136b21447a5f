import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileGlobs } from "../../../src/sync/glob.js";

const CASES: { pattern: string; yes: string[]; no: string[] }[] = [
  { pattern: "*.db", yes: ["a.db", "sub/a.db", "x/y/.db"], no: ["a.dbx", "a.db/x", "db"] },
  { pattern: "ssh_host_*", yes: ["ssh_host_ed25519_key", "ssh_host_rsa_key.pub", "d/ssh_host_x"], no: ["sshd_config", "my_ssh_host_x"] },
  { pattern: "conf.d/*.conf", yes: ["conf.d/a.conf"], no: ["conf.d/sub/a.conf", "x/conf.d/a.conf", "conf.d/a.confx"] },
  { pattern: "/top.txt", yes: ["top.txt"], no: ["sub/top.txt"] },
  { pattern: "**/*.pem", yes: ["a.pem", "tls/a.pem", "tls/x/y/a.pem"], no: ["a.pemx", "tls/a.pem/b"] },
  { pattern: "tls/**", yes: ["tls/a", "tls/a/b"], no: ["tls", "tlsx/a", "x/tls/a"] },
  { pattern: "a/**/z", yes: ["a/z", "a/b/z", "a/b/c/z"], no: ["a/b/zz", "z", "b/a/z"] },
  { pattern: "key?", yes: ["key1", "keyX"], no: ["key", "key12", "key/"] },
  { pattern: "key[0-9]", yes: ["key0", "key9"], no: ["keya", "key"] },
  { pattern: "key[!0-9]", yes: ["keya"], no: ["key1", "key/"] },
  { pattern: "key[^ab]", yes: ["keyc"], no: ["keya", "keyb"] },
  { pattern: "a[b", yes: ["a[b"], no: ["ab"] },
  { pattern: "\\*literal", yes: ["*literal"], no: ["xliteral"] },
  { pattern: "a.b", yes: ["a.b"], no: ["axb"] },
  { pattern: "**", yes: ["a", "a/b"], no: [] },
  { pattern: "cache/", yes: ["cache", "a/cache"], no: ["cachex", "cache/x"] },
  { pattern: "x**y", yes: ["xy", "xaby"], no: ["xa/by"] },
];

describe("compileGlobs", () => {
  for (const c of CASES) {
    it(`${c.pattern}`, () => {
      const m = compileGlobs([c.pattern]);
      for (const p of c.yes) assert.equal(m(p), true, `${c.pattern} should match ${p}`);
      for (const p of c.no) assert.equal(m(p), false, `${c.pattern} should not match ${p}`);
    });
  }

  it("an empty list matches nothing; several patterns match any", () => {
    assert.equal(compileGlobs([])("a"), false);
    const m = compileGlobs(["*.db", "*.log"]);
    assert.equal(m("x.log"), true);
    assert.equal(m("x.db"), true);
    assert.equal(m("x.txt"), false);
  });
});
