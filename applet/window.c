/* SPDX-License-Identifier: MIT */
/*
 * The window: the links with their live rates, the top connections, the filter rules with
 * their enable switches, and the latest drops. Widgets are updated in place (not rebuilt on
 * every poll), so that keyboard focus and assistive technologies keep their place.
 */
#include <string.h>
#include <glib/gi18n.h>

#include "applet.h"

typedef struct RuleWidgets {
        guint32 id;
        GtkWidget *row;
        GtkWidget *check;
        GtkWidget *edit;
        GtkWidget *summary;
        GtkWidget *hits;
        gulong toggled_id;
        gboolean busy;          /* a call is under way: the poll does not overwrite it */
} RuleWidgets;

typedef struct LinkWidgets {
        PsWindow *window;
        char *path;
        GtkWidget *row;
        GtkWidget *name;
        GtkWidget *rates;
        GtkWidget *totals;
        GtkWidget *sparkline;
} LinkWidgets;

struct PsWindow {
        App *app;
        GtkWidget *window;
        GtkWidget *state;
        GtkWidget *error;
        GtkWidget *transaction;         /* the countdown bar of a pending Apply */
        GtkWidget *panic_bar;           /* shown while the daemon is in panic mode */
        GtkWidget *panic_enter;
        GtkWidget *countdown;
        gint64 deadline_usec;
        guint countdown_id;
        GtkWidget *links_box;
        GtkWidget *no_links;
        GHashTable *links;      /* object path -> LinkWidgets */
        GtkWidget *rules_box;
        GHashTable *rules;      /* id -> RuleWidgets */
        GtkListStore *conns;
        GtkListStore *drops;
        guint n_drops;
        GtkWidget *bans_page;   /* shown only when the daemon has the Bans interface */
        GtkWidget *bans_count;
        GtkWidget *bans_tree;
        GtkListStore *bans;
        GtkWidget *unban;
        GtkListStore *allowlist;
        GtkWidget *health_page; /* shown only when the daemon has the Health interface */
        GtkWidget *health_cpu;
        GtkWidget *health_memory;
        GtkWidget *health_disk;
        GtkWidget *health_pressure;
        GtkWidget *health_open;
        GtkListStore *anomalies;
        GtkWidget *ai_page;     /* shown only when the daemon has the AI interface */
        GtkWidget *ai_prompt;
        GtkWidget *ai_jobs_tree;
        GtkListStore *ai_jobs;
        GtkWidget *ai_state;
        GtkWidget *ai_analysis;
        GtkWidget *ai_suggestions;
        GtkWidget *ai_shadow;
        GtkWidget *ai_apply;
        GtkWidget *ai_cancel;
        GtkWidget *ai_delete;
};

enum { CONN_PROTOCOL, CONN_REMOTE, CONN_LOCAL, CONN_STATE, CONN_PACKETS, CONN_BYTES, CONN_N };
enum { BAN_ADDRESS, BAN_ORIGIN, BAN_REASON, BAN_UNTIL, BAN_PACKETS, BAN_OFFENSES, BAN_N };
enum { ANOMALY_KIND, ANOMALY_SINCE, ANOMALY_VALUE, ANOMALY_PEAK, ANOMALY_THRESHOLD, ANOMALY_N };
enum { JOB_NUMBER, JOB_STATE, JOB_CREATED, JOB_PATH, JOB_N };
enum { DROP_TIME, DROP_RULE, DROP_LINK, DROP_PROTOCOL, DROP_SRC, DROP_DST, DROP_N };

void ps_set_accessible_name(GtkWidget *w, const char *name)
{
        AtkObject *a = gtk_widget_get_accessible(w);

        if (a)
                atk_object_set_name(a, name);
}

static GtkWidget *scrolled(GtkWidget *child)
{
        GtkWidget *sw = gtk_scrolled_window_new(NULL, NULL);

        gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(sw), GTK_POLICY_AUTOMATIC,
                                       GTK_POLICY_AUTOMATIC);
        gtk_widget_set_vexpand(sw, TRUE);
        gtk_container_add(GTK_CONTAINER(sw), child);
        return sw;
}

static GtkWidget *label_new(const char *text, gboolean bold)
{
        GtkWidget *l = gtk_label_new(text);

        gtk_label_set_xalign(GTK_LABEL(l), 0);
        if (bold) {
                PangoAttrList *attrs = pango_attr_list_new();

                pango_attr_list_insert(attrs, pango_attr_weight_new(PANGO_WEIGHT_BOLD));
                gtk_label_set_attributes(GTK_LABEL(l), attrs);
                pango_attr_list_unref(attrs);
        }
        return l;
}

/* ---------------------------------------------------------------------------------------- */
/* Links */

static void link_widgets_free(LinkWidgets *lw)
{
        gtk_widget_destroy(lw->row);
        g_free(lw->path);
        g_free(lw);
}

/* The sparkline: the packet rate (the theme's text colour) and the drop rate (red) of the
 * last PS_HISTORY_USEC, right-aligned at now, both on the scale of the highest packet rate. */
static gboolean sparkline_draw(GtkWidget *widget, cairo_t *cr, LinkWidgets *lw)
{
        const PsLinkRow *row = g_hash_table_lookup(lw->window->app->links, lw->path);
        GtkStyleContext *style = gtk_widget_get_style_context(widget);
        double width = gtk_widget_get_allocated_width(widget);
        double height = gtk_widget_get_allocated_height(widget);
        gint64 now = g_get_monotonic_time(), since = now - PS_HISTORY_USEC;
        const PsRateSample *sample;
        GdkRGBA fg;
        double peak;

        gtk_render_background(style, cr, 0, 0, width, height);
        gtk_style_context_get_color(style, gtk_style_context_get_state(style), &fg);
        cairo_set_line_width(cr, 1);
        gdk_cairo_set_source_rgba(cr, &fg);
        cairo_set_source_rgba(cr, fg.red, fg.green, fg.blue, 0.3);
        cairo_move_to(cr, 0, height - 0.5);
        cairo_line_to(cr, width, height - 0.5);
        cairo_stroke(cr);
        if (!row)
                return FALSE;
        peak = MAX(ps_link_history_peak(row, since), 1);
        for (int pass = 0; pass < 2; pass++) {
                gboolean started = FALSE;

                if (pass == 0)
                        gdk_cairo_set_source_rgba(cr, &fg);
                else
                        cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
                cairo_set_line_width(cr, 1.5);
                for (guint i = 0; (sample = ps_link_history_get(row, i)); i++) {
                        double value = pass == 0 ? sample->pps : sample->drops_per_sec;
                        double x = width * (double) (sample->usec - since) / PS_HISTORY_USEC;
                        double y = (height - 2) * (1 - MIN(value, peak) / peak) + 1;

                        if (sample->usec <= since)
                                continue;
                        if (!started)
                                cairo_move_to(cr, x, y);
                        else
                                cairo_line_to(cr, x, y);
                        started = TRUE;
                }
                cairo_stroke(cr);
        }
        return FALSE;
}

