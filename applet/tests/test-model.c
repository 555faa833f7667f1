/* SPDX-License-Identifier: MIT */
/*
 * The applet's model layer with data shaped as the daemon sends it on the bus (see
 * org.packetscope.Guarder1(5)): no display and no bus needed.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "model.h"

#define SEC G_USEC_PER_SEC

static GVariant *link_props(const char *name, guint64 packets, guint64 dropped)
{
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&b, "{sv}", "Name", g_variant_new_string(name));
        g_variant_builder_add(&b, "{sv}", "Mode", g_variant_new_string("generic"));
        g_variant_builder_add(&b, "{sv}", "Packets", g_variant_new_uint64(packets));
        g_variant_builder_add(&b, "{sv}", "Bytes", g_variant_new_uint64(packets * 100));
        g_variant_builder_add(&b, "{sv}", "Dropped", g_variant_new_uint64(dropped));
        g_variant_builder_add(&b, "{sv}", "PacketsPerSecond", g_variant_new_double(1.5));
        return g_variant_ref_sink(g_variant_builder_end(&b));
}

Test(model, endpoint_format)
{
        g_autofree char *a = ps_endpoint_format("192.0.2.7", 443);
        g_autofree char *b = ps_endpoint_format("2001:db8::1", 53);
        g_autofree char *c = ps_endpoint_format("10.1.2.3", 0);
        g_autofree char *d = ps_endpoint_format("", 7);

        cr_assert_str_eq(a, "192.0.2.7:443");
        cr_assert_str_eq(b, "[2001:db8::1]:53");
        cr_assert_str_eq(c, "10.1.2.3");
        cr_assert_str_eq(d, "?:7");
}

Test(model, link_rates_from_two_samples)
{
        PsLinkRow *row = ps_link_row_new("/org/packetscope/Guarder1/link/eth0");
        g_autoptr(GVariant) p1 = link_props("eth0", 1000, 10);
        g_autoptr(GVariant) p2 = link_props("eth0", 1500, 30);

        cr_assert_eq(ps_link_row_update(row, p1, 100 * SEC), 0);
        cr_assert_str_eq(row->name, "eth0");
        cr_assert_str_eq(row->mode, "generic");
        cr_assert_eq(row->packets, 1000);
        cr_assert_eq(row->bytes, 100000);
        /* One sample gives no rate yet. */
        cr_assert_float_eq(row->pps, 0.0, 1e-9);
        cr_assert_eq(ps_link_row_update(row, p2, 102 * SEC), 0);
        cr_assert_float_eq(row->pps, 250.0, 1e-9);
        cr_assert_float_eq(row->drops_per_sec, 10.0, 1e-9);
        cr_assert_eq(row->dropped, 30);
        ps_link_row_free(row);
}

Test(model, link_counter_reset_is_a_new_base)
{
        PsLinkRow *row = ps_link_row_new("/l");

        ps_link_row_sample(row, 5000, 50, 10 * SEC);
        ps_link_row_sample(row, 40, 2, 12 * SEC);
        cr_assert_float_eq(row->pps, 0.0, 1e-9);
        cr_assert_float_eq(row->drops_per_sec, 0.0, 1e-9);
        cr_assert_eq(row->packets, 40);
        ps_link_row_sample(row, 140, 6, 14 * SEC);
        cr_assert_float_eq(row->pps, 50.0, 1e-9);
        cr_assert_float_eq(row->drops_per_sec, 2.0, 1e-9);
        /* A second sample at the same instant changes nothing (no division by zero). */
        ps_link_row_sample(row, 150, 6, 14 * SEC);
        cr_assert_float_eq(row->pps, 50.0, 1e-9);
        cr_assert_eq(row->packets, 140);
        ps_link_row_free(row);
}

Test(model, link_props_of_wrong_type_are_refused)
{
        PsLinkRow *row = ps_link_row_new("/l");
        GVariantBuilder b;
        g_autoptr(GVariant) props = NULL;

        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&b, "{sv}", "Name", g_variant_new_string("eth0"));
        g_variant_builder_add(&b, "{sv}", "Packets", g_variant_new_uint32(5));
        g_variant_builder_add(&b, "{sv}", "Dropped", g_variant_new_uint64(0));
        props = g_variant_ref_sink(g_variant_builder_end(&b));
        cr_assert_eq(ps_link_row_update(row, props, SEC), -EBADMSG);
        cr_assert_null(row->name);
        {
                g_autoptr(GVariant) s = g_variant_ref_sink(g_variant_new_string("x"));

                cr_assert_eq(ps_link_row_update(row, s, SEC), -EINVAL);
        }
        ps_link_row_free(row);
}

