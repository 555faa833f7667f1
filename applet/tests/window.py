#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drives packetscope-applet's window through AT-SPI (dogtail), as a screen reader user or a
keyboard would: every control is found by its accessible name, among those shown.

  window.py text REGEX [SECONDS]       some node's accessible name matches REGEX
  window.py rule ID                    prints the state of rule ID's switch: on or off
  window.py toggle ID                  flips rule ID's switch (a click on it)
  window.py page TITLE                 shows the notebook page TITLE
  window.py selected TITLE             the notebook page TITLE is the one shown
  window.py set NAME TEXT              types TEXT into the field NAME (replacing its text)
  window.py click NAME                 clicks the button (or check box) NAME
  window.py gone REGEX [SECONDS]       no accessible name matches REGEX (any more)
  window.py unnamed                    lists the controls without an accessible name: none
  window.py keyboard [NAME...]         every control shown is focusable; each NAME has a key
                                       binding (printed as NAME=BINDING)
  window.py keys COMBO...              presses keys (dogtail's syntax: "<Alt>r", "Escape")
  window.py focused REGEX [SECONDS]    the focused control's accessible name matches REGEX

Each waits for its condition up to SECONDS (default 30) and exits 1 with what it saw when
the time runs out; the matching name is printed. Several commands run in one process (one
AT-SPI connection, which is what costs) when separated by "::".
With PS_WINDOW_LANG=de, the names of the applet's German catalogue are used.
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
from dogtail import tree, predicate, rawinput  # noqa: E402
from gi.repository import Atspi  # noqa: E402

APP = "packetscope-applet"
NAMES = {
    "en": {"rule": "Rule %s enabled"},
    "de": {"rule": "Regel %s aktiv"},
}[os.environ.get("PS_WINDOW_LANG", "en")]
# The roles a keyboard user reaches: each needs a name a screen reader can say.
CONTROLS = ("push button", "toggle button", "check box", "radio button", "text", "combo box",
            "spin button", "page tab", "menu item", "check menu item")


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
    """What is on the screen, the way a user meets it: hidden subtrees (the other notebook
    pages, a closed menu, an empty transaction bar) are not walked, which also keeps each
    walk short (the drops page alone can hold 1200 cells)."""
    out = [] if out is None else out
    if depth > 30:
        return out
    try:
        out.append((node.roleName, node.name, node))
        if depth > 0 and not showing(node):
            return out
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
    want = NAMES["rule"] % rid
    return find(lambda role, name: role == "check box" and name == want)


def showing(node):
    try:
        return node.showing
    except Exception:
        return False


def named(name, roles=None):
    return find(lambda role, n: n == name and (roles is None or role in roles))


def focused_node():
    for role, name, node in names(app()):
        try:
            if node.focused:
                return node
        except Exception:
            pass
    return None


def main():
    argv = sys.argv[1:]
    while "::" in argv:
        i = argv.index("::")
        run(argv[0], argv[1:i])
        argv = argv[i + 1:]
    run(argv[0], argv[1:])


def run(cmd, args):
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
    elif cmd == "selected":
        node = deadline_loop(seconds, lambda: find(
            lambda role, name: role == "page tab" and name.replace("_", "") == args[0]))
        if node is None or not deadline_loop(seconds, lambda: True if node.isSelected else None):
            sys.exit("page %s is not shown" % args[0])
        print(args[0])
    elif cmd == "set":
        node = deadline_loop(seconds, lambda: find(
            lambda role, name: role == "text" and name == args[0]))
        if node is None:
            sys.exit("no field %s" % args[0])
        node.text = args[1]
        if not deadline_loop(seconds, lambda: True if node.text == args[1] else None):
            sys.exit("field %s holds %r, not %r" % (args[0], node.text, args[1]))
        print(args[1])
    elif cmd == "click":
        node = deadline_loop(seconds, lambda: find(
            lambda role, name: role in ("push button", "check box", "toggle button")
            and name.replace("_", "") == args[0]))
        if node is None:
            sys.exit("no button %s; seen: %r" % (args[0], [n for _, n, _ in names(app()) if n][:80]))
        deadline_loop(seconds, lambda: True if node.sensitive else None)
        node.doActionNamed("click")
        print("clicked")
    elif cmd == "gone":
        rx = re.compile(args[0])
        if len(args) > 1:
            seconds = float(args[1])
        ok = deadline_loop(seconds, lambda: True if find(
            lambda role, name: bool(rx.search(name or ""))) is None else None)
        if not ok:
            sys.exit("still there: %r" % args[0])
        print("gone")
    elif cmd == "unnamed":
        bad = ["%s in %s" % (role, (node.parent.name or node.parent.roleName))
               for role, name, node in names(app())
               if role in CONTROLS and not (name or "").strip() and showing(node)]
        if bad:
            sys.exit("controls without an accessible name: %r" % bad)
        print("all named")
    elif cmd == "keyboard":
        # Reachable from the keyboard: every control shown takes the focus (Tab reaches it),
        # and each control NAME has a key binding (its mnemonic). Page tabs are reached in
        # the notebook's tab strip (the arrows, Ctrl+Page Up/Down), a combo box's focus is
        # its inner button, menu items are reached in their menu: GTK marks none of these
        # focusable itself.
        indirect = ("page tab", "combo box", "menu item", "check menu item")
        bad = ["%s %r" % (role, name) for role, name, node in names(app())
               if role in CONTROLS and role not in indirect and showing(node)
               and not node.get_state_set().contains(Atspi.StateType.FOCUSABLE)]
        if bad:
            sys.exit("controls the keyboard cannot reach: %r" % bad)
        for name in args:
            node = deadline_loop(seconds, lambda: find(
                lambda role, n: role in CONTROLS and n.replace("_", "") == name))
            if node is None:
                sys.exit("no control %s" % name)
            action = node.get_action_iface()
            binding = ";".join(action.get_key_binding(i) or ""
                               for i in range(action.get_n_actions())) if action else ""
            binding = binding.strip(";")
            if not binding:
                sys.exit("%s has no key binding" % name)
            print("%s=%s" % (name, binding))
    elif cmd == "keys":
        # No window manager gives the window the focus: X sends the keys to the window under
        # the pointer, so the pointer goes to the middle of the applet's main window.
        frame = deadline_loop(seconds, lambda: find(
            lambda role, name: role == "frame" and name == "packetscope"))
        if frame is None:
            sys.exit("no window")
        (x, y), (w, h) = frame.position, frame.size
        rawinput.absoluteMotion(x + w // 2, y + h // 2)
        try:
            frame.grabFocus()
        except Exception:
            pass
        time.sleep(0.5)
        for combo in args:
            rawinput.keyCombo(combo)
            time.sleep(0.3)
        print("pressed")
    elif cmd == "focused":
        rx = re.compile(args[0])
        if len(args) > 1:
            seconds = float(args[1])
        node = deadline_loop(seconds, lambda: (lambda n: n if n is not None and rx.search(
            n.name or "") else None)(focused_node()))
        if node is None:
            f = focused_node()
            sys.exit("focus is on %r, not %r" % (f and (f.roleName, f.name), args[0]))
        print(node.name)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
