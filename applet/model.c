/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <glib/gi18n.h>

#include "model.h"

/* An address with its port the way addresses are written in URLs: IPv6 in brackets. A port
 * of 0 (protocols without ports) leaves the address alone. */
char *ps_endpoint_format(const char *addr, guint port)
{
        if (!addr || !*addr)
                addr = "?";
        if (port == 0)
                return g_strdup(addr);
        if (strchr(addr, ':'))
                return g_strdup_printf("[%s]:%u", addr, port);
        return g_strdup_printf("%s:%u", addr, port);
}

/* Lookups in an a{sv} that accept only the documented type: a daemon that sent another
 * type is a contract break, reported as -EBADMSG rather than shown as zero. */
static int dict_str(GVariantDict *d, const char *key, char **ret)
{
        const char *s;

        if (!g_variant_dict_lookup(d, key, "&s", &s))
                return g_variant_dict_contains(d, key) ? -EBADMSG : -ENOENT;
        *ret = g_strdup(s);
        return 0;
}

static int dict_u64(GVariantDict *d, const char *key, guint64 *ret)
{
        if (!g_variant_dict_lookup(d, key, "t", ret))
                return g_variant_dict_contains(d, key) ? -EBADMSG : -ENOENT;
        return 0;
}

PsLinkRow *ps_link_row_new(const char *path)
{
        PsLinkRow *row = g_new0(PsLinkRow, 1);

        row->path = g_strdup(path);
        return row;
}

void ps_link_row_free(PsLinkRow *row)
{
        if (!row)
                return;
        g_free(row->path);
        g_free(row->name);
        g_free(row->mode);
        g_free(row);
}

static void history_push(PsLinkRow *row, gint64 now_usec)
{
        PsRateSample *sample;

        if (row->history_n == PS_HISTORY_MAX) {
                sample = &row->history[row->history_start];
                row->history_start = (row->history_start + 1) % PS_HISTORY_MAX;
        } else
                sample = &row->history[(row->history_start + row->history_n++) % PS_HISTORY_MAX];
        sample->usec = now_usec;
        sample->pps = row->pps;
        sample->drops_per_sec = row->drops_per_sec;
}

const PsRateSample *ps_link_history_get(const PsLinkRow *row, guint i)
{
        if (i >= row->history_n)
                return NULL;
        return &row->history[(row->history_start + i) % PS_HISTORY_MAX];
}

double ps_link_history_peak(const PsLinkRow *row, gint64 since_usec)
{
        const PsRateSample *sample;
        double peak = 0;

        for (guint i = 0; (sample = ps_link_history_get(row, i)); i++)
                if (sample->usec > since_usec && sample->pps > peak)
                        peak = sample->pps;
        return peak;
}

/* Rates from two samples of the cumulative counters. The daemon's counters restart from 0
 * when its maps are recreated (a link attached anew): a counter that went back is a new
 * base, not a negative rate. */
void ps_link_row_sample(PsLinkRow *row, guint64 packets, guint64 dropped, gint64 now_usec)
{
        if (row->have_sample && now_usec > row->sample_usec &&
            packets >= row->sample_packets && dropped >= row->sample_dropped) {
                double secs = (double) (now_usec - row->sample_usec) / G_USEC_PER_SEC;

                row->pps = (double) (packets - row->sample_packets) / secs;
                row->drops_per_sec = (double) (dropped - row->sample_dropped) / secs;
                history_push(row, now_usec);
        } else if (!row->have_sample || packets < row->sample_packets ||
                   dropped < row->sample_dropped) {
                row->pps = 0;
                row->drops_per_sec = 0;
        } else
                /* Same instant: keep the previous rates and the older base. */
                return;
        row->packets = packets;
        row->dropped = dropped;
        row->have_sample = TRUE;
        row->sample_packets = packets;
        row->sample_dropped = dropped;
        row->sample_usec = now_usec;
}

/* props: the a{sv} of Properties.GetAll on org.packetscope.Guarder1.Link. */
int ps_link_row_update(PsLinkRow *row, GVariant *props, gint64 now_usec)
{
        g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
        g_autofree char *name = NULL, *mode = NULL;
        guint64 packets, dropped, bytes;
        int r;

        if (!props || !g_variant_is_of_type(props, G_VARIANT_TYPE_VARDICT))
                return -EINVAL;
        g_variant_dict_init(&d, props);
        if ((r = dict_str(&d, "Name", &name)) < 0 ||
            (r = dict_u64(&d, "Packets", &packets)) < 0 ||
            (r = dict_u64(&d, "Dropped", &dropped)) < 0)
                return r;
        r = dict_str(&d, "Mode", &mode);
        if (r < 0 && r != -ENOENT)
                return r;
        r = dict_u64(&d, "Bytes", &bytes);
        if (r == -EBADMSG)
                return r;
        if (r == 0)
                row->bytes = bytes;
        g_free(row->name);
        row->name = g_steal_pointer(&name);
        if (mode) {
                g_free(row->mode);
                row->mode = g_steal_pointer(&mode);
        }
        ps_link_row_sample(row, packets, dropped, now_usec);
        return 0;
}

