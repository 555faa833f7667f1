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
} BanDialog;

static void ban_done(GObject *source, GAsyncResult *res, gpointer data)
{
        BanDialog *bd = data;

        if (!ps_dialog_call_finish(bd->dialog, bd->error, source, res))
                return;
        app_refresh_bans(bd->app);
        gtk_widget_destroy(bd->dialog);
}

static void response(GtkDialog *dialog, int response_id, BanDialog *bd)
{
        guint64 seconds;

        if (ps_dialog_busy(bd->dialog))
                return;
        if (response_id != GTK_RESPONSE_OK) {
                gtk_widget_destroy(bd->dialog);
                return;
        }
        if (!bd->app->bans) {
                ps_dialog_show_error(bd->error, _("No connection to the daemon"));
                return;
        }
        /* The spin button's text is what the user sees: read it even if Enter came first. */
        gtk_spin_button_update(GTK_SPIN_BUTTON(bd->minutes));
        seconds = (guint64) gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(bd->minutes)) * 60;
        gtk_widget_hide(bd->error);
        ps_dialog_set_busy(bd->dialog, TRUE);
        /* The address is passed as typed: the daemon's message says what it accepts. */
        app_change(bd->app, G_DBUS_PROXY(bd->app->bans), "Ban",
                   g_variant_new("(sts)", gtk_entry_get_text(GTK_ENTRY(bd->address)), seconds,
                                 gtk_entry_get_text(GTK_ENTRY(bd->reason))),
                   ban_done, bd);
}

void ps_ban_dialog_run(App *app, GtkWindow *parent)
{
        BanDialog *bd = g_new0(BanDialog, 1);
        GtkWidget *grid;
        int row = 0;

        bd->app = app;
        bd->dialog = ps_dialog_new(_("New ban"), parent, _("_Ban"));
        g_object_set_data_full(G_OBJECT(bd->dialog), "ps-ban-dialog", bd, g_free);
        g_signal_connect(bd->dialog, "response", G_CALLBACK(response), bd);
        grid = ps_dialog_grid(bd->dialog);

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
