#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Packets and counters for the filter tests: crafted ICMP errors, TCP listeners and connects,
paced UDP streams and their receivers, and a timed bus call. Every mode talks to one given
address (a test's own namespace or the host side of its veth), sends a bounded number of
packets and runs for a bounded time.

  craft.py icmp-error SRC DST TYPE CODE INNER COUNT
        COUNT ICMP errors (TYPE/CODE) to DST through a raw socket, each quoting the IPv4
        header and first 8 bytes of a datagram DST:40000 -> SRC:33434 of protocol INNER
        (udp or tcp); SRC is this end's own address.
  craft.py icmp-recv SRC SECONDS READYFILE DONEFILE
        counts the ICMP messages from SRC until DONEFILE exists (and 1 s more) or SECONDS
        passed; prints a JSON object {"TYPE/CODE/INNER": count} (INNER is "-" for messages
        that quote nothing)
  craft.py tcp-listen ADDR SECONDS READYFILE PORT...
        listens on ADDR:PORT for each PORT, accepts and closes connections until SECONDS
        passed or SIGTERM; prints {"PORT": accepted}
  craft.py connect ADDR PORT TIMEOUT [COUNT]
        COUNT connects (default 1), each with TIMEOUT seconds; prints one word per attempt
        (connected, timeout, refused, error) and exits 0 when all connected
  craft.py udp-recv ADDR SECONDS READYFILE DONEFILE PORT...
        counts datagrams per port until DONEFILE exists (and 1 s more) or SECONDS passed;
        prints {"PORT": count}
  craft.py udp-stream ADDR COUNT INTERVAL PORT...
        COUNT datagrams, cycling over the PORTs, one every INTERVAL seconds
  craft.py eth-marker IFNAME SRCMAC DSTMAC
        one Ethernet frame of a local experimental EtherType (0x88b5, no IP) from SRCMAC to
        DSTMAC out of IFNAME: the guard counts it as non_ip, passes it, and the kernel
        ignores it
  craft.py udp-stream-until STOPFILE ADDR COUNT INTERVAL PORT...
        the same, stopping early once STOPFILE exists; prints how many it sent
  craft.py timed-call DEST PATH INTERFACE METHOD SIGNATURE ARGS-JSON
        one call through rawbus.py (ARGS-JSON may be @FILE); prints {"ms": ..., "result": ...}
        with the time from sending the call to its reply
"""

import json
import os
import select
import signal
import socket
import struct
import sys
import time

MAX_PACKETS = 100000


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ready(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("ready\n")
    os.rename(tmp, path)


def icmp_error(src, dst, itype, code, inner, count):
    proto = {"udp": socket.IPPROTO_UDP, "tcp": socket.IPPROTO_TCP}[inner]
    # The datagram the error pretends to answer: DST:40000 -> SRC:33434.
    if proto == socket.IPPROTO_UDP:
        l4 = struct.pack("!HHHH", 40000, 33434, 8 + 32, 0)
    else:
        l4 = struct.pack("!HHI", 40000, 33434, 0x01020304)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 32, 0x1234, 0, 1, proto, 0,
                      socket.inet_aton(dst), socket.inet_aton(src))
    iph = iph[:10] + struct.pack("!H", checksum(iph)) + iph[12:]
    body = iph + l4
    msg = struct.pack("!BBHI", itype, code, 0, 0) + body
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.bind((src, 0))
        for _ in range(min(count, MAX_PACKETS)):
            s.sendto(msg, (dst, 0))
            time.sleep(0.01)


class Deadline:
    """Until SECONDS passed, or DONEFILE exists and a drain after it passed. The drain covers
    packets still on their way when the sender returned (a loaded machine leaves the receive
    path to ksoftirqd, which may wait for the CPU)."""

    DRAIN = 1.0

    def __init__(self, seconds, donefile=None):
        self.end = time.monotonic() + min(seconds, 900)
        self.donefile = donefile

    def left(self):
        now = time.monotonic()
        if self.donefile and os.path.exists(self.donefile):
            self.end = min(self.end, now + self.DRAIN)
            self.donefile = None
        # Wake up now and then to look for DONEFILE.
        return min(self.end - now, 0.05 if self.donefile else self.end - now)

    def over(self):
        return time.monotonic() >= self.end


def icmp_recv(src, seconds, readyfile, donefile):
    counts = {}
    deadline = Deadline(seconds, donefile)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        ready(readyfile)
        while not deadline.over():
            r, _, _ = select.select([s], [], [], max(deadline.left(), 0))
            if not r:
                continue
            pkt, addr = s.recvfrom(65536)
            if addr[0] != src:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            itype, code = pkt[ihl], pkt[ihl + 1]
            inner = "-"
            if itype in (3, 4, 5, 11, 12) and len(pkt) >= ihl + 8 + 20:
                inner = {6: "tcp", 17: "udp"}.get(pkt[ihl + 8 + 9], str(pkt[ihl + 8 + 9]))
            key = "%d/%d/%s" % (itype, code, inner)
            counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts, sort_keys=True))


class Terminated(Exception):
    pass


def on_term(signum, frame):
    # timeout(1) passes a SIGTERM on to its child and then to its whole process group: the
    # second one must not cut the printing of the counts short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def tcp_listen(addr, seconds, readyfile, ports):
    socks, counts = {}, {}
    signal.signal(signal.SIGTERM, on_term)
    try:
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, p))
            s.listen(64)
            socks[s] = p
            counts[str(p)] = 0
        ready(readyfile)
        deadline = Deadline(seconds)
        while not deadline.over():
            r, _, _ = select.select(list(socks), [], [], max(deadline.left(), 0))
            for s in r:
                conn, _ = s.accept()
                conn.close()
                counts[str(socks[s])] += 1
    except Terminated:
        pass
    finally:
        for s in socks:
            s.close()
    print(json.dumps(counts, sort_keys=True), flush=True)


def connect(addr, port, timeout, count):
    words = []
    for _ in range(min(count, 100)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            words.append("connected")
        except socket.timeout:
            words.append("timeout")
        except ConnectionRefusedError:
            words.append("refused")
        except OSError:
            words.append("error")
        finally:
            s.close()
    print(" ".join(words))
    return 0 if all(w == "connected" for w in words) else 1


def udp_recv(addr, seconds, readyfile, donefile, ports):
    socks, counts = {}, {}
    try:
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((addr, p))
            socks[s] = p
            counts[str(p)] = 0
        ready(readyfile)
        deadline = Deadline(seconds, donefile)
        while not deadline.over():
            r, _, _ = select.select(list(socks), [], [], max(deadline.left(), 0))
            for s in r:
                s.recv(65536)
                counts[str(socks[s])] += 1
    finally:
        for s in socks:
            s.close()
    print(json.dumps(counts, sort_keys=True))


def udp_stream(addr, count, interval, ports, stopfile=None):
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        start = time.monotonic()
        for i in range(min(count, MAX_PACKETS)):
            if stopfile and i % 64 == 0 and os.path.exists(stopfile):
                break
            # Paced against the start, so that a slow step does not stretch the whole stream.
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.sendto(b"s%d" % i, (addr, ports[i % len(ports)]))
            sent += 1
    return sent


def eth_marker(ifname, src, dst):
    frame = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + \
        struct.pack("!H", 0x88B5) + b"packetscope marker".ljust(46, b"\0")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        s.send(frame)


def timed_call(dest, path, iface, member, sig, args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import rawbus

    if args.startswith("@"):
        with open(args[1:]) as f:
            args = f.read()
    values = json.loads(args)
    conn = rawbus.Connection(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                                            "unix:path=/run/dbus/system_bus_socket"))
    conn.sock.settimeout(150.0)
    t0 = time.monotonic()
    try:
        result = conn.call(dest, path, iface, member, sig, values)
    except (socket.timeout, rawbus.Disconnected) as e:
        result = {"error": "no reply", "message": "%s after %.1f s" %
                  (type(e).__name__, time.monotonic() - t0)}
    ms = (time.monotonic() - t0) * 1000.0
    print(json.dumps({"ms": round(ms, 1), "result": result}))
    return 1 if "error" in result else 0


def main(argv):
    mode, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if mode == "icmp-error" and len(args) == 6:
        icmp_error(args[0], args[1], int(args[2]), int(args[3]), args[4], int(args[5]))
    elif mode == "icmp-recv" and len(args) == 4:
        icmp_recv(args[0], float(args[1]), args[2], args[3])
    elif mode == "tcp-listen" and len(args) >= 4:
        tcp_listen(args[0], float(args[1]), args[2], [int(p) for p in args[3:]])
    elif mode == "connect" and len(args) in (3, 4):
        return connect(args[0], int(args[1]), float(args[2]), int(args[3]) if len(args) > 3 else 1)
    elif mode == "udp-recv" and len(args) >= 5:
        udp_recv(args[0], float(args[1]), args[2], args[3], [int(p) for p in args[4:]])
    elif mode == "udp-stream" and len(args) >= 4:
        udp_stream(args[0], int(args[1]), float(args[2]), [int(p) for p in args[3:]])
    elif mode == "eth-marker" and len(args) == 3:
        eth_marker(args[0], args[1], args[2])
    elif mode == "udp-stream-until" and len(args) >= 5:
        print(udp_stream(args[1], int(args[2]), float(args[3]), [int(p) for p in args[4:]],
                         args[0]))
    elif mode == "timed-call" and len(args) == 6:
        return timed_call(*args)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