Test(model, connection_rows)
{
        g_autoptr(GVariant) rows = g_variant_ref_sink(g_variant_new_parsed(
                "[{'family': <'ipv4'>, 'protocol': <'udp'>, 'ip_protocol': <byte 17>,"
                "  'src': <'10.9.8.2'>, 'dst': <'10.9.8.1'>, 'sport': <uint16 40000>,"
                "  'dport': <uint16 53>, 'packets': <uint64 12>, 'bytes': <uint64 1200>,"
                "  'state': <'none'>},"
                " {'family': <'ipv6'>, 'protocol': <'icmpv6'>, 'ip_protocol': <byte 58>,"
                "  'src': <'fd00::2'>, 'dst': <'fd00::1'>, 'sport': <uint16 0>,"
                "  'dport': <uint16 0>, 'packets': <uint64 3>, 'bytes': <uint64 312>}]"));
        g_autoptr(GPtrArray) out = NULL;
        PsConnRow *r0, *r1;

        cr_assert_eq(ps_conn_rows_parse(rows, &out), 0);
        cr_assert_eq(out->len, 2);
        r0 = out->pdata[0];
        r1 = out->pdata[1];
        cr_assert_str_eq(r0->protocol, "udp");
        cr_assert_str_eq(r0->remote, "10.9.8.2:40000");
        cr_assert_str_eq(r0->local, "10.9.8.1:53");
        cr_assert_str_eq(r0->state, "none");
        cr_assert_eq(r0->packets, 12);
        cr_assert_eq(r0->bytes, 1200);
        cr_assert_str_eq(r1->remote, "fd00::2");
        cr_assert_str_eq(r1->local, "fd00::1");
        cr_assert_str_eq(r1->state, "");
        cr_assert_eq(r1->bytes, 312);
}

Test(model, connection_row_without_addresses_is_refused)
{
        g_autoptr(GVariant) rows = g_variant_ref_sink(g_variant_new_parsed(
                "[{'protocol': <'tcp'>, 'packets': <uint64 1>}]"));
        GPtrArray *out = NULL;

        cr_assert_eq(ps_conn_rows_parse(rows, &out), -EBADMSG);
        cr_assert_null(out);
}

Test(model, ban_rows)
{
        /* 1764536700 s is 2025-11-30 21:05:00 UTC. */
        g_autoptr(GVariant) rows = g_variant_ref_sink(g_variant_new_parsed(
                "[{'address': <'192.0.2.7'>, 'id': <uint32 3>, 'origin': <'manual'>,"
                "  'reason': <'scanner'>, 'created': <uint64 1764536000000000>,"
                "  'until': <uint64 1764536700000000>, 'offenses': <uint32 2>,"
                "  'packets': <uint64 17>, 'bytes': <uint64 1020>, 'last_hit': <uint64 0>},"
                " {'address': <'2001:db8::/48'>, 'origin': <'auto:syn'>, 'until': <uint64 0>}]"));
        g_autoptr(GPtrArray) out = NULL;
        g_autoptr(GTimeZone) utc = g_time_zone_new_utc();
        g_autofree char *until0 = NULL, *until1 = NULL;
        PsBanRow *a, *b;

        cr_assert_eq(ps_ban_rows_parse(rows, &out), 0);
        cr_assert_eq(out->len, 2);
        a = out->pdata[0];
        b = out->pdata[1];
        cr_assert_str_eq(a->address, "192.0.2.7");
        cr_assert_str_eq(a->origin, "manual");
        cr_assert_str_eq(a->reason, "scanner");
        cr_assert_eq(a->until_usec, 1764536700000000ULL);
        cr_assert_eq(a->packets, 17);
        cr_assert_eq(a->offenses, 2);
        cr_assert_str_eq(b->address, "2001:db8::/48");
        cr_assert_str_eq(b->origin, "auto:syn");
        cr_assert_str_eq(b->reason, "");
        cr_assert_eq(b->packets, 0);
        until0 = ps_ban_until_text(a->until_usec, utc);
        until1 = ps_ban_until_text(b->until_usec, utc);
        cr_assert_str_eq(until0, "2025-11-30 21:05:00");
        cr_assert_str_eq(until1, "until unbanned");
}

Test(model, ban_and_anomaly_notification_texts)
{
        g_autoptr(GTimeZone) utc = g_time_zone_new_utc();
        g_autofree char *manual = ps_ban_note_body("192.0.2.7", "manual", "probing",
                                                   1764536700000000ULL, utc);
        g_autofree char *autoban = ps_ban_note_body("2001:db8::/64", "auto:syn", "", 0, utc);
        g_autofree char *memory = ps_anomaly_note_body("memory", 43.25, 1);
        g_autofree char *disk = ps_anomaly_note_body("disk", 120.04, 100);

        cr_assert_str_eq(ps_ban_note_summary("manual"), "Address banned");
        cr_assert_str_eq(ps_ban_note_summary("auto:syn"), "Address banned automatically");
        cr_assert_str_eq(manual, "192.0.2.7 banned until 2025-11-30 21:05:00 (manual): probing");
        cr_assert_str_eq(autoban, "2001:db8::/64 banned until unbanned (auto:syn)");
        cr_assert_str_eq(memory, "memory at 43.2 %, over its threshold of 1.0 %");
        cr_assert_str_eq(disk, "disk at 120.0 MB/s, over its threshold of 100.0 MB/s");
}

