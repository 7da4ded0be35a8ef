/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics-http.h: what the metrics endpoint makes of the bytes a client
 * has sent so far (metrics.c reads, this decides). Pure, so that it can be
 * fuzzed on its own (tests/fuzz/fuzz-metrics-http.c).
 */
#ifndef HOSTD_METRICS_HTTP_H
#define HOSTD_METRICS_HTTP_H

#include <stddef.h>

#include "serve-limits.h"

#define HOSTD_HTTP_REQUEST_MAX HOSTD_SERVE_METRICS_REQUEST_MAX

typedef enum {
    HOSTD_HTTP_MORE,        /* no complete request head yet: read on */
    HOSTD_HTTP_METRICS,     /* GET /metrics: 200 with the exposition */
    HOSTD_HTTP_NOT_FOUND,   /* a well-formed request for anything else */
    HOSTD_HTTP_BAD_REQUEST, /* not HTTP, or a head larger than @max */
    HOSTD_HTTP_BUSY,        /* (not a reading's result) 503: answers pile up */
} HostdHttpDecision;

/*
 * @buf: the first @len bytes received (any bytes, NULs included), of at
 * most @max the server will read. A head ends at the first blank line
 * ("\r\n\r\n" or "\n\n"); only its request line matters: "GET", one space,
 * a target, one space, "HTTP/1.x". The target "/metrics", with or without
 * a query, gets the metrics.
 */
HostdHttpDecision hostd_metrics_http_decide(const char *buf, size_t len,
                                            size_t max);

/* The status line's code and reason for a final decision. */
const char *hostd_metrics_http_status(HostdHttpDecision d);

/*
 * A request head arriving in pieces, as the socket gives them: at most
 * HOSTD_HTTP_REQUEST_MAX bytes are ever held, and the decision is taken
 * only after a piece that brought a line feed (a head ends with one), so
 * a client trickling bytes costs no rescans. Once the decision is final
 * the reader takes nothing more.
 */
typedef struct HostdHttpReader {
    size_t got;
    HostdHttpDecision d;
    char buf[HOSTD_HTTP_REQUEST_MAX];
} HostdHttpReader;

void hostd_http_reader_init(HostdHttpReader *r);
/* Where the next bytes go, and *@room how many (0 once decided). */
char *hostd_http_reader_space(HostdHttpReader *r, size_t *room);
/* @n (<= room) bytes were put there: the decision so far. */
HostdHttpDecision hostd_http_reader_commit(HostdHttpReader *r, size_t n);
/* Copies in what fits of @n bytes (*@taken: how many); the decision. */
HostdHttpDecision hostd_http_reader_feed(HostdHttpReader *r, const void *data,
                                         size_t n, size_t *taken);

#endif