static LinkWidgets *link_widgets_new(PsWindow *w, const char *path)
{
        LinkWidgets *lw = g_new0(LinkWidgets, 1);
        GtkWidget *grid = gtk_grid_new();

        gtk_grid_set_column_spacing(GTK_GRID(grid), 18);
        gtk_widget_set_margin_start(grid, 6);
        gtk_widget_set_margin_end(grid, 6);
        gtk_widget_set_margin_top(grid, 4);
        gtk_widget_set_margin_bottom(grid, 4);
        lw->name = label_new("", TRUE);
        lw->rates = label_new("", FALSE);
        lw->totals = label_new("", FALSE);
        lw->window = w;
        lw->path = g_strdup(path);
        lw->sparkline = gtk_drawing_area_new();
        gtk_widget_set_size_request(lw->sparkline, 150, 28);
        gtk_widget_set_valign(lw->sparkline, GTK_ALIGN_CENTER);
        g_signal_connect(lw->sparkline, "draw", G_CALLBACK(sparkline_draw), lw);
        gtk_widget_set_hexpand(lw->rates, TRUE);
        gtk_grid_attach(GTK_GRID(grid), lw->name, 0, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), lw->sparkline, 1, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), lw->rates, 2, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), lw->totals, 3, 0, 1, 1);
        lw->row = gtk_list_box_row_new();
        gtk_container_add(GTK_CONTAINER(lw->row), grid);
        gtk_container_add(GTK_CONTAINER(w->links_box), lw->row);
        gtk_widget_show_all(lw->row);
        return lw;
}

static void links_update(PsWindow *w)
{
        GHashTableIter it;
        const char *path;
        PsLinkRow *row;
        LinkWidgets *lw;

        g_hash_table_iter_init(&it, w->links);
        while (g_hash_table_iter_next(&it, (gpointer *) &path, (gpointer *) &lw))
                if (!g_hash_table_contains(w->app->links, path))
                        g_hash_table_iter_remove(&it);
        g_hash_table_iter_init(&it, w->app->links);
        while (g_hash_table_iter_next(&it, (gpointer *) &path, (gpointer *) &row)) {
                g_autofree char *rates = NULL, *totals = NULL, *name = NULL, *a11y = NULL;
                g_autofree char *spark = NULL;

                if (!row->name)
                        continue;       /* not read yet */
                lw = g_hash_table_lookup(w->links, path);
                if (!lw) {
                        lw = link_widgets_new(w, path);
                        g_hash_table_insert(w->links, g_strdup(path), lw);
                }
                name = g_strdup_printf("%s (%s)", row->name, row->mode ? row->mode : "?");
                rates = g_strdup_printf(_("%.0f packets/s, %.0f drops/s"), row->pps,
                                        row->drops_per_sec);
                totals = g_strdup_printf(_("%llu packets, %llu dropped"),
                                         (unsigned long long) row->packets,
                                         (unsigned long long) row->dropped);
                gtk_label_set_text(GTK_LABEL(lw->name), name);
                gtk_label_set_text(GTK_LABEL(lw->rates), rates);
                gtk_label_set_text(GTK_LABEL(lw->totals), totals);
                a11y = g_strdup_printf(_("Link %s: %s; %s"), row->name, rates, totals);
                ps_set_accessible_name(lw->row, a11y);
                spark = g_strdup_printf(_("Rates of %s over the last %u minutes: at most %.0f packets/s"),
                                        row->name, (guint) (PS_HISTORY_USEC / G_USEC_PER_SEC / 60),
                                        ps_link_history_peak(row, g_get_monotonic_time() -
                                                                  PS_HISTORY_USEC));
                ps_set_accessible_name(lw->sparkline, spark);
                gtk_widget_queue_draw(lw->sparkline);
        }
        gtk_widget_set_visible(w->no_links, g_hash_table_size(w->links) == 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Rules */

static void rule_toggled(GtkToggleButton *check, RuleWidgets *rw)
{
        PsWindow *w = g_object_get_data(G_OBJECT(check), "ps-window");

        rw->busy = TRUE;
        gtk_widget_set_sensitive(rw->check, FALSE);
        app_rule_set_enabled(w->app, rw->id, gtk_toggle_button_get_active(check));
}

static void rule_edit(GtkButton *button, RuleWidgets *rw)
{
        PsWindow *w = g_object_get_data(G_OBJECT(button), "ps-window");

        ps_rule_dialog_run(w->app, GTK_WINDOW(w->window), rw->id);
}

static void rule_widgets_free(RuleWidgets *rw)
{
        gtk_widget_destroy(rw->row);
        g_free(rw);
}

static RuleWidgets *rule_widgets_new(PsWindow *w, guint32 id)
{
        RuleWidgets *rw = g_new0(RuleWidgets, 1);
        GtkWidget *grid = gtk_grid_new();
        g_autofree char *idtext = g_strdup_printf("#%u", id);
        g_autofree char *a11y = g_strdup_printf(_("Rule %u enabled"), id);
        g_autofree char *edit = g_strdup_printf(_("Edit rule %u"), id);

        rw->id = id;
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_widget_set_margin_start(grid, 6);
        gtk_widget_set_margin_end(grid, 6);
        rw->check = gtk_check_button_new();
        ps_set_accessible_name(rw->check, a11y);
        gtk_widget_set_tooltip_text(rw->check, _("Enabled: the rule takes part in classification"));
        g_object_set_data(G_OBJECT(rw->check), "ps-window", w);
        rw->summary = label_new("", FALSE);
        gtk_widget_set_hexpand(rw->summary, TRUE);
        gtk_label_set_ellipsize(GTK_LABEL(rw->summary), PANGO_ELLIPSIZE_END);
        rw->hits = label_new("", FALSE);
        rw->edit = gtk_button_new_from_icon_name("document-edit-symbolic", GTK_ICON_SIZE_BUTTON);
        gtk_button_set_relief(GTK_BUTTON(rw->edit), GTK_RELIEF_NONE);
        gtk_widget_set_tooltip_text(rw->edit, edit);
        ps_set_accessible_name(rw->edit, edit);
        g_object_set_data(G_OBJECT(rw->edit), "ps-window", w);
        g_signal_connect(rw->edit, "clicked", G_CALLBACK(rule_edit), rw);
        gtk_grid_attach(GTK_GRID(grid), rw->edit, 4, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), rw->check, 0, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), label_new(idtext, TRUE), 1, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), rw->summary, 2, 0, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), rw->hits, 3, 0, 1, 1);
        rw->row = gtk_list_box_row_new();
        g_object_set_data(G_OBJECT(rw->row), "ps-rule-id", GUINT_TO_POINTER(id));
        gtk_container_add(GTK_CONTAINER(rw->row), grid);
        gtk_container_add(GTK_CONTAINER(w->rules_box), rw->row);
        rw->toggled_id = g_signal_connect(rw->check, "toggled", G_CALLBACK(rule_toggled), rw);
        gtk_widget_show_all(rw->row);
        return rw;
}