Test(model, ban_row_of_wrong_type_is_refused)
{
        g_autoptr(GVariant) no_address = g_variant_ref_sink(g_variant_new_parsed(
                "[{'origin': <'manual'>}]"));
        g_autoptr(GVariant) packets_u32 = g_variant_ref_sink(g_variant_new_parsed(
                "[{'address': <'192.0.2.7'>, 'packets': <uint32 5>}]"));
        GPtrArray *out = NULL;

        cr_assert_eq(ps_ban_rows_parse(no_address, &out), -EBADMSG);
        cr_assert_eq(ps_ban_rows_parse(packets_u32, &out), -EBADMSG);
        cr_assert_null(out);
}

Test(model, anomaly_rows_keep_the_open_ones)
{
        g_autoptr(GVariant) rows = g_variant_ref_sink(g_variant_new_parsed(
                "[{'id': <uint32 4>, 'kind': <'memory'>, 'open': <true>, 'value': <71.5>,"
                "  'peak': <73.25>, 'threshold': <70.0>, 'started': <uint64 1764536700000000>,"
                "  'ended': <uint64 0>, 'processes': <@aa{sv} []>},"
                " {'id': <uint32 2>, 'kind': <'cpu'>, 'open': <false>, 'value': <12.0>,"
                "  'peak': <99.0>, 'threshold': <90.0>, 'started': <uint64 1>,"
                "  'ended': <uint64 2>},"
                " {'id': <uint32 5>, 'kind': <'disk'>, 'open': <true>, 'value': <61.0>,"
                "  'peak': <61.0>, 'threshold': <20.0>, 'started': <uint64 3>}]"));
        g_autoptr(GVariant) bad = g_variant_ref_sink(g_variant_new_parsed(
                "[{'id': <uint32 4>, 'kind': <'memory'>, 'open': <true>, 'value': <uint32 71>}]"));
        g_autoptr(GPtrArray) out = NULL;
        GPtrArray *none = NULL;
        PsAnomalyRow *a, *b;

        cr_assert_eq(ps_anomaly_rows_parse(rows, &out), 0);
        cr_assert_eq(out->len, 2);
        a = out->pdata[0];
        b = out->pdata[1];
        cr_assert_eq(a->id, 4);
        cr_assert_str_eq(a->kind, "memory");
        cr_assert_float_eq(a->value, 71.5, 1e-9);
        cr_assert_float_eq(a->peak, 73.25, 1e-9);
        cr_assert_float_eq(a->threshold, 70.0, 1e-9);
        cr_assert_eq(a->started_usec, 1764536700000000ULL);
        cr_assert_eq(b->id, 5);
        cr_assert_str_eq(ps_anomaly_unit(a->kind), "%");
        cr_assert_str_eq(ps_anomaly_unit(b->kind), "MB/s");
        cr_assert_eq(ps_anomaly_rows_parse(bad, &none), -EBADMSG);
        cr_assert_null(none);
}

Test(model, rule_rows)
{
        g_autoptr(GVariant) rules = g_variant_ref_sink(g_variant_new_parsed(
                "[{'id': <uint32 7>, 'path': <objectpath '/org/packetscope/Guarder1/filters/7'>,"
                "  'rule_type': <'ip'>, 'protocol': <'udp'>, 'src_ip': <'10.0.0.0/8'>,"
                "  'dst_ip': <''>, 'src_port': <'any'>, 'dst_port': <'53'>, 'action': <'drop'>,"
                "  'icmp_type': <byte 255>, 'icmp_code': <byte 255>, 'enabled': <true>,"
                "  'comment': <'no dns from lab'>, 'hits': <uint64 42>},"
                " {'id': <uint32 9>, 'path': <objectpath '/org/packetscope/Guarder1/filters/9'>,"
                "  'rule_type': <'icmp'>, 'protocol': <'icmp'>, 'src_ip': <''>, 'dst_ip': <''>,"
                "  'src_port': <'any'>, 'dst_port': <'any'>, 'action': <'count'>,"
                "  'icmp_type': <byte 8>, 'icmp_code': <byte 0>, 'enabled': <false>,"
                "  'comment': <''>, 'hits': <uint64 0>},"
                " {'id': <uint32 11>, 'protocol': <'any'>, 'src_ip': <'2001:db8::/32'>,"
                "  'dst_ip': <'2001:db8::1'>, 'src_port': <'1000-2000'>, 'dst_port': <''>,"
                "  'action': <'pass'>, 'enabled': <true>}]"));
        g_autoptr(GPtrArray) out = NULL;
        PsRuleRow *a, *b, *c;

        cr_assert_eq(ps_rule_rows_parse(rules, &out), 0);
        cr_assert_eq(out->len, 3);
        a = out->pdata[0];
        b = out->pdata[1];
        c = out->pdata[2];
        cr_assert_eq(a->id, 7);
        cr_assert_str_eq(a->path, "/org/packetscope/Guarder1/filters/7");
        cr_assert_str_eq(a->summary, "drop udp from 10.0.0.0/8 to any port 53");
        cr_assert_str_eq(a->comment, "no dns from lab");
        cr_assert(a->enabled);
        cr_assert_eq(a->hits, 42);
        cr_assert_str_eq(b->summary, "count icmp type 8 code 0 from any to any");
        cr_assert_not(b->enabled);
        /* Without a path the documented one is derived from the id. */
        cr_assert_str_eq(c->path, "/org/packetscope/Guarder1/filters/11");
        cr_assert_str_eq(c->summary, "pass any from 2001:db8::/32 port 1000-2000 to 2001:db8::1");
        cr_assert_eq(c->hits, 0);
}

