#!/usr/bin/python3
"""ARP observer for the understudy lab (Python 3 stdlib only).

Every interval it broadcasts one ARP request "who-has TARGET tell SRC_IP" on
IFACE through an AF_PACKET raw socket and records every ARP reply for TARGET
seen during that interval (iputils arping stops at the first reply, so it
cannot see two holders at once). It also records gratuitous ARPs for TARGET.

Output: one JSON line per interval, appended to --out and flushed at once:
    {"t_ms": <epoch ms when the request was sent>, "seq": n,
     "macs": [sorted unique sender MACs of replies], "garp": [...]}
plus "err" when sending failed.

Bounded: it exits after --max-seconds, and as soon as stdin reaches EOF (the
parent closed the pipe or died) unless --no-stdin-watch is given.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
MAX_SECONDS_CAP = 3600.0


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--target", required=True, help="IPv4 address to ask for (the VIP)")
    ap.add_argument("--src-ip", required=True, help="sender IPv4 put in the requests")
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-stdin-watch", action="store_true")
    return ap.parse_args()


def main():
    a = parse_args()
    interval = min(max(a.interval_ms, 1.0), 10000.0) / 1000.0
    max_seconds = min(max(a.max_seconds, 0.1), MAX_SECONDS_CAP)
    target = socket.inet_aton(a.target)
    src_ip = socket.inet_aton(a.src_ip)

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((a.iface, ETH_P_ARP))
    my_mac = sock.getsockname()[4]
    sock.setblocking(False)

    frame = (
        b"\xff" * 6 + my_mac + struct.pack("!H", ETH_P_ARP)
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + my_mac + src_ip + b"\x00" * 6 + target
    )
    frame += b"\x00" * (60 - len(frame))

    watch_stdin = not a.no_stdin_watch
    stdin_fd = sys.stdin.fileno() if watch_stdin else -1
    fds = [sock] + ([stdin_fd] if watch_stdin else [])

    out = open(a.out, "a", buffering=1)
    start = time.monotonic()
    deadline = start + max_seconds
    max_slots = int(max_seconds / interval) + 2
    slot = 0
    seq = 0
    stop = False
    while slot < max_slots and not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        slot_start = start + slot * interval
        if now >= slot_start + interval:
            # Late (scheduler hiccup): skip the missed slots instead of bursting.
            slot = int((now - start) / interval)
            continue
        slot_end = slot_start + interval
        t_ms = time.time() * 1000.0
        rec = {"t_ms": round(t_ms, 3), "seq": seq}
        try:
            sock.send(frame)
        except OSError as e:
            rec["err"] = str(e)
        macs = set()
        garp = set()
        for _ in range(100000):  # bounded inner loop
            rem = slot_end - time.monotonic()
            if rem <= 0:
                break
            r, _, _ = select.select(fds, [], [], rem)
            if watch_stdin and stdin_fd in r:
                try:
                    data = os.read(stdin_fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    stop = True
                    break
            if sock in r:
                for _ in range(10000):
                    try:
                        pkt, addr = sock.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                        continue
                    if len(pkt) < 42:
                        continue
                    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", pkt[14:22])
                    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
                        continue
                    sha = pkt[22:28]
                    spa = pkt[28:32]
                    tpa = pkt[38:42]
                    if spa != target:
                        continue
                    if op == 2:
                        macs.add(mac_str(sha))
                    elif op == 1 and tpa == target:
                        garp.add(mac_str(sha))
        rec["macs"] = sorted(macs)
        rec["garp"] = sorted(garp)
        out.write(json.dumps(rec) + "\n")
        seq += 1
        slot += 1
    out.close()
    sock.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
