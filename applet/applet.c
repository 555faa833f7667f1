/* SPDX-License-Identifier: MIT */
/*
 * packetscope-applet: follows packetscoped on the system bus and shows it in the tray and in
 * a window. Everything it knows comes from the bus through the client that gdbus-codegen
 * generates from the daemon's shipped introspection XML; every change it asks for is a bus
 * call that polkit authorizes (interactively, through the session's agent).
 */
#include <errno.h>
#include <locale.h>
#include <libnotify/notify.h>
#include <glib/gi18n.h>

#include "applet.h"

static void app_poll_schedule(App *app);
static void change_done(GObject *source, GAsyncResult *res, gpointer data);

static gint64 now_usec(void)
{
        return g_get_monotonic_time();
}

static const char *remote_error_name(const GError *error)
{
        static char name[256];
        g_autofree char *n = g_dbus_error_get_remote_error(error);

        g_strlcpy(name, n ? n : "", sizeof(name));
        return name;
}

/* ---------------------------------------------------------------------------------------- */
/* State, tray and notifications */

static double total_pps(App *app, double *ret_dps)
{
        GHashTableIter it;
        PsLinkRow *row;
        double pps = 0, dps = 0;

        g_hash_table_iter_init(&it, app->links);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *) &row)) {
                pps += row->pps;
                dps += row->drops_per_sec;
        }
        *ret_dps = dps;
        return pps;
}

static gboolean drop_expired(gpointer data)
{
        App *app = data;

        app->drop_expiry_id = 0;
        app_update(app);
        return G_SOURCE_REMOVE;
}

/* The "dropping now" state ends by itself PS_DROP_RECENT_USEC after the latest drop. */
static void app_note_drop(App *app)
{
        app->last_drop_usec = now_usec();
        if (app->drop_expiry_id)
                g_source_remove(app->drop_expiry_id);
        app->drop_expiry_id = g_timeout_add(PS_DROP_RECENT_USEC / 1000 + 100, drop_expired, app);
}

void app_update(App *app)
{
        g_autofree char *body = NULL;
        double pps, dps;
        guint n_links = app->present ? g_hash_table_size(app->links) : 0;

        /* The daemon is there but its objects are not read yet: showing "nothing guarded"
         * for that moment would be a lie (and a flicker in the tray). */
        if (app->present && !app->objects)
                return;
        pps = total_pps(app, &dps);
        app->state = ps_state_with_panic(ps_state_compute(app->present, n_links,
                                                          app->last_drop_usec, now_usec()),
                                         app_panic(app));
        body = ps_tooltip_body(app->state, n_links, pps, dps);
        ps_tray_set_state(app->tray, ps_state_icon_name(app->state), ps_state_title(app->state),
                          app->state == PS_STATE_DROPPING || app->state == PS_STATE_GONE ||
                          app->state == PS_STATE_PANIC);
        ps_tray_set_tooltip(app->tray, ps_state_title(app->state), body);
        if (app->window)
                ps_window_update(app->window);
}

static void notify_show(const char *summary, const char *body, const char *icon)
{
        g_autoptr(GObject) n = G_OBJECT(notify_notification_new(summary, body, icon));

        notify_notification_set_category(NOTIFY_NOTIFICATION(n), "network");
        notify_notification_show(NOTIFY_NOTIFICATION(n), NULL);
}

static void notify_held_clear(App *app)
{
        g_clear_pointer(&app->held_summary, g_free);
        g_clear_pointer(&app->held_body, g_free);
        app->held_icon = NULL;
}

static gboolean notify_flush_cb(gpointer data);

/* Shows the held event if the gate lets it through, and otherwise comes back when it will:
 * at most one notification per interval whatever its kind (drops, bans, anomalies, the
 * daemon gone), the latest event of a busy interval shown at its end with the number of the
 * others. */
static void notify_flush(App *app)
{
        g_autofree char *body = NULL;
        guint held = 0, more;

        if (!app->held_summary || app->notify_flush_id)
                return;
        if (!ps_notify_gate_allow(&app->gate, now_usec(), &held)) {
                gint64 wait = app->gate.last_usec + app->gate.interval_usec - now_usec();

                app->notify_flush_id = g_timeout_add(MAX(wait, 0) / 1000 + 50, notify_flush_cb, app);
                return;
        }
        /* held counts the events the gate held back, the one shown now among them. */
        more = held > 0 ? held - 1 : 0;
        if (more > 0)
                body = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE, "%s (and %u more event)",
                                                   "%s (and %u more events)", more),
                                       app->held_body, more);
        notify_show(app->held_summary, body ? body : app->held_body, app->held_icon);
        notify_held_clear(app);
}