/* ListRange's columns: the same rules as rows, in order; columns of unequal lengths refused. */
Test(model, rule_columns)
{
        g_autoptr(GVariant) cols = g_variant_ref_sink(g_variant_new_parsed(
                "{'id': <[uint32 7, 9]>,"
                " 'path': <[objectpath '/org/packetscope/Guarder1/filters/7',"
                "           '/org/packetscope/Guarder1/filters/9']>,"
                " 'rule_type': <['ip', 'icmp']>, 'protocol': <['udp', 'icmp']>,"
                " 'src_ip': <['10.0.0.0/8', '']>, 'dst_ip': <['', '']>,"
                " 'src_port': <['any', 'any']>, 'dst_port': <['53', 'any']>,"
                " 'action': <['drop', 'count']>, 'icmp_type': <[byte 255, 8]>,"
                " 'icmp_code': <[byte 255, 0]>, 'enabled': <[true, false]>,"
                " 'comment': <['no dns from lab', '']>, 'hits': <[uint64 42, 0]>}"));
        g_autoptr(GVariant) empty = g_variant_ref_sink(g_variant_new_parsed(
                "{'id': <@au []>, 'enabled': <@ab []>, 'comment': <@as []>}"));
        g_autoptr(GVariant) uneven = g_variant_ref_sink(g_variant_new_parsed(
                "{'id': <[uint32 7, 9]>, 'enabled': <[true]>}"));
        g_autoptr(GVariant) no_ids = g_variant_ref_sink(g_variant_new_parsed(
                "{'enabled': <[true]>}"));
        g_autoptr(GVariant) scalar = g_variant_ref_sink(g_variant_new_parsed(
                "{'id': <[uint32 7]>, 'enabled': <true>}"));
        g_autoptr(GPtrArray) out = NULL;
        g_autoptr(GPtrArray) none = NULL;
        PsRuleRow *a, *b;

        cr_assert_eq(ps_rule_columns_parse(cols, &out), 0);
        cr_assert_eq(out->len, 2);
        a = out->pdata[0];
        b = out->pdata[1];
        cr_assert_eq(a->id, 7);
        cr_assert_str_eq(a->path, "/org/packetscope/Guarder1/filters/7");
        cr_assert_str_eq(a->summary, "drop udp from 10.0.0.0/8 to any port 53");
        cr_assert_str_eq(a->comment, "no dns from lab");
        cr_assert(a->enabled);
        cr_assert_eq(a->hits, 42);
        cr_assert_eq(b->id, 9);
        cr_assert_str_eq(b->summary, "count icmp type 8 code 0 from any to any");
        cr_assert_not(b->enabled);
        g_clear_pointer(&out, g_ptr_array_unref);
        cr_assert_eq(ps_rule_columns_parse(empty, &out), 0);
        cr_assert_eq(out->len, 0);
        cr_assert_eq(ps_rule_columns_parse(uneven, &none), -EBADMSG);
        cr_assert_eq(ps_rule_columns_parse(no_ids, &none), -EBADMSG);
        cr_assert_eq(ps_rule_columns_parse(scalar, &none), -EBADMSG);
        cr_assert_null(none);
}

Test(model, rule_row_without_id_is_refused)
{
        g_autoptr(GVariant) rule = g_variant_ref_sink(g_variant_new_parsed(
                "{'enabled': <true>, 'action': <'drop'>}"));
        PsRuleRow *row = NULL;

        cr_assert_eq(ps_rule_row_parse(rule, &row), -EBADMSG);
        cr_assert_null(row);
}

static GVariant *dropped(guint32 rule, const char *src, guint16 sport)
{
        return g_variant_ref_sink(g_variant_new("(ussssqq)", rule, "veth0", "udp", src,
                                                "10.0.0.1", sport, (guint16) 53));
}