static void rule_widgets_set(RuleWidgets *rw, const PsRuleRow *row)
{
        g_autofree char *hits = g_strdup_printf(
                g_dngettext(GETTEXT_PACKAGE, "%llu hit", "%llu hits", (gulong) MIN(row->hits, G_MAXULONG)),
                (unsigned long long) row->hits);
        g_autofree char *summary = *row->comment ?
                g_strdup_printf("%s — %s", row->summary, row->comment) : g_strdup(row->summary);

        gtk_label_set_text(GTK_LABEL(rw->summary), summary);
        gtk_label_set_text(GTK_LABEL(rw->hits), hits);
        if (rw->busy)
                return;
        g_signal_handler_block(rw->check, rw->toggled_id);
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(rw->check), row->enabled);
        g_signal_handler_unblock(rw->check, rw->toggled_id);
}

static void rules_update(PsWindow *w)
{
        g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
        GHashTableIter it;
        gpointer key;

        for (guint i = 0; i < w->app->rules->len; i++) {
                const PsRuleRow *row = w->app->rules->pdata[i];
                RuleWidgets *rw = g_hash_table_lookup(w->rules, GUINT_TO_POINTER(row->id));

                if (!rw) {
                        rw = rule_widgets_new(w, row->id);
                        g_hash_table_insert(w->rules, GUINT_TO_POINTER(row->id), rw);
                }
                rule_widgets_set(rw, row);
                g_hash_table_add(seen, GUINT_TO_POINTER(row->id));
        }
        g_hash_table_iter_init(&it, w->rules);
        while (g_hash_table_iter_next(&it, &key, NULL))
                if (!g_hash_table_contains(seen, key))
                        g_hash_table_iter_remove(&it);
}

/* The call finished (either way): the next rule list says what the daemon holds. */
void ps_window_rule_done(PsWindow *w, guint32 id)
{
        RuleWidgets *rw = g_hash_table_lookup(w->rules, GUINT_TO_POINTER(id));

        if (!rw)
                return;
        rw->busy = FALSE;
        gtk_widget_set_sensitive(rw->check, TRUE);
        for (guint i = 0; i < w->app->rules->len; i++) {
                const PsRuleRow *row = w->app->rules->pdata[i];

                if (row->id == id)
                        rule_widgets_set(rw, row);
        }
}

static int rules_sort(GtkListBoxRow *a, GtkListBoxRow *b, gpointer data)
{
        guint ia = GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(a), "ps-rule-id"));
        guint ib = GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(b), "ps-rule-id"));

        return ia < ib ? -1 : ia > ib;
}

/* ---------------------------------------------------------------------------------------- */
/* Connections and drops */

static void conns_update(PsWindow *w)
{
        gtk_list_store_clear(w->conns);
        for (guint i = 0; i < w->app->conns->len; i++) {
                const PsConnRow *row = w->app->conns->pdata[i];

                gtk_list_store_insert_with_values(w->conns, NULL, -1, CONN_PROTOCOL, row->protocol,
                                                  CONN_REMOTE, row->remote, CONN_LOCAL, row->local,
                                                  CONN_STATE, row->state, CONN_PACKETS, row->packets,
                                                  CONN_BYTES, row->bytes, -1);
        }
}

void ps_window_add_drop(PsWindow *w, const PsDropRow *row)
{
        g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(row->when_usec / G_USEC_PER_SEC);
        g_autofree char *when = g_date_time_format(t, "%H:%M:%S");
        GtkTreeIter last;

        gtk_list_store_insert_with_values(w->drops, NULL, 0, DROP_TIME, when, DROP_RULE,
                                          row->rule_id, DROP_LINK, row->link, DROP_PROTOCOL,
                                          row->protocol, DROP_SRC, row->src, DROP_DST, row->dst,
                                          -1);
        if (++w->n_drops > PS_DROP_RING_MAX &&
            gtk_tree_model_iter_nth_child(GTK_TREE_MODEL(w->drops), &last, NULL,
                                          (int) w->n_drops - 1)) {
                gtk_list_store_remove(w->drops, &last);
                w->n_drops--;
        }
}

static GtkWidget *tree_new(GtkListStore *store, const char *a11y, const char *const *titles,
                           int n, gboolean sortable)
{
        GtkWidget *tv = gtk_tree_view_new_with_model(GTK_TREE_MODEL(store));

        ps_set_accessible_name(tv, a11y);
        for (int i = 0; i < n; i++) {
                GtkTreeViewColumn *col = gtk_tree_view_column_new_with_attributes(
                        _(titles[i]), gtk_cell_renderer_text_new(), "text", i, NULL);

                gtk_tree_view_column_set_resizable(col, TRUE);
                if (sortable)
                        gtk_tree_view_column_set_sort_column_id(col, i);
                gtk_tree_view_append_column(GTK_TREE_VIEW(tv), col);
        }
        return tv;
}

/* ---------------------------------------------------------------------------------------- */
/* Bans */

/* The string in column of the selected row, NULL without one. */
static char *tree_selected(GtkWidget *tree, int column)
{
        GtkTreeSelection *sel = gtk_tree_view_get_selection(GTK_TREE_VIEW(tree));
        GtkTreeModel *model;
        GtkTreeIter iter;
        char *text = NULL;

        if (gtk_tree_selection_get_selected(sel, &model, &iter))
                gtk_tree_model_get(model, &iter, column, &text, -1);
        return text;
}

/* The address of the selected ban, NULL without one. */
static char *bans_selected(PsWindow *w)
{
        return tree_selected(w->bans_tree, BAN_ADDRESS);
}

/* The rows are updated in place, so that the selection and the keyboard's cursor stay where
 * they are over the polls; a selection that would now fall on another address is dropped
 * rather than left on a ban the user did not choose. */