static gboolean notify_flush_cb(gpointer data)
{
        App *app = data;

        app->notify_flush_id = 0;
        notify_flush(app);
        return G_SOURCE_REMOVE;
}

/* The newest event replaces the one held (both texts are taken). */
static void notify_event(App *app, char *summary, char *body, const char *icon)
{
        if (!app->notify) {
                g_free(summary);
                g_free(body);
                return;
        }
        notify_held_clear(app);
        app->held_summary = summary;
        app->held_body = body;
        app->held_icon = icon;
        if (app->notify_flush_id)
                /* Counted now; shown (or summed up) when the timer fires. */
                app->gate.suppressed++;
        else
                notify_flush(app);
}

static void notify_drop(App *app, const PsDropRow *row)
{
        notify_event(app, g_strdup(_("Packets dropped")),
                     g_strdup_printf(_("Rule %u dropped %s from %s to %s on %s"), row->rule_id,
                                     row->protocol, row->src, row->dst, row->link),
                     "packetscope-dropping");
}

static void on_banned(PsBans *bans, const char *address, const char *origin, const char *reason,
                      guint64 until, App *app)
{
        g_autoptr(GTimeZone) tz = g_time_zone_new_local();

        notify_event(app, g_strdup(ps_ban_note_summary(origin)),
                     ps_ban_note_body(address, origin, reason, until, tz), "packetscope-dropping");
}

static void on_anomaly_started(PsHealth *health, guint id, const char *kind, double value,
                               double threshold, App *app)
{
        notify_event(app, g_strdup(_("Health anomaly")),
                     ps_anomaly_note_body(kind, value, threshold), "packetscope-dropping");
}

/* ---------------------------------------------------------------------------------------- */
/* Polls: link counters always, rules and connections while the window shows them */

typedef struct LinkPoll {
        App *app;
        char *path;
} LinkPoll;

static void link_poll_done(GObject *source, GAsyncResult *res, gpointer data)
{
        LinkPoll *lp = data;
        App *app = lp->app;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = NULL;
        g_autoptr(GVariant) props = NULL;
        PsLinkRow *row;
        guint64 before;
        gint64 before_usec;
        gboolean had_sample;

        reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
        if (reply && (row = g_hash_table_lookup(app->links, lp->path))) {
                before = row->dropped;
                had_sample = row->have_sample;
                before_usec = row->sample_usec;
                props = g_variant_get_child_value(reply, 0);
                if (ps_link_row_update(row, props, now_usec()) < 0)
                        g_warning("%s: the daemon sent link properties of unexpected types",
                                  lp->path);
                else if (had_sample && row->dropped > before &&
                         now_usec() - before_usec <= PS_DROP_RECENT_USEC)
                        /* Drops between two close samples are recent; between two tray
                         * polls (30 s apart) they may not be, and the Dropped signal has
                         * already told of them. */
                        app_note_drop(app);
                app_update(app);
        }
        g_free(lp->path);
        g_free(lp);
}

static void link_poll(App *app, const char *path)
{
        LinkPoll *lp = g_new0(LinkPoll, 1);

        lp->app = app;
        lp->path = g_strdup(path);
        g_dbus_connection_call(app->system, PS_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                               "GetAll", g_variant_new("(s)", "org.packetscope.Guarder1.Link"),
                               G_VARIANT_TYPE("(a{sv})"), G_DBUS_CALL_FLAGS_NO_AUTO_START, 10000,
                               app->cancel, link_poll_done, lp);
}

static void rules_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) rules = NULL;
        GPtrArray *rows;

        if (!ps_filters_call_list_range_finish(PS_FILTERS(source), &rules, res, &error)) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && app->window)
                        ps_window_show_error(app->window, error->message);
                return;
        }
        if (ps_rule_columns_parse(rules, &rows) < 0) {
                g_warning("the daemon sent rule columns of unexpected types or lengths");
                return;
        }
        g_ptr_array_unref(app->rules);
        app->rules = rows;
        if (app->window)
                ps_window_update(app->window);
}

void app_refresh_rules(App *app)
{
        if (!app->filters)
                return;
        ps_filters_call_list_range(app->filters, 0, PS_RULES_SHOWN, app->cancel, rules_done, app);
}

