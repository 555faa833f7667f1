/* SPDX-License-Identifier: MIT */
/*
 * The ban dialog: bans an address or a prefix (Bans.Ban) for a number of minutes, or until
 * unbanned, with a reason. Like the rule dialog it stays open until the daemon said yes and
 * shows what it said otherwise (an address it does not accept, an allowlisted address, a
 * full table, or polkit's refusal).
 */
#include <glib/gi18n.h>

#include "applet.h"

typedef struct BanDialog {
        App *app;
        GtkWidget *dialog;
        GtkWidget *address;
        GtkWidget *minutes;
        GtkWidget *reason;
        GtkWidget *error;
        gboolean busy;
} BanDialog;

static void set_busy(BanDialog *bd, gboolean busy)
{
        bd->busy = busy;
        gtk_dialog_set_response_sensitive(GTK_DIALOG(bd->dialog), GTK_RESPONSE_OK, !busy);
        gtk_dialog_set_response_sensitive(GTK_DIALOG(bd->dialog), GTK_RESPONSE_CANCEL, !busy);
}

static void show_error(BanDialog *bd, const char *text)
{
        gtk_label_set_text(GTK_LABEL(bd->error), text);
        ps_set_accessible_name(bd->error, text);
        gtk_widget_show(bd->error);
}

static void ban_done(GObject *source, GAsyncResult *res, gpointer data)
{
        BanDialog *bd = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        if (!reply && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                gtk_widget_destroy(bd->dialog);
                return;
        }
        set_busy(bd, FALSE);
        if (!reply) {
                g_autofree char *text = app_change_error(error);

                show_error(bd, text);
                return;
        }
        app_refresh_bans(bd->app);
        gtk_widget_destroy(bd->dialog);
}

static void response(GtkDialog *dialog, int response_id, BanDialog *bd)
{
        guint64 seconds;

        if (bd->busy)
                return;
        if (response_id != GTK_RESPONSE_OK) {
                gtk_widget_destroy(bd->dialog);
                return;
        }
        if (!bd->app->bans) {
                show_error(bd, _("No connection to the daemon"));
                return;
        }
        /* The spin button's text is what the user sees: read it even if Enter came first. */
        gtk_spin_button_update(GTK_SPIN_BUTTON(bd->minutes));
        seconds = (guint64) gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(bd->minutes)) * 60;
        gtk_widget_hide(bd->error);
        set_busy(bd, TRUE);
        /* The address is passed as typed: the daemon's message says what it accepts. */
        app_change(bd->app, G_DBUS_PROXY(bd->app->bans), "Ban",
                   g_variant_new("(sts)", gtk_entry_get_text(GTK_ENTRY(bd->address)), seconds,
                                 gtk_entry_get_text(GTK_ENTRY(bd->reason))),
                   ban_done, bd);
}

static gboolean delete_event(GtkWidget *widget, GdkEvent *event, BanDialog *bd)
{
        return bd->busy;
}

void ps_ban_dialog_run(App *app, GtkWindow *parent)
{
        BanDialog *bd = g_new0(BanDialog, 1);
        GtkWidget *content, *grid;
        int row = 0;

        bd->app = app;
        bd->dialog = gtk_dialog_new_with_buttons(_("New ban"), parent,
                                                 GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                                 _("_Cancel"), GTK_RESPONSE_CANCEL,
                                                 _("_Ban"), GTK_RESPONSE_OK, NULL);
        gtk_dialog_set_default_response(GTK_DIALOG(bd->dialog), GTK_RESPONSE_OK);
        g_object_set_data_full(G_OBJECT(bd->dialog), "ps-ban-dialog", bd, g_free);
        g_signal_connect(bd->dialog, "response", G_CALLBACK(response), bd);
        g_signal_connect(bd->dialog, "delete-event", G_CALLBACK(delete_event), bd);

        grid = gtk_grid_new();
        gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
        content = gtk_dialog_get_content_area(GTK_DIALOG(bd->dialog));
        gtk_box_pack_start(GTK_BOX(content), grid, TRUE, TRUE, 0);

        bd->address = ps_dialog_field(GTK_GRID(grid), row++, _("_Address"), _("Address to ban"),
                                      ps_dialog_entry(NULL, "192.0.2.7"),
                                      _("An address, or a prefix such as 198.51.100.0/24"));
        bd->minutes = gtk_spin_button_new_with_range(0, 60 * 24 * 365, 1);
        gtk_spin_button_set_value(GTK_SPIN_BUTTON(bd->minutes), 60);
        gtk_entry_set_activates_default(GTK_ENTRY(bd->minutes), TRUE);
        ps_dialog_field(GTK_GRID(grid), row++, _("_Minutes"), _("Minutes banned"), bd->minutes,
                        _("How long the ban lasts; 0: until unbanned"));
        bd->reason = ps_dialog_field(GTK_GRID(grid), row++, _("_Reason"), _("Reason"),
                                     ps_dialog_entry(NULL, ""), NULL);
        bd->error = ps_dialog_error_label();
        gtk_grid_attach(GTK_GRID(grid), bd->error, 0, row++, 2, 1);
        gtk_widget_show_all(bd->dialog);
        gtk_widget_hide(bd->error);
        gtk_widget_grab_focus(bd->address);
}
