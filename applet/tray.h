/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The tray icon behind a small interface: today libayatana-appindicator3 (a
 * StatusNotifierItem on the session bus, with the menu exported over dbusmenu); a
 * hand-written StatusNotifierItem can replace tray-appindicator.c without the rest of the
 * applet noticing.
 */

#include <gtk/gtk.h>

typedef struct PsTray PsTray;

/* id: the item's stable id; icon_theme_path: a directory holding hicolor-style icons, or
 * NULL for the installed theme; menu: shown on click (the tray keeps a reference). */
PsTray *ps_tray_new(const char *id, const char *icon_theme_path, GtkMenu *menu);
PsTray *ps_tray_free(PsTray *tray);

/* attention: the state asks for the user's eye (the item's Status NeedsAttention). */
void ps_tray_set_state(PsTray *tray, const char *icon_name, const char *description,
                       gboolean attention);
void ps_tray_set_tooltip(PsTray *tray, const char *title, const char *body);
