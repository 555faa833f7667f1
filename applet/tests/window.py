#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drives packetscope-applet's window through AT-SPI (dogtail), as a screen reader user or a
keyboard would: every control is found by its accessible name.

  window.py text REGEX [SECONDS]       some node's accessible name matches REGEX
  window.py rule ID                    prints the state of rule ID's switch: on or off
  window.py toggle ID                  flips rule ID's switch (a click on it)
  window.py page TITLE                 shows the notebook page TITLE

Each waits for its condition up to SECONDS (default 30) and exits 1 with what it saw when
the time runs out; the matching name is printed.
"""
import os
import re
import sys
import time

# dogtail reads the desktop's accessibility switch (GSettings, or this variable) and refuses
# to start without it; the applet's own GTK enables AT-SPI regardless.
os.environ["GTK_MODULES"] = "gail:atk-bridge"
from dogtail import config  # noqa: E402
if os.environ.get("DOGTAIL_DIR"):
    config.config.scratchDir = os.environ["DOGTAIL_DIR"] + "/"
    config.config.logDir = os.environ["DOGTAIL_DIR"] + "/"
config.config.logDebugToFile = False
config.config.logDebugToStdOut = False
config.config.searchCutoffCount = 1
config.config.defaultDelay = 0.1
from dogtail import tree, predicate  # noqa: E402

APP = "packetscope-applet"


def deadline_loop(seconds, fn):
    end = time.monotonic() + seconds
    last = None
    while True:
        try:
            got = fn()
        except Exception as e:  # the tree changes under us: look again
            got, last = None, repr(e)
        if got is not None:
            return got
        if time.monotonic() >= end:
            return None
        time.sleep(0.25)


def app():
    return tree.root.application(APP)


def names(node, depth=0, out=None):
    out = [] if out is None else out
    if depth > 30:
        return out
    try:
        out.append((node.roleName, node.name, node))
        for c in node.children:
            names(c, depth + 1, out)
    except Exception:
        pass
    return out


def find(pred):
    for role, name, node in names(app()):
        if pred(role, name):
            return node
    return None


def rule_check(rid):
    want = "Rule %s enabled" % rid
    return find(lambda role, name: role == "check box" and name == want)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    seconds = 30.0
    if cmd == "text":
        rx = re.compile(args[0])
        if len(args) > 1:
            seconds = float(args[1])
        node = deadline_loop(seconds, lambda: find(lambda role, name: bool(rx.search(name or ""))))
        if node is None:
            seen = [n for _, n, _ in names(app()) if n]
            sys.exit("no accessible name matches %r; seen: %r" % (args[0], seen[:80]))
        print(node.name)
    elif cmd == "rule":
        node = deadline_loop(seconds, lambda: rule_check(args[0]))
        if node is None:
            sys.exit("no switch for rule %s" % args[0])
        print("on" if node.checked else "off")
    elif cmd == "toggle":
        node = deadline_loop(seconds, lambda: rule_check(args[0]))
        if node is None:
            sys.exit("no switch for rule %s" % args[0])
        deadline_loop(seconds, lambda: True if node.sensitive else None)
        node.doActionNamed("click")
        print("clicked")
    elif cmd == "page":
        node = deadline_loop(seconds, lambda: find(
            lambda role, name: role == "page tab" and name.replace("_", "") == args[0]))
        if node is None:
            sys.exit("no page %s" % args[0])
        node.select()
        ok = deadline_loop(seconds, lambda: True if node.isSelected else None)
        if not ok:
            sys.exit("page %s not selected" % args[0])
        print(args[0])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
