import { test } from "node:test";
import assert from "node:assert/strict";
import { ProcNetSessions, TCP_ESTABLISHED, countSessions, isLoopback, parseProcNetTcp, procForms } from "../../../src/drain/proc-net.js";
import { REMOVE_SCRIPT, refuseScript } from "../../../src/drain/nft.js";

// Lines as the kernel writes them (captured on Debian 12, addresses rewritten to the lab's).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1062 1 00000000173eb5dc 100 0 0 10 0
   1: 640B12C6:0016 320B12C6:D2F4 01 00000000:00000000 02:000A7B2B 00000000     0        0 5603613 2 00000000df415a83 20 4 31 10 -1
   2: 0100007F:0016 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5603614 1 00000000df415a84 20 4 31 10 -1
   3: 640B12C6:0016 330B12C6:D2F5 06 00000000:00000000 03:00000A7B 00000000     0        0 0 3 00000000df415a85
   4: 0B0B12C6:8FA6 020B12C6:094B 01 00000000:00000000 00:00000000 00000000     0        0 5603615 1 00000000df415a86 20 4 31 10 -1
   5: 640B12C6:0015 340B12C6:C001 01 00000000:00000000 00:00000000 00000000     0        0 5603616 1 00000000df415a87 20 4 31 10 -1
garbage line
   6: 640B12C6:0016 nonsense 01
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1063 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF0000640B12C6:0016 0000000000000000FFFF0000350B12C6:E001 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 20 4 31 10 -1
   2: 00000000000000000000000001000000:0016 00000000000000000000000001000000:E002 01 00000000:00000000 00:00000000 00000000     0        0 8 1 0000000000000000 20 4 31 10 -1
   3: 0000000000000000FFFF00000100007F:0016 0000000000000000FFFF00000100007F:E003 01 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 20 4 31 10 -1
   4: B80D0120000000000000000001000000:0016 B80D0120000000000000000002000000:E004 01 00000000:00000000 00:00000000 00000000     0        0 10 1 0000000000000000 20 4 31 10 -1
`;

test("proc-net: IPv4 lines: addresses, ports, states; header and malformed lines skipped", () => {
  const s = parseProcNetTcp(TCP);
  assert.equal(s.length, 6);
  assert.deepEqual(s[0], { localAddress: "0.0.0.0", localPort: 22, remoteAddress: "0.0.0.0", remotePort: 0, state: 0x0a });
  assert.deepEqual(s[1], { localAddress: "198.18.11.100", localPort: 22, remoteAddress: "198.18.11.50", remotePort: 0xd2f4, state: TCP_ESTABLISHED });
  assert.equal(s[2]!.remoteAddress, "127.0.0.1");
  assert.equal(s[3]!.state, 0x06, "TIME_WAIT");
});

test("proc-net: IPv6 lines: plain, IPv4-mapped and loopback addresses", () => {
  const s = parseProcNetTcp(TCP6);
  assert.equal(s.length, 5);
  assert.equal(s[1]!.localAddress, "0:0:0:0:0:ffff:c612:b64");
  assert.equal(s[1]!.remotePort, 0xe001);
  assert.equal(s[2]!.remoteAddress, "0:0:0:0:0:0:0:1");
  assert.equal(s[3]!.remoteAddress, "0:0:0:0:0:ffff:7f00:1");
  assert.equal(s[4]!.localAddress, "2001:db8:0:0:0:0:0:1");
});

test("proc-net: loopback peers are the agent's own probes, not sessions", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "0:0:0:0:0:0:0:1", "0:0:0:0:0:ffff:7f00:1"]) assert.equal(isLoopback(a), true, a);
  for (const a of ["198.18.11.50", "0:0:0:0:0:ffff:c612:b32", "2001:db8:0:0:0:0:0:2"]) assert.equal(isLoopback(a), false, a);
});

test("proc-net: sessions = ESTABLISHED, on a service port, from a non-loopback peer", () => {
  // IPv4: line 1 (port 22 from .50); not LISTEN, not loopback, not TIME_WAIT, not the outgoing 2379 one; port 21 only when asked.
  assert.equal(countSessions(parseProcNetTcp(TCP), [22]), 1);
  assert.equal(countSessions(parseProcNetTcp(TCP), [21, 22]), 2);
  assert.equal(countSessions(parseProcNetTcp(TCP), [2222]), 0);
  // IPv6: the mapped .53 peer and the 2001:db8::2 peer; ::1 and mapped 127.0.0.1 are loopback.
  assert.equal(countSessions(parseProcNetTcp(TCP6), [22]), 2);
});

test("proc-net: the counter reads tcp and tcp6; a missing tcp6 (IPv6 off) is empty, any other error is raised", async () => {
  const files: Record<string, string> = { "/proc/net/tcp": TCP, "/proc/net/tcp6": TCP6 };
  const enoent = (f: string) => Object.assign(new Error(`ENOENT ${f}`), { code: "ENOENT" });
  const read = async (f: string) => {
    if (f in files) return files[f]!;
    throw enoent(f);
  };
  assert.equal(await new ProcNetSessions([22], undefined, read).established(), 3);
  delete files["/proc/net/tcp6"];
  assert.equal(await new ProcNetSessions([22], undefined, read).established(), 1);
  delete files["/proc/net/tcp"];
  await assert.rejects(new ProcNetSessions([22], undefined, read).established(), /ENOENT \/proc\/net\/tcp$/);
});

test("nft: the refusal resets new connections only (SYN without ACK), to the VIP's service ports, in one idempotent transaction", () => {
  const v4 = refuseScript("198.18.11.100", [21, 22]);
  assert.match(v4, /^table inet understudy_drain\ndelete table inet understudy_drain\ntable inet understudy_drain \{/);
  assert.match(v4, /iif != "lo" ip daddr 198\.18\.11\.100 tcp dport \{ 21, 22 \} tcp flags & \(syn \| ack\) == syn reject with tcp reset/);
  assert.match(refuseScript("2001:db8::100", [22]), /iif != "lo" ip6 daddr 2001:db8::100 tcp dport \{ 22 \}/);
  assert.match(refuseScript(null, [22]), /iif != "lo" tcp dport \{ 22 \}/);
  assert.equal(REMOVE_SCRIPT, "table inet understudy_drain\ndelete table inet understudy_drain\n");
});

test("proc-net: with a floating IP only sessions to it count (the ones a move cuts), in every spelling", () => {
  assert.deepEqual(procForms("198.18.11.100"), ["198.18.11.100", "0:0:0:0:0:ffff:c612:b64"]);
  assert.deepEqual(procForms("2001:db8::1"), ["2001:db8:0:0:0:0:0:1"]);
  const lines = `${TCP}   7: 0B0B12C6:0016 330B12C6:D300 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 31 10 -1\n`;
  // Line 7: an operator's ssh to the node's own address (198.18.11.11): not through the VIP.
  assert.equal(countSessions(parseProcNetTcp(lines), [22]), 2, "every address");
  assert.equal(countSessions(parseProcNetTcp(lines), [22], "198.18.11.100"), 1, "the VIP only");
  assert.equal(countSessions(parseProcNetTcp(TCP6), [22], "198.18.11.100"), 1, "the VIP's IPv4-mapped form in tcp6");
  assert.equal(countSessions(parseProcNetTcp(TCP6), [22], "2001:db8::1"), 1, "an IPv6 VIP");
});
