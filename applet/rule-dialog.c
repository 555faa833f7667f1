/* SPDX-License-Identifier: MIT */
/*
 * The rule dialog: adds a rule (at once with Filters.Add, or on trial with Filters.Apply,
 * which rolls back unless confirmed), changes one (Filter.Update with the fields that
 * changed) or deletes one (Filter.Delete). The dialog stays open until the daemon said yes;
 * what it said otherwise (its validation message naming the field, or polkit's refusal) is
 * shown in the dialog, so that the user can correct the rule and try again.
 */
#include <glib/gi18n.h>

#include "applet.h"

enum { RESPONSE_DELETE = 1 };

typedef struct RuleDialog {
        App *app;
        guint32 id;             /* 0: a new rule */
        GtkWidget *dialog;
        GtkWidget *action;
        GtkWidget *protocol;
        GtkWidget *src_ip;
        GtkWidget *src_port;
        GtkWidget *dst_ip;
        GtkWidget *dst_port;
        GtkWidget *icmp_type;
        GtkWidget *icmp_code;
        GtkWidget *tcp_set[8];          /* by flag bit, FIN first */
        GtkWidget *tcp_clear[8];
        GtkWidget *inner_protocol;
        GtkWidget *inner_src_ip;
        GtkWidget *inner_src_port;
        GtkWidget *inner_dst_ip;
        GtkWidget *inner_dst_port;
        GtkWidget *priority;
        GtkWidget *timeout;
        GtkWidget *comment;
        GtkWidget *enabled;
        GtkWidget *log;
        GtkWidget *trial;
        GtkWidget *trial_sec;
        GtkWidget *error;
        gboolean busy;
} RuleDialog;

static void rule_dialog_free(RuleDialog *rd)
{
        g_free(rd);
}

static void set_busy(RuleDialog *rd, gboolean busy)
{
        rd->busy = busy;
        ps_dialog_set_busy(rd->dialog, busy);
        if (rd->id)
                gtk_dialog_set_response_sensitive(GTK_DIALOG(rd->dialog), RESPONSE_DELETE, !busy);
}

static void show_error(RuleDialog *rd, const char *text)
{
        ps_dialog_show_error(rd->error, text);
}

/* Any answer of the daemon: success closes the dialog, an error stays in it. */
static void call_done(GObject *source, GAsyncResult *res, gpointer data)
{
        RuleDialog *rd = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        set_busy(rd, FALSE);
        if (!reply) {
                g_autofree char *text = app_change_error(error);

                show_error(rd, text);
                return;
        }
        app_refresh_rules(rd->app);
        gtk_widget_destroy(rd->dialog);
}

