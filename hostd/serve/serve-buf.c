/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serve-buf.c: line assembly and output queues for client connections
 * (serve-buf.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "serve-buf.h"

#include <errno.h>
#include <string.h>

/* The reader starts small: most requests are a few dozen bytes, and a full
 * buffer for every idle connection would cost max bytes each. */
#define LINE_BUF_MIN 1024

void hostd_line_reader_init(HostdLineReader *r, gsize max)
{
    memset(r, 0, sizeof(*r));
    r->max = max;
}

void hostd_line_reader_clear(HostdLineReader *r)
{
    g_clear_pointer(&r->buf, g_free);
    r->start = r->len = r->scan = r->cap = 0;
}

char *hostd_line_reader_space(HostdLineReader *r, gsize want, gsize *room)
{
    gsize limit = r->max + 1, free_;

    /* Lines already returned go, once per read rather than once per line,
     * so many short lines in one read cost linear time. */
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->scan -= r->start;
        r->start = 0;
    }
    /* Everything returned: an idle client keeps no large buffer. */
    if (r->len == 0 && r->cap > 4 * LINE_BUF_MIN)
        hostd_line_reader_clear(r);
    free_ = limit - r->len;
    if (want > free_)
        want = free_;
    if (r->len + want > r->cap) {
        gsize cap = MAX(r->cap, LINE_BUF_MIN);

        while (cap < r->len + want)
            cap *= 2;
        r->cap = MIN(cap, limit);
        r->buf = g_realloc(r->buf, r->cap);
    }
    *room = want;
    return r->buf ? r->buf + r->len : NULL;
}

void hostd_line_reader_commit(HostdLineReader *r, gsize n)
{
    g_assert(r->len + n <= r->cap);
    r->len += n;
}

gsize hostd_line_reader_feed(HostdLineReader *r, const void *data, gsize n)
{
    gsize room = 0;
    char *at = hostd_line_reader_space(r, n, &room);

    if (room) {
        memcpy(at, data, room);
        hostd_line_reader_commit(r, room);
    }
    return room;
}

HostdLineStatus hostd_line_reader_next(HostdLineReader *r, const char **line,
                                       gsize *len)
{
    const char *nl;

    if (r->scan < r->start)
        r->scan = r->start;
    /* Only bytes not looked at yet: a client trickling a long line byte by
     * byte costs no rescans. */
    nl = r->len > r->scan ? memchr(r->buf + r->scan, '\n', r->len - r->scan)
                          : NULL;
    if (nl) {
        gsize end = (gsize)(nl - r->buf);

        *line = r->buf + r->start;
        *len = end - r->start;
        r->start = r->scan = end + 1;
        return HOSTD_LINE_READY;
    }
    r->scan = r->len;
    if (r->len - r->start > r->max)
        return HOSTD_LINE_TOO_LONG;
    return HOSTD_LINE_MORE;
}

gboolean hostd_line_reader_ready(HostdLineReader *r)
{
    const char *nl;

    if (r->scan < r->start)
        r->scan = r->start;
    nl = r->len > r->scan ? memchr(r->buf + r->scan, '\n', r->len - r->scan)
                          : NULL;
    if (nl) {
        /* next() finds it first thing. */
        r->scan = (gsize)(nl - r->buf);
        return TRUE;
    }
    r->scan = r->len;
    return r->len - r->start > r->max;
}

gsize hostd_line_reader_pending(const HostdLineReader *r)
{
    return r->len - r->start;
}

/* ---- the output queue ------------------------------------------------- */

void hostd_out_queue_init(HostdOutQueue *q, gsize max)
{
    memset(q, 0, sizeof(*q));
    q->max = max;
}

void hostd_out_queue_clear(HostdOutQueue *q)
{
    g_clear_pointer(&q->buf, g_free);
    q->head = q->len = q->cap = 0;
}

gsize hostd_out_queue_len(const HostdOutQueue *q)
{
    return q->len - q->head;
}

gboolean hostd_out_queue_push(HostdOutQueue *q, const void *data, gsize n)
{
    gsize queued = hostd_out_queue_len(q);

    if (queued > 0 && (n > q->max || queued > q->max - n))
        return FALSE;
    if (q->head > 0) {
        memmove(q->buf, q->buf + q->head, queued);
        q->len = queued;
        q->head = 0;
    }
    if (q->len + n > q->cap) {
        gsize cap = MAX(q->cap, 4096);

        while (cap < q->len + n)
            cap *= 2;
        q->buf = g_realloc(q->buf, cap);
        q->cap = cap;
    }
    if (n)
        memcpy(q->buf + q->len, data, n);
    q->len += n;
    return TRUE;
}

int hostd_out_queue_flush(HostdOutQueue *q, HostdWriteFunc w, void *opaque)
{
    while (q->head < q->len) {
        gsize want = q->len - q->head;
        gssize n = w(opaque, q->buf + q->head, want);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -(errno ? errno : EIO);
        }
        if (n == 0 || (gsize)n > want)
            return -EIO;
        q->head += n;
        if ((gsize)n < want)
            return 0;
    }
    /* Emptied: an idle client keeps no buffer. */
    if (q->cap > 4096)
        hostd_out_queue_clear(q);
    q->head = q->len = 0;
    return 1;
}