static void bans_update(PsWindow *w)
{
        g_autoptr(GTimeZone) tz = g_time_zone_new_local();
        g_autofree char *selected = bans_selected(w), *now_selected = NULL;
        g_autofree char *count = NULL;
        GtkTreeModel *model = GTK_TREE_MODEL(w->bans);
        const char *const *allow;
        GtkTreeIter iter;
        gboolean more;
        guint n;

        gtk_widget_set_visible(w->bans_page, w->app->bans != NULL);
        if (!w->app->bans)
                return;
        n = ps_bans_get_count(w->app->bans);
        count = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE, "%u ban held", "%u bans held", n), n);
        gtk_label_set_text(GTK_LABEL(w->bans_count), count);
        more = gtk_tree_model_get_iter_first(model, &iter);
        for (guint i = 0; i < w->app->ban_rows->len; i++) {
                const PsBanRow *row = w->app->ban_rows->pdata[i];
                g_autofree char *until = ps_ban_until_text(row->until_usec, tz);

                if (!more)
                        gtk_list_store_append(w->bans, &iter);
                gtk_list_store_set(w->bans, &iter, BAN_ADDRESS, row->address, BAN_ORIGIN,
                                   row->origin, BAN_REASON, row->reason, BAN_UNTIL, until,
                                   BAN_PACKETS, row->packets, BAN_OFFENSES, row->offenses, -1);
                more = more && gtk_tree_model_iter_next(model, &iter);
        }
        while (more)
                more = gtk_list_store_remove(w->bans, &iter);
        now_selected = bans_selected(w);
        if (g_strcmp0(selected, now_selected) != 0)
                gtk_tree_selection_unselect_all(
                        gtk_tree_view_get_selection(GTK_TREE_VIEW(w->bans_tree)));

        gtk_list_store_clear(w->allowlist);
        allow = ps_bans_get_allowlist(w->app->bans);
        for (guint i = 0; allow && allow[i]; i++)
                gtk_list_store_insert_with_values(w->allowlist, NULL, -1, 0, allow[i], -1);
}

static void ban_selection_changed(GtkTreeSelection *sel, PsWindow *w)
{
        gtk_widget_set_sensitive(w->unban, gtk_tree_selection_count_selected_rows(sel) > 0);
}

static void ban_add(GtkButton *button, PsWindow *w)
{
        ps_ban_dialog_run(w->app, GTK_WINDOW(w->window));
}

/* Unban asks first, showing the ban it would lift: the list may have moved under the
 * keyboard's cursor since it was selected. */
static void ban_lift(GtkButton *button, PsWindow *w)
{
        g_autofree char *address = bans_selected(w);
        g_autofree char *origin = tree_selected(w->bans_tree, BAN_ORIGIN);
        g_autofree char *reason = tree_selected(w->bans_tree, BAN_REASON);
        g_autofree char *a = NULL, *o = NULL, *r = NULL;
        const char *text[5] = {};

        if (!address || !w->app->bans)
                return;
        a = g_strdup_printf(_("Address: %s"), address);
        o = g_strdup_printf(_("Origin: %s"), origin ? origin : "");
        r = g_strdup_printf(_("Reason: %s"), reason && *reason ? reason : _("none given"));
        text[0] = a;
        text[1] = o;
        text[2] = r;
        text[3] = _("Lift this ban now?");
        ps_confirm_dialog_run(w->app, GTK_WINDOW(w->window), _("Unban"), text, _("_Unban"),
                              G_DBUS_PROXY(w->app->bans), "Unban",
                              g_variant_new("(s)", address));
}

static GtkWidget *bans_page_new(PsWindow *w)
{
        static const char *const ban_titles[] = {
                N_("Address"), N_("Origin"), N_("Reason"), N_("Until"), N_("Packets dropped"),
                N_("Offenses"),
        };
        static const char *const allow_titles[] = { N_("Never banned") };
        GtkWidget *page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6), *b, *tv;
        GtkTreeSelection *sel;

        b = gtk_button_new_with_mnemonic(_("Ban an addre_ss…"));
        g_signal_connect(b, "clicked", G_CALLBACK(ban_add), w);
        gtk_box_pack_start(GTK_BOX(bar), b, FALSE, FALSE, 0);
        w->unban = gtk_button_new_with_mnemonic(_("_Unban"));
        gtk_widget_set_tooltip_text(w->unban, _("Lift the selected ban"));
        gtk_widget_set_sensitive(w->unban, FALSE);
        g_signal_connect(w->unban, "clicked", G_CALLBACK(ban_lift), w);
        gtk_box_pack_start(GTK_BOX(bar), w->unban, FALSE, FALSE, 0);
        w->bans_count = label_new("", FALSE);
        gtk_box_pack_end(GTK_BOX(bar), w->bans_count, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), bar, FALSE, FALSE, 0);

        w->bans = gtk_list_store_new(BAN_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                     G_TYPE_STRING, G_TYPE_UINT64, G_TYPE_UINT);
        w->bans_tree = tree_new(w->bans, _("Bans"), ban_titles, BAN_N, FALSE);
        sel = gtk_tree_view_get_selection(GTK_TREE_VIEW(w->bans_tree));
        g_signal_connect(sel, "changed", G_CALLBACK(ban_selection_changed), w);
        gtk_box_pack_start(GTK_BOX(page), scrolled(w->bans_tree), TRUE, TRUE, 0);

        gtk_box_pack_start(GTK_BOX(page), label_new(_("Allowlist"), TRUE), FALSE, FALSE, 0);
        w->allowlist = gtk_list_store_new(1, G_TYPE_STRING);
        tv = tree_new(w->allowlist, _("Allowlist"), allow_titles, 1, FALSE);
        gtk_widget_set_size_request(tv, -1, 90);
        gtk_box_pack_start(GTK_BOX(page), scrolled(tv), FALSE, TRUE, 0);
        return page;
}

/* ---------------------------------------------------------------------------------------- */
/* Health */

static void label_printf(GtkWidget *label, const char *format, ...) G_GNUC_PRINTF(2, 3);
static void label_printf(GtkWidget *label, const char *format, ...)
{
        g_autofree char *text = NULL;
        va_list ap;

        va_start(ap, format);
        text = g_strdup_vprintf(format, ap);
        va_end(ap);
        gtk_label_set_text(GTK_LABEL(label), text);
}

static double pressure_of(GVariant *pressure, const char *key)
{
        double v = 0;

        if (pressure)
                g_variant_lookup(pressure, key, "d", &v);
        return v;
}

static void health_update(PsWindow *w)
{
        PsHealth *h = w->app->health;
        g_autoptr(GTimeZone) tz = g_time_zone_new_local();
        GVariant *pressure;
        guint n;

        gtk_widget_set_visible(w->health_page, h != NULL);
        if (!h)
                return;
        label_printf(w->health_cpu, _("CPU in use: %.1f %%"), ps_health_get_cpupercent(h));
        label_printf(w->health_memory, _("Memory in use: %.1f %%"),
                     ps_health_get_memory_percent(h));
        label_printf(w->health_disk, _("Disks: %.1f MB/s read, %.1f MB/s written"),
                     ps_health_get_disk_read_mbps(h), ps_health_get_disk_write_mbps(h));
        pressure = ps_health_get_pressure(h);
        if (pressure && g_variant_n_children(pressure) > 0)
                label_printf(w->health_pressure,
                             _("Pressure over 10 s: CPU %.1f %%, memory %.1f %%, I/O %.1f %%"),
                             pressure_of(pressure, "cpu.some.avg10"),
                             pressure_of(pressure, "memory.some.avg10"),
                             pressure_of(pressure, "io.some.avg10"));
        else
                label_printf(w->health_pressure, "%s", _("Pressure: not reported by this kernel"));
        n = ps_health_get_open_anomalies(h);
        label_printf(w->health_open, g_dngettext(GETTEXT_PACKAGE, "%u open anomaly",
                                                 "%u open anomalies", n), n);
        gtk_list_store_clear(w->anomalies);
        for (guint i = 0; i < w->app->anomalies->len; i++) {
                const PsAnomalyRow *row = w->app->anomalies->pdata[i];
                const char *unit = ps_anomaly_unit(row->kind);
                g_autofree char *since = ps_realtime_text(row->started_usec, tz);
                g_autofree char *value = g_strdup_printf("%.1f %s", row->value, unit);
                g_autofree char *peak = g_strdup_printf("%.1f %s", row->peak, unit);
                g_autofree char *threshold = g_strdup_printf("%.1f %s", row->threshold, unit);

                gtk_list_store_insert_with_values(w->anomalies, NULL, -1, ANOMALY_KIND, row->kind,
                                                  ANOMALY_SINCE, since, ANOMALY_VALUE, value,
                                                  ANOMALY_PEAK, peak, ANOMALY_THRESHOLD, threshold,
                                                  -1);
        }
}