static void conns_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = NULL;
        g_autoptr(GVariant) rows_v = NULL;
        GPtrArray *rows;

        reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
        if (!reply)
                return;
        rows_v = g_variant_get_child_value(reply, 0);
        if (ps_conn_rows_parse(rows_v, &rows) < 0) {
                g_warning("the daemon sent connection rows of unexpected types");
                return;
        }
        g_ptr_array_unref(app->conns);
        app->conns = rows;
        if (app->window)
                ps_window_update(app->window);
}

static void conns_refresh(App *app)
{
        GVariantBuilder q;

        g_variant_builder_init(&q, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&q, "{sv}", "limit", g_variant_new_uint32(PS_CONNS_SHOWN));
        g_variant_builder_add(&q, "{sv}", "sort", g_variant_new_string("bytes"));
        g_dbus_connection_call(app->system, PS_BUS_NAME, PS_CONNS_PATH,
                               "org.packetscope.Guarder1.Connections", "List",
                               g_variant_new("(a{sv})", &q), G_VARIANT_TYPE("(aa{sv})"),
                               G_DBUS_CALL_FLAGS_NO_AUTO_START, 10000, app->cancel, conns_done,
                               app);
}

static void bans_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) rows_v = NULL;
        GPtrArray *rows;

        if (!ps_bans_call_list_finish(PS_BANS(source), &rows_v, res, &error))
                return;
        if (ps_ban_rows_parse(rows_v, &rows) < 0) {
                g_warning("the daemon sent ban rows of unexpected types");
                return;
        }
        g_ptr_array_unref(app->ban_rows);
        app->ban_rows = rows;
        if (app->window)
                ps_window_update(app->window);
}

void app_refresh_bans(App *app)
{
        GVariantBuilder q;

        if (!app->bans)
                return;
        g_variant_builder_init(&q, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&q, "{sv}", "limit", g_variant_new_uint32(PS_BANS_SHOWN));
        g_variant_builder_add(&q, "{sv}", "sort", g_variant_new_string("created"));
        ps_bans_call_list(app->bans, g_variant_builder_end(&q), app->cancel, bans_done, app);
}

static void anomalies_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) rows_v = NULL;
        g_autoptr(GVariant) history = NULL; /* only open anomalies are asked for: no journal read */
        GPtrArray *rows;

        if (!ps_health_call_list_anomalies_finish(PS_HEALTH(source), &rows_v, &history, res,
                                                  &error))
                return;
        if (ps_anomaly_rows_parse(rows_v, &rows) < 0) {
                g_warning("the daemon sent anomalies of unexpected types");
                return;
        }
        g_ptr_array_unref(app->anomalies);
        app->anomalies = rows;
        if (app->window)
                ps_window_update(app->window);
}

static void anomalies_refresh(App *app)
{
        GVariantBuilder q;

        if (!app->health)
                return;
        g_variant_builder_init(&q, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&q, "{sv}", "state", g_variant_new_string("open"));
        ps_health_call_list_anomalies(app->health, g_variant_builder_end(&q), app->cancel,
                                      anomalies_done, app);
}

static gboolean poll_tick(gpointer data)
{
        App *app = data;
        GHashTableIter it;
        const char *path;

        if (!app->present)
                return G_SOURCE_CONTINUE;
        g_hash_table_iter_init(&it, app->links);
        while (g_hash_table_iter_next(&it, (gpointer *) &path, NULL))
                link_poll(app, path);
        if (app->window && ps_window_visible(app->window)) {
                app_refresh_rules(app);
                conns_refresh(app);
                app_refresh_bans(app);
        }
        return G_SOURCE_CONTINUE;
}

/* Every 2 s while the window shows, every 30 s when only the tray does. */
static void app_poll_schedule(App *app)
{
        guint ms = app->window && ps_window_visible(app->window) ? PS_POLL_WINDOW_MS : PS_POLL_TRAY_MS;

        if (app->poll_id && app->poll_ms == ms)
                return;
        if (app->poll_id)
                g_source_remove(app->poll_id);
        app->poll_ms = ms;
        app->poll_id = g_timeout_add(ms, poll_tick, app);
}

void app_window_visible_changed(App *app)
{
        app_poll_schedule(app);
        if (app->window && ps_window_visible(app->window))
                poll_tick(app);
}

/* ---------------------------------------------------------------------------------------- */
/* Changes, through polkit */

typedef struct RuleCall {
        App *app;
        guint32 id;
        gboolean enable;
} RuleCall;

/* Every change: polkit may ask the session's agent (the user types a password), so the call
 * allows interactive authorization and waits long enough for a human. */
void app_change(App *app, GDBusProxy *proxy, const char *method, GVariant *params,
                GAsyncReadyCallback callback, gpointer data)
{
        g_dbus_proxy_call(proxy, method, params, G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION,
                          PS_CHANGE_TIMEOUT_MS, app->cancel, callback, data);
}