void ps_conn_row_free(PsConnRow *row)
{
        if (!row)
                return;
        g_free(row->protocol);
        g_free(row->remote);
        g_free(row->local);
        g_free(row->state);
        g_free(row);
}

static int conn_row_parse(GVariant *dict, PsConnRow **ret_row)
{
        g_auto(GVariantDict) d;
        const char *src, *dst, *protocol, *state;
        guint16 sport = 0, dport = 0;
        PsConnRow *row;

        g_variant_dict_init(&d, dict);
        if (!g_variant_dict_lookup(&d, "src", "&s", &src) ||
            !g_variant_dict_lookup(&d, "dst", "&s", &dst) ||
            !g_variant_dict_lookup(&d, "protocol", "&s", &protocol))
                return -EBADMSG;
        if (g_variant_dict_contains(&d, "sport") && !g_variant_dict_lookup(&d, "sport", "q", &sport))
                return -EBADMSG;
        if (g_variant_dict_contains(&d, "dport") && !g_variant_dict_lookup(&d, "dport", "q", &dport))
                return -EBADMSG;
        if (!g_variant_dict_lookup(&d, "state", "&s", &state))
                state = "";
        row = g_new0(PsConnRow, 1);
        row->protocol = g_strdup(protocol);
        row->remote = ps_endpoint_format(src, sport);
        row->local = ps_endpoint_format(dst, dport);
        row->state = g_strdup(state);
        if (dict_u64(&d, "packets", &row->packets) == -EBADMSG ||
            dict_u64(&d, "bytes", &row->bytes) == -EBADMSG) {
                ps_conn_row_free(row);
                return -EBADMSG;
        }
        *ret_row = row;
        return 0;
}

/* rows: an aa{sv} of rows, each turned into one element by parse (freed by free_row). */
static int rows_parse(GVariant *rows, int (*parse)(GVariant *, gpointer *), GDestroyNotify free_row,
                      GPtrArray **ret_rows)
{
        g_autoptr(GPtrArray) out = NULL;
        GVariantIter it;
        GVariant *dict;

        if (!rows || !g_variant_is_of_type(rows, G_VARIANT_TYPE("aa{sv}")))
                return -EINVAL;
        out = g_ptr_array_new_with_free_func(free_row);
        g_variant_iter_init(&it, rows);
        while ((dict = g_variant_iter_next_value(&it))) {
                gpointer row;
                int r = parse(dict, &row);

                g_variant_unref(dict);
                if (r < 0)
                        return r;
                g_ptr_array_add(out, row);
        }
        *ret_rows = g_steal_pointer(&out);
        return 0;
}

/* rows: the aa{sv} of Connections.List, in the daemon's order (best first). */
int ps_conn_rows_parse(GVariant *rows, GPtrArray **ret_rows)
{
        return rows_parse(rows, (int (*)(GVariant *, gpointer *)) conn_row_parse,
                          (GDestroyNotify) ps_conn_row_free, ret_rows);
}

void ps_ban_row_free(PsBanRow *row)
{
        if (!row)
                return;
        g_free(row->address);
        g_free(row->origin);
        g_free(row->reason);
        g_free(row);
}

static int ban_row_parse(GVariant *dict, PsBanRow **ret_row)
{
        g_auto(GVariantDict) d;
        PsBanRow *row = g_new0(PsBanRow, 1);

        g_variant_dict_init(&d, dict);
        if (dict_str(&d, "address", &row->address) < 0 ||
            dict_str(&d, "origin", &row->origin) == -EBADMSG ||
            dict_str(&d, "reason", &row->reason) == -EBADMSG ||
            dict_u64(&d, "until", &row->until_usec) == -EBADMSG ||
            dict_u64(&d, "packets", &row->packets) == -EBADMSG ||
            (g_variant_dict_contains(&d, "offenses") &&
             !g_variant_dict_lookup(&d, "offenses", "u", &row->offenses))) {
                ps_ban_row_free(row);
                return -EBADMSG;
        }
        if (!row->origin)
                row->origin = g_strdup("");
        if (!row->reason)
                row->reason = g_strdup("");
        *ret_row = row;
        return 0;
}

