#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bounded load for the health tests, in this process itself (so its PID is the consumer),
niced up:

  load.py burn SECONDS               spin on one CPU for SECONDS
  load.py touch BYTES SECONDS READY  allocate BYTES, write to every page, create the file
                                     READY, hold the memory SECONDS
  load.py write PATH MBPS SECONDS    rewrite the first 64 MiB of PATH at about MBPS MB/s,
                                     each 4 MiB synced to the disk, for SECONDS; then remove it
"""
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def burn(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1


def touch(size, seconds, ready):
    buf = bytearray(size)
    # One byte per page makes the kernel back every page.
    buf[::PAGE] = b"\x01" * len(range(0, size, PAGE))
    with open(ready, "w"):
        pass
    time.sleep(seconds)


def write(path, mbps, seconds):
    chunk = b"\xa5" * (4 << 20)
    end = time.monotonic() + seconds
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        offset = 0
        while time.monotonic() < end:
            start = time.monotonic()
            os.pwrite(fd, chunk, offset)
            os.fdatasync(fd)
            offset = (offset + len(chunk)) % (64 << 20)
            pause = len(chunk) / (mbps * 1e6) - (time.monotonic() - start)
            if pause > 0:
                time.sleep(min(pause, max(0.0, end - time.monotonic())))
    finally:
        os.close(fd)
        os.unlink(path)


def boost():
    """Stand out on a machine that is busy already: a session of its own is a scheduling group
    of its own (autogroup), and both the group and the process get nice -10 (as root)."""
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write("-10")
    except OSError:
        pass
    try:
        os.nice(-10)
    except OSError:
        pass


def main(argv):
    boost()
    if len(argv) == 3 and argv[1] == "burn":
        burn(float(argv[2]))
    elif len(argv) == 5 and argv[1] == "touch":
        touch(int(argv[2]), float(argv[3]), argv[4])
    elif len(argv) == 5 and argv[1] == "write":
        write(argv[2], float(argv[3]), float(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