/* What a failed change says to the user: a refusal as such, otherwise the daemon's own
 * message (which names the field and what it accepts). */
char *app_change_error(GError *error)
{
        gboolean denied = ps_error_is_denial(remote_error_name(error));

        g_dbus_error_strip_remote_error(error);
        if (denied)
                return g_strdup_printf(_("Not authorized: %s"), error->message);
        return g_strdup(error->message);
}

GDBusProxy *app_filter_proxy(App *app, guint32 id)
{
        g_autofree char *path = g_strdup_printf(PS_FILTERS_PATH "/%u", id);

        if (!app->objects)
                return NULL;
        return G_DBUS_PROXY(g_dbus_object_manager_get_interface(app->objects, path,
                                                                "org.packetscope.Guarder1.Filter"));
}

const PsRuleRow *app_rule_find(App *app, guint32 id)
{
        for (guint i = 0; i < app->rules->len; i++) {
                const PsRuleRow *row = app->rules->pdata[i];

                if (row->id == id)
                        return row;
        }
        return NULL;
}

static void rule_call_done(GObject *source, GAsyncResult *res, gpointer data)
{
        RuleCall *rc = data;
        App *app = rc->app;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = NULL;

        reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);
        if (!reply && app->window) {
                gboolean denied = ps_error_is_denial(remote_error_name(error));
                g_autofree char *text = NULL;

                g_dbus_error_strip_remote_error(error);
                if (denied)
                        text = g_strdup_printf(_("Not authorized to change rule %u: %s"), rc->id,
                                               error->message);
                else
                        text = g_strdup_printf(_("Rule %u was not changed: %s"), rc->id,
                                               error->message);
                ps_window_show_error(app->window, text);
        }
        if (app->window)
                ps_window_rule_done(app->window, rc->id);
        app_refresh_rules(app);
        g_free(rc);
}

void app_rule_set_enabled(App *app, guint32 id, gboolean enabled)
{
        g_autoptr(GDBusProxy) iface = app_filter_proxy(app, id);
        RuleCall *rc;

        if (!iface) {
                if (app->window) {
                        g_autofree char *text = g_strdup_printf(_("Rule %u is gone"), id);

                        ps_window_show_error(app->window, text);
                        ps_window_rule_done(app->window, id);
                }
                app_refresh_rules(app);
                return;
        }
        rc = g_new0(RuleCall, 1);
        rc->app = app;
        rc->id = id;
        rc->enable = enabled;
        /* The generated ps_filter_call_enable() passes no call flags: the same call on the
         * generated proxy, allowing polkit to ask the user through the session's agent. */
        app_change(app, iface, enabled ? "Enable" : "Disable", NULL, rule_call_done, rc);
}

gboolean app_panic(App *app)
{
        return app->present && app->manager && ps_manager_get_panic(app->manager);
}

/* Any change whose answer only matters when it is a refusal or an error: the window says so. */
static void change_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        if (!reply && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && app->window) {
                g_autofree char *text = app_change_error(error);

                ps_window_show_error(app->window, text);
        }
}

/* A custom prompt, or the default security analysis when none is typed. */
void app_ai_generate(App *app, const char *prompt)
{
        g_autofree char *p = g_strstrip(g_strdup(prompt ? prompt : ""));
        GVariantBuilder o;

        if (!app->ai)
                return;
        g_variant_builder_init(&o, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&o, "{sv}", "analyze_type",
                              g_variant_new_string(*p ? "custom" : "security"));
        if (*p)
                g_variant_builder_add(&o, "{sv}", "custom_prompt", g_variant_new_string(p));
        app_change(app, G_DBUS_PROXY(app->ai), "Generate", g_variant_new("(a{sv})", &o),
                   change_done, app);
}

void app_ai_job_call(App *app, const char *path, const char *method, GVariant *params)
{
        g_autoptr(GDBusInterface) job = NULL;

        if (app->objects)
                job = g_dbus_object_manager_get_interface(app->objects, path,
                                                          "org.packetscope.Guarder1.AIJob");
        if (!job) {
                if (params)
                        g_variant_unref(g_variant_ref_sink(params));
                if (app->window)
                        ps_window_show_error(app->window, _("The job is gone"));
                return;
        }
        app_change(app, G_DBUS_PROXY(job), method, params, change_done, app);
}

/* ---------------------------------------------------------------------------------------- */
/* The pending Apply: shown with its countdown whoever started it (this window or
 * packetscopectl filter apply), ended by Confirm or Roll back, or by its deadline. */

