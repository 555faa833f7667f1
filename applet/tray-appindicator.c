/* SPDX-License-Identifier: MIT */
/*
 * The tray interface on libayatana-appindicator3. The library exports no ToolTip property
 * (its StatusNotifierItem has Title, and the XAyatanaLabel extension): the tooltip goes into
 * the Title, which panels show on hover when an item has no ToolTip.
 */
#include <libayatana-appindicator/app-indicator.h>

#include "tray.h"

struct PsTray {
        AppIndicator *indicator;
        GtkMenu *menu;
};

PsTray *ps_tray_new(const char *id, const char *icon_theme_path, GtkMenu *menu)
{
        PsTray *tray = g_new0(PsTray, 1);

        tray->indicator = app_indicator_new(id, "packetscope-gone",
                                            APP_INDICATOR_CATEGORY_SYSTEM_SERVICES);
        if (icon_theme_path)
                app_indicator_set_icon_theme_path(tray->indicator, icon_theme_path);
        tray->menu = g_object_ref_sink(menu);
        app_indicator_set_menu(tray->indicator, menu);
        app_indicator_set_title(tray->indicator, "packetscope");
        app_indicator_set_status(tray->indicator, APP_INDICATOR_STATUS_ACTIVE);
        return tray;
}

PsTray *ps_tray_free(PsTray *tray)
{
        if (!tray)
                return NULL;
        g_clear_object(&tray->indicator);
        g_clear_object(&tray->menu);
        g_free(tray);
        return NULL;
}

void ps_tray_set_state(PsTray *tray, const char *icon_name, const char *description,
                       gboolean attention)
{
        if (!tray)
                return;
        /* The attention icon is the state's icon too: hosts that show AttentionIconName in
         * the NeedsAttention status show the same picture. */
        app_indicator_set_icon_full(tray->indicator, icon_name, description);
        app_indicator_set_attention_icon_full(tray->indicator, icon_name, description);
        app_indicator_set_status(tray->indicator, attention ? APP_INDICATOR_STATUS_ATTENTION :
                                                              APP_INDICATOR_STATUS_ACTIVE);
}

void ps_tray_set_tooltip(PsTray *tray, const char *title, const char *body)
{
        g_autofree char *text = NULL;

        if (!tray)
                return;
        text = g_strdup_printf("packetscope: %s. %s", title, body);
        /* Unchanged text: no NewTitle signal for nothing (the tray is updated on every poll). */
        if (g_strcmp0(app_indicator_get_title(tray->indicator), text) != 0)
                app_indicator_set_title(tray->indicator, text);
}
