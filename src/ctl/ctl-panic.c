/* SPDX-License-Identifier: MIT */
/* panic on|off|status: Manager.SetPanic and the Panic property. */
#include "packetscopectl.h"

int verb_panic(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *sub = n_args > 0 ? args[0] : "status";
        json_t *j;
        int on, r;

        assert(bus);
        if (streq(sub, "on") || streq(sub, "off")) {
                r = bus_call(bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "SetPanic", NULL, NULL, "b",
                             (int) streq(sub, "on"));
                return r < 0 ? r : 0;
        }
        if (!streq(sub, "status"))
                return usage_error("unknown command 'panic %s'; accepted: panic on, panic off, "
                                   "panic status", sub);
        r = sd_bus_get_property_trivial(bus, PS_BUS_NAME, PS_OBJECT_ROOT, PS_IFACE_MANAGER,
                                        "Panic", &error, 'b', &on);
        if (r < 0)
                return bus_error("reading the Panic property", &error, r);
        if (!json_output()) {
                printf("%s\n", on ? "on" : "off");
                return 0;
        }
        j = json_pack("{s:b}", "panic", on);
        if (!j)
                return -ENOMEM;
        r = print_json(j);
        json_decref(j);
        return r;
}