static void thresholds_edit(GtkButton *button, PsWindow *w)
{
        ps_threshold_dialog_run(w->app, GTK_WINDOW(w->window));
}

static GtkWidget *health_page_new(PsWindow *w)
{
        static const char *const titles[] = {
                N_("Kind"), N_("Since"), N_("Reading"), N_("Peak"), N_("Threshold"),
        };
        GtkWidget *page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6), *tv, *b;

        w->health_cpu = label_new("", FALSE);
        w->health_memory = label_new("", FALSE);
        w->health_disk = label_new("", FALSE);
        w->health_pressure = label_new("", FALSE);
        w->health_open = label_new("", TRUE);
        gtk_box_pack_start(GTK_BOX(page), w->health_cpu, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->health_memory, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->health_disk, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->health_pressure, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->health_open, FALSE, FALSE, 0);
        w->anomalies = gtk_list_store_new(ANOMALY_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                          G_TYPE_STRING, G_TYPE_STRING);
        tv = tree_new(w->anomalies, _("Open anomalies"), titles, ANOMALY_N, FALSE);
        gtk_box_pack_start(GTK_BOX(page), scrolled(tv), TRUE, TRUE, 0);
        b = gtk_button_new_with_mnemonic(_("_Thresholds…"));
        gtk_widget_set_tooltip_text(b, _("Change what opens an anomaly"));
        gtk_widget_set_halign(b, GTK_ALIGN_START);
        g_signal_connect(b, "clicked", G_CALLBACK(thresholds_edit), w);
        gtk_box_pack_start(GTK_BOX(page), b, FALSE, FALSE, 0);
        return page;
}

/* ---------------------------------------------------------------------------------------- */
/* AI */

static char *ai_selected(PsWindow *w)
{
        return tree_selected(w->ai_jobs_tree, JOB_PATH);
}

static gint jobs_by_path(gconstpointer a, gconstpointer b)
{
        const char *pa = g_dbus_object_get_object_path(*(GDBusObject **) a);
        const char *pb = g_dbus_object_get_object_path(*(GDBusObject **) b);
        const char *na = strrchr(pa, '/'), *nb = strrchr(pb, '/');
        guint64 ia = g_ascii_strtoull(na ? na + 1 : pa, NULL, 10);
        guint64 ib = g_ascii_strtoull(nb ? nb + 1 : pb, NULL, 10);

        return ia < ib ? -1 : ia > ib;
}

/* What the job found, the state it is in, and which of Shadow and Apply it allows. */
static void ai_job_show(PsWindow *w, PsAIJob *job)
{
        g_autoptr(GString) sugg = g_string_new("");
        g_autoptr(GVariant) filters = NULL;
        g_autofree char *state = NULL;
        const char *const *list;
        const char *err, *shadow, *tx;
        gboolean done, pending;
        gsize n_rules = 0;

        if (!job) {
                gtk_label_set_text(GTK_LABEL(w->ai_state), _("No job yet"));
                gtk_label_set_text(GTK_LABEL(w->ai_analysis), "");
                gtk_label_set_text(GTK_LABEL(w->ai_suggestions), "");
                gtk_widget_set_sensitive(w->ai_shadow, FALSE);
                gtk_widget_set_sensitive(w->ai_apply, FALSE);
                gtk_widget_set_sensitive(w->ai_cancel, FALSE);
                gtk_widget_set_sensitive(w->ai_delete, FALSE);
                return;
        }
        done = g_strcmp0(ps_aijob_get_state(job), "done") == 0;
        pending = g_strcmp0(ps_aijob_get_state(job), "queued") == 0 ||
                  g_strcmp0(ps_aijob_get_state(job), "running") == 0;
        /* Cancel while it may still end by itself, Delete once it has. */
        gtk_widget_set_sensitive(w->ai_cancel, pending);
        gtk_widget_set_sensitive(w->ai_delete, !pending);
        filters = ps_aijob_dup_filters(job);
        if (filters)
                n_rules = g_variant_n_children(filters);
        err = ps_aijob_get_error(job);
        shadow = ps_aijob_get_shadow_state(job);
        tx = ps_aijob_get_transaction(job);
        state = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE, "Job %s: %s, %u rule proposed",
                                            "Job %s: %s, %u rules proposed", (gulong) n_rules),
                                strrchr(g_dbus_proxy_get_object_path(G_DBUS_PROXY(job)), '/') + 1,
                                ps_aijob_get_state(job), (guint) n_rules);
        if (err && *err) {
                g_autofree char *s = g_strdup_printf(_("%s; error: %s"), state, err);

                g_free(state);
                state = g_steal_pointer(&s);
        }
        if (shadow && *shadow && g_strcmp0(shadow, "none") != 0) {
                g_autofree char *s = g_strdup_printf(_("%s; shadow: %s"), state, shadow);

                g_free(state);
                state = g_steal_pointer(&s);
        }
        gtk_label_set_text(GTK_LABEL(w->ai_state), state);
        gtk_label_set_text(GTK_LABEL(w->ai_analysis), ps_aijob_get_analysis(job) ?: "");
        list = ps_aijob_get_suggestions(job);
        for (guint i = 0; list && list[i]; i++)
                g_string_append_printf(sugg, "%s• %s", i ? "\n" : "", list[i]);
        gtk_label_set_text(GTK_LABEL(w->ai_suggestions), sugg->str);
        gtk_widget_set_sensitive(w->ai_shadow, done && n_rules > 0 &&
                                 g_strcmp0(shadow, "running") != 0);
        gtk_widget_set_sensitive(w->ai_apply, done && n_rules > 0 && !(tx && *tx));
}

/* The jobs by number, updated in place (the selection stays on its job); the selected job,
 * or else the newest, is shown below them. */