static void transaction_shown(App *app)
{
        if (app->window)
                ps_window_transaction(app->window, app->transaction ?
                                      (gint64) ps_transaction_get_deadline(app->transaction) : 0);
}

static void transaction_finished(PsTransaction *t, gboolean confirmed, App *app)
{
        if (app->window)
                ps_window_show_error(app->window, confirmed ?
                                     _("The applied rules were confirmed and are kept") :
                                     _("The applied rules were rolled back"));
        if (app->transaction == t) {
                g_clear_object(&app->transaction);
                transaction_shown(app);
        }
}

static void transaction_adopt(App *app, GDBusObject *object)
{
        PsTransaction *t = ps_object_get_transaction(PS_OBJECT(object));

        if (!t)
                return;
        g_clear_object(&app->transaction);
        app->transaction = t;
        g_signal_connect(t, "finished", G_CALLBACK(transaction_finished), app);
        transaction_shown(app);
}

static void transaction_end_done(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        if (!reply && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && app->window) {
                g_autofree char *text = app_change_error(error);

                ps_window_show_error(app->window, text);
        }
        transaction_shown(app);
}

void app_transaction_end(App *app, gboolean confirm)
{
        if (!app->transaction)
                return;
        app_change(app, G_DBUS_PROXY(app->transaction), confirm ? "Confirm" : "Rollback", NULL,
                   transaction_end_done, app);
}

/* ---------------------------------------------------------------------------------------- */
/* The daemon's objects */

static void link_added(App *app, const char *path)
{
        if (g_hash_table_contains(app->links, path))
                return;
        g_hash_table_insert(app->links, g_strdup(path), ps_link_row_new(path));
        link_poll(app, path);
}

static void on_ban_signal(App *app)
{
        if (app->window)
                app_refresh_bans(app);
}

/* A tab's proxy let go, with the handlers it had and the rows it showed. */
static void proxy_forget(App *app, gpointer proxy_slot, GPtrArray *rows)
{
        GObject **proxy = proxy_slot;

        if (!*proxy)
                return;
        g_signal_handlers_disconnect_by_data(*proxy, app);
        g_clear_object(proxy);
        g_ptr_array_set_size(rows, 0);
}

static void bans_forget(App *app)
{
        proxy_forget(app, &app->bans, app->ban_rows);
}

/* The Bans tab shows only when the daemon has the interface. */
static void bans_adopt(App *app, GDBusObject *object)
{
        PsBans *bans = ps_object_get_bans(PS_OBJECT(object));

        if (!bans)
                return;
        bans_forget(app);
        app->bans = bans;
        g_signal_connect_swapped(bans, "banned", G_CALLBACK(on_ban_signal), app);
        g_signal_connect_swapped(bans, "unbanned", G_CALLBACK(on_ban_signal), app);
        g_signal_connect(bans, "banned", G_CALLBACK(on_banned), app);
        g_signal_connect_swapped(bans, "notify::allowlist", G_CALLBACK(app_update), app);
        on_ban_signal(app);
}

static void health_forget(App *app)
{
        proxy_forget(app, &app->health, app->anomalies);
}

/* The Health tab shows only when the daemon has the interface; its figures come with one
 * PropertiesChanged per sample, the open anomalies with AnomalyStarted and AnomalyEnded. */
static void health_adopt(App *app, GDBusObject *object)
{
        PsHealth *health = ps_object_get_health(PS_OBJECT(object));

        if (!health)
                return;
        health_forget(app);
        app->health = health;
        g_signal_connect_swapped(health, "anomaly-started", G_CALLBACK(anomalies_refresh), app);
        g_signal_connect_swapped(health, "anomaly-ended", G_CALLBACK(anomalies_refresh), app);
        g_signal_connect(health, "anomaly-started", G_CALLBACK(on_anomaly_started), app);
        g_signal_connect_swapped(health, "g-properties-changed", G_CALLBACK(app_update), app);
        anomalies_refresh(app);
}

/* The AI tab shows only when the daemon has the interface; each job's state, analysis and
 * shadow come with its PropertiesChanged. */
static void ai_adopt(App *app, GDBusObject *object)
{
        PsAIJob *job = ps_object_peek_aijob(PS_OBJECT(object));
        PsAI *ai = ps_object_get_ai(PS_OBJECT(object));

        if (job)
                g_signal_connect_swapped(job, "g-properties-changed", G_CALLBACK(app_update),
                                         app);
        if (!ai)
                return;
        g_clear_object(&app->ai);
        app->ai = ai;
}

