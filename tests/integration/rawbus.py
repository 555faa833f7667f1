#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A D-Bus client written against the wire format, standard library only, for the tests that
need what the usual tools cannot do: see the error *name* of a failed call (busctl prints only
its text), send strings of any size (a command line argument is capped at 128 KiB) and send
bytes that are not UTF-8 (every binding refuses to marshal them).

  rawbus.py call DEST PATH INTERFACE METHOD SIGNATURE ARGS-JSON
  rawbus.py latency DEST PATH INTERFACE METHOD SECONDS
  rawbus.py until FILE SECONDS DEST PATH INTERFACE METHOD SIGNATURE ARGS-JSON
  rawbus.py batch DEST FILE

latency calls METHOD (no arguments) over one connection, one call after the other with 50 ms
between them, for SECONDS, and prints {"calls": N, "max_ms": M, "errors": E}: the round trips
alone, without a process start per call, with the median and the 90th percentile.

until makes the call over one connection again and again, 50 ms apart, until FILE exists or
SECONDS have passed, and prints one JSON object per call: {"ms": round trip, "at": the
CLOCK_REALTIME nanoseconds when the answer came, and "reply" or "error" as for call}.

batch makes the calls FILE lists, one JSON array [PATH, INTERFACE, METHOD, SIGNATURE, ARGS] a
line, one after the other over one connection, and prints one JSON object per call as call does.
ARGS-JSON is a JSON array with one value per complete type of SIGNATURE. A variant is written
["sig", value]; a dictionary as a JSON object; a string may also be {"hex": "..."} (raw bytes,
not checked) or {"repeat": "x", "count": N}. ARGS-JSON may also be @FILE, to read it from FILE
(a command line argument is limited to 128 KiB). The bus address comes from
DBUS_SYSTEM_BUS_ADDRESS (unix:path=... only).

A file descriptor ("h") is passed as one of: {"file": PATH} (opened for reading, or with
"write": true for writing only), {"memfd": TEXT} (sealed against writes unless "seal": false),
{"pipe": TEXT} (the read end of a pipe that holds TEXT), {"socket": true} (one end of a socket
pair), {"path": PATH} (an O_PATH descriptor). A descriptor in a reply (at the top level) is
printed as {"fd": {"type": "regular"|..., "size": N, "seals": [...], "offset": N, "text": the
contents from offset 0}}.

