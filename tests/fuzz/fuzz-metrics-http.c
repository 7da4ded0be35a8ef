/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-metrics-http.c: the metrics endpoint's request parsing
 * (hostd/serve/metrics-http.c) as hostd/serve/metrics.c drives it: the client's
 * bytes arrive in reads of a size the first input byte picks, into a buffer of
 * the server's size, and are judged after every read that brought a line
 * feed (or filled the buffer).
 *
 * Checked besides memory safety: the decision does not depend on how the
 * bytes were cut into reads (once final, more bytes do not change it);
 * "read on" is only said while the buffer has room, so a client cannot
 * hold a scrape open by filling it; and only a request line that is
 * exactly a GET of /metrics gets the metrics.
 */
#include "fuzz.h"

#include "serve/metrics-http.h"

#include <string.h>

#define MAX 8192 /* metrics.c REQUEST_MAX */

static char buf[MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HostdHttpDecision d = HOSTD_HTTP_MORE;
    size_t chunk, got = 0, off = 1, whole;
    const char *status;

    if (size < 1)
        return 0;
    chunk = (size_t)1 << (data[0] % 14); /* 1 .. 8192 bytes a read */
    while (off < size && got < MAX) {
        size_t n = size - off;

        if (n > chunk)
            n = chunk;
        if (n > MAX - got)
            n = MAX - got;
        memcpy(buf + got, data + off, n);
        got += n;
        off += n;
        /* As metrics.c: a head can only end with a new line feed. */
        if (!memchr(buf + got - n, '\n', n) && got < MAX)
            continue;
        d = hostd_metrics_http_decide(buf, got, MAX);
        if (d != HOSTD_HTTP_MORE)
            break;
    }
    FUZZ_CHECK(d != HOSTD_HTTP_MORE || got < MAX);
    /* The same bytes at once: the same answer. */
    FUZZ_CHECK(hostd_metrics_http_decide(buf, got, MAX) == d);
    if (d != HOSTD_HTTP_MORE) {
        /* Everything the client sent, as far as the buffer goes: a decision
         * taken on a prefix stands. */
        whole = size - 1 < MAX ? size - 1 : MAX;
        memcpy(buf, data + 1, whole);
        FUZZ_CHECK(hostd_metrics_http_decide(buf, whole, MAX) == d);
        status = hostd_metrics_http_status(d);
        FUZZ_CHECK(status && strlen(status) > 4 && status[3] == ' ');
    }
    if (d == HOSTD_HTTP_METRICS)
        FUZZ_CHECK(got >= 13 && memcmp(buf, "GET /metrics", 12) == 0 &&
                   (buf[12] == ' ' || buf[12] == '?'));
    return 0;
}
