/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>

#include "proto.h"
#include "util.h"

static const struct {
        uint8_t number;
        const char *name;
} protocols[] = {
        { IPPROTO_TCP, "tcp" },   { IPPROTO_UDP, "udp" },     { IPPROTO_ICMP, "icmp" },
        { IPPROTO_ICMPV6, "icmpv6" }, { IPPROTO_SCTP, "sctp" }, { IPPROTO_GRE, "gre" },
        { IPPROTO_ESP, "esp" },   { IPPROTO_AH, "ah" },       { IPPROTO_UDPLITE, "udplite" },
};

int protocol_from_string(const char *s, uint8_t *ret) {
        uint32_t n;

        assert(s);
        assert(ret);
        for (size_t i = 0; i < ELEMENTSOF(protocols); i++)
                if (strcasecmp(s, protocols[i].name) == 0) {
                        *ret = protocols[i].number;
                        return 0;
                }
        if (safe_atou32(s, &n) < 0 || n > 255)
                return -EINVAL;
        *ret = (uint8_t) n;
        return 0;
}

const char *protocol_to_string(uint8_t proto, char buf[static 4]) {
        for (size_t i = 0; i < ELEMENTSOF(protocols); i++)
                if (protocols[i].number == proto)
                        return protocols[i].name;
        snprintf(buf, 4, "%u", proto);
        return buf;
}

bool protocol_has_ports(unsigned proto) {
        return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
               proto == IPPROTO_UDPLITE;
}

bool icmp_type_is_error(unsigned proto, unsigned type) {
        if (proto == IPPROTO_ICMP)
                return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
        if (proto == IPPROTO_ICMPV6)
                return type >= 1 && type <= 4;
        return false;
}

static const char *const state_names[] = {
        [FLOW_STATE_NONE] = "none",
        [FLOW_STATE_SYN] = "syn",
        [FLOW_STATE_ESTABLISHED] = "established",
        [FLOW_STATE_FIN] = "fin",
        [FLOW_STATE_RST] = "rst",
};

const char *flow_state_to_string(uint8_t state) {
        return state < ELEMENTSOF(state_names) ? state_names[state] : "unknown";
}

int flow_state_from_string(const char *s, uint8_t *ret) {
        assert(s);
        assert(ret);
        for (size_t i = 0; i < ELEMENTSOF(state_names); i++)
                if (streq(s, state_names[i])) {
                        *ret = (uint8_t) i;
                        return 0;
                }
        return -EINVAL;
}

const char *icmp_type_name(bool ipv6, unsigned type) {
        static const char *const v4[] = {
                [0] = "echo-reply", [3] = "dest-unreachable", [4] = "source-quench",
                [5] = "redirect", [8] = "echo-request", [9] = "router-advert",
                [10] = "router-solicit", [11] = "time-exceeded", [12] = "parameter-problem",
                [13] = "timestamp", [14] = "timestamp-reply",
        };
        static const char *const v6[] = {
                [1] = "dest-unreachable", [2] = "packet-too-big", [3] = "time-exceeded",
                [4] = "parameter-problem", [128] = "echo-request", [129] = "echo-reply",
                [130] = "mld-query", [131] = "mld-report", [132] = "mld-done",
                [133] = "router-solicit", [134] = "router-advert", [135] = "neighbor-solicit",
                [136] = "neighbor-advert", [137] = "redirect", [143] = "mld2-report",
        };

        if (ipv6)
                return type < ELEMENTSOF(v6) ? v6[type] : NULL;
        return type < ELEMENTSOF(v4) ? v4[type] : NULL;
}
