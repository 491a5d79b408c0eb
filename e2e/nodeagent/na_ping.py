"""Minimal ICMP echo (these machines have no `ping`): `python na_ping.py DST COUNT SIZE`.

Raw socket, the kernel builds the IP header and fragments big echoes (IP_PMTUDISC_DONT),
as `ping -M dont` would. Prints `received N unreachable M`; exit 0 if any echo answered.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main() -> int:
    dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
    ident = os.getpid() & 0xFFFF
    payload = (b"wgsna-" * (size // 6 + 1))[:size]
    received = unreachable = 0
    for seq in range(count):
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, checksum(head + payload), ident, seq) + payload
        try:
            sock.sendto(pkt, (dst, 0))
        except OSError:  # e.g. ENETUNREACH from a local unreachable route
            unreachable += 1
            time.sleep(0.2)
            continue
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, addr = sock.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident and rseq == seq and addr[0] == dst:
                received += 1
                break
            if typ == 3:
                unreachable += 1
                break
        time.sleep(0.1)
    print(f"received {received} unreachable {unreachable}")
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main())
