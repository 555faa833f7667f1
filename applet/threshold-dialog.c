/* SPDX-License-Identifier: MIT */
/*
 * The thresholds dialog of the Health page: the five values an anomaly is judged by, as the
 * daemon has them now (its Thresholds property), sent with Health.SetThresholds for those
 * changed. Like the ban dialog it stays open until the daemon said yes, and shows what it
 * said otherwise (a value out of its range, or polkit's refusal).
 */
#include <glib/gi18n.h>

#include "applet.h"

typedef struct ThresholdDialog {
        App *app;
        GtkWidget *dialog;
        GtkWidget *fields[5];
        GtkWidget *error;
        gboolean busy;
} ThresholdDialog;

/* The keys in the order of the fields. */
static const char *const keys[5] = {
        "cpu_percent", "memory_percent", "disk_mbps", "pressure_percent", "min_duration_usec",
};

static void set_busy(ThresholdDialog *td, gboolean busy)
{
        td->busy = busy;
        gtk_dialog_set_response_sensitive(GTK_DIALOG(td->dialog), GTK_RESPONSE_OK, !busy);
        gtk_dialog_set_response_sensitive(GTK_DIALOG(td->dialog), GTK_RESPONSE_CANCEL, !busy);
}

static void show_error(ThresholdDialog *td, const char *text)
{
        gtk_label_set_text(GTK_LABEL(td->error), text);
        ps_set_accessible_name(td->error, text);
        gtk_widget_show(td->error);
}

static void set_done(GObject *source, GAsyncResult *res, gpointer data)
{
        ThresholdDialog *td = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &error);

        if (!reply && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                gtk_widget_destroy(td->dialog);
                return;
        }
        set_busy(td, FALSE);
        if (!reply) {
                g_autofree char *text = app_change_error(error);

                show_error(td, text);
                return;
        }
        gtk_widget_destroy(td->dialog);
}

static const char *field_text(ThresholdDialog *td, guint i)
{
        return gtk_entry_get_text(GTK_ENTRY(td->fields[i]));
}

static void response(GtkDialog *dialog, int response_id, ThresholdDialog *td)
{
        g_autoptr(GVariant) current = NULL;
        g_autoptr(GVariant) changed = NULL;
        const char *bad = NULL;
        PsThresholdForm form;

        if (td->busy)
                return;
        if (response_id != GTK_RESPONSE_OK) {
                gtk_widget_destroy(td->dialog);
                return;
        }
        if (!td->app->health) {
                show_error(td, _("No connection to the daemon"));
                return;
        }
        form = (PsThresholdForm) {
                .cpu_percent = field_text(td, 0),
                .memory_percent = field_text(td, 1),
                .disk_mbps = field_text(td, 2),
                .pressure_percent = field_text(td, 3),
                .min_duration_sec = field_text(td, 4),
        };
        current = ps_health_dup_thresholds(td->app->health);
        if (!current)
                current = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
        if (ps_threshold_form_build(&form, current, &changed, &bad) < 0) {
                g_autofree char *text = g_strdup_printf(_("Not a number: %s"), bad);

                show_error(td, text);
                return;
        }
        if (!changed) {
                gtk_widget_destroy(td->dialog);
                return;
        }
        gtk_widget_hide(td->error);
        set_busy(td, TRUE);
        app_change(td->app, G_DBUS_PROXY(td->app->health), "SetThresholds",
                   g_variant_new("(@a{sv})", changed), set_done, td);
}

static gboolean delete_event(GtkWidget *widget, GdkEvent *event, ThresholdDialog *td)
{
        return td->busy;
}

void ps_threshold_dialog_run(App *app, GtkWindow *parent)
{
        const char *const mnemonics[5] = {
                _("_CPU in %"), _("_Memory in %"), _("_Disk in MB/s"), _("_Pressure in %"),
                _("Minimum d_uration in seconds"),
        };
        const char *const names[5] = {
                _("CPU threshold"), _("Memory threshold"), _("Disk threshold"),
                _("Pressure threshold"), _("Minimum duration"),
        };
        const char *const tips[5] = {
                _("Share of CPU time in use, 1 to 100"),
                _("Share of memory in use, 1 to 100"),
                _("Bytes read plus written per second on the disks, in MB/s"),
                _("Share of time some tasks stalled on CPU, memory or I/O, 1 to 99"),
                _("How long a reading stays over its threshold before an anomaly opens, 0 to 3600"),
        };
        g_autoptr(GVariant) current = NULL;
        ThresholdDialog *td;
        GtkWidget *content, *grid;

        if (!app->health)
                return;
        current = ps_health_dup_thresholds(app->health);
        td = g_new0(ThresholdDialog, 1);
        td->app = app;
        td->dialog = gtk_dialog_new_with_buttons(_("Health thresholds"), parent,
                                                 GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                                 _("_Cancel"), GTK_RESPONSE_CANCEL,
                                                 _("_Set"), GTK_RESPONSE_OK, NULL);
        gtk_dialog_set_default_response(GTK_DIALOG(td->dialog), GTK_RESPONSE_OK);
        g_object_set_data_full(G_OBJECT(td->dialog), "ps-threshold-dialog", td, g_free);
        g_signal_connect(td->dialog, "response", G_CALLBACK(response), td);
        g_signal_connect(td->dialog, "delete-event", G_CALLBACK(delete_event), td);

        grid = gtk_grid_new();
        gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
        content = gtk_dialog_get_content_area(GTK_DIALOG(td->dialog));
        gtk_box_pack_start(GTK_BOX(content), grid, TRUE, TRUE, 0);
        for (guint i = 0; i < G_N_ELEMENTS(keys); i++) {
                g_autofree char *text = current ? ps_threshold_text(current, keys[i]) : NULL;

                td->fields[i] = ps_dialog_field(GTK_GRID(grid), i, mnemonics[i], names[i],
                                                ps_dialog_entry(text, ""), tips[i]);
        }
        td->error = ps_dialog_error_label();
        gtk_grid_attach(GTK_GRID(grid), td->error, 0, G_N_ELEMENTS(keys), 2, 1);
        gtk_widget_show_all(td->dialog);
        gtk_widget_hide(td->error);
        gtk_widget_grab_focus(td->fields[0]);
}
