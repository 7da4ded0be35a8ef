/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-out-queue.c: the control socket's queue of unread answers
 * (hostd/serve/serve-buf.c HostdOutQueue) and its writes to a socket that takes
 * what it has room for, as hostd/serve/control.c uses them.
 *
 * Input: one byte picking the bound (64 bytes to 16 KiB), then operations:
 * push N bytes (an answer), or flush through a writer that takes up to K
 * bytes per call, says EAGAIN after a number of calls, or fails.
 *
 * Checked against a model: what comes out is exactly what was queued, in
 * order; an answer is refused exactly when answers are queued and it would
 * take the queue beyond its bound (so the queue holds at most the bound or
 * a single answer); flush says "all written" exactly when nothing is left.
 */
#include "fuzz.h"

#include "serve/serve-buf.h"

#include <errno.h>
#include <string.h>

typedef struct Sink {
    gsize per_call; /* bytes taken per call at most; 0: EAGAIN at once */
    int calls;      /* calls before EAGAIN */
    gboolean fail;  /* EPIPE on the first call */
    guint8 *out;
    gsize n_out;
} Sink;

static gssize sink_write(void *opaque, const void *buf, gsize n)
{
    Sink *s = opaque;
    gsize k;

    if (s->fail) {
        errno = EPIPE;
        return -1;
    }
    if (s->calls-- <= 0 || s->per_call == 0) {
        errno = EAGAIN;
        return -1;
    }
    k = MIN(n, s->per_call);
    memcpy(s->out + s->n_out, buf, k);
    s->n_out += k;
    return (gssize)k;
}

/* Byte @i of everything ever queued: checkable without keeping it. */
static guint8 pattern(gsize i)
{
    return (guint8)(i * 131 + (i >> 8));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HostdOutQueue q;
    gsize max, queued = 0, pushed = 0, written = 0, off = 1;
    gsize bound; /* the most the queue may hold now */
    /* Static: a large allocation per input would cost more than the
     * queue under test. */
    static guint8 answer[1 << 16], out[1 << 20];
    Sink sink = {.out = out};

    if (size < 1)
        return 0;
    max = 64 + (gsize)data[0] * 64;
    hostd_out_queue_init(&q, max);
    bound = max;
    while (off + 2 <= size) {
        guint8 op = data[off], arg = data[off + 1];

        off += 2;
        if (op & 1) {
            /* An answer of 1 to ~16 KiB, now and then beyond the bound. */
            gsize n = 1 + (gsize)arg * (op & 2 ? 64 : 1);
            gboolean fits = queued == 0 || queued + n <= max;

            for (gsize i = 0; i < n; i++)
                answer[i] = pattern(pushed + i);
            FUZZ_CHECK(hostd_out_queue_push(&q, answer, n) == fits);
            if (fits) {
                /* One answer beyond the bound, into an empty queue. */
                if (queued == 0)
                    bound = MAX(max, n);
                pushed += n;
                queued += n;
            }
            FUZZ_CHECK(queued <= bound);
        } else {
            int r;
            gsize before = queued;

            sink.per_call = (op & 2) ? (gsize)arg * 37 : arg;
            sink.calls = 1 + (op >> 4);
            sink.fail = (op & 0x0e) == 0x0e;
            sink.n_out = 0;
            r = hostd_out_queue_flush(&q, sink_write, &sink);
            for (gsize i = 0; i < sink.n_out; i++)
                FUZZ_CHECK(sink.out[i] == pattern(written + i));
            written += sink.n_out;
            queued -= sink.n_out;
            if (sink.fail && before > 0) {
                FUZZ_CHECK(r == -EPIPE && sink.n_out == 0);
                /* control.c closes the client here. */
                break;
            }
            FUZZ_CHECK(r == (queued == 0 ? 1 : 0));
            if (queued == 0)
                bound = max;
        }
        FUZZ_CHECK(hostd_out_queue_len(&q) == queued);
        FUZZ_CHECK(pushed - written == queued);
    }
    hostd_out_queue_clear(&q);
    return 0;
}
