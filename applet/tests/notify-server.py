#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A notification server for the applet's tests: no desktop needed.

notify-server.py OUT.json owns org.freedesktop.Notifications on the session bus and records
every Notify call; OUT.json is rewritten atomically after each:
  {"owner": true, "notes": [{"time": SECONDS (CLOCK_MONOTONIC), "app": ..., "summary": ...,
                             "body": ..., "icon": ...}, ...]}
"""
import json
import os
import sys
import time

from gi.repository import Gio, GLib

XML = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
      <arg type="u" direction="out"/>
    </method>
    <method name="CloseNotification"><arg type="u" direction="in"/></method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
    <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal>
    <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  </interface>
</node>
"""


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: notify-server.py OUT.json")
    out = sys.argv[1]
    state = {"owner": False, "notes": []}

    def write():
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, out)

    def method(conn, sender, path, iface, name, params, inv):
        if name == "Notify":
            app, _, icon, summary, body, _, _, _ = params.unpack()
            state["notes"].append({"time": time.monotonic(), "app": app, "summary": summary,
                                   "body": body, "icon": icon})
            write()
            inv.return_value(GLib.Variant("(u)", (len(state["notes"]),)))
        elif name == "GetCapabilities":
            inv.return_value(GLib.Variant("(as)", (["body"],)))
        elif name == "GetServerInformation":
            inv.return_value(GLib.Variant("(ssss)", ("test", "packetscope", "1", "1.2")))
        elif name == "CloseNotification":
            inv.return_value(None)
        else:
            inv.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", name)

    loop = GLib.MainLoop()

    def acquired(conn, name):
        state["owner"] = True
        write()

    def lost(conn, name):
        sys.stderr.write("notify-server: lost or could not own %s\n" % name)
        loop.quit()

    bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    bus.register_object("/org/freedesktop/Notifications",
                        Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0], method, None, None)
    Gio.bus_own_name_on_connection(bus, "org.freedesktop.Notifications",
                                   Gio.BusNameOwnerFlags.DO_NOT_QUEUE, acquired, lost)
    write()
    # Bounded: a test that forgets it does not leave it running for long.
    GLib.timeout_add_seconds(600, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