Test(model, drop_ring_keeps_the_newest)
{
        PsDropRing *ring = g_new(PsDropRing, 1);
        const PsDropRow *row;

        ps_drop_ring_init(ring);
        cr_assert_null(ps_drop_ring_get(ring, 0));
        for (guint i = 0; i < PS_DROP_RING_MAX + 5; i++) {
                g_autoptr(GVariant) args = dropped(i, "10.0.0.2", 1000 + i);

                cr_assert_eq(ps_drop_ring_push(ring, args, (gint64) i * SEC), 0);
        }
        cr_assert_eq(ring->n, PS_DROP_RING_MAX);
        cr_assert_eq(ring->total, PS_DROP_RING_MAX + 5);
        row = ps_drop_ring_get(ring, 0);
        cr_assert_eq(row->rule_id, PS_DROP_RING_MAX + 4);
        cr_assert_str_eq(row->src, "10.0.0.2:1204");
        cr_assert_str_eq(row->dst, "10.0.0.1:53");
        cr_assert_str_eq(row->link, "veth0");
        row = ps_drop_ring_get(ring, PS_DROP_RING_MAX - 1);
        cr_assert_eq(row->rule_id, 5);
        cr_assert_null(ps_drop_ring_get(ring, PS_DROP_RING_MAX));
        {
                g_autoptr(GVariant) s = g_variant_ref_sink(g_variant_new_string("x"));

                cr_assert_eq(ps_drop_ring_push(ring, s, 0), -EINVAL);
        }
        ps_drop_ring_clear(ring);
        cr_assert_eq(ring->n, 0);
        g_free(ring);
}

Test(model, state)
{
        gint64 now = 1000 * SEC;

        cr_assert_eq(ps_state_compute(FALSE, 3, now, now), PS_STATE_GONE);
        cr_assert_eq(ps_state_compute(TRUE, 0, now, now), PS_STATE_IDLE);
        cr_assert_eq(ps_state_compute(TRUE, 2, 0, now), PS_STATE_GUARDING);
        cr_assert_eq(ps_state_compute(TRUE, 2, now - 9 * SEC, now), PS_STATE_DROPPING);
        cr_assert_eq(ps_state_compute(TRUE, 2, now - 10 * SEC, now), PS_STATE_GUARDING);
        cr_assert_eq(ps_state_with_panic(PS_STATE_GUARDING, TRUE), PS_STATE_PANIC);
        cr_assert_eq(ps_state_with_panic(PS_STATE_IDLE, TRUE), PS_STATE_PANIC);
        cr_assert_eq(ps_state_with_panic(PS_STATE_DROPPING, FALSE), PS_STATE_DROPPING);
        cr_assert_eq(ps_state_with_panic(PS_STATE_GONE, TRUE), PS_STATE_GONE);
        cr_assert_str_eq(ps_state_icon_name(PS_STATE_GONE), "packetscope-gone");
        cr_assert_str_eq(ps_state_icon_name(PS_STATE_IDLE), "packetscope-idle");
        cr_assert_str_eq(ps_state_icon_name(PS_STATE_GUARDING), "packetscope-guarding");
        cr_assert_str_eq(ps_state_icon_name(PS_STATE_DROPPING), "packetscope-dropping");
        cr_assert_str_eq(ps_state_icon_name(PS_STATE_PANIC), "packetscope-panic");
        cr_assert_str_eq(ps_state_title(PS_STATE_PANIC), "Panic mode");
        cr_assert_str_eq(ps_state_title(PS_STATE_GONE), "No connection to the daemon");
}

Test(model, tooltip)
{
        g_autofree char *one = ps_tooltip_body(PS_STATE_GUARDING, 1, 12.4, 0);
        g_autofree char *two = ps_tooltip_body(PS_STATE_DROPPING, 2, 1500, 20.6);
        g_autofree char *gone = ps_tooltip_body(PS_STATE_GONE, 2, 1500, 20);
        g_autofree char *idle = ps_tooltip_body(PS_STATE_IDLE, 0, 0, 0);

        cr_assert_str_eq(one, "1 link guarded, 12 packets/s, 0 drops/s");
        cr_assert_str_eq(two, "2 links guarded, 1500 packets/s, 21 drops/s");
        cr_assert_str_eq(gone, "packetscoped is not running");
        cr_assert_str_eq(idle, "No link is guarded");
}

Test(model, notify_gate)
{
        PsNotifyGate gate;
        guint held = 99;

        ps_notify_gate_init(&gate, 30 * SEC);
        cr_assert(ps_notify_gate_allow(&gate, 100 * SEC, &held));
        cr_assert_eq(held, 0);
        cr_assert_not(ps_notify_gate_allow(&gate, 101 * SEC, &held));
        cr_assert_not(ps_notify_gate_allow(&gate, 129 * SEC, &held));
        cr_assert(ps_notify_gate_allow(&gate, 130 * SEC, &held));
        cr_assert_eq(held, 2);
        cr_assert_not(ps_notify_gate_allow(&gate, 131 * SEC, NULL));
}

