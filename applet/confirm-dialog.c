/* SPDX-License-Identifier: MIT */
/*
 * The confirm dialog of a change that is hard to take back by accident (panic mode, lifting a
 * ban): it says what the change does, and asks the daemon only once the user confirmed. Like
 * the ban dialog it stays open until the daemon said yes, and shows what it said otherwise
 * (polkit's refusal above all), so that a refused change is never mistaken for a done one.
 */
#include <glib/gi18n.h>

#include "applet.h"

typedef struct ConfirmDialog {
        App *app;
        GtkWidget *dialog;
        GtkWidget *error;
        GDBusProxy *proxy;
        char *method;
        GVariant *params;
} ConfirmDialog;

static void confirm_dialog_free(ConfirmDialog *cd)
{
        g_object_unref(cd->proxy);
        g_free(cd->method);
        g_variant_unref(cd->params);
        g_free(cd);
}

static void confirm_done(GObject *source, GAsyncResult *res, gpointer data)
{
        ConfirmDialog *cd = data;

        if (!ps_dialog_call_finish(cd->dialog, cd->error, source, res))
                return;
        app_update(cd->app);
        gtk_widget_destroy(cd->dialog);
}

static void response(GtkDialog *dialog, int response_id, ConfirmDialog *cd)
{
        if (ps_dialog_busy(cd->dialog))
                return;
        if (response_id != GTK_RESPONSE_OK) {
                gtk_widget_destroy(cd->dialog);
                return;
        }
        gtk_widget_hide(cd->error);
        ps_dialog_set_busy(cd->dialog, TRUE);
        app_change(cd->app, cd->proxy, cd->method, g_variant_ref(cd->params), confirm_done, cd);
}

/* text: what the change does, one label per line; the last line is the question. */
void ps_confirm_dialog_run(App *app, GtkWindow *parent, const char *title,
                           const char *const *text, const char *ok_label, GDBusProxy *proxy,
                           const char *method, GVariant *params)
{
        ConfirmDialog *cd = g_new0(ConfirmDialog, 1);
        GtkWidget *content, *box;

        cd->app = app;
        cd->proxy = g_object_ref(proxy);
        cd->method = g_strdup(method);
        cd->params = g_variant_ref_sink(params);
        cd->dialog = ps_dialog_new(title, parent, ok_label);
        /* Enter cancels: the change is confirmed by its own button only. */
        gtk_dialog_set_default_response(GTK_DIALOG(cd->dialog), GTK_RESPONSE_CANCEL);
        g_object_set_data_full(G_OBJECT(cd->dialog), "ps-confirm-dialog", cd,
                               (GDestroyNotify) confirm_dialog_free);
        g_signal_connect(cd->dialog, "response", G_CALLBACK(response), cd);

        box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
        gtk_container_set_border_width(GTK_CONTAINER(box), 12);
        content = gtk_dialog_get_content_area(GTK_DIALOG(cd->dialog));
        gtk_box_pack_start(GTK_BOX(content), box, TRUE, TRUE, 0);
        for (; *text; text++) {
                GtkWidget *label = gtk_label_new(*text);

                gtk_label_set_xalign(GTK_LABEL(label), 0);
                gtk_label_set_line_wrap(GTK_LABEL(label), TRUE);
                gtk_label_set_max_width_chars(GTK_LABEL(label), 60);
                gtk_box_pack_start(GTK_BOX(box), label, FALSE, FALSE, 0);
        }
        cd->error = ps_dialog_error_label();
        gtk_box_pack_start(GTK_BOX(box), cd->error, FALSE, FALSE, 0);
        gtk_widget_show_all(cd->dialog);
        gtk_widget_hide(cd->error);
}

void ps_panic_dialog_run(App *app, GtkWindow *parent, gboolean enable)
{
        const char *enter[] = {
                _("In panic mode every guarded interface drops all received traffic except "
                  "management traffic (ManagementAddresses= and ManagementPorts= in "
                  "packetscope.conf), until panic mode is left. It survives a restart of the "
                  "daemon."),
                _("Enter panic mode now?"),
                NULL
        };
        const char *leave[] = {
                _("The guarded interfaces pass traffic again, as their filter rules say."),
                _("Leave panic mode now?"),
                NULL
        };

        if (!app->manager)
                return;
        ps_confirm_dialog_run(app, parent, enable ? _("Enter panic mode") : _("Leave panic mode"),
                              enable ? enter : leave,
                              enable ? _("_Enter panic mode") : _("_Leave panic mode"),
                              G_DBUS_PROXY(app->manager), "SetPanic",
                              g_variant_new("(b)", enable));
}
