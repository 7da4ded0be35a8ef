/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands.c: the control protocol's requests (docs/hostd.md).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"

#include <errno.h>
#include <stdlib.h>

static const char *opt_string(JsonObject *o, const char *key)
{
    JsonNode *n = json_object_get_member(o, key);

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(n);
}

static JsonNode *ok_node(void)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static JsonNode *cmd_register(Hostd *h, JsonObject *req)
{
    const char *vm = opt_string(req, "vm");
    const char *sock = opt_string(req, "agent_socket");
    JsonNode *dn = json_object_get_member(req, "disks");
    JsonArray *disks =
        dn && JSON_NODE_HOLDS_ARRAY(dn) ? json_node_get_array(dn) : NULL;
    g_autoptr(GPtrArray) specs = hostd_disk_specs_new();
    g_autoptr(GError) err = NULL;

    if (!vm || !disks)
        return hostd_control_error("register needs \"vm\" and \"disks\"");
    for (guint i = 0; i < json_array_get_length(disks); i++) {
        JsonNode *n = json_array_get_element(disks, i);
        HostdDiskSpec *spec =
            JSON_NODE_HOLDS_OBJECT(n)
                ? hostd_disk_spec_from_json(json_node_get_object(n), &err)
                : NULL;

        if (!spec && !err)
            return hostd_control_error(
                "each disk is an object {\"target\", \"serial\", "
                "\"filter_id\"[, \"remote_id\"]}");
        if (!spec)
            return hostd_control_error("%s", err->message);
        g_ptr_array_add(specs, spec);
    }
    if (!hostd_model_add_vm(h->model, vm, sock, specs, &err))
        return hostd_control_error("%s", err->message);
    g_message("registered VM %s (%u disks)", vm, specs->len);
    return ok_node();
}

static JsonNode *cmd_unregister(Hostd *h, JsonObject *req)
{
    const char *vm = opt_string(req, "vm");

    if (!vm)
        return hostd_control_error("unregister needs \"vm\"");
    if (!hostd_model_stop_vm(h->model, vm))
        return hostd_control_error("no VM '%s'", vm);
    g_message("unregistered VM %s", vm);
    return ok_node();
}

static JsonNode *or_error(JsonNode *n, GError *err)
{
    return n ? n : hostd_control_error("%s", err->message);
}

JsonNode *hostd_handle_request(void *opaque, JsonObject *req)
{
    Hostd *h = opaque;
    const char *cmd = opt_string(req, "cmd");
    const char *vm = opt_string(req, "vm");
    const char *disk = opt_string(req, "disk");
    const char *window = opt_string(req, "window");
    g_autoptr(GError) err = NULL;

    if (!cmd)
        return hostd_control_error("a request needs \"cmd\"");
    if (g_str_equal(cmd, "status"))
        return hostd_report_status(h);
    if (g_str_equal(cmd, "register"))
        return cmd_register(h, req);
    if (g_str_equal(cmd, "unregister"))
        return cmd_unregister(h, req);
    if (g_str_equal(cmd, "report")) {
        JsonNode *n = hostd_report(
            h, vm, disk, window ? window : "1m",
            json_object_get_boolean_member_with_default(req, "buckets", FALSE),
            &err);
        return or_error(n, err);
    }
    if (g_str_equal(cmd, "view")) {
        JsonNode *n = hostd_view(h, vm, disk, window ? window : "1h", &err);
        return or_error(n, err);
    }
    if (g_str_equal(cmd, "tail")) {
        JsonNode *n =
            hostd_report_tail(h, vm, disk, window ? window : "1m", &err);
        return or_error(n, err);
    }
    if (g_str_equal(cmd, "history")) {
        JsonNode *m = json_object_get_member(req, "minutes");
        int64_t minutes = m && JSON_NODE_HOLDS_VALUE(m) &&
                                  json_node_get_value_type(m) == G_TYPE_INT64
                              ? json_node_get_int(m)
                              : 60;
        JsonNode *n;

        if (!vm || minutes < 1 || minutes > 366 * 24 * 60)
            return hostd_control_error(
                "history needs \"vm\" and 1 <= \"minutes\" <= a year");
        n = hostd_report_history(h, vm, disk, minutes, &err);
        return or_error(n, err);
    }
    if (g_str_equal(cmd, "trace")) {
        const char *id = opt_string(req, "id");
        char *end = NULL;
        guint64 v;

        if (!id)
            return hostd_control_error("trace needs \"id\" (hex)");
        errno = 0;
        v = g_ascii_strtoull(id, &end, 16);
        if (errno || !*id || *end)
            return hostd_control_error("trace id '%s' is not hex", id);
        JsonNode *n = hostd_report_trace(h, v, &err);
        return or_error(n, err);
    }
    return hostd_control_error("unknown command '%s'", cmd);
}