static void submit(RuleDialog *rd)
{
        const PsRuleRow *orig = rd->id ? app_rule_find(rd->app, rd->id) : NULL;
        g_autoptr(GDBusProxy) filter = NULL;
        g_autoptr(GVariant) fields = NULL;
        PsRuleForm form = {
                .action = gtk_combo_box_get_active_id(GTK_COMBO_BOX(rd->action)),
                .protocol = gtk_entry_get_text(GTK_ENTRY(rd->protocol)),
                .src_ip = gtk_entry_get_text(GTK_ENTRY(rd->src_ip)),
                .src_port = gtk_entry_get_text(GTK_ENTRY(rd->src_port)),
                .dst_ip = gtk_entry_get_text(GTK_ENTRY(rd->dst_ip)),
                .dst_port = gtk_entry_get_text(GTK_ENTRY(rd->dst_port)),
                .icmp_type = gtk_entry_get_text(GTK_ENTRY(rd->icmp_type)),
                .icmp_code = gtk_entry_get_text(GTK_ENTRY(rd->icmp_code)),
                .inner_protocol = gtk_entry_get_text(GTK_ENTRY(rd->inner_protocol)),
                .inner_src_ip = gtk_entry_get_text(GTK_ENTRY(rd->inner_src_ip)),
                .inner_src_port = gtk_entry_get_text(GTK_ENTRY(rd->inner_src_port)),
                .inner_dst_ip = gtk_entry_get_text(GTK_ENTRY(rd->inner_dst_ip)),
                .inner_dst_port = gtk_entry_get_text(GTK_ENTRY(rd->inner_dst_port)),
                .priority = gtk_entry_get_text(GTK_ENTRY(rd->priority)),
                .timeout = gtk_entry_get_text(GTK_ENTRY(rd->timeout)),
                .comment = gtk_entry_get_text(GTK_ENTRY(rd->comment)),
                .enabled = gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(rd->enabled)),
                .no_log = !gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(rd->log)),
        };

        if (!form.action)
                form.action = "drop";
        for (guint i = 0; i < G_N_ELEMENTS(rd->tcp_set); i++) {
                if (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(rd->tcp_set[i])))
                        form.tcp_set |= 1u << i;
                if (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(rd->tcp_clear[i])))
                        form.tcp_clear |= 1u << i;
        }
        if (rd->id && !orig) {
                show_error(rd, _("The rule is gone"));
                return;
        }
        if (rd->id && !(filter = app_filter_proxy(rd->app, rd->id))) {
                show_error(rd, _("The rule is gone"));
                return;
        }
        if (!rd->id && !rd->app->filters) {
                show_error(rd, _("No connection to the daemon"));
                return;
        }
        fields = ps_rule_form_build(&form, orig);
        if (!fields) {
                /* Nothing changed: nothing to ask the daemon (or polkit) about. */
                gtk_widget_destroy(rd->dialog);
                return;
        }
        gtk_widget_hide(rd->error);
        set_busy(rd, TRUE);
        if (rd->id)
                app_change(rd->app, filter, "Update", g_variant_new("(@a{sv})", fields), call_done,
                           rd);
        else if (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(rd->trial))) {
                GVariantBuilder rules;

                g_variant_builder_init(&rules, G_VARIANT_TYPE("aa{sv}"));
                g_variant_builder_add_value(&rules, fields);
                app_change(rd->app, G_DBUS_PROXY(rd->app->filters), "Apply",
                           g_variant_new("(aa{sv}su)", &rules, "merge",
                                         (guint32) gtk_spin_button_get_value_as_int(
                                                 GTK_SPIN_BUTTON(rd->trial_sec))),
                           call_done, rd);
        } else
                app_change(rd->app, G_DBUS_PROXY(rd->app->filters), "Add",
                           g_variant_new("(@a{sv})", fields), call_done, rd);
}

static void delete_rule(RuleDialog *rd)
{
        g_autoptr(GDBusProxy) filter = app_filter_proxy(rd->app, rd->id);

        if (!filter) {
                show_error(rd, _("The rule is gone"));
                return;
        }
        gtk_widget_hide(rd->error);
        set_busy(rd, TRUE);
        app_change(rd->app, filter, "Delete", NULL, call_done, rd);
}

static void response(GtkDialog *dialog, int response_id, RuleDialog *rd)
{
        if (rd->busy)
                return;
        switch (response_id) {
        case GTK_RESPONSE_OK:
                submit(rd);
                break;
        case RESPONSE_DELETE:
                delete_rule(rd);
                break;
        default:
                gtk_widget_destroy(rd->dialog);
        }
}

/* While the daemon (or polkit's agent) is asked, the dialog waits for the answer. */
static gboolean delete_event(GtkWidget *widget, GdkEvent *event, RuleDialog *rd)
{
        return rd->busy;
}

GtkWidget *ps_dialog_field(GtkGrid *grid, int row, const char *mnemonic, const char *name,
                           GtkWidget *widget, const char *tooltip)
{
        GtkWidget *label = gtk_label_new_with_mnemonic(mnemonic);

        gtk_label_set_xalign(GTK_LABEL(label), 1);
        gtk_label_set_mnemonic_widget(GTK_LABEL(label), widget);
        ps_set_accessible_name(widget, name);
        if (tooltip)
                gtk_widget_set_tooltip_text(widget, tooltip);
        gtk_widget_set_hexpand(widget, TRUE);
        gtk_grid_attach(grid, label, 0, row, 1, 1);
        gtk_grid_attach(grid, widget, 1, row, 1, 1);
        return widget;
}