/* rows: the aa{sv} of Bans.List, in the daemon's order. */
int ps_ban_rows_parse(GVariant *rows, GPtrArray **ret_rows)
{
        return rows_parse(rows, (int (*)(GVariant *, gpointer *)) ban_row_parse,
                          (GDestroyNotify) ps_ban_row_free, ret_rows);
}

void ps_anomaly_row_free(PsAnomalyRow *row)
{
        if (!row)
                return;
        g_free(row->kind);
        g_free(row);
}

static int dict_double(GVariantDict *d, const char *key, double *ret)
{
        if (!g_variant_dict_lookup(d, key, "d", ret))
                return g_variant_dict_contains(d, key) ? -EBADMSG : -ENOENT;
        return 0;
}

/* A closed anomaly is parsed to NULL: it is left out. */
static int anomaly_row_parse(GVariant *dict, PsAnomalyRow **ret_row)
{
        g_auto(GVariantDict) d;
        gboolean open = FALSE;
        PsAnomalyRow *row = g_new0(PsAnomalyRow, 1);

        g_variant_dict_init(&d, dict);
        if (!g_variant_dict_lookup(&d, "id", "u", &row->id) ||
            !g_variant_dict_lookup(&d, "open", "b", &open) ||
            dict_str(&d, "kind", &row->kind) < 0 ||
            dict_double(&d, "value", &row->value) == -EBADMSG ||
            dict_double(&d, "peak", &row->peak) == -EBADMSG ||
            dict_double(&d, "threshold", &row->threshold) == -EBADMSG ||
            dict_u64(&d, "started", &row->started_usec) == -EBADMSG) {
                ps_anomaly_row_free(row);
                return -EBADMSG;
        }
        if (!open)
                g_clear_pointer(&row, ps_anomaly_row_free);
        *ret_row = row;
        return 0;
}

int ps_anomaly_rows_parse(GVariant *rows, GPtrArray **ret_rows)
{
        int r = rows_parse(rows, (int (*)(GVariant *, gpointer *)) anomaly_row_parse,
                           (GDestroyNotify) ps_anomaly_row_free, ret_rows);

        if (r < 0)
                return r;
        for (guint i = (*ret_rows)->len; i > 0; i--)
                if (!(*ret_rows)->pdata[i - 1])
                        g_ptr_array_remove_index(*ret_rows, i - 1);
        return 0;
}

const char *ps_anomaly_unit(const char *kind)
{
        return g_strcmp0(kind, "disk") == 0 ? "MB/s" : "%";
}

