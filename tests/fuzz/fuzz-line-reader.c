/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-line-reader.c: the control socket's line assembly
 * (hostd/serve/serve-buf.c HostdLineReader) as hostd/serve/control.c drives it, with
 * the bytes arriving in pieces whose sizes the fuzzer picks.
 *
 * Input: one byte picking the line limit (bit 7: the real 64 KiB, else 1 to
 * 128 bytes, so that over-long lines are common), then pieces, each a
 * length byte and up to that many bytes; bit 0 of the length byte picks how
 * the piece goes in (feed(), or space() and commit() as control.c reads).
 *
 * Checked against a plain model of the bytes taken: every line returned is
 * the next one of them, and no longer than the limit; MORE only while no
 * line feed waits and the unfinished line is within the limit; TOO_LONG as
 * soon as it is not (never later: the reader holds at most the limit plus
 * one byte, whatever arrives), and from then on; nothing is refused while
 * there is room.
 */
#include "fuzz.h"

#include "serve/serve-buf.h"

#include <string.h>

#define CONTROL_MAX                                                            \
    (64 * 1024) /* serve-limits.h HOSTD_SERVE_CONTROL_LINE_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HostdLineReader r;
    gsize max, off = 1, pos = 0, taken = 0;
    char *model;
    gboolean too_long = FALSE;

    if (size < 1)
        return 0;
    max = (data[0] & 0x80) ? CONTROL_MAX : 1 + (data[0] & 0x7f);
    hostd_line_reader_init(&r, max);
    model = g_malloc(size + 1);
    while (off < size && !too_long) {
        gsize want = data[off], n, got = 0;
        gboolean direct = data[off] & 1;
        const uint8_t *piece = data + off + 1;

        off++;
        n = MIN(want, size - off);
        off += n;
        /* The piece goes in as the room allows, lines drained between. */
        while (!too_long) {
            const char *line;
            gsize len;
            HostdLineStatus st;
            gsize took;

            if (direct) {
                gsize room;
                char *at = hostd_line_reader_space(&r, n - got, &room);

                FUZZ_CHECK(room <= n - got);
                if (room)
                    memcpy(at, piece + got, room);
                hostd_line_reader_commit(&r, room);
                took = room;
            } else {
                took = hostd_line_reader_feed(&r, piece + got, n - got);
            }
            memcpy(model + taken, piece + got, took);
            taken += took;
            got += took;
            /* Never more than the limit and its line feed held. */
            FUZZ_CHECK(r.cap <= max + 1 && r.len <= r.cap);
            while ((st = hostd_line_reader_next(&r, &line, &len)) ==
                   HOSTD_LINE_READY) {
                const char *nl = memchr(model + pos, '\n', taken - pos);

                FUZZ_CHECK(nl);
                FUZZ_CHECK(len == (gsize)(nl - (model + pos)));
                FUZZ_CHECK(len <= max);
                FUZZ_CHECK(memcmp(line, model + pos, len) == 0);
                pos += len + 1;
            }
            FUZZ_CHECK(!memchr(model + pos, '\n', taken - pos));
            FUZZ_CHECK(hostd_line_reader_pending(&r) == taken - pos);
            if (st == HOSTD_LINE_TOO_LONG) {
                FUZZ_CHECK(taken - pos == max + 1);
                /* It stays refused. */
                FUZZ_CHECK(hostd_line_reader_ready(&r));
                FUZZ_CHECK(hostd_line_reader_next(&r, &line, &len) ==
                           HOSTD_LINE_TOO_LONG);
                too_long = TRUE;
                break;
            }
            FUZZ_CHECK(taken - pos <= max);
            FUZZ_CHECK(!hostd_line_reader_ready(&r));
            if (got == n)
                break;
            /* Bytes left over with no line waiting: there was room. */
            FUZZ_CHECK(took > 0);
        }
    }
    hostd_line_reader_clear(&r);
    g_free(model);
    return 0;
}