Prints one JSON object and exits 0 for {"reply": [...]}, 1 for {"error": NAME, "message": TEXT},
3 for {"disconnected": true} (the bus dropped the connection: what it does to a sender of an
invalid message).
"""

import array
import fcntl
import json
import os
import socket
import stat
import struct
import sys

TIMEOUT = 30.0


class Disconnected(Exception):
    pass


def split_types(sig):
    """The complete types of a signature, in order."""
    out, i = [], 0
    while i < len(sig):
        j = end_of_type(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def end_of_type(sig, i):
    c = sig[i]
    if c == "a":
        return end_of_type(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while sig[i] != close:
            i = end_of_type(sig, i)
        return i + 1
    return i + 1


ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
         "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q",
         "d": "d", "h": "I"}


def open_fd(v):
    """The file descriptor an "h" argument describes (see the module's help)."""
    if "file" in v:
        return os.open(v["file"], os.O_WRONLY if v.get("write") else os.O_RDONLY)
    if "path" in v:
        return os.open(v["path"], os.O_PATH)
    if "memfd" in v:
        fd = os.memfd_create("rawbus", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, v["memfd"].encode())
        if v.get("seal", True):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK |
                        fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        return fd
    if "pipe" in v:
        r, w = os.pipe()
        os.write(w, v["pipe"].encode())
        os.close(w)
        return r
    if "socket" in v:
        a, b = socket.socketpair()
        b.close()
        return a.detach()
    raise ValueError("unsupported file descriptor %r" % v)


SEALS = [("seal", getattr(fcntl, "F_SEAL_SEAL", 1)), ("shrink", getattr(fcntl, "F_SEAL_SHRINK", 2)),
         ("grow", getattr(fcntl, "F_SEAL_GROW", 4)), ("write", getattr(fcntl, "F_SEAL_WRITE", 8))]


def describe_fd(fd):
    """What a descriptor received in a reply is, and what it holds from offset 0."""
    st = os.fstat(fd)
    out = {"type": "regular" if stat.S_ISREG(st.st_mode) else "other", "size": st.st_size,
           "offset": os.lseek(fd, 0, os.SEEK_CUR)}
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        out["seals"] = [name for name, bit in SEALS if seals & bit]
    except OSError:
        out["seals"] = None
    data, pos = b"", 0
    while True:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            break
        data += chunk
        pos += len(chunk)
    out["text"] = data.decode("utf-8", "replace")
    os.close(fd)
    return out


class Writer:
    def __init__(self, base=0):
        self.buf = bytearray()
        self.base = base  # alignment is relative to the start of the message
        self.fds = []

    def align(self, n):
        while (self.base + len(self.buf)) % n:
            self.buf.append(0)

    def string_bytes(self, v):
        if isinstance(v, dict) and "hex" in v:
            return bytes.fromhex(v["hex"])
        if isinstance(v, dict) and "repeat" in v:
            return v["repeat"].encode() * int(v["count"])
        return str(v).encode()

    def put(self, t, v):
        c = t[0]
        if c == "h" and isinstance(v, dict):
            self.fds.append(open_fd(v))
            v = len(self.fds) - 1
        if c in FIXED:
            self.align(ALIGN[c])
            if c == "b":
                v = 1 if v else 0
            self.buf += struct.pack("<" + FIXED[c], v)
        elif c in "so":
            b = self.string_bytes(v)
            self.align(4)
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += struct.pack("<B", len(b)) + b + b"\0"
        elif c == "v":
            sig, inner = v
            self.put("g", sig)
            self.put(sig, inner)
        elif c == "a":
            elem = t[1:]
            self.align(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.align(ALIGN[elem[0]])
            start = len(self.buf)
            if elem[0] == "{":
                kt, vt = split_types(elem[1:-1])
                items = v.items() if isinstance(v, dict) else v
                for k, x in items:
                    self.align(8)
                    self.put(kt, k)
                    self.put(vt, x)
            else:
                for x in v:
                    self.put(elem, x)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c == "(":
            self.align(8)
            for st, x in zip(split_types(t[1:-1]), v):
                self.put(st, x)
        else:
            raise ValueError("unsupported type " + t)


class Reader:
    def __init__(self, data, pos=0, base=0):
        self.data, self.pos, self.base = data, pos, base

    def align(self, n):
        off = self.pos - self.base
        self.pos += (-off) % n

    def get(self, t):
        c = t[0]
        if c in FIXED:
            self.align(ALIGN[c])
            fmt = "<" + FIXED[c]
            (v,) = struct.unpack_from(fmt, self.data, self.pos)
            self.pos += struct.calcsize(fmt)
            return bool(v) if c == "b" else v
        if c in "so":
            self.align(4)
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            s = self.data[self.pos + 4:self.pos + 4 + n]
            self.pos += 4 + n + 1
            return s.decode("utf-8", "replace")
        if c == "g":
            n = self.data[self.pos]
            s = self.data[self.pos + 1:self.pos + 1 + n]
            self.pos += n + 2
            return s.decode()
        if c == "v":
            sig = self.get("g")
            return [sig, self.get(sig)]
        if c == "a":
            elem = t[1:]
            self.align(4)
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            self.pos += 4
            self.align(ALIGN[elem[0]])
            end = self.pos + n
            if elem[0] == "{":
                kt, vt = split_types(elem[1:-1])
                out = {}
                while self.pos < end:
                    self.align(8)
                    k = self.get(kt)
                    out[str(k)] = self.get(vt)
                return out
            out = []
            while self.pos < end:
                out.append(self.get(elem))
            return out
        if c == "(":
            self.align(8)
            return [self.get(st) for st in split_types(t[1:-1])]
        raise ValueError("unsupported type " + t)


class Connection:
    def __init__(self, address):
        if not address.startswith("unix:path="):
            raise SystemExit("only unix:path= addresses are supported: " + address)
        path = address[len("unix:path="):].split(",")[0]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.serial = 0
        self.rbuf = b""
        self.rfds = []
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
        line = self.readline()
        if not line.startswith(b"OK"):
            raise SystemExit("authentication refused: %r" % line)
        self.sock.sendall(b"NEGOTIATE_UNIX_FD\r\n")
        self.unix_fds = self.readline().startswith(b"AGREE_UNIX_FD")
        self.sock.sendall(b"BEGIN\r\n")
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "Hello", "", [])

    def readline(self):
        while b"\r\n" not in self.rbuf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Disconnected()
            self.rbuf += chunk
        line, self.rbuf = self.rbuf.split(b"\r\n", 1)
        return line

    def recv_exact(self, n):
        while len(self.rbuf) < n:
            try:
                chunk, fds, _, _ = socket.recv_fds(self.sock, max(65536, n - len(self.rbuf)), 16)
                self.rfds += fds
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Disconnected()
            self.rbuf += chunk
        out, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return out

    def call(self, dest, path, iface, member, sig, args):
        self.serial += 1
        body = Writer()
        for t, v in zip(split_types(sig), args):
            body.put(t, v)
        fields = [(1, ["o", path]), (3, ["s", member]), (6, ["s", dest])]
        if iface:
            fields.insert(1, (2, ["s", iface]))
        if sig:
            fields.append((8, ["g", sig]))
        if body.fds:
            fields.append((9, ["u", len(body.fds)]))
        hdr = Writer()
        hdr.buf += struct.pack("<cBBBII", b"l", 1, 0, 1, len(body.buf), self.serial)
        hdr.put("a(yv)", fields)
        hdr.align(8)
        try:
            data = bytes(hdr.buf) + bytes(body.buf)
            if body.fds:
                # The descriptors go with the first byte; the rest as usual.
                sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   array.array("i", body.fds))])
                self.sock.sendall(data[sent:])
                for fd in body.fds:
                    os.close(fd)
            else:
                self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise Disconnected()
        return self.wait_reply(self.serial)

    def wait_reply(self, serial):
        while True:
            fixed = self.recv_exact(16)
            if fixed[0:1] != b"l":
                raise SystemExit("big-endian messages are not supported")
            mtype = fixed[1]
            body_len, _, fields_len = struct.unpack_from("<III", fixed, 4)
            hdr_len = 16 + fields_len
            hdr_len += (-hdr_len) % 8
            rest = self.recv_exact(hdr_len - 16 + body_len)
            msg = fixed + rest
            fields = dict((k, v[1]) for k, v in Reader(msg, 12).get("a(yv)"))
            nfds = fields.get(9, 0)
            fds, self.rfds = self.rfds[:nfds], self.rfds[nfds:]
            if fields.get(5) != serial:
                for fd in fds:
                    os.close(fd)
                continue
            sig = fields.get(8, "")
            r = Reader(msg, hdr_len, hdr_len)
            types = split_types(sig)
            values = [r.get(t) for t in types]
            values = [{"fd": describe_fd(fds[v])} if t == "h" and v < len(fds) else v
                      for t, v in zip(types, values)]
            if mtype == 3:
                return {"error": fields.get(4, ""), "message": values[0] if values else ""}
            return {"reply": values}


