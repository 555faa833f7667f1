#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A StatusNotifierWatcher for the applet's tests: no panel needed.

sni-watcher.py OUT.json owns org.kde.StatusNotifierWatcher on the session bus, accepts the
registration of StatusNotifierItems and follows the (first) item: on each of its New* signals
and once a second it reads the item's properties again. OUT.json is rewritten atomically
after each change:
  {"registrations": N, "bus": ..., "path": ..., "alive": bool,
   "props": {"IconName": ..., "Status": ..., "Title": ..., ...}, "icons": [every IconName seen]}
"""
import json
import os
import sys

from gi.repository import Gio, GLib

WATCHER_XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
</node>
"""
ITEM_IFACES = ("org.kde.StatusNotifierItem", "org.freedesktop.StatusNotifierItem")
PLAIN = (str, int, float, bool)


class Watcher:
    def __init__(self, out):
        self.out = out
        self.bus = None
        self.state = {"registrations": 0, "bus": None, "path": None, "alive": False,
                      "props": {}, "icons": []}
        self.iface = None
        self.subs = []
        self.watch = 0
        self.write()

    def write(self):
        tmp = self.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.out)

    def method(self, conn, sender, path, iface, name, params, inv):
        if name == "RegisterStatusNotifierItem":
            arg = params.unpack()[0]
            # libappindicator passes its object path; others pass a bus name.
            if arg.startswith("/"):
                bus, opath = sender, arg
            else:
                bus, opath = arg, "/StatusNotifierItem"
            inv.return_value(None)
            self.follow(bus, opath)
            conn.emit_signal(None, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher",
                             "StatusNotifierItemRegistered", GLib.Variant("(s)", (bus + opath,)))
        elif name == "RegisterStatusNotifierHost":
            inv.return_value(None)
        else:
            inv.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", name)

    def get_prop(self, conn, sender, path, iface, name):
        if name == "RegisteredStatusNotifierItems":
            items = [self.state["bus"] + self.state["path"]] if self.state["alive"] else []
            return GLib.Variant("as", items)
        if name == "IsStatusNotifierHostRegistered":
            return GLib.Variant("b", True)
        if name == "ProtocolVersion":
            return GLib.Variant("i", 0)
        return None

    def follow(self, bus, path):
        for s in self.subs:
            self.bus.signal_unsubscribe(s)
        if self.watch:
            Gio.bus_unwatch_name(self.watch)
        self.state.update(registrations=self.state["registrations"] + 1, bus=bus, path=path,
                          alive=True)
        self.subs = [self.bus.signal_subscribe(bus, None, None, path, None,
                                               Gio.DBusSignalFlags.NONE, self.changed, None)]
        self.watch = Gio.bus_watch_name_on_connection(self.bus, bus, Gio.BusNameWatcherFlags.NONE,
                                                      None, self.vanished)
        self.iface = None
        self.read()

    def vanished(self, conn, name):
        self.state["alive"] = False
        self.write()

    def changed(self, conn, sender, path, iface, signal, params, data):
        self.read()

    def read(self):
        if not self.state["alive"]:
            return
        for iface in ((self.iface,) if self.iface else ITEM_IFACES):
            try:
                reply = self.bus.call_sync(self.state["bus"], self.state["path"],
                                           "org.freedesktop.DBus.Properties", "GetAll",
                                           GLib.Variant("(s)", (iface,)),
                                           GLib.VariantType("(a{sv})"),
                                           Gio.DBusCallFlags.NONE, 5000, None)
            except GLib.Error:
                continue
            props = reply.unpack()[0]
            if not props:
                continue
            self.iface = iface
            plain = {k: v for k, v in props.items() if isinstance(v, PLAIN)}
            if plain != self.state["props"]:
                self.state["props"] = plain
                icon = plain.get("IconName")
                if icon and (not self.state["icons"] or self.state["icons"][-1] != icon):
                    self.state["icons"].append(icon)
                self.write()
            return

    def tick(self):
        self.read()
        return True


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sni-watcher.py OUT.json")
    w = Watcher(sys.argv[1])
    loop = GLib.MainLoop()
    info = Gio.DBusNodeInfo.new_for_xml(WATCHER_XML).interfaces[0]

    def acquired(conn, name):
        w.state["owner"] = True
        w.write()

    def lost(conn, name):
        sys.stderr.write("sni-watcher: lost or could not own %s\n" % name)
        loop.quit()

    w.bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    w.bus.register_object("/StatusNotifierWatcher", info, w.method, w.get_prop, None)
    Gio.bus_own_name_on_connection(w.bus, "org.kde.StatusNotifierWatcher",
                                   Gio.BusNameOwnerFlags.DO_NOT_QUEUE, acquired, lost)
    GLib.timeout_add(1000, w.tick)
    # Bounded: a test that forgets it does not leave it running for long.
    GLib.timeout_add_seconds(600, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
