#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bounded traffic for the integration tests: every mode sends a fixed number of packets to
one given address (a test's own namespace or host side of its veth) and exits; every socket
operation has a timeout, so nothing here can run away.

  traffic.py tcp-server ADDR PORTFILE [PORT]
                                          accept one connection, read to EOF, close; the
                                          port (PORT, or one chosen) is written to PORTFILE
                                          first
  traffic.py tcp-client ADDR PORT NBYTES  connect, send NBYTES, half-close, read to EOF, close
  traffic.py udp-send ADDR PORT COUNT SIZE [SPORT]
                                          COUNT datagrams of SIZE bytes from one socket
  traffic.py udp-recv ADDR READYFILE SECONDS PORT:WANT...
                                          a socket on ADDR:PORT for each PORT; READYFILE is
                                          written once all are bound; receives until every
                                          PORT got WANT datagrams or SECONDS passed, then
                                          0.2 s more (so that a surplus shows); prints
                                          {"PORT": received}
"""

import json
import os
import select
import socket
import sys
import time

TIMEOUT = 10.0


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp_server(addr, portfile, port=0):
    with socket.socket(family_of(addr), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        s.settimeout(TIMEOUT)
        tmp = portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % s.getsockname()[1])
        os.rename(tmp, portfile)
        conn, _ = s.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            total = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                total += len(data)
        print(total)


def tcp_client(addr, port, nbytes):
    with socket.create_connection((addr, port), timeout=TIMEOUT) as s:
        s.sendall(b"p" * nbytes)
        # Half-close and wait for the peer's FIN, so that the last segment this side sends is
        # the ACK of that FIN, always: the test counts the segments exactly.
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


def udp_send(addr, port, count, size, sport=0):
    with socket.socket(family_of(addr), socket.SOCK_DGRAM) as s:
        if sport:
            s.bind(("::" if ":" in addr else "0.0.0.0", sport))
        for _ in range(count):
            s.sendto(b"u" * size, (addr, port))


def udp_recv(addr, readyfile, seconds, wants):
    socks, got = {}, {}
    try:
        for port, want in wants:
            s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((addr, port))
            socks[s] = port
            got[port] = 0
        tmp = readyfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("ready\n")
        os.rename(tmp, readyfile)
        # Waiting for the datagrams themselves, not for a guess of how long they take: a slow
        # machine only makes this take longer.
        end = time.monotonic() + min(seconds, 120)
        drained = False
        while True:
            now = time.monotonic()
            if not drained and all(got[p] >= w for p, w in wants):
                end = min(end, now + 0.2)
                drained = True
            if now >= end:
                break
            r, _, _ = select.select(list(socks), [], [], end - now)
            for s in r:
                s.recv(65536)
                got[socks[s]] += 1
    finally:
        for s in socks:
            s.close()
    print(json.dumps({str(p): n for p, n in got.items()}, sort_keys=True))


def port_want(arg):
    port, _, want = arg.partition(":")
    return int(port), int(want or 0)


def main(argv):
    if len(argv) >= 4 and argv[1] == "tcp-server":
        tcp_server(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 0)
    elif len(argv) >= 5 and argv[1] == "tcp-client":
        tcp_client(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) >= 6 and argv[1] == "udp-send":
        udp_send(argv[2], int(argv[3]), min(int(argv[4]), 10000), int(argv[5]),
                 int(argv[6]) if len(argv) > 6 else 0)
    elif len(argv) >= 6 and argv[1] == "udp-recv":
        udp_recv(argv[2], argv[3], float(argv[4]), [port_want(a) for a in argv[5:]])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