static void ai_update(PsWindow *w)
{
        g_autoptr(GTimeZone) tz = g_time_zone_new_local();
        g_autofree char *selected = NULL, *now_selected = NULL;
        g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func(g_object_unref);
        GtkTreeModel *model = GTK_TREE_MODEL(w->ai_jobs);
        PsAIJob *shown = NULL;
        GtkTreeIter iter;
        gboolean more;
        GList *objects;

        gtk_widget_set_visible(w->ai_page, w->app->ai != NULL);
        if (!w->app->ai || !w->app->objects)
                return;
        selected = ai_selected(w);
        objects = g_dbus_object_manager_get_objects(w->app->objects);
        for (GList *l = objects; l; l = l->next)
                if (ps_object_peek_aijob(PS_OBJECT(l->data)))
                        g_ptr_array_add(jobs, g_object_ref(l->data));
        g_list_free_full(objects, g_object_unref);
        g_ptr_array_sort(jobs, jobs_by_path);
        more = gtk_tree_model_get_iter_first(model, &iter);
        for (guint i = 0; i < jobs->len; i++) {
                PsAIJob *job = ps_object_peek_aijob(PS_OBJECT(jobs->pdata[i]));
                const char *path = g_dbus_object_get_object_path(jobs->pdata[i]);
                g_autofree char *created = ps_realtime_text(ps_aijob_get_created(job), tz);

                if (!more)
                        gtk_list_store_append(w->ai_jobs, &iter);
                gtk_list_store_set(w->ai_jobs, &iter, JOB_NUMBER, strrchr(path, '/') + 1,
                                   JOB_STATE, ps_aijob_get_state(job), JOB_CREATED, created,
                                   JOB_PATH, path, -1);
                more = more && gtk_tree_model_iter_next(model, &iter);
                if (g_strcmp0(path, selected) == 0 || (!selected && i + 1 == jobs->len))
                        shown = job;
        }
        while (more)
                more = gtk_list_store_remove(w->ai_jobs, &iter);
        now_selected = ai_selected(w);
        if (g_strcmp0(selected, now_selected) != 0) {
                gtk_tree_selection_unselect_all(
                        gtk_tree_view_get_selection(GTK_TREE_VIEW(w->ai_jobs_tree)));
                shown = NULL;
        }
        ai_job_show(w, shown);
}

static void ai_generate(GtkButton *button, PsWindow *w)
{
        app_ai_generate(w->app, gtk_entry_get_text(GTK_ENTRY(w->ai_prompt)));
}

/* The job the details show: the selected one, or else the newest. */
static char *ai_shown_path(PsWindow *w)
{
        GtkTreeModel *model = GTK_TREE_MODEL(w->ai_jobs);
        char *path = ai_selected(w);
        int n = gtk_tree_model_iter_n_children(model, NULL);
        GtkTreeIter iter;

        if (!path && n > 0 && gtk_tree_model_iter_nth_child(model, &iter, NULL, n - 1))
                gtk_tree_model_get(model, &iter, JOB_PATH, &path, -1);
        return path;
}

static void ai_shadow(GtkButton *button, PsWindow *w)
{
        g_autofree char *path = ai_shown_path(w);

        if (path)
                app_ai_job_call(w->app, path, "Shadow",
                                g_variant_new("(u)", PS_AI_SHADOW_SEC));
}

static void ai_apply(GtkButton *button, PsWindow *w)
{
        g_autofree char *path = ai_shown_path(w);

        if (path)
                app_ai_job_call(w->app, path, "Apply",
                                g_variant_new("(u)", PS_AI_CONFIRM_SEC));
}

static void ai_cancel(GtkButton *button, PsWindow *w)
{
        g_autofree char *path = ai_shown_path(w);

        if (path)
                app_ai_job_call(w->app, path, "Cancel", NULL);
}

static void ai_delete(GtkButton *button, PsWindow *w)
{
        g_autofree char *path = ai_shown_path(w);

        if (path)
                app_ai_job_call(w->app, path, "Delete", NULL);
}

static void ai_selection_changed(GtkTreeSelection *sel, PsWindow *w)
{
        g_autofree char *path = ai_shown_path(w);
        g_autoptr(GDBusInterface) job = NULL;

        if (path && w->app->objects)
                job = g_dbus_object_manager_get_interface(w->app->objects, path,
                                                          "org.packetscope.Guarder1.AIJob");
        ai_job_show(w, job ? PS_AIJOB(job) : NULL);
}

static GtkWidget *ai_page_new(PsWindow *w)
{
        static const char *const titles[] = { N_("Job"), N_("State"), N_("Created") };
        GtkWidget *page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6), *b, *label;
        g_autofree char *shadow_tip = g_strdup_printf(
                _("Count what the proposed rules would match for %u seconds, dropping nothing"),
                PS_AI_SHADOW_SEC);
        g_autofree char *apply_tip = g_strdup_printf(
                _("Add the proposed rules on trial: they are rolled back unless confirmed within %u seconds"),
                PS_AI_CONFIRM_SEC);

        label = gtk_label_new_with_mnemonic(_("_Prompt"));
        w->ai_prompt = gtk_entry_new();
        gtk_entry_set_placeholder_text(GTK_ENTRY(w->ai_prompt), _("a security analysis"));
        gtk_label_set_mnemonic_widget(GTK_LABEL(label), w->ai_prompt);
        ps_set_accessible_name(w->ai_prompt, _("Prompt"));
        gtk_widget_set_hexpand(w->ai_prompt, TRUE);
        b = gtk_button_new_with_mnemonic(_("_Generate"));
        gtk_widget_set_tooltip_text(b, _("Ask the model for an analysis and rules"));
        g_signal_connect(b, "clicked", G_CALLBACK(ai_generate), w);
        gtk_box_pack_start(GTK_BOX(bar), label, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(bar), w->ai_prompt, TRUE, TRUE, 0);
        gtk_box_pack_start(GTK_BOX(bar), b, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), bar, FALSE, FALSE, 0);

        w->ai_jobs = gtk_list_store_new(JOB_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                        G_TYPE_STRING);
        w->ai_jobs_tree = tree_new(w->ai_jobs, _("AI jobs"), titles, 3, FALSE);
        g_signal_connect(gtk_tree_view_get_selection(GTK_TREE_VIEW(w->ai_jobs_tree)), "changed",
                         G_CALLBACK(ai_selection_changed), w);
        gtk_widget_set_size_request(w->ai_jobs_tree, -1, 100);
        gtk_box_pack_start(GTK_BOX(page), scrolled(w->ai_jobs_tree), FALSE, TRUE, 0);

        w->ai_state = label_new("", TRUE);
        w->ai_analysis = label_new("", FALSE);
        w->ai_suggestions = label_new("", FALSE);
        gtk_label_set_line_wrap(GTK_LABEL(w->ai_analysis), TRUE);
        gtk_label_set_selectable(GTK_LABEL(w->ai_analysis), TRUE);
        gtk_label_set_line_wrap(GTK_LABEL(w->ai_suggestions), TRUE);
        gtk_box_pack_start(GTK_BOX(page), w->ai_state, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->ai_analysis, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), w->ai_suggestions, FALSE, FALSE, 0);

        bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
        w->ai_shadow = gtk_button_new_with_mnemonic(_("Shado_w"));
        gtk_widget_set_tooltip_text(w->ai_shadow, shadow_tip);
        g_signal_connect(w->ai_shadow, "clicked", G_CALLBACK(ai_shadow), w);
        w->ai_apply = gtk_button_new_with_mnemonic(_("_Apply on trial"));
        gtk_widget_set_tooltip_text(w->ai_apply, apply_tip);
        g_signal_connect(w->ai_apply, "clicked", G_CALLBACK(ai_apply), w);
        gtk_box_pack_start(GTK_BOX(bar), w->ai_shadow, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(bar), w->ai_apply, FALSE, FALSE, 0);
        w->ai_delete = gtk_button_new_with_mnemonic(_("Dele_te job"));
        gtk_widget_set_tooltip_text(w->ai_delete, _("Forget the finished job"));
        g_signal_connect(w->ai_delete, "clicked", G_CALLBACK(ai_delete), w);
        gtk_box_pack_end(GTK_BOX(bar), w->ai_delete, FALSE, FALSE, 0);
        w->ai_cancel = gtk_button_new_with_mnemonic(_("Canc_el job"));
        gtk_widget_set_tooltip_text(w->ai_cancel, _("End the queued or running job"));
        g_signal_connect(w->ai_cancel, "clicked", G_CALLBACK(ai_cancel), w);
        gtk_box_pack_end(GTK_BOX(bar), w->ai_cancel, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(page), bar, FALSE, FALSE, 0);
        return page;
}

