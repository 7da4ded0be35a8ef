/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * view-serve.c: the view on hostd's HTTP port (docs/hostd.md, "The view"):
 * the live page (view/, the same page `blkin report --html` writes, with no
 * data: it fetches /view.json every second) and /view.json (view.c). The
 * paths are told by view-http.c; connections, their limits, deadlines and
 * non-blocking writes are the metrics endpoint's (metrics.c).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"

#include "blkin-view.h"
#include "view-http.h"

#include <stdlib.h>

static char *json_error(const char *fmt, const char *detail)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) n = NULL;
    g_autofree char *msg = g_strdup_printf(fmt, detail);
    g_autofree char *text = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, FALSE);
    json_builder_set_member_name(b, "error");
    json_builder_add_string_value(b, msg);
    json_builder_end_object(b);
    n = json_builder_get_root(b);
    text = json_to_string(n, FALSE);
    return g_strconcat(text, "\n", NULL);
}

char *hostd_view_http(void *opaque, const char *head, size_t len,
                      const char **status, const char **type)
{
    Hostd *h = opaque;
    HostdViewQuery q;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) view = NULL;
    char *page, *body;

    switch (hostd_view_http_route(head, len, &q)) {
    case HOSTD_VIEW_ROUTE_NONE:
        return NULL;
    case HOSTD_VIEW_ROUTE_BAD:
        *status = "400 Bad Request";
        *type = "application/json";
        return json_error("bad request: %s", q.error);
    case HOSTD_VIEW_ROUTE_PAGE:
        page = blkin_view_page(NULL, 0, NULL);
        if (!page)
            g_error("out of memory");
        body = g_strdup(page);
        free(page);
        *status = "200 OK";
        *type = "text/html; charset=utf-8";
        return body;
    case HOSTD_VIEW_ROUTE_JSON:
        break;
    }
    *type = "application/json";
    view = hostd_view(h, q.has_vm ? q.vm : NULL, q.has_disk ? q.disk : NULL,
                      q.has_window ? q.window : "1m", &err);
    if (!view) {
        *status = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)
                      ? "404 Not Found"
                      : "400 Bad Request";
        return json_error("%s", err->message);
    }
    *status = "200 OK";
    return json_to_string(view, FALSE);
}
