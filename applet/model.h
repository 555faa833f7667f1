/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The applet's model: turns what the daemon says on the bus (property dictionaries, the
 * rows of Connections.List and Filters.List, Dropped signals, the presence of its name)
 * into the rows, the state and the texts the tray and the window show. Plain C on GLib
 * types, no GTK and no bus connection, so that it is tested without a display.
 */

#include <glib.h>

typedef enum PsState {
        PS_STATE_GONE,          /* the daemon's name has no owner */
        PS_STATE_IDLE,          /* the daemon runs, no link is guarded */
        PS_STATE_GUARDING,      /* links guarded, nothing dropped lately */
        PS_STATE_DROPPING,      /* a rule dropped packets within the last PS_DROP_RECENT_USEC */
} PsState;

/* How long a drop keeps the "dropping now" state. */
#define PS_DROP_RECENT_USEC (10 * G_USEC_PER_SEC)
/* The most recent drops the window lists. */
#define PS_DROP_RING_MAX 200

typedef struct PsLinkRow {
        char *path;
        char *name;
        char *mode;
        guint64 packets;
        guint64 bytes;
        guint64 dropped;
        double pps;             /* packets per second between the last two samples */
        double drops_per_sec;   /* drops per second between the last two samples */
        /* The previous sample the rates are computed from. */
        gboolean have_sample;
        guint64 sample_packets;
        guint64 sample_dropped;
        gint64 sample_usec;
} PsLinkRow;

typedef struct PsConnRow {
        char *protocol;
        char *remote;           /* "ADDR:PORT", "[ADDR6]:PORT", or the address alone */
        char *local;
        char *state;
        guint64 packets;
        guint64 bytes;
} PsConnRow;

typedef struct PsRuleRow {
        guint32 id;
        char *path;
        char *action;
        char *summary;          /* "drop udp from 10.0.0.0/8 to any port 53" */
        char *comment;
        gboolean enabled;
        guint64 hits;
} PsRuleRow;

typedef struct PsDropRow {
        gint64 when_usec;       /* real time it was received */
        guint32 rule_id;
        char *link;
        char *protocol;
        char *src;              /* formatted as PsConnRow.remote */
        char *dst;
} PsDropRow;

typedef struct PsDropRing {
        PsDropRow rows[PS_DROP_RING_MAX];
        guint start;            /* index of the oldest row */
        guint n;
        guint64 total;          /* every drop ever pushed */
} PsDropRing;

/* At most one notification per interval; the others are counted, to be summed up. */
typedef struct PsNotifyGate {
        gint64 interval_usec;
        gint64 last_usec;
        gboolean have_last;
        guint suppressed;
} PsNotifyGate;

char *ps_endpoint_format(const char *addr, guint port);

PsLinkRow *ps_link_row_new(const char *path);
void ps_link_row_free(PsLinkRow *row);
int ps_link_row_update(PsLinkRow *row, GVariant *props, gint64 now_usec);
void ps_link_row_sample(PsLinkRow *row, guint64 packets, guint64 dropped, gint64 now_usec);

void ps_conn_row_free(PsConnRow *row);
int ps_conn_rows_parse(GVariant *rows, GPtrArray **ret_rows);

void ps_rule_row_free(PsRuleRow *row);
int ps_rule_row_parse(GVariant *dict, PsRuleRow **ret_row);
int ps_rule_rows_parse(GVariant *rules, GPtrArray **ret_rows);

void ps_drop_ring_init(PsDropRing *ring);
void ps_drop_ring_clear(PsDropRing *ring);
int ps_drop_ring_push(PsDropRing *ring, GVariant *dropped_args, gint64 when_usec);
const PsDropRow *ps_drop_ring_get(const PsDropRing *ring, guint i);

PsState ps_state_compute(gboolean daemon_present, guint n_links, gint64 last_drop_usec,
                         gint64 now_usec);
const char *ps_state_icon_name(PsState state);
const char *ps_state_title(PsState state);
char *ps_tooltip_body(PsState state, guint n_links, double pps, double drops_per_sec);

void ps_notify_gate_init(PsNotifyGate *gate, gint64 interval_usec);
gboolean ps_notify_gate_allow(PsNotifyGate *gate, gint64 now_usec, guint *ret_suppressed);