/* ---------------------------------------------------------------------------------------- */

void ps_window_show_error(PsWindow *w, const char *text)
{
        gtk_label_set_text(GTK_LABEL(w->error), text);
        ps_set_accessible_name(w->error, text);
        gtk_widget_show(w->error);
}

static gboolean countdown_tick(gpointer data)
{
        PsWindow *w = data;
        g_autofree char *text = ps_countdown_text(w->deadline_usec, g_get_real_time());

        gtk_label_set_text(GTK_LABEL(w->countdown), text);
        ps_set_accessible_name(w->countdown, text);
        return G_SOURCE_CONTINUE;
}

void ps_window_transaction(PsWindow *w, gint64 deadline_usec)
{
        w->deadline_usec = deadline_usec;
        if (!deadline_usec) {
                g_clear_handle_id(&w->countdown_id, g_source_remove);
                /* A hidden label keeps its accessible name: the countdown is cleared, so
                 * that nothing tells of a transaction that is over. */
                gtk_label_set_text(GTK_LABEL(w->countdown), "");
                ps_set_accessible_name(w->countdown, "");
                gtk_widget_hide(w->transaction);
                return;
        }
        countdown_tick(w);
        if (!w->countdown_id)
                w->countdown_id = g_timeout_add(500, countdown_tick, w);
        gtk_widget_show(w->transaction);
}

static void transaction_confirm(GtkButton *button, PsWindow *w)
{
        app_transaction_end(w->app, TRUE);
}

static void transaction_rollback(GtkButton *button, PsWindow *w)
{
        app_transaction_end(w->app, FALSE);
}

static GtkWidget *transaction_bar(PsWindow *w)
{
        GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6), *b;

        gtk_box_pack_start(GTK_BOX(bar), label_new(_("Rules applied on trial."), TRUE), FALSE,
                           FALSE, 0);
        w->countdown = label_new("", FALSE);
        gtk_widget_set_hexpand(w->countdown, TRUE);
        gtk_box_pack_start(GTK_BOX(bar), w->countdown, TRUE, TRUE, 0);
        b = gtk_button_new_with_mnemonic(_("Con_firm"));
        gtk_widget_set_tooltip_text(b, _("Keep the applied rules"));
        g_signal_connect(b, "clicked", G_CALLBACK(transaction_confirm), w);
        gtk_box_pack_end(GTK_BOX(bar), b, FALSE, FALSE, 0);
        b = gtk_button_new_with_mnemonic(_("Roll _back"));
        gtk_widget_set_tooltip_text(b, _("Bring the previous rules back now"));
        g_signal_connect(b, "clicked", G_CALLBACK(transaction_rollback), w);
        gtk_box_pack_end(GTK_BOX(bar), b, FALSE, FALSE, 0);
        /* Shown and hidden as a whole, never by the window's show_all. */
        gtk_widget_show_all(bar);
        gtk_widget_hide(bar);
        gtk_widget_set_no_show_all(bar, TRUE);
        return bar;
}

static void panic_leave(GtkButton *button, PsWindow *w)
{
        ps_panic_dialog_run(w->app, GTK_WINDOW(w->window), FALSE);
}

static void panic_enter(GtkButton *button, PsWindow *w)
{
        ps_panic_dialog_run(w->app, GTK_WINDOW(w->window), TRUE);
}

/* The banner of panic mode, at the top of every page: it changes what every page means. */
static GtkWidget *panic_bar(PsWindow *w)
{
        GtkWidget *bar = gtk_info_bar_new(), *label, *b;

        gtk_info_bar_set_message_type(GTK_INFO_BAR(bar), GTK_MESSAGE_ERROR);
        label = label_new(_("Panic mode: all traffic except management is dropped"), TRUE);
        gtk_label_set_line_wrap(GTK_LABEL(label), TRUE);
        gtk_container_add(GTK_CONTAINER(gtk_info_bar_get_content_area(GTK_INFO_BAR(bar))),
                          label);
        b = gtk_button_new_with_mnemonic(_("Lea_ve panic mode…"));
        gtk_widget_set_tooltip_text(b, _("Let the guarded interfaces pass traffic again"));
        g_signal_connect(b, "clicked", G_CALLBACK(panic_leave), w);
        gtk_container_add(GTK_CONTAINER(gtk_info_bar_get_action_area(GTK_INFO_BAR(bar))), b);
        /* Shown and hidden as a whole, never by the window's show_all. */
        gtk_widget_show_all(bar);
        gtk_widget_hide(bar);
        gtk_widget_set_no_show_all(bar, TRUE);
        return bar;
}

static void panic_update(PsWindow *w)
{
        gboolean panic = app_panic(w->app);

        gtk_widget_set_visible(w->panic_bar, panic);
        gtk_widget_set_sensitive(w->panic_enter, w->app->manager && !panic);
}

static void rule_add(GtkButton *button, PsWindow *w)
{
        ps_rule_dialog_run(w->app, GTK_WINDOW(w->window), 0);
}

