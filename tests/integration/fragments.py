#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Packets cut so that a parser cannot classify them whole, sent with scapy from inside a test's
own namespace out of its veth end, always with explicit MAC addresses. Every mode sends a
bounded number of frames and runs for a bounded time.

  fragments.py syn-probes IFNAME SRCMAC DSTMAC SRC DST DPORT KIND...
        one TCP SYN to DST:DPORT per KIND, each from its own source port, and listens on
        IFNAME for the SYN-ACKs until 3 s after the last; prints {"KIND": "synack" or "none"}.
        KINDs: plain (one frame); frag8, frag16, frag24 (IPv4, the SYN with 20 bytes of
        options split so that the first fragment holds 8, 16 or 24 bytes of its 40-byte TCP
        header); whole (IPv4, split after the TCP header); dstN (IPv6, behind N Destination
        Options headers); hbhN (IPv6, Hop-by-Hop then N Destination Options headers).
        SRC and DST are IPv4 for the IPv4 kinds, IPv6 for the others.
  fragments.py udp-frags IFNAME SRCMAC DSTMAC SRC DST DPORT SIZE
        one UDP datagram of SIZE payload bytes to DST:DPORT, in fragments of at most 512
        bytes of IP payload
  fragments.py listen ADDR SECONDS READYFILE PORT...
        TCP listeners on ADDR (IPv4 or IPv6) for SECONDS or until SIGTERM; the kernel answers
        a SYN to a listening socket with a SYN-ACK, nothing needs to be accepted
  fragments.py udp-recv ADDR PORT SECONDS READYFILE
        binds ADDR:PORT, then waits at most SECONDS for one datagram; prints its length
        (0 when none came)
"""

import json
import os
import socket
import sys
import time

SPORT_BASE = 41000


def ready(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("ready\n")
    os.rename(tmp, path)


def tcp_syn(sport, dport):
    from scapy.all import TCP

    # 20 bytes of options (a 40-byte header), as a real SYN carries.
    return TCP(sport=sport, dport=dport, flags="S", seq=1000, window=64240,
               options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)),
                        ("NOP", None), ("WScale", 7)])


def frames_for(kind, sport, smac, dmac, src, dst, dport):
    from scapy.all import IP, IPv6, Ether, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, Raw

    eth = Ether(src=smac, dst=dmac)
    syn = tcp_syn(sport, dport)
    if kind == "plain":
        ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
        return [eth / ip / syn]
    if kind.startswith("frag") or kind == "whole":
        whole = bytes(IP(src=src, dst=dst) / syn / Raw(b"x" * 16))
        l4 = whole[20:]
        assert len(l4) == 56 and l4[12] >> 4 == 10
        cut = 48 if kind == "whole" else int(kind[4:])
        ident = 20000 + sport % 10000
        first = IP(src=src, dst=dst, id=ident, proto=6, flags="MF", frag=0) / Raw(l4[:cut])
        rest = IP(src=src, dst=dst, id=ident, proto=6, frag=cut // 8) / Raw(l4[cut:])
        return [eth / first, eth / rest]
    if kind.startswith("dst") or kind.startswith("hbh"):
        chain = IPv6(src=src, dst=dst)
        if kind.startswith("hbh"):
            chain = chain / IPv6ExtHdrHopByHop()
        for _ in range(int(kind[3:])):
            chain = chain / IPv6ExtHdrDestOpt()
        return [eth / chain / syn]
    raise SystemExit("unknown kind " + kind)


def syn_probes(ifname, smac, dmac, src, dst, dport, kinds):
    from scapy.all import TCP, AsyncSniffer, sendp

    sports = {SPORT_BASE + i: k for i, k in enumerate(kinds)}
    seen = {}

    def synack(p):
        return (TCP in p and p[TCP].sport == dport and p[TCP].dport in sports and
                (int(p[TCP].flags) & 0x12) == 0x12)

    sniffer = AsyncSniffer(iface=ifname, lfilter=synack, store=True)
    sniffer.start()
    time.sleep(0.5)
    for sport, kind in sports.items():
        for f in frames_for(kind, sport, smac, dmac, src, dst, dport):
            sendp(f, iface=ifname, verbose=False)
        time.sleep(0.05)
    time.sleep(3)
    got = sniffer.stop() or []
    for p in got:
        seen[sports[p[TCP].dport]] = "synack"
    print(json.dumps({k: seen.get(k, "none") for k in kinds}, sort_keys=True))


def udp_frags(ifname, smac, dmac, src, dst, dport, size):
    from scapy.all import IP, UDP, Ether, Raw, fragment, sendp

    dgram = IP(src=src, dst=dst, id=31000) / UDP(sport=SPORT_BASE, dport=dport) / Raw(b"u" * size)
    frags = fragment(dgram, fragsize=512)
    assert len(frags) >= 2
    for f in frags:
        sendp(Ether(src=smac, dst=dmac) / f, iface=ifname, verbose=False)


def udp_recv(addr, port, seconds, readyfile):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(seconds)
    ready(readyfile)
    try:
        data = s.recv(65536)
        print(len(data))
    except socket.timeout:
        print(0)


def listen(addr, seconds, readyfile, ports):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    socks = []
    for port in ports:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
        socks.append(s)
    ready(readyfile)
    time.sleep(seconds)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    mode = argv[1]
    if mode == "syn-probes" and len(argv) >= 9:
        syn_probes(argv[2], argv[3], argv[4], argv[5], argv[6], int(argv[7]), argv[8:])
    elif mode == "udp-frags" and len(argv) == 9:
        udp_frags(argv[2], argv[3], argv[4], argv[5], argv[6], int(argv[7]), int(argv[8]))
    elif mode == "listen" and len(argv) >= 6:
        listen(argv[2], float(argv[3]), argv[4], [int(p) for p in argv[5:]])
    elif mode == "udp-recv" and len(argv) == 6:
        udp_recv(argv[2], int(argv[3]), float(argv[4]), argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