/* A dialog waiting for the daemon's answer: its buttons are off, and it does not close. */
void ps_dialog_set_busy(GtkWidget *dialog, gboolean busy)
{
        g_object_set_data(G_OBJECT(dialog), "ps-busy", GINT_TO_POINTER(busy));
        gtk_dialog_set_response_sensitive(GTK_DIALOG(dialog), GTK_RESPONSE_OK, !busy);
        gtk_dialog_set_response_sensitive(GTK_DIALOG(dialog), GTK_RESPONSE_CANCEL, !busy);
}

gboolean ps_dialog_busy(GtkWidget *dialog)
{
        return GPOINTER_TO_INT(g_object_get_data(G_OBJECT(dialog), "ps-busy"));
}

static gboolean busy_delete_event(GtkWidget *dialog, GdkEvent *event, gpointer data)
{
        return ps_dialog_busy(dialog);
}

void ps_dialog_show_error(GtkWidget *label, const char *text)
{
        gtk_label_set_text(GTK_LABEL(label), text);
        ps_set_accessible_name(label, text);
        gtk_widget_show(label);
}

gboolean ps_dialog_call_finish(GtkWidget *dialog, GtkWidget *error_label, GObject *source,
                               GAsyncResult *res)
{
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        if (!reply && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                gtk_widget_destroy(dialog);
                return FALSE;
        }
        ps_dialog_set_busy(dialog, FALSE);
        if (!reply) {
                g_autofree char *text = app_change_error(error);

                ps_dialog_show_error(error_label, text);
                return FALSE;
        }
        return TRUE;
}

GtkWidget *ps_dialog_new(const char *title, GtkWindow *parent, const char *ok_label)
{
        GtkWidget *dialog = gtk_dialog_new_with_buttons(title, parent,
                                                        GTK_DIALOG_MODAL |
                                                        GTK_DIALOG_DESTROY_WITH_PARENT,
                                                        _("_Cancel"), GTK_RESPONSE_CANCEL,
                                                        ok_label, GTK_RESPONSE_OK, NULL);

        gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_OK);
        g_signal_connect(dialog, "delete-event", G_CALLBACK(busy_delete_event), NULL);
        return dialog;
}

GtkWidget *ps_dialog_grid(GtkWidget *dialog)
{
        GtkWidget *grid = gtk_grid_new();

        gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
        gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), grid, TRUE,
                           TRUE, 0);
        return grid;
}

GtkWidget *ps_dialog_entry(const char *text, const char *placeholder)
{
        GtkWidget *e = gtk_entry_new();

        gtk_entry_set_text(GTK_ENTRY(e), text ? text : "");
        gtk_entry_set_placeholder_text(GTK_ENTRY(e), placeholder);
        gtk_entry_set_activates_default(GTK_ENTRY(e), TRUE);
        return e;
}

/* Where a dialog shows the daemon's answer when it is not yes. */
GtkWidget *ps_dialog_error_label(void)
{
        GtkWidget *l = gtk_label_new("");

        gtk_label_set_xalign(GTK_LABEL(l), 0);
        gtk_label_set_line_wrap(GTK_LABEL(l), TRUE);
        gtk_label_set_selectable(GTK_LABEL(l), TRUE);
        gtk_label_set_max_width_chars(GTK_LABEL(l), 60);
        return l;
}

static void trial_toggled(GtkToggleButton *trial, RuleDialog *rd)
{
        gtk_widget_set_sensitive(rd->trial_sec, gtk_toggle_button_get_active(trial));
}