void ps_window_update(PsWindow *w)
{
        g_autofree char *state = NULL;
        double pps = 0, dps = 0;
        GHashTableIter it;
        PsLinkRow *row;

        g_hash_table_iter_init(&it, w->app->links);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *) &row)) {
                pps += row->pps;
                dps += row->drops_per_sec;
        }
        state = ps_tooltip_body(w->app->state, g_hash_table_size(w->app->links), pps, dps);
        {
                g_autofree char *text = g_strdup_printf("%s: %s", ps_state_title(w->app->state),
                                                        state);

                gtk_label_set_text(GTK_LABEL(w->state), text);
        }
        panic_update(w);
        links_update(w);
        rules_update(w);
        conns_update(w);
        bans_update(w);
        health_update(w);
        ai_update(w);
}

gboolean ps_window_visible(PsWindow *w)
{
        return gtk_widget_get_visible(w->window);
}

void ps_window_present(PsWindow *w)
{
        gtk_window_present(GTK_WINDOW(w->window));
}

static void visibility_changed(GtkWidget *widget, PsWindow *w)
{
        app_window_visible_changed(w->app);
}

static GtkWidget *page(GtkWidget *notebook, GtkWidget *child, const char *title)
{
        GtkWidget *label = gtk_label_new_with_mnemonic(title);

        gtk_notebook_append_page(GTK_NOTEBOOK(notebook), child, label);
        return child;
}

PsWindow *ps_window_new(App *app)
{
        static const char *const conn_titles[] = {
                N_("Protocol"), N_("Remote"), N_("Local"), N_("State"), N_("Packets"), N_("Bytes"),
        };
        static const char *const drop_titles[] = {
                N_("Time"), N_("Rule"), N_("Link"), N_("Protocol"), N_("Source"), N_("Destination"),
        };
        PsWindow *w = g_new0(PsWindow, 1);
        GtkWidget *box, *notebook, *tv, *links_page, *rules_page, *button;

        w->app = app;
        w->links = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) link_widgets_free);
        w->rules = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                         (GDestroyNotify) rule_widgets_free);
        w->window = gtk_application_window_new(app->gtk);
        gtk_window_set_title(GTK_WINDOW(w->window), "packetscope");
        gtk_window_set_icon_name(GTK_WINDOW(w->window), "packetscope-guarding");
        gtk_window_set_default_size(GTK_WINDOW(w->window), 760, 480);
        g_signal_connect(w->window, "delete-event", G_CALLBACK(gtk_widget_hide_on_delete), NULL);
        g_signal_connect(w->window, "show", G_CALLBACK(visibility_changed), w);
        g_signal_connect(w->window, "hide", G_CALLBACK(visibility_changed), w);

        box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        gtk_container_set_border_width(GTK_CONTAINER(box), 8);
        gtk_container_add(GTK_CONTAINER(w->window), box);
        w->state = label_new("", TRUE);
        gtk_box_pack_start(GTK_BOX(box), w->state, FALSE, FALSE, 0);
        w->error = label_new("", FALSE);
        gtk_label_set_line_wrap(GTK_LABEL(w->error), TRUE);
        gtk_label_set_selectable(GTK_LABEL(w->error), TRUE);
        gtk_widget_set_no_show_all(w->error, TRUE);
        gtk_box_pack_start(GTK_BOX(box), w->error, FALSE, FALSE, 0);
        w->panic_bar = panic_bar(w);
        gtk_box_pack_start(GTK_BOX(box), w->panic_bar, FALSE, FALSE, 0);
        w->transaction = transaction_bar(w);
        gtk_box_pack_start(GTK_BOX(box), w->transaction, FALSE, FALSE, 0);

        notebook = gtk_notebook_new();
        gtk_box_pack_start(GTK_BOX(box), notebook, TRUE, TRUE, 0);

        w->links_box = gtk_list_box_new();
        gtk_list_box_set_selection_mode(GTK_LIST_BOX(w->links_box), GTK_SELECTION_NONE);
        ps_set_accessible_name(w->links_box, _("Links"));
        w->no_links = gtk_label_new(_("No link is guarded"));
        gtk_list_box_set_placeholder(GTK_LIST_BOX(w->links_box), w->no_links);
        links_page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        gtk_box_pack_start(GTK_BOX(links_page), scrolled(w->links_box), TRUE, TRUE, 0);
        w->panic_enter = gtk_button_new_with_mnemonic(_("_Enter panic mode…"));
        gtk_widget_set_tooltip_text(w->panic_enter,
                                    _("Drop all received traffic except management traffic on "
                                      "every guarded interface"));
        gtk_widget_set_halign(w->panic_enter, GTK_ALIGN_START);
        g_signal_connect(w->panic_enter, "clicked", G_CALLBACK(panic_enter), w);
        gtk_box_pack_start(GTK_BOX(links_page), w->panic_enter, FALSE, FALSE, 0);
        page(notebook, links_page, _("_Links"));

        w->conns = gtk_list_store_new(CONN_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_UINT64, G_TYPE_UINT64);
        tv = tree_new(w->conns, _("Top connections"), conn_titles, CONN_N, TRUE);
        page(notebook, scrolled(tv), _("_Connections"));

        w->rules_box = gtk_list_box_new();
        gtk_list_box_set_selection_mode(GTK_LIST_BOX(w->rules_box), GTK_SELECTION_NONE);
        gtk_list_box_set_sort_func(GTK_LIST_BOX(w->rules_box), rules_sort, NULL, NULL);
        ps_set_accessible_name(w->rules_box, _("Filter rules"));
        gtk_list_box_set_placeholder(GTK_LIST_BOX(w->rules_box), gtk_label_new(_("No rules")));
        rules_page = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        gtk_box_pack_start(GTK_BOX(rules_page), scrolled(w->rules_box), TRUE, TRUE, 0);
        button = gtk_button_new_with_mnemonic(_("_Add rule…"));
        gtk_widget_set_halign(button, GTK_ALIGN_START);
        g_signal_connect(button, "clicked", G_CALLBACK(rule_add), w);
        gtk_box_pack_start(GTK_BOX(rules_page), button, FALSE, FALSE, 0);
        page(notebook, rules_page, _("_Rules"));

        w->drops = gtk_list_store_new(DROP_N, G_TYPE_STRING, G_TYPE_UINT, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
        tv = tree_new(w->drops, _("Recent drops"), drop_titles, DROP_N, FALSE);
        page(notebook, scrolled(tv), _("Recent _drops"));

        w->bans_page = page(notebook, bans_page_new(w), _("Ba_ns"));
        w->health_page = page(notebook, health_page_new(w), _("_Health"));
        w->ai_page = page(notebook, ai_page_new(w), _("A_I"));

        for (guint i = app->drops.n; i > 0; i--)
                ps_window_add_drop(w, ps_drop_ring_get(&app->drops, i - 1));
        gtk_widget_show_all(box);
        panic_update(w);
        bans_update(w);
        health_update(w);
        ai_update(w);
        return w;
}
