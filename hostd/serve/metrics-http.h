/*
 * metrics-http.h: what the metrics endpoint makes of the bytes a client
 * has sent so far (metrics.c reads, this decides). Pure, so that it can be
 * fuzzed on its own (tests/fuzz/fuzz-metrics-http.c).
 */
#ifndef HOSTD_METRICS_HTTP_H
#define HOSTD_METRICS_HTTP_H

#include <stddef.h>

typedef enum {
    HOSTD_HTTP_MORE,        /* no complete request head yet: read on */
    HOSTD_HTTP_METRICS,     /* GET /metrics: 200 with the exposition */
    HOSTD_HTTP_NOT_FOUND,   /* a well-formed request for anything else */
    HOSTD_HTTP_BAD_REQUEST, /* not HTTP, or a head larger than @max */
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

#endif
