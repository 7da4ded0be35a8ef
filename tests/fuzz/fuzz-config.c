/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-config.c: hostd's config file parser (hostd/config.c). The input is
 * written to a file, as hostd reads it from /etc/blkin/hostd.conf; whatever
 * it holds, the parser either fills the settings or says why not.
 */
#include "fuzz.h"

#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static char *path;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *socket_path = NULL, *state_dir = NULL, *live_url = NULL;
    char *metrics = NULL;
    int hold_ms = 800, retention_days = 30;
    char **vms = NULL;
    GError *err = NULL;
    gboolean ok;

    if (!path)
        path = g_strdup_printf("%s/blkin-fuzz-config.%d", g_get_tmp_dir(),
                               (int)getpid());
    if (!g_file_set_contents(path, (const char *)data, size, NULL))
        abort();
    ok = hostd_config_load(path, &socket_path, &state_dir, &live_url, &metrics,
                           &hold_ms, &retention_days, &vms, &err);
    FUZZ_CHECK(ok != (err != NULL));
    if (ok) {
        FUZZ_CHECK(hold_ms >= 0 && retention_days >= 0);
        FUZZ_CHECK(vms);
        for (char **v = vms; *v; v++)
            FUZZ_CHECK(strchr(*v, ':'));
    }
    g_clear_error(&err);
    /* The clients' limits, from the same file. */
    {
        HostdServeLimits l = HOSTD_SERVE_LIMITS_DEFAULT;

        ok = hostd_config_load_limits(path, &l, &err);
        FUZZ_CHECK(ok != (err != NULL));
        if (ok)
            FUZZ_CHECK(l.max_clients >= 2 && l.max_control_clients >= 1 &&
                       l.max_metrics_clients >= 1 && l.control_idle_s >= 1 &&
                       l.control_queue_max >= 64 * 1024);
        g_clear_error(&err);
    }
    g_free(socket_path);
    g_free(state_dir);
    g_free(live_url);
    g_free(metrics);
    g_strfreev(vms);
    g_unlink(path);
    return 0;
}
