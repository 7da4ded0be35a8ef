/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-glib.h: for the harnesses that run GLib code (hostd). hostd logs a
 * line per registration, refusal or breach -- right for a daemon, but a
 * fuzzer doing that thousands of times a second spends its time writing
 * them. Criticals (a GLib precondition broken: a bug, even where GLib
 * returns instead of crashing) abort, so the fuzzer reports the input.
 */
#ifndef FUZZ_GLIB_H
#define FUZZ_GLIB_H

#include <glib.h>

static void fuzz_glib_log(const gchar *domain, GLogLevelFlags level,
                          const gchar *message, gpointer user)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        g_log_default_handler(domain, level, message, user);
}

static inline void fuzz_glib_quiet(void)
{
    static int done;

    if (!done) {
        g_log_set_default_handler(fuzz_glib_log, NULL);
        g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
        done = 1;
    }
}

#endif