/* A flag cannot be both set and clear: marking it one way unmarks the other. */
static void tcp_flag_toggled(GtkToggleButton *b, GtkToggleButton *other)
{
        if (gtk_toggle_button_get_active(b))
                gtk_toggle_button_set_active(other, FALSE);
}

/* Two rows of the eight TCP flags: those that must be set, those that must be clear; a flag
 * in neither is not looked at. */
static int tcp_flags_rows(RuleDialog *rd, GtkGrid *grid, int row, const PsRuleRow *orig)
{
        const char *const titles[2] = { _("TCP flags set"), _("TCP flags clear") };
        /* TRANSLATORS: the accessible name of a TCP flag's check box, e.g. "SYN set" */
        const char *const names[2] = { _("%s set"), _("%s clear") };
        GtkWidget **checks[2] = { rd->tcp_set, rd->tcp_clear };
        guint8 want[2] = { 0, 0 };

        if (orig) {
                want[0] = orig->tcp_flags & orig->tcp_flags_mask;
                want[1] = orig->tcp_flags_mask & ~orig->tcp_flags;
        }
        for (int r = 0; r < 2; r++) {
                GtkWidget *label = gtk_label_new(titles[r]);
                GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 2);

                gtk_label_set_xalign(GTK_LABEL(label), 1);
                for (guint i = 0; i < 8; i++) {
                        g_autofree char *name = g_strdup_printf(names[r], ps_tcp_flag_names[i]);

                        checks[r][i] = gtk_check_button_new_with_label(ps_tcp_flag_names[i]);
                        ps_set_accessible_name(checks[r][i], name);
                        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(checks[r][i]),
                                                     want[r] & (1u << i));
                        gtk_box_pack_start(GTK_BOX(box), checks[r][i], FALSE, FALSE, 0);
                }
                gtk_widget_set_tooltip_text(box, r == 0 ?
                                            _("With protocol tcp: the segments with these flags set") :
                                            _("With protocol tcp: the segments with these flags clear"));
                gtk_grid_attach(grid, label, 0, row, 1, 1);
                gtk_grid_attach(grid, box, 1, row++, 1, 1);
        }
        for (guint i = 0; i < 8; i++) {
                g_signal_connect(rd->tcp_set[i], "toggled", G_CALLBACK(tcp_flag_toggled),
                                 rd->tcp_clear[i]);
                g_signal_connect(rd->tcp_clear[i], "toggled", G_CALLBACK(tcp_flag_toggled),
                                 rd->tcp_set[i]);
        }
        return row;
}