char *ps_realtime_text(guint64 usec, GTimeZone *tz)
{
        g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc((gint64) (usec / G_USEC_PER_SEC));
        g_autoptr(GDateTime) t = utc ? g_date_time_to_timezone(utc, tz) : NULL;

        return t ? g_date_time_format(t, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

char *ps_ban_until_text(guint64 until_usec, GTimeZone *tz)
{
        if (until_usec == 0)
                return g_strdup(_("until unbanned"));
        return ps_realtime_text(until_usec, tz);
}

const char *ps_ban_note_summary(const char *origin)
{
        if (g_str_has_prefix(origin ? origin : "", "auto:"))
                return _("Address banned automatically");
        return _("Address banned");
}

char *ps_ban_note_body(const char *address, const char *origin, const char *reason,
                       guint64 until_usec, GTimeZone *tz)
{
        g_autofree char *when = until_usec ? ps_realtime_text(until_usec, tz) : NULL;
        g_autofree char *until = when ? g_strdup_printf(_("until %s"), when) :
                                        g_strdup(_("until unbanned"));

        if (!reason || !*reason)
                return g_strdup_printf(_("%s banned %s (%s)"), address, until, origin);
        return g_strdup_printf(_("%s banned %s (%s): %s"), address, until, origin, reason);
}

char *ps_anomaly_note_body(const char *kind, double value, double threshold)
{
        const char *unit = ps_anomaly_unit(kind);

        return g_strdup_printf(_("%s at %.1f %s, over its threshold of %.1f %s"), kind, value,
                               unit, threshold, unit);
}

void ps_rule_row_free(PsRuleRow *row)
{
        if (!row)
                return;
        g_free(row->path);
        g_free(row->action);
        g_free(row->summary);
        g_free(row->comment);
        g_free(row->protocol);
        g_free(row->src_ip);
        g_free(row->dst_ip);
        g_free(row->src_port);
        g_free(row->dst_port);
        g_free(row->inner_protocol);
        g_free(row->inner_src_ip);
        g_free(row->inner_dst_ip);
        g_free(row->inner_src_port);
        g_free(row->inner_dst_port);
        g_free(row);
}

static gboolean is_any(const char *s)
{
        return !s || !*s || g_str_equal(s, "any") || g_str_equal(s, "0");
}

/* One line a user reads: what the rule does to which packets. The daemon's own words for
 * actions and protocols are kept (they are what packetscopectl and the rules files say). */
static char *rule_summary(GVariantDict *d, const char *action)
{
        const char *protocol = NULL, *src = NULL, *dst = NULL, *sport = NULL, *dport = NULL;
        guint8 icmp_type = 255, icmp_code = 255;
        GString *s = g_string_new(action);

        g_variant_dict_lookup(d, "protocol", "&s", &protocol);
        g_variant_dict_lookup(d, "src_ip", "&s", &src);
        g_variant_dict_lookup(d, "dst_ip", "&s", &dst);
        g_variant_dict_lookup(d, "src_port", "&s", &sport);
        g_variant_dict_lookup(d, "dst_port", "&s", &dport);
        g_variant_dict_lookup(d, "icmp_type", "y", &icmp_type);
        g_variant_dict_lookup(d, "icmp_code", "y", &icmp_code);

        g_string_append_printf(s, " %s", is_any(protocol) ? "any" : protocol);
        if (icmp_type != 255) {
                g_string_append_printf(s, " type %u", icmp_type);
                if (icmp_code != 255)
                        g_string_append_printf(s, " code %u", icmp_code);
        }
        g_string_append_printf(s, " from %s", is_any(src) ? "any" : src);
        if (!is_any(sport))
                g_string_append_printf(s, " port %s", sport);
        g_string_append_printf(s, " to %s", is_any(dst) ? "any" : dst);
        if (!is_any(dport))
                g_string_append_printf(s, " port %s", dport);
        return g_string_free(s, FALSE);
}

/* A field as the dialog shows it: "" for any. */
static char *field_text(GVariantDict *d, const char *key)
{
        const char *s = NULL;

        g_variant_dict_lookup(d, key, "&s", &s);
        return g_strdup(is_any(s) ? "" : s);
}

/* dict: one rule dictionary of Filters.List (or a row of ListRange's columns). */
int ps_rule_row_parse(GVariant *dict, PsRuleRow **ret_row)
{
        g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
        const char *path, *action, *comment;
        guint32 id;
        gboolean enabled;
        PsRuleRow *row;

        if (!dict || !g_variant_is_of_type(dict, G_VARIANT_TYPE_VARDICT))
                return -EINVAL;
        g_variant_dict_init(&d, dict);
        if (!g_variant_dict_lookup(&d, "id", "u", &id) ||
            !g_variant_dict_lookup(&d, "enabled", "b", &enabled))
                return -EBADMSG;
        if (!g_variant_dict_lookup(&d, "path", "&o", &path))
                path = NULL;
        if (!g_variant_dict_lookup(&d, "action", "&s", &action) || !*action)
                action = "drop";  /* the documented default */
        if (!g_variant_dict_lookup(&d, "comment", "&s", &comment))
                comment = "";
        row = g_new0(PsRuleRow, 1);
        row->id = id;
        row->path = path ? g_strdup(path) : g_strdup_printf("/org/packetscope/Guarder1/filters/%u", id);
        row->action = g_strdup(action);
        row->summary = rule_summary(&d, action);
        row->comment = g_strdup(comment);
        row->enabled = enabled;
        row->protocol = field_text(&d, "protocol");
        row->src_ip = field_text(&d, "src_ip");
        row->dst_ip = field_text(&d, "dst_ip");
        row->src_port = field_text(&d, "src_port");
        row->dst_port = field_text(&d, "dst_port");
        if (!g_variant_dict_lookup(&d, "icmp_type", "y", &row->icmp_type))
                row->icmp_type = 255;
        if (!g_variant_dict_lookup(&d, "icmp_code", "y", &row->icmp_code))
                row->icmp_code = 255;
        g_variant_dict_lookup(&d, "tcp_flags", "y", &row->tcp_flags);
        g_variant_dict_lookup(&d, "tcp_flags_mask", "y", &row->tcp_flags_mask);
        row->inner_protocol = field_text(&d, "inner_protocol");
        row->inner_src_ip = field_text(&d, "inner_src_ip");
        row->inner_dst_ip = field_text(&d, "inner_dst_ip");
        row->inner_src_port = field_text(&d, "inner_src_port");
        row->inner_dst_port = field_text(&d, "inner_dst_port");
        if (!g_variant_dict_lookup(&d, "log", "b", &row->log))
                row->log = TRUE;        /* the documented default */
        g_variant_dict_lookup(&d, "priority", "i", &row->priority);
        if (dict_u64(&d, "hits", &row->hits) == -EBADMSG ||
            dict_u64(&d, "timeout", &row->timeout_sec) == -EBADMSG) {
                ps_rule_row_free(row);
                return -EBADMSG;
        }
        *ret_row = row;
        return 0;
}

int ps_rule_rows_parse(GVariant *rules, GPtrArray **ret_rows)
{
        return rows_parse(rules, (int (*)(GVariant *, gpointer *)) ps_rule_row_parse,
                          (GDestroyNotify) ps_rule_row_free, ret_rows);
}

/* columns: the a{sv} of Filters.ListRange, each key of a rule dictionary to an array of its
 * values, one per rule; turned into the rows List would give, then read as those. */
int ps_rule_columns_parse(GVariant *columns, GPtrArray **ret_rows)
{
        g_autoptr(GVariant) ids = NULL;
        g_autoptr(GVariantBuilder) rows = NULL;
        g_autoptr(GVariant) rows_v = NULL;
        GVariantIter it;
        const char *key;
        GVariant *col;
        gsize n;

        if (!columns || !g_variant_is_of_type(columns, G_VARIANT_TYPE_VARDICT))
                return -EINVAL;
        ids = g_variant_lookup_value(columns, "id", G_VARIANT_TYPE("au"));
        if (!ids)
                return -EBADMSG;
        n = g_variant_n_children(ids);
        /* Every column an array of n values. */
        g_variant_iter_init(&it, columns);
        while (g_variant_iter_next(&it, "{&sv}", &key, &col)) {
                gboolean good = g_variant_type_is_array(g_variant_get_type(col)) &&
                                g_variant_n_children(col) == n;

                g_variant_unref(col);
                if (!good)
                        return -EBADMSG;
        }
        rows = g_variant_builder_new(G_VARIANT_TYPE("aa{sv}"));
        for (gsize i = 0; i < n; i++) {
                g_variant_builder_open(rows, G_VARIANT_TYPE_VARDICT);
                g_variant_iter_init(&it, columns);
                while (g_variant_iter_next(&it, "{&sv}", &key, &col)) {
                        g_variant_builder_add(rows, "{sv}", key, g_variant_get_child_value(col, i));
                        g_variant_unref(col);
                }
                g_variant_builder_close(rows);
        }
        rows_v = g_variant_ref_sink(g_variant_builder_end(rows));
        return ps_rule_rows_parse(rows_v, ret_rows);
}

static void drop_row_clear(PsDropRow *row)
{
        g_clear_pointer(&row->link, g_free);
        g_clear_pointer(&row->protocol, g_free);
        g_clear_pointer(&row->src, g_free);
        g_clear_pointer(&row->dst, g_free);
}

void ps_drop_ring_init(PsDropRing *ring)
{
        memset(ring, 0, sizeof(*ring));
}

void ps_drop_ring_clear(PsDropRing *ring)
{
        for (guint i = 0; i < ring->n; i++)
                drop_row_clear(&ring->rows[(ring->start + i) % PS_DROP_RING_MAX]);
        ps_drop_ring_init(ring);
}

/* dropped_args: the (ussssqq) of the Dropped signal. When full, the oldest row goes. */
int ps_drop_ring_push(PsDropRing *ring, GVariant *dropped_args, gint64 when_usec)
{
        const char *link, *protocol, *src, *dst;
        guint32 rule_id;
        guint16 sport, dport;
        PsDropRow *row;

        if (!dropped_args || !g_variant_is_of_type(dropped_args, G_VARIANT_TYPE("(ussssqq)")))
                return -EINVAL;
        g_variant_get(dropped_args, "(u&s&s&s&sqq)", &rule_id, &link, &protocol, &src, &dst,
                      &sport, &dport);
        if (ring->n == PS_DROP_RING_MAX) {
                row = &ring->rows[ring->start];
                drop_row_clear(row);
                ring->start = (ring->start + 1) % PS_DROP_RING_MAX;
        } else {
                row = &ring->rows[(ring->start + ring->n) % PS_DROP_RING_MAX];
                ring->n++;
        }
        row->when_usec = when_usec;
        row->rule_id = rule_id;
        row->link = g_strdup(link);
        row->protocol = g_strdup(protocol);
        row->src = ps_endpoint_format(src, sport);
        row->dst = ps_endpoint_format(dst, dport);
        ring->total++;
        return 0;
}

/* i = 0 is the newest row; NULL past the end. */
const PsDropRow *ps_drop_ring_get(const PsDropRing *ring, guint i)
{
        if (i >= ring->n)
                return NULL;
        return &ring->rows[(ring->start + ring->n - 1 - i) % PS_DROP_RING_MAX];
}

PsState ps_state_compute(gboolean daemon_present, guint n_links, gint64 last_drop_usec,
                         gint64 now_usec)
{
        if (!daemon_present)
                return PS_STATE_GONE;
        if (n_links == 0)
                return PS_STATE_IDLE;
        if (last_drop_usec > 0 && now_usec >= last_drop_usec &&
            now_usec - last_drop_usec < PS_DROP_RECENT_USEC)
                return PS_STATE_DROPPING;
        return PS_STATE_GUARDING;
}

PsState ps_state_with_panic(PsState state, gboolean panic)
{
        return panic && state != PS_STATE_GONE ? PS_STATE_PANIC : state;
}

const char *ps_state_icon_name(PsState state)
{
        switch (state) {
        case PS_STATE_PANIC:
                return "packetscope-panic";
        case PS_STATE_GONE:
                return "packetscope-gone";
        case PS_STATE_IDLE:
                return "packetscope-idle";
        case PS_STATE_DROPPING:
                return "packetscope-dropping";
        case PS_STATE_GUARDING:
        default:
                return "packetscope-guarding";
        }
}

const char *ps_state_title(PsState state)
{
        switch (state) {
        case PS_STATE_GONE:
                return _("No connection to the daemon");
        case PS_STATE_IDLE:
                return _("Nothing guarded");
        case PS_STATE_DROPPING:
                return _("Dropping packets");
        case PS_STATE_PANIC:
                return _("Panic mode");
        case PS_STATE_GUARDING:
        default:
                return _("Guarding");
        }
}

char *ps_tooltip_body(PsState state, guint n_links, double pps, double drops_per_sec)
{
        switch (state) {
        case PS_STATE_GONE:
                return g_strdup(_("packetscoped is not running"));
        case PS_STATE_IDLE:
                return g_strdup(_("No link is guarded"));
        default:
                return g_strdup_printf(g_dngettext(GETTEXT_PACKAGE,
                                                   "%u link guarded, %.0f packets/s, %.0f drops/s",
                                                   "%u links guarded, %.0f packets/s, %.0f drops/s",
                                                   n_links),
                                       n_links, pps, drops_per_sec);
        }
}

void ps_notify_gate_init(PsNotifyGate *gate, gint64 interval_usec)
{
        memset(gate, 0, sizeof(*gate));
        gate->interval_usec = interval_usec;
}

/* TRUE when a notification may be shown now; *ret_suppressed (may be NULL) then says how
 * many were held back since the previous one, for the text to sum them up. */
gboolean ps_notify_gate_allow(PsNotifyGate *gate, gint64 now_usec, guint *ret_suppressed)
{
        if (gate->have_last && now_usec - gate->last_usec < gate->interval_usec) {
                gate->suppressed++;
                return FALSE;
        }
        if (ret_suppressed)
                *ret_suppressed = gate->suppressed;
        gate->have_last = TRUE;
        gate->last_usec = now_usec;
        gate->suppressed = 0;
        return TRUE;
}

/* Typed text without its surrounding blanks, "" for any. */
static char *form_text(const char *typed)
{
        g_autofree char *s = g_strstrip(g_strdup(typed ? typed : ""));

        return g_strdup(is_any(s) ? "" : s);
}

static void form_add_text(GVariantBuilder *b, const char *key, const char *typed,
                          const char *orig, gboolean adding)
{
        g_autofree char *now = form_text(typed);
        g_autofree char *before = form_text(orig);

        if (adding ? *now != '\0' : !g_str_equal(now, before))
                g_variant_builder_add(b, "{sv}", key, g_variant_new_string(now));
}

/* An ICMP type or code: a number the daemon parses (and names in its error when it cannot);
 * empty is any, which a change says with the field's own "any", 255. */
static void form_add_icmp(GVariantBuilder *b, const char *key, const char *typed, guint8 orig)
{
        g_autofree char *now = g_strstrip(g_strdup(typed ? typed : ""));
        g_autofree char *before = orig != 255 ? g_strdup_printf("%u", orig) : NULL;

        if (*now && (!before || !g_str_equal(now, before)))
                g_variant_builder_add(b, "{sv}", key, g_variant_new_string(now));
        else if (!*now && before)
                g_variant_builder_add(b, "{sv}", key, g_variant_new_byte(255));
}

/* A number with a default of 0 (priority, timeout): sent as typed, for the daemon to parse,
 * when it differs from what the rule has (a new rule: from 0); empty is 0. */
static void form_add_number(GVariantBuilder *b, const char *key, const char *typed,
                            const char *orig)
{
        g_autofree char *now = g_strstrip(g_strdup(typed ? typed : ""));

        if (!*now) {
                g_free(now);
                now = g_strdup("0");
        }
        if (!g_str_equal(now, orig))
                g_variant_builder_add(b, "{sv}", key, g_variant_new_string(now));
}

const char *const ps_tcp_flag_names[8] = {
        "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR",
};

/* The flags that must be set and those that must be clear are the daemon's flags and mask:
 * the mask is every flag looked at. Both are always sent together (the daemon takes a lone
 * tcp_flags as its own mask), a set flag winning over the same flag marked clear. */
static void form_add_tcp_flags(GVariantBuilder *b, const PsRuleForm *form, const PsRuleRow *orig)
{
        guint8 flags = form->tcp_set, mask = form->tcp_set | form->tcp_clear;

        if (orig ? flags == orig->tcp_flags && mask == orig->tcp_flags_mask : mask == 0)
                return;
        g_variant_builder_add(b, "{sv}", "tcp_flags", g_variant_new_byte(flags));
        g_variant_builder_add(b, "{sv}", "tcp_flags_mask", g_variant_new_byte(mask));
}

GVariant *ps_rule_form_build(const PsRuleForm *form, const PsRuleRow *orig)
{
        g_autofree char *orig_priority = NULL, *orig_timeout = NULL;
        g_autofree char *comment = g_strstrip(g_strdup(form->comment ? form->comment : ""));
        gboolean adding = orig == NULL;
        GVariantBuilder b;
        GVariant *v;

        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        if (adding || !g_str_equal(form->action, orig->action))
                g_variant_builder_add(&b, "{sv}", "action", g_variant_new_string(form->action));
        form_add_text(&b, "protocol", form->protocol, adding ? NULL : orig->protocol, adding);
        form_add_text(&b, "src_ip", form->src_ip, adding ? NULL : orig->src_ip, adding);
        form_add_text(&b, "src_port", form->src_port, adding ? NULL : orig->src_port, adding);
        form_add_text(&b, "dst_ip", form->dst_ip, adding ? NULL : orig->dst_ip, adding);
        form_add_text(&b, "dst_port", form->dst_port, adding ? NULL : orig->dst_port, adding);
        form_add_icmp(&b, "icmp_type", form->icmp_type, adding ? 255 : orig->icmp_type);
        form_add_icmp(&b, "icmp_code", form->icmp_code, adding ? 255 : orig->icmp_code);
        form_add_tcp_flags(&b, form, orig);
        form_add_text(&b, "inner_protocol", form->inner_protocol,
                      adding ? NULL : orig->inner_protocol, adding);
        form_add_text(&b, "inner_src_ip", form->inner_src_ip, adding ? NULL : orig->inner_src_ip,
                      adding);
        form_add_text(&b, "inner_src_port", form->inner_src_port,
                      adding ? NULL : orig->inner_src_port, adding);
        form_add_text(&b, "inner_dst_ip", form->inner_dst_ip, adding ? NULL : orig->inner_dst_ip,
                      adding);
        form_add_text(&b, "inner_dst_port", form->inner_dst_port,
                      adding ? NULL : orig->inner_dst_port, adding);
        orig_priority = g_strdup_printf("%d", adding ? 0 : orig->priority);
        form_add_number(&b, "priority", form->priority, orig_priority);
        orig_timeout = g_strdup_printf("%" G_GUINT64_FORMAT, adding ? 0 : orig->timeout_sec);
        form_add_number(&b, "timeout", form->timeout, orig_timeout);
        if ((adding && *comment) || (!adding && !g_str_equal(comment, orig->comment)))
                g_variant_builder_add(&b, "{sv}", "comment", g_variant_new_string(comment));
        if (adding || !form->enabled != !orig->enabled)
                g_variant_builder_add(&b, "{sv}", "enabled", g_variant_new_boolean(form->enabled));
        /* Logged is the default: a new rule says so only when it is not. */
        if (adding ? form->no_log : !form->no_log != !!orig->log)
                g_variant_builder_add(&b, "{sv}", "log", g_variant_new_boolean(!form->no_log));
        v = g_variant_ref_sink(g_variant_builder_end(&b));
        if (g_variant_n_children(v) == 0)
                g_clear_pointer(&v, g_variant_unref);
        return v;
}

static gboolean parse_double(const char *typed, double *ret)
{
        g_autofree char *t = g_strstrip(g_strdup(typed ? typed : ""));
        char *end = NULL;
        double v;

        if (!*t)
                return FALSE;
        v = g_ascii_strtod(t, &end);
        if (*end || !isfinite(v))
                return FALSE;
        *ret = v;
        return TRUE;
}

static gboolean typed_empty(const char *typed)
{
        g_autofree char *t = g_strstrip(g_strdup(typed ? typed : ""));

        return !*t;
}

int ps_threshold_form_build(const PsThresholdForm *form, GVariant *current, GVariant **ret,
                            const char **ret_bad)
{
        const struct {
                const char *key;
                const char *typed;
        } percent[] = {
                { "cpu_percent", form->cpu_percent },
                { "memory_percent", form->memory_percent },
                { "disk_mbps", form->disk_mbps },
                { "pressure_percent", form->pressure_percent },
        };
        GVariantDict cur;
        GVariantBuilder b;
        GVariant *v;
        guint64 old_usec = 0, usec;
        double x, old;

        *ret = NULL;
        g_variant_dict_init(&cur, current);
        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        for (guint i = 0; i < G_N_ELEMENTS(percent); i++) {
                if (typed_empty(percent[i].typed))
                        continue;
                if (!parse_double(percent[i].typed, &x)) {
                        *ret_bad = percent[i].key;
                        g_variant_dict_clear(&cur);
                        g_variant_builder_clear(&b);
                        return -EINVAL;
                }
                if (!g_variant_dict_lookup(&cur, percent[i].key, "d", &old) || old != x)
                        g_variant_builder_add(&b, "{sv}", percent[i].key, g_variant_new_double(x));
        }
        if (!typed_empty(form->min_duration_sec)) {
                if (!parse_double(form->min_duration_sec, &x) || x < 0 || x > 1e7) {
                        *ret_bad = "min_duration_usec";
                        g_variant_dict_clear(&cur);
                        g_variant_builder_clear(&b);
                        return -EINVAL;
                }
                usec = (guint64) (x * G_USEC_PER_SEC + 0.5);
                if (!g_variant_dict_lookup(&cur, "min_duration_usec", "t", &old_usec) ||
                    old_usec != usec)
                        g_variant_builder_add(&b, "{sv}", "min_duration_usec",
                                              g_variant_new_uint64(usec));
        }
        g_variant_dict_clear(&cur);
        v = g_variant_ref_sink(g_variant_builder_end(&b));
        if (g_variant_n_children(v) == 0)
                g_clear_pointer(&v, g_variant_unref);
        *ret = v;
        return 0;
}

char *ps_threshold_text(GVariant *current, const char *key)
{
        GVariantDict cur;
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        guint64 usec;
        double d;
        char *text = g_strdup("");

        g_variant_dict_init(&cur, current);
        if (g_str_equal(key, "min_duration_usec") &&
            g_variant_dict_lookup(&cur, key, "t", &usec)) {
                g_free(text);
                text = g_strdup(g_ascii_formatd(buf, sizeof(buf), "%g",
                                                (double) usec / G_USEC_PER_SEC));
        } else if (g_variant_dict_lookup(&cur, key, "d", &d)) {
                g_free(text);
                text = g_strdup(g_ascii_formatd(buf, sizeof(buf), "%g", d));
        }
        g_variant_dict_clear(&cur);
        return text;
}

gboolean ps_error_is_denial(const char *error_name)
{
        return g_strcmp0(error_name, "org.freedesktop.DBus.Error.AccessDenied") == 0 ||
               g_strcmp0(error_name, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired") == 0;
}

char *ps_countdown_text(gint64 deadline_usec, gint64 now_usec)
{
        gint64 left = deadline_usec > now_usec ?
                (deadline_usec - now_usec + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC : 0;

        return g_strdup_printf(g_dngettext(GETTEXT_PACKAGE,
                                           "Rolls back in %u second unless confirmed",
                                           "Rolls back in %u seconds unless confirmed",
                                           (gulong) left),
                               (guint) left);
}