/* An object of the daemon's, at the start or when it appears: each kind to its tab. */
static void object_adopt(App *app, GDBusObject *object)
{
        PsObject *o = PS_OBJECT(object);

        if (ps_object_peek_link(o))
                link_added(app, g_dbus_object_get_object_path(object));
        else if (ps_object_peek_filter(o))
                return; /* the rules are read whole when the window shows them */
        else if (ps_object_peek_transaction(o))
                transaction_adopt(app, object);
        else if (ps_object_peek_bans(o))
                bans_adopt(app, object);
        else if (ps_object_peek_health(o))
                health_adopt(app, object);
        else
                ai_adopt(app, object);
}

static void object_added(GDBusObjectManager *om, GDBusObject *object, gpointer data)
{
        App *app = data;

        if (ps_object_peek_filter(PS_OBJECT(object)) && app->window)
                app_refresh_rules(app);
        object_adopt(app, object);
        app_update(app);
}

static void object_removed(GDBusObjectManager *om, GDBusObject *object, gpointer data)
{
        App *app = data;

        g_hash_table_remove(app->links, g_dbus_object_get_object_path(object));
        if (ps_object_peek_filter(PS_OBJECT(object)) && app->window)
                app_refresh_rules(app);
        if (app->transaction &&
            (PsTransaction *) ps_object_peek_transaction(PS_OBJECT(object)) == app->transaction) {
                g_clear_object(&app->transaction);
                transaction_shown(app);
        }
        if (app->bans && (PsBans *) ps_object_peek_bans(PS_OBJECT(object)) == app->bans)
                bans_forget(app);
        if (app->health && (PsHealth *) ps_object_peek_health(PS_OBJECT(object)) == app->health)
                health_forget(app);
        if (app->ai && (PsAI *) ps_object_peek_ai(PS_OBJECT(object)) == app->ai)
                g_clear_object(&app->ai);
        app_update(app);
}

static void on_dropped(PsFilters *filters, guint rule_id, const char *link, const char *protocol,
                       const char *src, const char *dst, guint16 sport, guint16 dport,
                       gpointer data)
{
        App *app = data;
        g_autoptr(GVariant) args = g_variant_ref_sink(
                g_variant_new("(ussssqq)", rule_id, link, protocol, src, dst, sport, dport));
        const PsDropRow *row;

        if (ps_drop_ring_push(&app->drops, args, g_get_real_time()) < 0)
                return;
        app->drops_seen_by_signal++;
        row = ps_drop_ring_get(&app->drops, 0);
        app_note_drop(app);
        if (app->window)
                ps_window_add_drop(app->window, row);
        notify_drop(app, row);
        app_update(app);
}

static void on_filter_signal(PsFilters *filters, guint id, const char *path, gpointer data)
{
        App *app = data;

        if (app->window)
                app_refresh_rules(app);
}

static void filters_ready(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        PsFilters *filters = ps_filters_proxy_new_finish(res, &error);

        if (!filters) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        g_warning("the daemon's filters object: %s", error->message);
                return;
        }
        g_clear_object(&app->filters);
        app->filters = filters;
        g_signal_connect(filters, "dropped", G_CALLBACK(on_dropped), app);
        g_signal_connect(filters, "filter-added", G_CALLBACK(on_filter_signal), app);
        g_signal_connect(filters, "filter-removed", G_CALLBACK(on_filter_signal), app);
        g_signal_connect(filters, "filter-changed", G_CALLBACK(on_filter_signal), app);
        g_signal_connect_swapped(filters, "reloaded", G_CALLBACK(app_refresh_rules), app);
        if (app->window)
                app_refresh_rules(app);
}

static void manager_ready(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        PsManager *manager = ps_manager_proxy_new_finish(res, &error);

        if (!manager) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        g_warning("the daemon's manager object: %s", error->message);
                return;
        }
        g_clear_object(&app->manager);
        app->manager = manager;
        /* Panic is signalled with PropertiesChanged. */
        g_signal_connect_swapped(manager, "notify::panic", G_CALLBACK(app_update), app);
        app_update(app);
}

static void objects_ready(GObject *source, GAsyncResult *res, gpointer data)
{
        App *app = data;
        g_autoptr(GError) error = NULL;
        GDBusObjectManager *om = ps_object_manager_client_new_finish(res, &error);
        GList *objects;

        if (!om) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        g_warning("the daemon's objects: %s", error->message);
                return;
        }
        g_clear_object(&app->objects);
        app->objects = om;
        g_signal_connect(om, "object-added", G_CALLBACK(object_added), app);
        g_signal_connect(om, "object-removed", G_CALLBACK(object_removed), app);
        objects = g_dbus_object_manager_get_objects(om);
        for (GList *l = objects; l; l = l->next)
                object_adopt(app, l->data);
        g_list_free_full(objects, g_object_unref);
        app_update(app);
}

