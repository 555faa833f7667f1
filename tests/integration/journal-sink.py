#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A stand-in for journald's native socket: receives the datagrams sd_journal_send() writes
and prints each entry as one JSON object per line, so that a test can check the structured
fields (MESSAGE_ID=, INTERFACE=, FILTER_ID=, ...) a message carries. It serves as a
NOTIFY_SOCKET as well: sd_notify() sends the same KEY=VALUE lines (READY=1, STATUS=...).

usage: journal-sink.py SOCKET-PATH OUTPUT-FILE SECONDS

The native protocol: fields separated by newlines, each KEY=VALUE, or, for a value with a
newline in it, KEY, a newline, the value's length as 64-bit little endian, the value and a
newline. Entries too large for a datagram come as a memfd (SCM_RIGHTS) and are read from it.
"""
import array
import json
import os
import socket
import struct
import sys
import time


def parse(data):
    fields, i = {}, 0
    while i < len(data):
        nl = data.find(b"\n", i)
        if nl < 0:
            nl = len(data)  # sd_notify() ends its last line without one
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack_from("<Q", data, nl + 1)
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode(errors="replace")] = v.decode(errors="replace")
    return fields


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, out, seconds = argv[1], argv[2], float(argv[3])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o666)
    s.settimeout(0.5)
    end = time.monotonic() + seconds
    with open(out, "a", encoding="utf-8") as f:
        while time.monotonic() < end:
            fds = array.array("i")
            try:
                data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(4))
            except socket.timeout:
                continue
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[:len(payload) - len(payload) % 4])
            for fd in fds:
                with os.fdopen(fd, "rb") as m:
                    data = m.read()
            f.write(json.dumps(parse(data), sort_keys=True) + "\n")
            f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
