/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config.c: the config file (config.h).
 */
#define G_LOG_DOMAIN "blkin-hostd"

#include "config.h"

#include <string.h>

#define DEFAULT_CONFIG "/etc/blkin/hostd.conf"

static void take_string(GKeyFile *kf, const char *key, char **out)
{
    if (!*out)
        *out = g_key_file_get_string(kf, "hostd", key, NULL);
}

static gboolean take_int(GKeyFile *kf, const char *key, int *out, GError **err)
{
    g_autoptr(GError) e = NULL;
    int v;

    if (!g_key_file_has_key(kf, "hostd", key, NULL))
        return TRUE;
    v = g_key_file_get_integer(kf, "hostd", key, &e);
    if (e || v < 0) {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "[hostd] %s must be a non-negative whole number", key);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

gboolean hostd_config_load(const char *path, char **socket_path,
                           char **state_dir, char **live_url, char **metrics,
                           int *hold_ms, int *retention_days, char ***vms,
                           GError **err)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GPtrArray) specs = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) groups = NULL;
    g_autoptr(GError) e = NULL;

    if (!path) {
        if (!g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
            return TRUE;
        path = DEFAULT_CONFIG;
    }
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s: %s",
                    path, e->message);
        return FALSE;
    }
    take_string(kf, "socket", socket_path);
    take_string(kf, "state-dir", state_dir);
    take_string(kf, "live", live_url);
    take_string(kf, "metrics", metrics);
    /* Integers: the file's value only where the flag kept its default. */
    if ((*hold_ms == 800 && !take_int(kf, "hold-ms", hold_ms, err)) ||
        (*retention_days == 30 &&
         !take_int(kf, "retention-days", retention_days, err)))
        return FALSE;

    for (char **v = *vms; v && *v; v++)
        g_ptr_array_add(specs, g_strdup(*v));
    groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        g_autofree char *sock = NULL, *disks = NULL;

        if (!g_str_has_prefix(*g, "vm "))
            continue;
        sock = g_key_file_get_string(kf, *g, "agent-socket", NULL);
        disks = g_key_file_get_string(kf, *g, "disks", NULL);
        if (!disks) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                        "%s: [%s] has no disks", path, *g);
            return FALSE;
        }
        g_strdelimit(disks, ";", ',');
        g_ptr_array_add(specs, g_strdup_printf("%s:%s:%s", *g + 3,
                                               sock ? sock : "", disks));
    }
    g_ptr_array_add(specs, NULL);
    g_strfreev(*vms);
    /* The array's segment (and so its strings) goes to the caller. */
    g_ptr_array_set_free_func(specs, NULL);
    *vms = (char **)g_ptr_array_free(g_steal_pointer(&specs), FALSE);
    return TRUE;
}

gboolean hostd_config_load_bool(const char *path, const char *key,
                                gboolean *out, GError **err)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) e = NULL;
    gboolean v;

    if (*out)
        return TRUE;
    if (!path) {
        if (!g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
            return TRUE;
        path = DEFAULT_CONFIG;
    }
    /* hostd_config_load has read it already: errors are reported there. */
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL) ||
        !g_key_file_has_key(kf, "hostd", key, NULL))
        return TRUE;
    v = g_key_file_get_boolean(kf, "hostd", key, &e);
    if (e) {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "[hostd] %s must be true or false", key);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

gboolean hostd_config_load_string(const char *path, const char *key, char **out,
                                  GError **err)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();

    if (*out)
        return TRUE;
    if (!path) {
        if (!g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
            return TRUE;
        path = DEFAULT_CONFIG;
    }
    /* hostd_config_load has read it already: errors are reported there. */
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
        return TRUE;
    take_string(kf, key, out);
    return TRUE;
}

gboolean hostd_config_load_limits(const char *path, HostdServeLimits *limits,
                                  GError **err)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    static const struct {
        const char *key;
        gsize offset;
        int min, scale;
    } keys[] = {
        {"max-clients", G_STRUCT_OFFSET(HostdServeLimits, max_clients), 2, 1},
        {"max-control-clients",
         G_STRUCT_OFFSET(HostdServeLimits, max_control_clients), 1, 1},
        {"max-metrics-clients",
         G_STRUCT_OFFSET(HostdServeLimits, max_metrics_clients), 1, 1},
        {"control-idle-s", G_STRUCT_OFFSET(HostdServeLimits, control_idle_s), 1,
         1},
        {"control-queue-kib",
         G_STRUCT_OFFSET(HostdServeLimits, control_queue_max), 64, 1024},
    };

    if (!path) {
        if (!g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
            return TRUE;
        path = DEFAULT_CONFIG;
    }
    /* hostd_config_load has read it already: errors are reported there. */
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
        return TRUE;
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        int v = -1;

        if (!take_int(kf, keys[i].key, &v, err))
            return FALSE;
        if (v == -1)
            continue;
        if (v < keys[i].min) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "[hostd] %s must be at least %d", keys[i].key,
                        keys[i].min);
            return FALSE;
        }
        if (keys[i].scale == 1)
            G_STRUCT_MEMBER(unsigned, limits, keys[i].offset) = (unsigned)v;
        else
            G_STRUCT_MEMBER(size_t, limits, keys[i].offset) =
                (size_t)v * keys[i].scale;
    }
    return TRUE;
}