Test(model, rate_history_for_the_sparkline)
{
        PsLinkRow *row = ps_link_row_new("/org/packetscope/Guarder1/link/eth0");
        const PsRateSample *s;

        /* The first sample is a base, not a rate: the history starts with the second. */
        ps_link_row_sample(row, 1000, 0, 100 * SEC);
        cr_assert_null(ps_link_history_get(row, 0));
        ps_link_row_sample(row, 1200, 0, 102 * SEC);
        ps_link_row_sample(row, 2200, 40, 104 * SEC);
        s = ps_link_history_get(row, 0);
        cr_assert_not_null(s);
        cr_assert_eq(s->usec, 102 * SEC);
        cr_assert_float_eq(s->pps, 100.0, 1e-9);
        s = ps_link_history_get(row, 1);
        cr_assert_float_eq(s->pps, 500.0, 1e-9);
        cr_assert_float_eq(s->drops_per_sec, 20.0, 1e-9);
        cr_assert_null(ps_link_history_get(row, 2));
        cr_assert_float_eq(ps_link_history_peak(row, 0), 500.0, 1e-9);
        /* Samples at or before the window's start do not count. */
        cr_assert_float_eq(ps_link_history_peak(row, 104 * SEC), 0.0, 1e-9);
        cr_assert_float_eq(ps_link_history_peak(row, 102 * SEC), 500.0, 1e-9);
        /* Full: the oldest goes, the newest is last. */
        for (guint i = 0; i < PS_HISTORY_MAX + 3; i++)
                ps_link_row_sample(row, 3000 + 10 * (i + 1), 40, (106 + 2 * i) * SEC);
        s = ps_link_history_get(row, PS_HISTORY_MAX - 1);
        cr_assert_not_null(s);
        cr_assert_eq(s->usec, (106 + 2 * (PS_HISTORY_MAX + 2)) * SEC);
        cr_assert_float_eq(s->pps, 5.0, 1e-9);
        cr_assert_null(ps_link_history_get(row, PS_HISTORY_MAX));
        cr_assert_eq(ps_link_history_get(row, 0)->usec, (106 + 2 * 3) * SEC);
        ps_link_row_free(row);
}

static PsRuleRow *one_rule(const char *dict)
{
        g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed(dict));
        PsRuleRow *row = NULL;

        cr_assert_eq(ps_rule_row_parse(v, &row), 0);
        return row;
}

static char *printed(GVariant *v)
{
        return v ? g_variant_print(v, TRUE) : g_strdup("(none)");
}

Test(model, rule_fields_for_the_dialog)
{
        PsRuleRow *row = one_rule(
                "{'id': <uint32 7>, 'protocol': <'udp'>, 'src_ip': <'10.0.0.0/8'>,"
                " 'dst_ip': <'any'>, 'src_port': <'0'>, 'dst_port': <'53'>, 'action': <'drop'>,"
                " 'icmp_type': <byte 255>, 'enabled': <true>, 'comment': <'lab'>}");

        cr_assert_str_eq(row->protocol, "udp");
        cr_assert_str_eq(row->src_ip, "10.0.0.0/8");
        cr_assert_str_eq(row->dst_ip, "");
        cr_assert_str_eq(row->src_port, "");
        cr_assert_str_eq(row->dst_port, "53");
        cr_assert_eq(row->icmp_type, 255);
        ps_rule_row_free(row);
}

Test(model, rule_form_for_add)
{
        PsRuleForm form = { .action = "drop", .protocol = " tcp ", .src_ip = "any",
                            .src_port = "", .dst_ip = "192.0.2.0/24", .dst_port = "8000-8999",
                            .icmp_type = "", .comment = " web ", .enabled = FALSE };
        g_autoptr(GVariant) v = ps_rule_form_build(&form, NULL);
        g_autofree char *p = printed(v);

        /* "any" and empty fields are left to the daemon's default; blanks go. */
        cr_assert_str_eq(p, "{'action': <'drop'>, 'protocol': <'tcp'>, "
                            "'dst_ip': <'192.0.2.0/24'>, 'dst_port': <'8000-8999'>, "
                            "'comment': <'web'>, 'enabled': <false>}");
}

Test(model, rule_form_passes_what_the_daemon_validates)
{
        PsRuleForm form = { .action = "drop", .protocol = "icmp", .icmp_type = "300",
                            .src_ip = "192.0.2.1/24", .comment = "", .enabled = TRUE };
        g_autoptr(GVariant) v = ps_rule_form_build(&form, NULL);
        g_autofree char *p = printed(v);

        cr_assert_str_eq(p, "{'action': <'drop'>, 'protocol': <'icmp'>, "
                            "'src_ip': <'192.0.2.1/24'>, 'icmp_type': <'300'>, "
                            "'enabled': <true>}");
}

