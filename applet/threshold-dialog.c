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
} ThresholdDialog;

/* The keys in the order of the fields. */
static const char *const keys[5] = {
        "cpu_percent", "memory_percent", "disk_mbps", "pressure_percent", "min_duration_usec",
};

static void set_done(GObject *source, GAsyncResult *res, gpointer data)
{
        ThresholdDialog *td = data;

        if (ps_dialog_call_finish(td->dialog, td->error, source, res))
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

        if (ps_dialog_busy(td->dialog))
                return;
        if (response_id != GTK_RESPONSE_OK) {
                gtk_widget_destroy(td->dialog);
                return;
        }
        if (!td->app->health) {
                ps_dialog_show_error(td->error, _("No connection to the daemon"));
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

                ps_dialog_show_error(td->error, text);
                return;
        }
        if (!changed) {
                gtk_widget_destroy(td->dialog);
                return;
        }
        gtk_widget_hide(td->error);
        ps_dialog_set_busy(td->dialog, TRUE);
        app_change(td->app, G_DBUS_PROXY(td->app->health), "SetThresholds",
                   g_variant_new("(@a{sv})", changed), set_done, td);
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
        GtkWidget *grid;

        if (!app->health)
                return;
        current = ps_health_dup_thresholds(app->health);
        td = g_new0(ThresholdDialog, 1);
        td->app = app;
        td->dialog = ps_dialog_new(_("Health thresholds"), parent, _("_Set"));
        g_object_set_data_full(G_OBJECT(td->dialog), "ps-threshold-dialog", td, g_free);
        g_signal_connect(td->dialog, "response", G_CALLBACK(response), td);
        grid = ps_dialog_grid(td->dialog);
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