static void daemon_forget(App *app)
{
        if (app->cancel) {
                g_cancellable_cancel(app->cancel);
                g_clear_object(&app->cancel);
        }
        if (app->transaction) {
                g_clear_object(&app->transaction);
                transaction_shown(app);
        }
        bans_forget(app);
        health_forget(app);
        g_clear_object(&app->ai);
        g_clear_object(&app->objects);
        g_clear_object(&app->filters);
        if (app->manager)
                g_signal_handlers_disconnect_by_data(app->manager, app);
        g_clear_object(&app->manager);
        g_hash_table_remove_all(app->links);
        g_ptr_array_set_size(app->rules, 0);
        g_ptr_array_set_size(app->conns, 0);
}

static void name_appeared(GDBusConnection *bus, const char *name, const char *owner, gpointer data)
{
        App *app = data;

        daemon_forget(app);
        app->system = bus;
        app->present = TRUE;
        app->was_present = TRUE;
        app->cancel = g_cancellable_new();
        ps_object_manager_client_new(bus, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
                                     PS_BUS_NAME, PS_BUS_PATH, app->cancel, objects_ready, app);
        ps_filters_proxy_new(bus, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, PS_BUS_NAME,
                             PS_FILTERS_PATH, app->cancel, filters_ready, app);
        ps_manager_proxy_new(bus, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, PS_BUS_NAME, PS_BUS_PATH,
                             app->cancel, manager_ready, app);
        app_update(app);
}

static void name_vanished(GDBusConnection *bus, const char *name, gpointer data)
{
        App *app = data;

        gboolean was = app->present;

        app->system = bus;
        app->present = FALSE;
        daemon_forget(app);
        if (was && app->was_present)
                notify_event(app, g_strdup(_("No connection to the daemon")),
                             g_strdup(_("packetscoped is not running")), "packetscope-gone");
        app_update(app);
}

/* ---------------------------------------------------------------------------------------- */
/* The menu and the application */

static void show_window(App *app)
{
        if (!app->window)
                app->window = ps_window_new(app);
        ps_window_present(app->window);
        app_window_visible_changed(app);
        app_update(app);
}

static void notify_toggled(GtkCheckMenuItem *item, App *app)
{
        app->notify = gtk_check_menu_item_get_active(item);
        if (!app->notify) {
                g_clear_handle_id(&app->notify_flush_id, g_source_remove);
                notify_held_clear(app);
        }
}

static GtkWidget *menu_build(App *app)
{
        GtkWidget *menu = gtk_menu_new(), *item;

        item = gtk_menu_item_new_with_mnemonic(_("_Open packetscope"));
        g_signal_connect_swapped(item, "activate", G_CALLBACK(show_window), app);
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), item);
        item = gtk_check_menu_item_new_with_mnemonic(_("_Notify about drops, bans and anomalies"));
        gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(item), app->notify);
        g_signal_connect(item, "toggled", G_CALLBACK(notify_toggled), app);
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), item);
        app->notify_item = item;
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), gtk_separator_menu_item_new());
        item = gtk_menu_item_new_with_mnemonic(_("_Quit"));
        g_signal_connect_swapped(item, "activate", G_CALLBACK(g_application_quit), app->gtk);
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), item);
        gtk_widget_show_all(menu);
        return menu;
}

static void app_startup(GApplication *gapp, App *app)
{
        const char *theme = g_getenv("PACKETSCOPE_APPLET_ICONDIR");

        notify_init("packetscope-applet");
        app->menu = menu_build(app);
        app->tray = ps_tray_new("packetscope", theme && *theme ? theme : NULL,
                                GTK_MENU(app->menu));
        /* The tray applet lives without a window. */
        g_application_hold(gapp);
        app->watch_id = g_bus_watch_name(G_BUS_TYPE_SYSTEM, PS_BUS_NAME,
                                         G_BUS_NAME_WATCHER_FLAGS_NONE, name_appeared,
                                         name_vanished, app, NULL);
        app_poll_schedule(app);
        app_update(app);
}