void ps_rule_dialog_run(App *app, GtkWindow *parent, guint32 id)
{
        const PsRuleRow *orig = id ? app_rule_find(app, id) : NULL;
        RuleDialog *rd;
        GtkWidget *content, *grid, *w;
        g_autofree char *title = NULL, *icmp = NULL, *code = NULL, *priority = NULL;
        g_autofree char *timeout = NULL;
        int row = 0;

        if (id && !orig)
                return;
        rd = g_new0(RuleDialog, 1);
        rd->app = app;
        rd->id = id;
        title = id ? g_strdup_printf(_("Rule %u"), id) : g_strdup(_("New rule"));
        rd->dialog = gtk_dialog_new_with_buttons(title, parent,
                                                 GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                                 NULL, NULL);
        if (id)
                gtk_dialog_add_button(GTK_DIALOG(rd->dialog), _("_Delete"), RESPONSE_DELETE);
        gtk_dialog_add_button(GTK_DIALOG(rd->dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
        gtk_dialog_add_button(GTK_DIALOG(rd->dialog), id ? _("_Save") : _("_Add"),
                              GTK_RESPONSE_OK);
        gtk_dialog_set_default_response(GTK_DIALOG(rd->dialog), GTK_RESPONSE_OK);
        g_object_set_data_full(G_OBJECT(rd->dialog), "ps-rule-dialog", rd,
                               (GDestroyNotify) rule_dialog_free);
        g_signal_connect(rd->dialog, "response", G_CALLBACK(response), rd);
        g_signal_connect(rd->dialog, "delete-event", G_CALLBACK(delete_event), rd);

        grid = gtk_grid_new();
        gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
        content = gtk_dialog_get_content_area(GTK_DIALOG(rd->dialog));
        gtk_box_pack_start(GTK_BOX(content), grid, TRUE, TRUE, 0);

        rd->action = gtk_combo_box_text_new();
        /* The daemon's own words: they are what packetscopectl and the rules files say. */
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(rd->action), "drop", "drop");
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(rd->action), "pass", "pass");
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(rd->action), "count", "count");
        if (!gtk_combo_box_set_active_id(GTK_COMBO_BOX(rd->action), orig ? orig->action : "drop"))
                gtk_combo_box_set_active_id(GTK_COMBO_BOX(rd->action), "drop");
        ps_dialog_field(GTK_GRID(grid), row++, _("Ac_tion"), _("Action"), rd->action,
                        _("drop: the packet goes no further; pass: an exception to drop rules; count: only counted"));
        rd->protocol = ps_dialog_field(GTK_GRID(grid), row++, _("_Protocol"), _("Protocol"),
                                       ps_dialog_entry(orig ? orig->protocol : NULL, _("any")),
                                       _("tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, udplite or a number"));
        rd->src_ip = ps_dialog_field(GTK_GRID(grid), row++, _("S_ource address"),
                                     _("Source address"),
                                     ps_dialog_entry(orig ? orig->src_ip : NULL, _("any")),
                                     _("The remote address: an address or a prefix such as 192.0.2.0/24"));
        rd->src_port = ps_dialog_field(GTK_GRID(grid), row++, _("So_urce port"), _("Source port"),
                                       ps_dialog_entry(orig ? orig->src_port : NULL, _("any")),
                                       _("A port or a range LO-HI"));
        rd->dst_ip = ps_dialog_field(GTK_GRID(grid), row++, _("D_estination address"),
                                     _("Destination address"),
                                     ps_dialog_entry(orig ? orig->dst_ip : NULL, _("any")),
                                     _("The local address: an address or a prefix"));
        rd->dst_port = ps_dialog_field(GTK_GRID(grid), row++, _("Destinatio_n port"),
                                       _("Destination port"),
                                       ps_dialog_entry(orig ? orig->dst_port : NULL, _("any")),
                                       _("A port or a range LO-HI"));
        if (orig && orig->icmp_type != 255)
                icmp = g_strdup_printf("%u", orig->icmp_type);
        rd->icmp_type = ps_dialog_field(GTK_GRID(grid), row++, _("_ICMP type"), _("ICMP type"),
                                        ps_dialog_entry(icmp, _("any")),
                                        _("0 to 254 (8: echo request)"));
        if (orig && orig->icmp_code != 255)
                code = g_strdup_printf("%u", orig->icmp_code);
        rd->icmp_code = ps_dialog_field(GTK_GRID(grid), row++, _("ICMP code"), _("ICMP code"),
                                        ps_dialog_entry(code, _("any")),
                                        _("0 to 254, with an ICMP type"));
        row = tcp_flags_rows(rd, GTK_GRID(grid), row, orig);
        /* An ICMP error quotes the start of the datagram it is about: these match that. */
        rd->inner_protocol = ps_dialog_field(GTK_GRID(grid), row++, _("Quoted protocol"),
                                             _("Quoted protocol"),
                                             ps_dialog_entry(orig ? orig->inner_protocol : NULL,
                                                             _("any")),
                                             _("The protocol of the datagram an ICMP error quotes"));
        rd->inner_src_ip = ps_dialog_field(GTK_GRID(grid), row++, _("Quoted source address"),
                                           _("Quoted source address"),
                                           ps_dialog_entry(orig ? orig->inner_src_ip : NULL,
                                                           _("any")),
                                           _("The source of the datagram an ICMP error quotes"));
        rd->inner_src_port = ps_dialog_field(GTK_GRID(grid), row++, _("Quoted source port"),
                                             _("Quoted source port"),
                                             ps_dialog_entry(orig ? orig->inner_src_port : NULL,
                                                             _("any")),
                                             _("A port or a range LO-HI"));
        rd->inner_dst_ip = ps_dialog_field(GTK_GRID(grid), row++, _("Quoted destination address"),
                                           _("Quoted destination address"),
                                           ps_dialog_entry(orig ? orig->inner_dst_ip : NULL,
                                                           _("any")),
                                           _("The destination of the datagram an ICMP error quotes"));
        rd->inner_dst_port = ps_dialog_field(GTK_GRID(grid), row++, _("Quoted destination port"),
                                             _("Quoted destination port"),
                                             ps_dialog_entry(orig ? orig->inner_dst_port : NULL,
                                                             _("any")),
                                             _("A port or a range LO-HI"));
        if (orig)
                priority = g_strdup_printf("%d", orig->priority);
        rd->priority = ps_dialog_field(GTK_GRID(grid), row++, _("Priorit_y"), _("Priority"),
                                       ps_dialog_entry(priority, "0"),
                                       _("-1000000 to 1000000: of two matching rules the higher decides"));
        if (orig && orig->timeout_sec)
                timeout = g_strdup_printf("%" G_GUINT64_FORMAT, orig->timeout_sec);
        rd->timeout = ps_dialog_field(GTK_GRID(grid), row++, _("Timeout"), _("Timeout in seconds"),
                                      ps_dialog_entry(timeout, _("permanent")),
                                      _("Seconds until the rule removes itself; empty or 0: permanent"));
        rd->comment = ps_dialog_field(GTK_GRID(grid), row++, _("Co_mment"), _("Comment"),
                                      ps_dialog_entry(orig ? orig->comment : NULL, ""), NULL);
        rd->enabled = gtk_check_button_new_with_mnemonic(_("Ena_bled"));
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(rd->enabled), orig ? orig->enabled : TRUE);
        gtk_grid_attach(GTK_GRID(grid), rd->enabled, 1, row++, 1, 1);
        rd->log = gtk_check_button_new_with_mnemonic(_("_Log drops"));
        gtk_widget_set_tooltip_text(rd->log,
                                    _("Sampled drops go to the journal and out as the Dropped signal"));
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(rd->log), orig ? orig->log : TRUE);
        gtk_grid_attach(GTK_GRID(grid), rd->log, 1, row++, 1, 1);
        if (!id) {
                w = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
                rd->trial = gtk_check_button_new_with_mnemonic(
                        _("_Roll back unless confirmed within"));
                rd->trial_sec = gtk_spin_button_new_with_range(1, 3600, 1);
                gtk_spin_button_set_value(GTK_SPIN_BUTTON(rd->trial_sec), PS_TRIAL_SEC_DEFAULT);
                gtk_widget_set_sensitive(rd->trial_sec, FALSE);
                ps_set_accessible_name(rd->trial_sec, _("Seconds to confirm in"));
                g_signal_connect(rd->trial, "toggled", G_CALLBACK(trial_toggled), rd);
                gtk_box_pack_start(GTK_BOX(w), rd->trial, FALSE, FALSE, 0);
                gtk_box_pack_start(GTK_BOX(w), rd->trial_sec, FALSE, FALSE, 0);
                gtk_box_pack_start(GTK_BOX(w), gtk_label_new(_("seconds")), FALSE, FALSE, 0);
                gtk_grid_attach(GTK_GRID(grid), w, 1, row++, 1, 1);
        }
        rd->error = ps_dialog_error_label();
        gtk_grid_attach(GTK_GRID(grid), rd->error, 0, row++, 2, 1);
        gtk_widget_show_all(rd->dialog);
        gtk_widget_hide(rd->error);
        gtk_widget_grab_focus(rd->protocol);
}
