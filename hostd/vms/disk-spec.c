/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-spec.c: typed disk registrations (disk-spec.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "disk-spec.h"

#include <gio/gio.h>
#include <string.h>

#define PART_MAX 255

static gboolean valid_part(const char *s)
{
    if (!s || !*s || strlen(s) > PART_MAX)
        return FALSE;
    for (; *s; s++)
        if (!g_ascii_isgraph(*s))
            return FALSE;
    return TRUE;
}

HostdDiskSpec *hostd_disk_spec_new(const char *target, const char *serial,
                                   const char *filter_id, const char *remote_id,
                                   GError **err)
{
    HostdDiskSpec *s;
    const struct {
        const char *name, *value;
    } parts[] = {{"target", target},
                 {"serial", serial},
                 {"filter id", filter_id},
                 {"remote filter id", remote_id}};

    for (guint i = 0; i < G_N_ELEMENTS(parts); i++) {
        if (i == 3 && !remote_id)
            break;
        if (!valid_part(parts[i].value)) {
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "disk %s: invalid %s (1 to %d printable characters, "
                        "no spaces)",
                        target && valid_part(target) ? target : "?",
                        parts[i].name, PART_MAX);
            return NULL;
        }
    }
    s = g_new0(HostdDiskSpec, 1);
    s->target = g_strdup(target);
    s->serial = g_strdup(serial);
    s->filter_id = g_strdup(filter_id);
    s->remote_id = g_strdup(remote_id);
    return s;
}

void hostd_disk_spec_free(HostdDiskSpec *s)
{
    if (!s)
        return;
    g_free(s->target);
    g_free(s->serial);
    g_free(s->filter_id);
    g_free(s->remote_id);
    g_free(s);
}

HostdDiskSpec *hostd_disk_spec_parse(const char *text, GError **err)
{
    g_auto(GStrv) f = g_strsplit(text, "=", 4);
    guint n = g_strv_length(f);

    if (n != 3 && n != 4) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "disk '%s': expected TARGET=SERIAL=FILTER-ID"
                    "[=REMOTE-FILTER-ID]",
                    text);
        return NULL;
    }
    return hostd_disk_spec_new(f[0], f[1], f[2], n == 4 ? f[3] : NULL, err);
}

static const char *member_str(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n && JSON_NODE_HOLDS_VALUE(n) &&
                   json_node_get_value_type(n) == G_TYPE_STRING
               ? json_node_get_string(n)
               : NULL;
}

HostdDiskSpec *hostd_disk_spec_from_json(JsonObject *o, GError **err)
{
    JsonNode *remote = json_object_get_member(o, "remote_id");

    if (remote && !JSON_NODE_HOLDS_NULL(remote) &&
        !member_str(o, "remote_id")) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "disk: \"remote_id\" must be a string");
        return NULL;
    }
    return hostd_disk_spec_new(member_str(o, "target"), member_str(o, "serial"),
                               member_str(o, "filter_id"),
                               member_str(o, "remote_id"), err);
}

void hostd_disk_spec_to_json(const HostdDiskSpec *s, JsonBuilder *b)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "target");
    json_builder_add_string_value(b, s->target);
    json_builder_set_member_name(b, "serial");
    json_builder_add_string_value(b, s->serial);
    json_builder_set_member_name(b, "filter_id");
    json_builder_add_string_value(b, s->filter_id);
    if (s->remote_id) {
        json_builder_set_member_name(b, "remote_id");
        json_builder_add_string_value(b, s->remote_id);
    }
    json_builder_end_object(b);
}

char *hostd_disk_spec_to_string(const HostdDiskSpec *s)
{
    return s->remote_id ? g_strdup_printf("%s=%s=%s=%s", s->target, s->serial,
                                          s->filter_id, s->remote_id)
                        : g_strdup_printf("%s=%s=%s", s->target, s->serial,
                                          s->filter_id);
}

gboolean hostd_disk_spec_equal(const HostdDiskSpec *a, const HostdDiskSpec *b)
{
    return !g_strcmp0(a->target, b->target) &&
           !g_strcmp0(a->serial, b->serial) &&
           !g_strcmp0(a->filter_id, b->filter_id) &&
           !g_strcmp0(a->remote_id, b->remote_id);
}

GPtrArray *hostd_disk_specs_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)hostd_disk_spec_free);
}