Test(model, rule_form_for_update_sends_the_changes_only)
{
        PsRuleRow *row = one_rule(
                "{'id': <uint32 9>, 'protocol': <'icmp'>, 'src_ip': <''>, 'dst_ip': <''>,"
                " 'src_port': <'any'>, 'dst_port': <'any'>, 'action': <'drop'>,"
                " 'icmp_type': <byte 8>, 'enabled': <true>, 'comment': <'pings'>}");
        PsRuleForm same = { .action = "drop", .protocol = "icmp", .src_ip = "", .src_port = "",
                            .dst_ip = "any", .dst_port = "", .icmp_type = "8",
                            .comment = "pings", .enabled = TRUE };
        PsRuleForm changed = same;
        g_autoptr(GVariant) none = ps_rule_form_build(&same, row);
        g_autoptr(GVariant) v = NULL, w = NULL;
        g_autofree char *p = NULL, *q = NULL;

        cr_assert_null(none);
        changed.src_ip = "198.51.100.0/24";
        changed.comment = "pings from the lab";
        changed.enabled = FALSE;
        v = ps_rule_form_build(&changed, row);
        p = printed(v);
        cr_assert_str_eq(p, "{'src_ip': <'198.51.100.0/24'>, 'comment': <'pings from the lab'>, "
                            "'enabled': <false>}");
        /* An emptied ICMP type is any, which the field says as 255. */
        changed = same;
        changed.icmp_type = "";
        changed.action = "count";
        w = ps_rule_form_build(&changed, row);
        q = printed(w);
        cr_assert_str_eq(q, "{'action': <'count'>, 'icmp_type': <byte 0xff>}");
        ps_rule_row_free(row);
}

Test(model, rule_form_tcp_flags)
{
        /* SYN set, ACK clear (a connection's first segment): flags 2, mask 2 | 16. */
        PsRuleForm form = { .action = "drop", .protocol = "tcp", .tcp_set = 2,
                            .tcp_clear = 16, .comment = "", .enabled = TRUE };
        g_autoptr(GVariant) v = ps_rule_form_build(&form, NULL);
        g_autofree char *p = printed(v);
        PsRuleRow *row = one_rule(
                "{'id': <uint32 4>, 'protocol': <'tcp'>, 'action': <'drop'>,"
                " 'tcp_flags': <byte 2>, 'tcp_flags_mask': <byte 18>, 'enabled': <true>,"
                " 'comment': <''>}");
        PsRuleForm same = { .action = "drop", .protocol = "tcp", .tcp_set = 2, .tcp_clear = 16,
                            .comment = "", .enabled = TRUE };
        PsRuleForm none = same;
        g_autoptr(GVariant) unchanged = ps_rule_form_build(&same, row);
        g_autoptr(GVariant) cleared = NULL;
        g_autofree char *q = NULL;

        cr_assert_str_eq(p, "{'action': <'drop'>, 'protocol': <'tcp'>, "
                            "'tcp_flags': <byte 0x02>, 'tcp_flags_mask': <byte 0x12>, "
                            "'enabled': <true>}");
        cr_assert_eq(row->tcp_flags, 2);
        cr_assert_eq(row->tcp_flags_mask, 18);
        cr_assert_null(unchanged);
        /* Every flag unmarked again is any: both 0. */
        none.tcp_set = none.tcp_clear = 0;
        cleared = ps_rule_form_build(&none, row);
        q = printed(cleared);
        cr_assert_str_eq(q, "{'tcp_flags': <byte 0x00>, 'tcp_flags_mask': <byte 0x00>}");
        cr_assert_str_eq(ps_tcp_flag_names[1], "SYN");
        cr_assert_str_eq(ps_tcp_flag_names[4], "ACK");
        ps_rule_row_free(row);
}

Test(model, threshold_form)
{
        g_autoptr(GVariant) current = g_variant_ref_sink(g_variant_new_parsed(
                "{'cpu_percent': <80.0>, 'memory_percent': <85.0>, 'disk_mbps': <100.0>,"
                " 'pressure_percent': <20.0>, 'min_duration_usec': <uint64 20000000>}"));
        PsThresholdForm same = { "80", "85", "100", "20", "20" };
        PsThresholdForm changed = { " 90 ", "85", "", "20", "1.5" };
        PsThresholdForm bad = { "80", "lots", "100", "20", "20" };
        g_autoptr(GVariant) none = NULL, v = NULL, w = NULL;
        g_autofree char *p = NULL, *cpu = NULL, *dur = NULL, *missing = NULL;
        const char *field = NULL;

        cr_assert_eq(ps_threshold_form_build(&same, current, &none, &field), 0);
        cr_assert_null(none);
        cr_assert_eq(ps_threshold_form_build(&changed, current, &v, &field), 0);
        p = printed(v);
        cr_assert_str_eq(p, "{'cpu_percent': <90.0>, 'min_duration_usec': <uint64 1500000>}");
        cr_assert_eq(ps_threshold_form_build(&bad, current, &w, &field), -EINVAL);
        cr_assert_null(w);
        cr_assert_str_eq(field, "memory_percent");
        cpu = ps_threshold_text(current, "cpu_percent");
        dur = ps_threshold_text(current, "min_duration_usec");
        missing = ps_threshold_text(current, "nonesuch");
        cr_assert_str_eq(cpu, "80");
        cr_assert_str_eq(dur, "20");
        cr_assert_str_eq(missing, "");
}

