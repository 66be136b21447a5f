// The primary side of the sync transport: the rsync daemon config and the
// sync key's authorized_keys line (forced, fixed command).
import assert from "node:assert/strict";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { authorizedKeysLine, renderRsyncdConf, serveCommand } from "../../../src/sync/rsyncd.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7q4d1Yj3W2v1o0Qe4a9Qz3mS8c6t8Q2w9xJ1yZ0aB sync@n1";

test("rsyncd.conf: global read-only, no listing, chroot (as root), uid 0, link-following refused; one module per root", () => {
  assert.equal(
    renderRsyncdConf([
      { name: "ssh", path: "/etc/ssh/" },
      { name: "sftpgo", path: "/etc/sftpgo" },
    ]),
    [
      "# Written by the understudy agent from its sync.roots; do not edit (it is rewritten at start).",
      "# Read by `rsync --server --daemon --config=<this file> .`, the forced command of the sync key.",
      "use chroot = yes",
      "read only = yes",
      "write only = no",
      "list = no",
      "numeric ids = yes",
      "munge symlinks = no",
      "uid = 0",
      "gid = 0",
      "max verbosity = 1",
      "reverse lookup = no",
      "forward lookup = no",
      "refuse options = copy-links copy-unsafe-links copy-dirlinks keep-dirlinks safe-links munge-links",
      "",
      "[ssh]",
      "    path = /etc/ssh",
      "",
      "[sftpgo]",
      "    path = /etc/sftpgo",
      "",
    ].join("\n"),
  );
});

test("rsyncd.conf: no chroot when the sync account is not root (it could not chroot)", () => {
  const roots = [{ name: "ssh", path: "/etc/ssh" }];
  assert.match(renderRsyncdConf(roots, { daemonUser: "understudy-sync" }), /^use chroot = no$/m);
  assert.match(renderRsyncdConf(roots, { daemonUser: "root" }), /^use chroot = yes$/m);
});

for (const [name, roots] of [
  ["no roots", []],
  ["a module name with a bracket", [{ name: "ssh]", path: "/etc/ssh" }]],
  ["a module name with a space", [{ name: "a b", path: "/etc/ssh" }]],
  ["a path with a newline (config injection)", [{ name: "ssh", path: "/etc/ssh\n[all]\npath = /" }]],
  ["the filesystem root", [{ name: "all", path: "/" }]],
  ["a path with ..", [{ name: "x", path: "/etc/../root" }]],
  [
    "two roots with one name",
    [
      { name: "ssh", path: "/etc/ssh" },
      { name: "ssh", path: "/etc/ssh2" },
    ],
  ],
] as const) {
  test(`rsyncd.conf refuses ${name} (US_E_SYNC_CONFIG)`, () => {
    assert.throws(
      () => renderRsyncdConf(roots),
      (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"),
    );
  });
}

test("authorized_keys line: restrict, optional from=, the fixed daemon command, the key", () => {
  assert.equal(
    authorizedKeysLine(KEY, { config: "/etc/understudy/sync-rsyncd.conf", from: ["198.18.0.12", "198.18.0.13"] }),
    `restrict,from="198.18.0.12,198.18.0.13",command="/usr/bin/rsync --server --daemon --config=/etc/understudy/sync-rsyncd.conf ." ${KEY}`,
  );
  assert.equal(serveCommand("/srv/c.conf", "/opt/rsync/bin/rsync"), "/opt/rsync/bin/rsync --server --daemon --config=/srv/c.conf .");
});

for (const [name, run] of [
  ["a private key instead of a public one", () => authorizedKeysLine("-----BEGIN OPENSSH PRIVATE KEY-----", { config: "/etc/c.conf" })],
  ["two keys", () => authorizedKeysLine(`${KEY}\n${KEY}`, { config: "/etc/c.conf" })],
  ["a config path with a quote", () => authorizedKeysLine(KEY, { config: '/etc/c".conf' })],
  ["a config path with a space", () => authorizedKeysLine(KEY, { config: "/etc/c .conf" })],
  ["a from= pattern with a quote", () => authorizedKeysLine(KEY, { config: "/etc/c.conf", from: ['1.2.3.4"'] })],
  ["a relative rsync path", () => authorizedKeysLine(KEY, { config: "/etc/c.conf", rsyncPath: "rsync" })],
] as const) {
  test(`authorized_keys line refuses ${name}`, () => {
    assert.throws(run, (e: unknown) => isUnderstudyError(e, "US_E_SYNC_CONFIG"));
  });
}
