#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bounded TCP traffic for test-autoban: every mode opens a fixed number of connections from
one source address of the test's namespace to one address of the test's own veth and exits;
every wait has a deadline.

  autoban.py listen ADDR PORT READYFILE SECONDS
                                 a listener that never accepts (the kernel completes the
                                 handshakes into its backlog of 1024), for SECONDS
  autoban.py conns SRC DST PORT N
                                 N connections at once, held open; once all are decided (2 s
                                 at most), two more one after the other (2 s each); prints
                                 "ESTABLISHED MORE1 MORE2", MORE 1 or 0
  autoban.py burst SRC DST PORT N
                                 N connections at once; prints how many were established
                                 within 2 s
  autoban.py scan SRC DST FIRSTPORT N
                                 one connection to each of N ports from FIRSTPORT, in port
                                 order, at once; prints how many got an answer (established or
                                 refused) within 1.5 s
"""

import errno
import select
import socket
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr, port, readyfile, seconds):
    with socket.socket(family_of(addr), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1024)
        with open(readyfile, "w") as f:
            f.write("ready\n")
        time.sleep(seconds)


def start(src, dst, port):
    s = socket.socket(family_of(dst), socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    err = s.connect_ex((dst, port))
    if err not in (0, errno.EINPROGRESS):
        raise OSError(err, "connect")
    return s


def settle(socks, seconds):
    """Waits until every socket's connect is decided or the deadline passed; returns the number
    established and the number refused."""
    pending = set(socks)
    established = refused = 0
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], list(pending), [], deadline - time.monotonic())
        for s in writable:
            pending.discard(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                established += 1
            else:
                refused += 1
    return established, refused


def conns(src, dst, port, n):
    socks = [start(src, dst, port) for _ in range(n)]
    established, _ = settle(socks, 2.0)
    more = []
    for _ in range(2):
        s = start(src, dst, port)
        more.append(settle([s], 2.0)[0])
        socks.append(s)
    print(established, *more)
    for s in socks:
        s.close()


def burst(src, dst, port, n):
    socks = [start(src, dst, port) for _ in range(n)]
    print(settle(socks, 2.0)[0])
    for s in socks:
        s.close()


def scan(src, dst, first, n):
    socks = [start(src, dst, first + i) for i in range(n)]
    established, refused = settle(socks, 1.5)
    print(established + refused)
    for s in socks:
        s.close()


def main(argv):
    if len(argv) == 6 and argv[1] == "listen":
        listen(argv[2], int(argv[3]), argv[4], float(argv[5]))
    elif len(argv) == 6 and argv[1] in ("conns", "burst", "scan"):
        mode = {"conns": conns, "burst": burst, "scan": scan}[argv[1]]
        mode(argv[2], argv[3], int(argv[4]), int(argv[5]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