Test(model, rule_form_icmp_error_priority_timeout_log)
{
        /* Destination unreachable (3), port unreachable (3), quoting a UDP datagram to 53. */
        PsRuleForm form = { .action = "drop", .protocol = "icmp", .icmp_type = "3",
                            .icmp_code = " 3 ", .inner_protocol = "udp",
                            .inner_dst_ip = "192.0.2.53", .inner_dst_port = "53",
                            .inner_src_port = "any", .priority = "-5", .timeout = "600",
                            .comment = "", .enabled = TRUE, .no_log = TRUE };
        g_autoptr(GVariant) v = ps_rule_form_build(&form, NULL);
        g_autofree char *p = printed(v), *q = NULL, *r = NULL;
        g_autoptr(GVariant) w = NULL, none = NULL;
        PsRuleRow *row = one_rule(
                "{'id': <uint32 4>, 'protocol': <'icmp'>, 'action': <'drop'>, 'enabled': <true>,"
                " 'icmp_type': <byte 3>, 'icmp_code': <byte 3>, 'inner_protocol': <'udp'>,"
                " 'inner_src_ip': <''>, 'inner_dst_ip': <'192.0.2.53'>,"
                " 'inner_src_port': <'any'>, 'inner_dst_port': <'53'>, 'priority': <-5>,"
                " 'timeout': <uint64 600>, 'log': <false>}");
        PsRuleForm same = form;

        cr_assert_str_eq(p, "{'action': <'drop'>, 'protocol': <'icmp'>, 'icmp_type': <'3'>, "
                            "'icmp_code': <'3'>, 'inner_protocol': <'udp'>, "
                            "'inner_dst_ip': <'192.0.2.53'>, 'inner_dst_port': <'53'>, "
                            "'priority': <'-5'>, 'timeout': <'600'>, 'enabled': <true>, "
                            "'log': <false>}");
        cr_assert_eq(row->icmp_code, 3);
        cr_assert_str_eq(row->inner_protocol, "udp");
        cr_assert_str_eq(row->inner_src_ip, "");
        cr_assert_str_eq(row->inner_dst_ip, "192.0.2.53");
        cr_assert_str_eq(row->inner_src_port, "");
        cr_assert_str_eq(row->inner_dst_port, "53");
        cr_assert_eq(row->priority, -5);
        cr_assert_eq(row->timeout_sec, 600);
        cr_assert_not(row->log);
        none = ps_rule_form_build(&same, row);
        cr_assert_null(none, "unchanged: %s", (q = printed(none)));
        /* Emptied: the code any (255), the priority and the timeout back to 0, logged again. */
        same.icmp_code = "";
        same.priority = "";
        same.timeout = " ";
        same.no_log = FALSE;
        same.inner_dst_port = "";
        w = ps_rule_form_build(&same, row);
        r = printed(w);
        cr_assert_str_eq(r, "{'icmp_code': <byte 0xff>, 'inner_dst_port': <''>, "
                            "'priority': <'0'>, 'timeout': <'0'>, 'log': <true>}");
        ps_rule_row_free(row);
}

Test(model, denials)
{
        cr_assert(ps_error_is_denial("org.freedesktop.DBus.Error.AccessDenied"));
        cr_assert(ps_error_is_denial("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"));
        /* polkit not answering is no refusal: nothing was decided. */
        cr_assert_not(ps_error_is_denial("org.packetscope.Guarder1.Error.AuthorizationFailed"));
        cr_assert_not(ps_error_is_denial("org.packetscope.Guarder1.Error.InvalidFilter"));
        cr_assert_not(ps_error_is_denial(NULL));
}

Test(model, countdown)
{
        g_autofree char *a = ps_countdown_text(160 * SEC, 100 * SEC);
        g_autofree char *b = ps_countdown_text(160 * SEC, 159 * SEC + 1);
        g_autofree char *c = ps_countdown_text(160 * SEC, 161 * SEC);

        cr_assert_str_eq(a, "Rolls back in 60 seconds unless confirmed");
        cr_assert_str_eq(b, "Rolls back in 1 second unless confirmed");
        cr_assert_str_eq(c, "Rolls back in 0 seconds unless confirmed");
}