static int app_command_line(GApplication *gapp, GApplicationCommandLine *cmdline, App *app)
{
        GVariantDict *opts = g_application_command_line_get_options_dict(cmdline);

        /* --notify given to a second applet reaches the running one, like the menu's switch. */
        if (g_variant_dict_contains(opts, "notify") && app->notify_item)
                gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(app->notify_item), TRUE);
        if (g_variant_dict_contains(opts, "no-notify") && app->notify_item)
                gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(app->notify_item), FALSE);
        if (g_variant_dict_contains(opts, "open-window"))
                show_window(app);
        return 0;
}

static int app_local_options(GApplication *gapp, GVariantDict *opts, App *app)
{
        gint32 interval;

        if (g_variant_dict_contains(opts, "version")) {
                g_print("packetscope-applet %s\n", PACKETSCOPE_VERSION);
                return 0;
        }
        if (g_variant_dict_contains(opts, "notify"))
                app->notify = TRUE;
        if (g_variant_dict_lookup(opts, "notify-interval", "i", &interval)) {
                if (interval < 1 || interval > 86400) {
                        g_printerr(_("--notify-interval: from 1 to 86400 seconds\n"));
                        return 1;
                }
                ps_notify_gate_init(&app->gate, (gint64) interval * G_USEC_PER_SEC);
        }
        return -1;
}

static void app_shutdown(GApplication *gapp, App *app)
{
        if (app->watch_id)
                g_bus_unwatch_name(app->watch_id);
        daemon_forget(app);
        if (app->poll_id)
                g_source_remove(app->poll_id);
        if (app->drop_expiry_id)
                g_source_remove(app->drop_expiry_id);
        g_clear_object(&app->transaction);
        g_clear_handle_id(&app->notify_flush_id, g_source_remove);
        notify_held_clear(app);
        app->tray = ps_tray_free(app->tray);
        notify_uninit();
}

int main(int argc, char **argv)
{
        static const GOptionEntry entries[] = {
                { "open-window", 'w', 0, G_OPTION_ARG_NONE, NULL,
                  N_("Open the window (of the running applet, if there is one)"), NULL },
                { "notify", 0, 0, G_OPTION_ARG_NONE, NULL,
                  N_("Switch notifications on (in the running applet, if there is one)"), NULL },
                { "no-notify", 0, 0, G_OPTION_ARG_NONE, NULL,
                  N_("Switch notifications off (in the running applet, if there is one)"), NULL },
                { "notify-interval", 0, 0, G_OPTION_ARG_INT, NULL,
                  N_("At most one notification per this many seconds (default 30)"),
                  N_("SECONDS") },
                { "version", 0, 0, G_OPTION_ARG_NONE, NULL, N_("Show the version"), NULL },
                {}
        };
        App app = {};
        int status;

        const char *localedir = g_getenv("PACKETSCOPE_APPLET_LOCALEDIR");

        setlocale(LC_ALL, "");
        bindtextdomain(GETTEXT_PACKAGE, localedir && *localedir ? localedir : LOCALEDIR);
        bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
        textdomain(GETTEXT_PACKAGE);

        app.links = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify) ps_link_row_free);
        app.rules = g_ptr_array_new_with_free_func((GDestroyNotify) ps_rule_row_free);
        app.conns = g_ptr_array_new_with_free_func((GDestroyNotify) ps_conn_row_free);
        app.ban_rows = g_ptr_array_new_with_free_func((GDestroyNotify) ps_ban_row_free);
        app.anomalies = g_ptr_array_new_with_free_func((GDestroyNotify) ps_anomaly_row_free);
        ps_drop_ring_init(&app.drops);
        ps_notify_gate_init(&app.gate, PS_NOTIFY_INTERVAL_SEC * G_USEC_PER_SEC);

        app.gtk = gtk_application_new("org.packetscope.Applet", G_APPLICATION_HANDLES_COMMAND_LINE);
        g_application_add_main_option_entries(G_APPLICATION(app.gtk), entries);
        g_signal_connect(app.gtk, "handle-local-options", G_CALLBACK(app_local_options), &app);
        g_signal_connect(app.gtk, "startup", G_CALLBACK(app_startup), &app);
        g_signal_connect(app.gtk, "command-line", G_CALLBACK(app_command_line), &app);
        g_signal_connect(app.gtk, "shutdown", G_CALLBACK(app_shutdown), &app);
        status = g_application_run(G_APPLICATION(app.gtk), argc, argv);

        g_object_unref(app.gtk);
        g_hash_table_unref(app.links);
        g_ptr_array_unref(app.rules);
        g_ptr_array_unref(app.conns);
        g_ptr_array_unref(app.ban_rows);
        g_ptr_array_unref(app.anomalies);
        ps_drop_ring_clear(&app.drops);
        return status;
}
