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
        PS_STATE_PANIC,         /* panic mode: all traffic but management is dropped */
} PsState;

/* How long a drop keeps the "dropping now" state. */
#define PS_DROP_RECENT_USEC (10 * G_USEC_PER_SEC)
/* The most recent drops the window lists. */
#define PS_DROP_RING_MAX 200
/* The rates a link's sparkline draws: the samples of the last PS_HISTORY_USEC, at most
 * PS_HISTORY_MAX of them (2 s apart while the window shows: 150 samples are 5 minutes). */
#define PS_HISTORY_USEC (5 * 60 * G_USEC_PER_SEC)
#define PS_HISTORY_MAX 150

typedef struct PsRateSample {
        gint64 usec;
        double pps;
        double drops_per_sec;
} PsRateSample;

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
        /* The rates of the latest samples, oldest first from history_start. */
        PsRateSample history[PS_HISTORY_MAX];
        guint history_start;
        guint history_n;
} PsLinkRow;

typedef struct PsConnRow {
        char *protocol;
        char *remote;           /* "ADDR:PORT", "[ADDR6]:PORT", or the address alone */
        char *local;
        char *state;
        guint64 packets;
        guint64 bytes;
} PsConnRow;

typedef struct PsBanRow {
        char *address;          /* an address or a prefix */
        char *origin;           /* manual, import, ai or auto:POLICY */
        char *reason;
        guint64 until_usec;     /* CLOCK_REALTIME; 0: until unbanned */
        guint64 packets;        /* dropped by this ban */
        guint32 offenses;
} PsBanRow;

typedef struct PsAnomalyRow {
        guint32 id;
        char *kind;             /* cpu, memory, disk, cpu-pressure, memory-pressure, io-pressure */
        double value;           /* the latest reading */
        double peak;
        double threshold;
        guint64 started_usec;   /* CLOCK_REALTIME */
} PsAnomalyRow;

typedef struct PsRuleRow {
        guint32 id;
        char *path;
        char *action;
        char *summary;          /* "drop udp from 10.0.0.0/8 to any port 53" */
        char *comment;
        gboolean enabled;
        guint64 hits;
        /* The fields the rule dialog edits, as the daemon wrote them ("" for any). */
        char *protocol;
        char *src_ip;
        char *dst_ip;
        char *src_port;
        char *dst_port;
        guint8 icmp_type;       /* 255: any */
        guint8 icmp_code;       /* 255: any */
        guint8 tcp_flags;       /* the flags that must be set, among those of the mask */
        guint8 tcp_flags_mask;  /* the flags looked at; 0: any */
        /* The datagram an ICMP error quotes ("" for any). */
        char *inner_protocol;
        char *inner_src_ip;
        char *inner_dst_ip;
        char *inner_src_port;
        char *inner_dst_port;
        gint32 priority;
        guint64 timeout_sec;    /* 0: permanent */
        gboolean log;
} PsRuleRow;

/* What the rule dialog holds: text as typed ("" for any; icmp_type "" for any). */
typedef struct PsRuleForm {
        const char *action;
        const char *protocol;
        const char *src_ip;
        const char *src_port;
        const char *dst_ip;
        const char *dst_port;
        const char *icmp_type;
        const char *icmp_code;
        guint8 tcp_set;         /* TCP flags that must be set */
        guint8 tcp_clear;       /* TCP flags that must be clear */
        const char *inner_protocol;
        const char *inner_src_ip;
        const char *inner_src_port;
        const char *inner_dst_ip;
        const char *inner_dst_port;
        const char *priority;   /* "" for the default, 0 */
        const char *timeout;    /* seconds, "" for permanent */
        const char *comment;
        gboolean enabled;
        gboolean no_log;        /* the rule's drops are not logged nor signalled */
} PsRuleForm;

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
/* i = 0 is the oldest sample kept; NULL past the end. */
const PsRateSample *ps_link_history_get(const PsLinkRow *row, guint i);
/* The highest packet rate among the samples newer than since_usec (0 without any). */
double ps_link_history_peak(const PsLinkRow *row, gint64 since_usec);

void ps_conn_row_free(PsConnRow *row);
int ps_conn_rows_parse(GVariant *rows, GPtrArray **ret_rows);

