#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Compare the shipped introspection XML with what a running daemon says about itself.

  introspect-compare.py SHIPPED-XML BUS-NAME ROOT-PATH [EXPECTED-PATH...]

Walks the live object tree from ROOT-PATH (busctl --system introspect --xml-interface), and
for every interface that is not one of the standard org.freedesktop.DBus.* ones compares
methods (arguments in order: name, type, direction), properties (type, access and the
EmitsChangedSignal annotation, "true" when absent) and signals (arguments in order) with the
shipped XML. Every shipped interface must be found on some live object; every live interface
must be shipped. Each EXPECTED-PATH (an object the caller created) must be in the tree.

Prints one JSON object per check: {"ok": bool, "name": "...", "diag": "..."}.
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

EMITS = "org.freedesktop.DBus.Property.EmitsChangedSignal"
LABEL = {"methods": "method", "properties": "property", "signals": "signal"}


def emit(ok, name, diag=""):
    print(json.dumps({"ok": bool(ok), "name": name, "diag": diag}))


def describe_interface(el):
    """A comparable description of one <interface> element."""
    methods, props, signals = {}, {}, {}
    for m in el.findall("method"):
        methods[m.get("name")] = [(a.get("name") or "", a.get("type"), a.get("direction") or "in")
                                  for a in m.findall("arg")]
    for p in el.findall("property"):
        emits = "true"
        for an in p.findall("annotation"):
            if an.get("name") == EMITS:
                emits = an.get("value")
        props[p.get("name")] = (p.get("type"), p.get("access"), emits)
    for s in el.findall("signal"):
        signals[s.get("name")] = [(a.get("name") or "", a.get("type")) for a in s.findall("arg")]
    return {"methods": methods, "properties": props, "signals": signals}


def ours(name):
    return not name.startswith("org.freedesktop.DBus.")


def introspect(bus_name, path):
    out = subprocess.run(["busctl", "--system", "introspect", "--xml-interface", bus_name, path],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return ET.fromstring(out)


def walk(bus_name, root):
    """{path: {interface: element}} for every object below root, root included."""
    objects, todo, seen = {}, [root], set()
    while todo and len(seen) < 10000:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        node = introspect(bus_name, path)
        objects[path] = {i.get("name"): i for i in node.findall("interface")}
        for child in node.findall("node"):
            todo.append(path.rstrip("/") + "/" + child.get("name"))
    return objects


def compare(kind, want, got):
    """Differences between two {member: description} maps, as text lines."""
    diffs = []
    for name in sorted(set(want) | set(got)):
        if name not in got:
            diffs.append("%s %s is shipped but not live" % (kind, name))
        elif name not in want:
            diffs.append("%s %s is live but not shipped: %s" % (kind, name, got[name]))
        elif want[name] != got[name]:
            diffs.append("%s %s differs: shipped %s, live %s" % (kind, name, want[name], got[name]))
    return diffs


def main(argv):
    shipped_path, bus_name, root = argv[1:4]
    expected = argv[4:]
    shipped = {i.get("name"): describe_interface(i)
               for i in ET.parse(shipped_path).getroot().findall("interface")}
    emit(len(shipped) > 0, "the shipped XML declares interfaces (%d)" % len(shipped))
    objects = walk(bus_name, root)
    # The walk starts at ROOT-PATH, so ROOT-PATH itself proves nothing; the objects the caller
    # made must have been reached through the tree's <node> children.
    for path in expected:
        emit(path in objects, "the live tree below %s has %s" % (root, path),
             "found: " + " ".join(sorted(objects)))

    found = {}
    for path in sorted(objects):
        for iface, el in sorted(objects[path].items()):
            if not ours(iface):
                continue
            if iface not in shipped:
                emit(False, "%s on %s is shipped in the XML" % (iface, path),
                     "the live object has an interface the XML does not declare")
                continue
            # One comparison per interface (its first object); all objects must agree though.
            live = describe_interface(el)
            diffs = []
            for kind in ("methods", "properties", "signals"):
                diffs += compare(LABEL[kind], shipped[iface][kind], live[kind])
            if iface not in found:
                found[iface] = path
                emit(not diffs, "%s on %s matches the shipped XML" % (iface, path),
                     "\n".join(diffs))
            elif diffs:
                emit(False, "%s on %s matches the shipped XML" % (iface, path), "\n".join(diffs))

    for iface in sorted(shipped):
        emit(iface in found, "shipped interface %s exists on a live object" % iface,
             "no object below %s implements it" % root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
