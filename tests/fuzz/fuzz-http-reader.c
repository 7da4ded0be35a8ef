/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-http-reader.c: the metrics endpoint's request reading
 * (hostd/serve/metrics-http.c HostdHttpReader) as hostd/serve/metrics.c drives it, the
 * bytes arriving in pieces whose sizes the fuzzer picks.
 *
 * Input: pieces, each a length byte (bit 0: feed(), else space() and
 * commit() as metrics.c reads) and up to that many bytes.
 *
 * Checked besides memory safety: the reader never holds more than its
 * buffer; "read on" only while the buffer has room; once final, the
 * decision takes no more bytes and does not change; it is the decision
 * the same bytes get when they arrive at once (however they were cut);
 * only a request line that is exactly a GET of /metrics gets the metrics.
 */
#include "fuzz.h"

#include "serve/metrics-http.h"

#include <string.h>

static HostdHttpReader r, whole;
static char all[1 << 20];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, n_all = 0, taken;
    HostdHttpDecision d = HOSTD_HTTP_MORE, w;

    hostd_http_reader_init(&r);
    while (off < size) {
        size_t want = data[off], n, room;
        int direct = data[off] & 1;
        const uint8_t *piece = data + off + 1;

        off++;
        n = want < size - off ? want : size - off;
        off += n;
        if (n_all + n <= sizeof(all)) {
            memcpy(all + n_all, piece, n);
            n_all += n;
        }
        if (direct) {
            char *at = hostd_http_reader_space(&r, &room);

            if (room > n)
                room = n;
            memcpy(at, piece, room);
            taken = room;
            w = hostd_http_reader_commit(&r, room);
        } else {
            w = hostd_http_reader_feed(&r, piece, n, &taken);
        }
        FUZZ_CHECK(r.got <= sizeof(r.buf));
        if (d != HOSTD_HTTP_MORE) {
            /* Final: nothing more taken, nothing changed. */
            FUZZ_CHECK(taken == 0 && w == d);
            continue;
        }
        d = w;
        FUZZ_CHECK(d != HOSTD_HTTP_BUSY);
        FUZZ_CHECK(d != HOSTD_HTTP_MORE || r.got < sizeof(r.buf));
        /* What did not fit is not taken only when the buffer is full or
         * the decision final. */
        FUZZ_CHECK(taken == n || d != HOSTD_HTTP_MORE);
    }
    /* The same bytes at once. */
    hostd_http_reader_init(&whole);
    hostd_http_reader_feed(&whole, all, n_all, &taken);
    w = whole.d;
    FUZZ_CHECK(w == d);
    if (d == HOSTD_HTTP_METRICS)
        FUZZ_CHECK(r.got >= 13 && memcmp(r.buf, "GET /metrics", 12) == 0 &&
                   (r.buf[12] == ' ' || r.buf[12] == '?'));
    return 0;
}
