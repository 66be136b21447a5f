#!/usr/bin/python3
"""Daemon sampler for the understudy chaos lab (Python 3 stdlib only).

Every interval it sends one TCP SYN to PORT on every target address through
a raw socket and records who answered SYN-ACK (something listens: the
daemon accepts connections) and who answered RST (nothing listens). A SYN
probe never completes the handshake (this host's kernel resets the SYN-ACK,
which has no socket here), so the daemon never accepts, forks or logs
anything: sampling 20 times a second costs the nodes nothing.

Output: one JSON line per interval, appended to --out and flushed at once:
    {"t_ms": <epoch ms when the SYNs were sent>, "seq": n,
     "open": [addresses], "closed": [addresses]}
Addresses in neither list did not answer within the interval.

Bounded: it exits after --max-seconds, and as soon as stdin reaches EOF.
"""
import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import time

MAX_SECONDS_CAP = 7200.0
BASE_PORT = 61000  # above Linux's default ephemeral range (32768-60999)


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def syn(src_ip, dst_ip, sport, dport, seq):
    offset_flags = (5 << 12) | 0x02  # header length 5 words, SYN
    hdr = struct.pack("!HHIIHHHH", sport, dport, seq, 0, offset_flags, 64240, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(hdr))
    csum = checksum(pseudo + hdr)
    return struct.pack("!HHIIHHHH", sport, dport, seq, 0, offset_flags, 64240, csum, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src-ip", required=True)
    ap.add_argument("--targets", required=True, help="comma-separated IPv4 addresses")
    ap.add_argument("--port", type=int, default=22)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    interval = min(max(a.interval_ms, 10.0), 10000.0) / 1000.0
    max_seconds = min(max(a.max_seconds, 0.1), MAX_SECONDS_CAP)
    src = socket.inet_aton(a.src_ip)
    targets = [t for t in a.targets.split(",") if t]
    packed = {socket.inet_aton(t): t for t in targets}

    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sock.setblocking(False)
    stdin_fd = sys.stdin.fileno()
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
            slot = int((now - start) / interval)  # late: skip missed slots
            continue
        slot_end = slot_start + interval
        sport = BASE_PORT + (seq % 1000)
        isn = random.getrandbits(32)
        rec = {"t_ms": round(time.time() * 1000.0, 3), "seq": seq}
        for t in targets:
            try:
                sock.sendto(syn(src, socket.inet_aton(t), sport, a.port, isn), (t, 0))
            except OSError as e:
                rec["err"] = str(e)
        opened, closed = set(), set()
        for _ in range(100000):
            rem = slot_end - time.monotonic()
            if rem <= 0 or len(opened) + len(closed) == len(targets):
                break
            r, _, _ = select.select([sock, stdin_fd], [], [], rem)
            if stdin_fd in r:
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
                        pkt = sock.recv(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    if len(pkt) < 40:
                        continue
                    ihl = (pkt[0] & 0x0F) * 4
                    srcaddr = pkt[12:16]
                    if srcaddr not in packed or len(pkt) < ihl + 14:
                        continue
                    p_sport, p_dport, _s, ack = struct.unpack("!HHII", pkt[ihl:ihl + 12])
                    flags = pkt[ihl + 13]
                    if p_sport != a.port or p_dport != sport or ack != (isn + 1) & 0xFFFFFFFF:
                        continue
                    if flags & 0x12 == 0x12:
                        opened.add(packed[srcaddr])
                    elif flags & 0x04:
                        closed.add(packed[srcaddr])
        # Let the remaining interval pass (a full answer set ends the wait early).
        rem = slot_end - time.monotonic()
        if rem > 0 and not stop:
            r, _, _ = select.select([stdin_fd], [], [], rem)
            if stdin_fd in r:
                try:
                    if not os.read(stdin_fd, 4096):
                        stop = True
                except OSError:
                    stop = True
        rec["open"] = sorted(opened)
        rec["closed"] = sorted(closed)
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
