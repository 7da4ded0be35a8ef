/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export-config.c: the exporters' sections of hostd.conf (export-config.h).
 * Apart from config.c, which the config fuzzer builds alone.
 */
#define G_LOG_DOMAIN "blkin-hostd"

#include "export-config.h"

#define DEFAULT_CONFIG "/etc/blkin/hostd.conf"

gboolean hostd_export_config_load(const char *path, const char *group,
                                  const char *url, HostdHttpConfig **out,
                                  char **encoding, GError **err)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) e = NULL;

    *out = NULL;
    if (encoding)
        *encoding = NULL;
    if (!path && g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
        path = DEFAULT_CONFIG;
    if (path && !*path)
        path = NULL; /* "": no file */
    if (path && !g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s: %s",
                    path, e->message);
        return FALSE;
    }
    if (!path || !g_key_file_has_group(kf, group)) {
        if (!url)
            return TRUE;
        *out = hostd_http_config_new(url, err);
        return *out != NULL;
    }
    *out = hostd_http_config_from_keyfile(kf, group, url, err);
    if (!*out) {
        g_prefix_error(err, "%s: ", path);
        return FALSE;
    }
    if (encoding)
        *encoding = g_key_file_get_string(kf, group, "encoding", NULL);
    return TRUE;
}
