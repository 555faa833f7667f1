/* SPDX-License-Identifier: MIT */
#pragma once

#include <gtk/gtk.h>

#include "model.h"
#include "tray.h"
#include "ps-guarder.h"

#define PS_BUS_NAME "org.packetscope.Guarder1"
#define PS_BUS_PATH "/org/packetscope/Guarder1"
#define PS_FILTERS_PATH PS_BUS_PATH "/filters"
#define PS_CONNS_PATH PS_BUS_PATH "/connections"
#define PS_BANS_PATH PS_BUS_PATH "/bans"

/* The bounded polls for what the daemon does not signal (the Link counters, rule hits and
 * connections are marked EmitsChangedSignal="false" in its XML). */
#define PS_POLL_WINDOW_MS 2000
#define PS_POLL_TRAY_MS 30000
/* The most rules and connections the window lists. */
#define PS_RULES_SHOWN 1000
#define PS_CONNS_SHOWN 50
#define PS_BANS_SHOWN 500
/* At most one notification per this many seconds (--notify-interval). */
#define PS_NOTIFY_INTERVAL_SEC 30
/* A change waits this long for polkit's agent (the user typing a password). */
#define PS_CHANGE_TIMEOUT_MS 120000
/* How long an AI job's rules are shadowed, and the confirm time of their Apply. */
#define PS_AI_SHADOW_SEC 60
#define PS_AI_CONFIRM_SEC 60
/* The trial a new rule may be added on: seconds to confirm it in (Filters.Apply). */
#define PS_TRIAL_SEC_DEFAULT 60

typedef struct PsWindow PsWindow;

typedef struct App {
        GtkApplication *gtk;
        GDBusConnection *system;
        guint watch_id;
        gboolean present;
        GDBusObjectManager *objects;    /* the generated PsObjectManagerClient */
        PsFilters *filters;
        PsManager *manager;             /* its Panic property */
        guint dropped_sub;
        GCancellable *cancel;           /* every call of the current daemon connection */

        GHashTable *links;              /* object path -> PsLinkRow */
        GPtrArray *rules;               /* PsRuleRow, in the daemon's order */
        GPtrArray *conns;               /* PsConnRow */
        PsBans *bans;                   /* NULL: the daemon has no Bans interface */
        GPtrArray *ban_rows;            /* PsBanRow, newest first */
        PsAI *ai;                       /* NULL: the daemon has no AI interface */
        PsHealth *health;               /* NULL: the daemon has no Health interface */
        GPtrArray *anomalies;           /* PsAnomalyRow, the open ones, oldest first */
        PsDropRing drops;
        gint64 last_drop_usec;          /* monotonic time of the latest drop seen */
        guint64 drops_seen_by_signal;

        guint poll_id;
        guint poll_ms;
        guint drop_expiry_id;

        PsTray *tray;
        GtkWidget *menu;
        GtkWidget *notify_item;
        gboolean notify;
        PsNotifyGate gate;
        guint notify_flush_id;          /* the gate opens again: show what it held */
        /* The event that waits for the gate, as its notification would say it. */
        char *held_summary;             /* NULL: none waits */
        char *held_body;
        const char *held_icon;
        gboolean was_present;           /* the daemon was seen since the applet started */

        PsTransaction *transaction;     /* the pending Apply, whoever asked for it */

        PsWindow *window;
        PsState state;
} App;

void app_update(App *app);
void app_window_visible_changed(App *app);
void app_refresh_rules(App *app);
void app_rule_set_enabled(App *app, guint32 id, gboolean enabled);
GDBusProxy *app_filter_proxy(App *app, guint32 id);
const PsRuleRow *app_rule_find(App *app, guint32 id);
void app_change(App *app, GDBusProxy *proxy, const char *method, GVariant *params,
                GAsyncReadyCallback callback, gpointer data);
char *app_change_error(GError *error);
void app_transaction_end(App *app, gboolean confirm);
void app_refresh_bans(App *app);
void app_ai_generate(App *app, const char *prompt);
/* A method of the AI job at path: Shadow(seconds), Apply(seconds), Cancel() or Delete()
 * (params NULL). */
void app_ai_job_call(App *app, const char *path, const char *method, GVariant *params);
gboolean app_panic(App *app);

/* The dialogs' labelled fields: the label's mnemonic focuses the field, and it is the
 * field's accessible name. */
GtkWidget *ps_dialog_field(GtkGrid *grid, int row, const char *mnemonic, const char *name,
                           GtkWidget *widget, const char *tooltip);
GtkWidget *ps_dialog_entry(const char *text, const char *placeholder);
GtkWidget *ps_dialog_error_label(void);
/* The dialogs that ask the daemon for a change (Cancel and ok_label, OK the default) stay
 * open until it answers: busy, their buttons are off and they do not close. */
GtkWidget *ps_dialog_new(const char *title, GtkWindow *parent, const char *ok_label);
/* The grid of a dialog's labelled fields, in its content area. */
GtkWidget *ps_dialog_grid(GtkWidget *dialog);
void ps_dialog_set_busy(GtkWidget *dialog, gboolean busy);
gboolean ps_dialog_busy(GtkWidget *dialog);
void ps_dialog_show_error(GtkWidget *label, const char *text);
/* The daemon's answer to a dialog's change: TRUE for yes. Otherwise the dialog shows what it
 * said in error_label, or is destroyed (with what it holds) when the call was cancelled,
 * the daemon having gone. */
gboolean ps_dialog_call_finish(GtkWidget *dialog, GtkWidget *error_label, GObject *source,
                               GAsyncResult *res);
void ps_ban_dialog_run(App *app, GtkWindow *parent);
/* Health.SetThresholds with the thresholds changed in the dialog. */
void ps_threshold_dialog_run(App *app, GtkWindow *parent);

void ps_rule_dialog_run(App *app, GtkWindow *parent, guint32 id);
void ps_set_accessible_name(GtkWidget *w, const char *name);

PsWindow *ps_window_new(App *app);
void ps_window_present(PsWindow *w);
gboolean ps_window_visible(PsWindow *w);
void ps_window_update(PsWindow *w);
void ps_window_add_drop(PsWindow *w, const PsDropRow *row);
void ps_window_show_error(PsWindow *w, const char *text);
void ps_window_rule_done(PsWindow *w, guint32 id);
/* deadline_usec: realtime; 0 hides the countdown. */
void ps_window_transaction(PsWindow *w, gint64 deadline_usec);
/* A change asked of the daemon once the user confirmed it; text: NULL-terminated lines, the
 * last one the question. */
void ps_confirm_dialog_run(App *app, GtkWindow *parent, const char *title,
                           const char *const *text, const char *ok_label, GDBusProxy *proxy,
                           const char *method, GVariant *params);
/* Asks whether to enter (or leave) panic mode (Manager.SetPanic). */
void ps_panic_dialog_run(App *app, GtkWindow *parent, gboolean enable);
