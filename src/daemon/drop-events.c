/* SPDX-License-Identifier: MIT */
/*
 * The sampled drop events of the XDP programs (a ring buffer shared by every link): each one
 * goes to the journal with its rule and addresses, and to the Manager's on_drop handler (the
 * Filters.Dropped signal that a desktop applet can show). The kernel already limits them to a few per second per CPU.
 */
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>

#include "log.h"
#include "query.h"
#include "manager.h"
#include "util.h"

static const char *link_name_of(Manager *m, uint32_t ifindex, char buf[static IF_NAMESIZE]) {
        for (size_t i = 0; i < m->n_links; i++)
                if ((uint32_t) m->links[i]->ifindex == ifindex)
                        return m->links[i]->name;
        return if_indextoname(ifindex, buf) ? buf : "?";
}

static int on_drop_event(void *ctx, void *data, size_t size) {
        Manager *m = ctx;
        const struct ps_drop_event *e = data;
        char src[ADDR_STRLEN], dst[ADDR_STRLEN], ifbuf[IF_NAMESIZE], pbuf[4];
        const char *link, *proto;
        uint32_t rule_id = UINT32_MAX;
        bool log = true;
        uint32_t a[4];

        if (size < sizeof *e)
                return 0;
        for (size_t i = 0; i < m->filters->n_rules; i++)
                if (m->filters->rules[i]->slot == e->slot) {
                        rule_id = m->filters->rules[i]->id;
                        log = m->filters->rules[i]->log;
                        break;
                }
        /* A rule with "log": false drops as quietly as it counts: only the counters show it. */
        if (!log)
                return 0;
        link = link_name_of(m, e->ifindex, ifbuf);
        memcpy(a, e->match.src, sizeof a);
        addr_to_string(e->match.family, a, src);
        memcpy(a, e->match.dst, sizeof a);
        addr_to_string(e->match.family, a, dst);
        proto = protocol_to_string(e->match.proto, pbuf);

        {
                char f_id[32], f_proto[32], f_src[ADDR_STRLEN + 8], f_dst[ADDR_STRLEN + 8],
                     f_sport[24], f_dport[24];
                const char *const fields[] = { f_id, f_proto, f_src, f_dst, f_sport, f_dport, NULL };
                bool icmp = e->match.proto == IPPROTO_ICMP || e->match.proto == IPPROTO_ICMPV6;

                /* A slot no listed rule has (a degraded store's opaque set): named as what it
                 * is, never as a made-up filter id. */
                if (rule_id == UINT32_MAX)
                        snprintf(f_id, sizeof f_id, "KERNEL_SLOT=%u", e->slot);
                else
                        snprintf(f_id, sizeof f_id, "FILTER_ID=%u", rule_id);
                snprintf(f_proto, sizeof f_proto, "PROTOCOL=%s", proto);
                snprintf(f_src, sizeof f_src, "SRC=%s", src);
                snprintf(f_dst, sizeof f_dst, "DST=%s", dst);
                if (rule_id == UINT32_MAX) {
                        snprintf(f_sport, sizeof f_sport, "SPORT=%u", e->match.sport);
                        snprintf(f_dport, sizeof f_dport, "DPORT=%u", e->match.dport);
                        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_PACKET_DROPPED, link, fields,
                                          "Dropped %s %s:%u -> %s:%u on %s by an unlisted rule "
                                          "of the kernel's set (counter slot %u; sampled)",
                                          proto, src, e->match.sport, dst, e->match.dport, link,
                                          e->slot);
                } else if (icmp) {
                        /* ICMP has no ports: its type and code say what it was. */
                        const char *name = icmp_type_name(e->match.proto == IPPROTO_ICMPV6,
                                                          e->match.icmp_type);

                        snprintf(f_sport, sizeof f_sport, "ICMP_TYPE=%u", e->match.icmp_type);
                        snprintf(f_dport, sizeof f_dport, "ICMP_CODE=%u", e->match.icmp_code);
                        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_PACKET_DROPPED, link, fields,
                                          "Dropped %s %s -> %s type %u%s%s%s code %u on %s by "
                                          "filter %u (sampled)", proto, src, dst,
                                          e->match.icmp_type, name ? " (" : "", name ? name : "",
                                          name ? ")" : "", e->match.icmp_code, link, rule_id);
                } else {
                        snprintf(f_sport, sizeof f_sport, "SPORT=%u", e->match.sport);
                        snprintf(f_dport, sizeof f_dport, "DPORT=%u", e->match.dport);
                        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_PACKET_DROPPED, link, fields,
                                          "Dropped %s %s:%u -> %s:%u on %s by filter %u "
                                          "(sampled)", proto, src, e->match.sport, dst,
                                          e->match.dport, link, rule_id);
                }
        }
        if (m->on_drop)
                m->on_drop(&(DropEvent) {
                                .rule_id = rule_id, .link = link, .protocol = proto,
                                .src = src, .dst = dst,
                                .sport = e->match.sport, .dport = e->match.dport,
                           }, m->on_drop_userdata);
        return 0;
}

static int on_ring_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        int r;

        r = ring_buffer__consume(m->drop_ring);
        if (r < 0)
                log_debug_errno(r, "Reading drop events failed: %m");
        return 0;
}

int manager_start_drop_events(Manager *m) {
        int state, banks, rules, rules4, gates, counters, events, r;

        r = filter_store_fds(m->filters, &state, &banks, &rules, &rules4, &gates, &counters,
                             &events);
        if (r < 0)
                return r;
        m->drop_ring = ring_buffer__new(events, on_drop_event, m, NULL);
        if (!m->drop_ring)
                return -errno;
        return sd_event_add_io(m->event, &m->drop_source, ring_buffer__epoll_fd(m->drop_ring),
                               EPOLLIN, on_ring_readable, m);
}

void manager_stop_drop_events(Manager *m) {
        m->drop_source = sd_event_source_unref(m->drop_source);
        ring_buffer__free(m->drop_ring);
        m->drop_ring = NULL;
}
