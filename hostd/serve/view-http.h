/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * view-http.h: which of the view's paths an HTTP request on hostd's metrics
 * port asks for, and with what (docs/hostd.md, "The view"). Pure and plain
 * C, like metrics-http.h, so that it is unit-tested and fuzzed alone.
 *
 *   GET /  (or /view, /index.html)   the live page
 *   GET /view.json                   the view, as the control socket's `view`
 *   query: vm=NAME, disk=TARGET, window=1m|1h (each at most once)
 *
 * Anything else is not the view's (the metrics endpoint answers 404 as
 * before). A request for the view's paths that is not a GET, or with a
 * malformed or unknown parameter, or whose Host header names neither an IP
 * address nor localhost, is refused with the reason (400). The Host rule
 * keeps a web page from reading the view through DNS rebinding: a browser
 * that reached hostd through a name another site controls sends that name.
 */
#ifndef HOSTD_VIEW_HTTP_H
#define HOSTD_VIEW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    HOSTD_VIEW_ROUTE_NONE, /* not a view path */
    HOSTD_VIEW_ROUTE_PAGE,
    HOSTD_VIEW_ROUTE_JSON,
    HOSTD_VIEW_ROUTE_BAD, /* a view path, refused: HostdViewQuery.error */
} HostdViewRoute;

/* Names and ids are at most 255 bytes in hostd (disk-spec.h). */
#define HOSTD_VIEW_NAME_MAX 255

typedef struct HostdViewQuery {
    bool has_vm, has_disk, has_window;
    char vm[HOSTD_VIEW_NAME_MAX + 1];
    char disk[HOSTD_VIEW_NAME_MAX + 1];
    char window[3];
    const char *error; /* static text, with HOSTD_VIEW_ROUTE_BAD */
} HostdViewQuery;

/*
 * @head: a complete request head of @len bytes (metrics-http.h decided it is
 * a well-formed request, not GET /metrics). Fills @q.
 */
HostdViewRoute hostd_view_http_route(const char *head, size_t len,
                                     HostdViewQuery *q);

#endif