def latency(argv):
    import time
    dest, path, iface, member, seconds = argv[2:7]
    conn = Connection(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                                     "unix:path=/run/dbus/system_bus_socket"))
    end = time.monotonic() + float(seconds)
    times, errors = [], 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        result = conn.call(dest, path, iface, member, "", [])
        times.append((time.monotonic() - t0) * 1000)
        errors += "error" in result
        time.sleep(0.05)
    times.sort()
    print(json.dumps({"calls": len(times), "errors": errors,
                      "median_ms": round(times[len(times) // 2], 2),
                      "p90_ms": round(times[len(times) * 9 // 10], 2),
                      "max_ms": round(times[-1], 2)}))
    return 0


def until(argv):
    import time
    stop, seconds, dest, path, iface, member, sig, args = argv[2:10]
    conn = Connection(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                                     "unix:path=/run/dbus/system_bus_socket"))
    end = time.monotonic() + float(seconds)
    while not os.path.exists(stop) and time.monotonic() < end:
        t0 = time.monotonic()
        result = conn.call(dest, path, iface, member, sig, json.loads(args))
        result["ms"] = round((time.monotonic() - t0) * 1000, 2)
        result["at"] = time.time_ns()
        print(json.dumps(result), flush=True)
        time.sleep(0.05)
    return 0


def batch(argv):
    dest, path = argv[2:4]
    conn = Connection(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                                     "unix:path=/run/dbus/system_bus_socket"))
    with open(path) as f:
        for line in f:
            opath, iface, member, sig, args = json.loads(line)
            print(json.dumps(conn.call(dest, opath, iface, member, sig, args)), flush=True)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "batch":
        return batch(argv)
    if len(argv) == 7 and argv[1] == "latency":
        return latency(argv)
    if len(argv) == 10 and argv[1] == "until":
        return until(argv)
    if len(argv) != 8 or argv[1] != "call":
        sys.stderr.write(__doc__)
        return 2
    dest, path, iface, member, sig, args = argv[2:8]
    if args.startswith("@"):
        with open(args[1:]) as f:
            args = f.read()
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                             "unix:path=/run/dbus/system_bus_socket")
    try:
        conn = Connection(address)
        result = conn.call(dest, path, iface, member, sig, json.loads(args))
    except Disconnected:
        print(json.dumps({"disconnected": True}))
        return 3
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