void ps_ban_row_free(PsBanRow *row);
int ps_ban_rows_parse(GVariant *rows, GPtrArray **ret_rows);
/* A CLOCK_REALTIME time in tz: "2026-11-30 21:05:00". */
char *ps_realtime_text(guint64 usec, GTimeZone *tz);
/* When a ban ends, in tz: "2026-11-30 21:05:00", or "until unbanned" for 0. */
char *ps_ban_until_text(guint64 until_usec, GTimeZone *tz);

void ps_anomaly_row_free(PsAnomalyRow *row);
/* rows: the aa{sv} of Health.ListAnomalies; only the open anomalies are kept. */
int ps_anomaly_rows_parse(GVariant *rows, GPtrArray **ret_rows);
/* The unit of a kind's readings: "MB/s" for disk, "%" for the others. */
const char *ps_anomaly_unit(const char *kind);

/* The notification of a Banned signal: "Address banned" (automatically, for an auto: origin),
 * and "ADDRESS banned until WHEN (ORIGIN): REASON". */
const char *ps_ban_note_summary(const char *origin);
char *ps_ban_note_body(const char *address, const char *origin, const char *reason,
                       guint64 until_usec, GTimeZone *tz);
/* The notification of AnomalyStarted: "memory at 43.2 %, over its threshold of 1.0 %". */
char *ps_anomaly_note_body(const char *kind, double value, double threshold);

void ps_rule_row_free(PsRuleRow *row);
int ps_rule_row_parse(GVariant *dict, PsRuleRow **ret_row);
int ps_rule_rows_parse(GVariant *rules, GPtrArray **ret_rows);
int ps_rule_columns_parse(GVariant *columns, GPtrArray **ret_rows);
/* The rule dictionary for Filters.Add/Apply (orig NULL: every field given) or for
 * Filter.Update (only the fields that differ from orig). Values are passed as typed: the
 * daemon validates them and its error names the field. NULL when nothing changed. */
GVariant *ps_rule_form_build(const PsRuleForm *form, const PsRuleRow *orig);
/* The TCP flags by bit, FIN (bit 0) to CWR (bit 7), as the daemon's documentation names them. */
extern const char *const ps_tcp_flag_names[8];

/* The health thresholds as typed in their dialog ("" leaves one as it is). */
typedef struct PsThresholdForm {
        const char *cpu_percent;
        const char *memory_percent;
        const char *disk_mbps;
        const char *pressure_percent;
        const char *min_duration_sec;   /* seconds, fractions allowed */
} PsThresholdForm;

/* The a{sv} for Health.SetThresholds with the thresholds that differ from current (the
 * Thresholds property): *ret NULL when none does. -EINVAL when a field is not a number,
 * *ret_bad then names its key; the ranges are the daemon's to check (its error says them). */
int ps_threshold_form_build(const PsThresholdForm *form, GVariant *current, GVariant **ret,
                            const char **ret_bad);
/* A threshold of the Thresholds property as the dialog shows it ("" when it lacks it);
 * min_duration_usec in seconds. */
char *ps_threshold_text(GVariant *current, const char *key);

/* Whether a D-Bus error name is polkit's (or the daemon's) refusal of the caller. */
gboolean ps_error_is_denial(const char *error_name);
/* "Rolls back in 42 s unless confirmed": the whole seconds left, rounded up, never below 0. */
char *ps_countdown_text(gint64 deadline_usec, gint64 now_usec);

void ps_drop_ring_init(PsDropRing *ring);
void ps_drop_ring_clear(PsDropRing *ring);
int ps_drop_ring_push(PsDropRing *ring, GVariant *dropped_args, gint64 when_usec);
const PsDropRow *ps_drop_ring_get(const PsDropRing *ring, guint i);

PsState ps_state_compute(gboolean daemon_present, guint n_links, gint64 last_drop_usec,
                         gint64 now_usec);
/* Panic mode (the Manager's Panic property) outranks every state but the daemon gone: it
 * holds for links attached later too. */
PsState ps_state_with_panic(PsState state, gboolean panic);
const char *ps_state_icon_name(PsState state);
const char *ps_state_title(PsState state);
char *ps_tooltip_body(PsState state, guint n_links, double pps, double drops_per_sec);

void ps_notify_gate_init(PsNotifyGate *gate, gint64 interval_usec);
gboolean ps_notify_gate_allow(PsNotifyGate *gate, gint64 now_usec, guint *ret_suppressed);
