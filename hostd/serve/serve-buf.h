/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serve-buf.h: the byte handling of hostd's client connections, without
 * sockets, so that fuzzers and unit tests drive it directly
 * (tests/fuzz/fuzz-line-reader.c, fuzz-out-queue.c):
 *
 * - HostdLineReader assembles request lines from bytes arriving in any
 *   pieces, and never holds more than its limit plus one byte: a line that
 *   goes beyond is refused as soon as that byte arrives, not once it ends.
 * - HostdOutQueue holds answers a client has not read yet, up to a bound,
 *   and writes them out through a non-blocking write function.
 */
#ifndef HOSTD_SERVE_BUF_H
#define HOSTD_SERVE_BUF_H

#include <glib.h>
#include <sys/types.h>

typedef struct HostdLineReader {
    char *buf;
    gsize start; /* first byte not yet returned in a line */
    gsize len;   /* bytes in buf */
    gsize scan;  /* buf[start, scan) holds no line feed */
    gsize cap;   /* allocated; grows up to max + 1 */
    gsize max;   /* longest line, without its line feed */
} HostdLineReader;

typedef enum {
    HOSTD_LINE_MORE,     /* no complete line: read on */
    HOSTD_LINE_READY,    /* a line (without its line feed) */
    HOSTD_LINE_TOO_LONG, /* more than max bytes without a line feed */
} HostdLineStatus;

void hostd_line_reader_init(HostdLineReader *r, gsize max);
void hostd_line_reader_clear(HostdLineReader *r);
/*
 * Where the next bytes from the client go: at most @want, and *@room is
 * how many fit (0 only when complete lines wait, or after TOO_LONG).
 * Invalidates lines returned before.
 */
char *hostd_line_reader_space(HostdLineReader *r, gsize want, gsize *room);
/* @n bytes were put at the space returned. */
void hostd_line_reader_commit(HostdLineReader *r, gsize n);
/* Copies in as many of @n bytes as fit; returns how many that was. */
gsize hostd_line_reader_feed(HostdLineReader *r, const void *data, gsize n);
/*
 * The next complete line, valid until the next call on @r. TOO_LONG once
 * max + 1 bytes have arrived without a line feed, and from then on.
 */
HostdLineStatus hostd_line_reader_next(HostdLineReader *r, const char **line,
                                       gsize *len);
/* Whether next() would say READY or TOO_LONG now (not MORE). */
gboolean hostd_line_reader_ready(HostdLineReader *r);
/* Bytes held that are not yet returned (an unfinished line, or lines). */
gsize hostd_line_reader_pending(const HostdLineReader *r);

typedef struct HostdOutQueue {
    char *buf;
    gsize head; /* first unwritten byte */
    gsize len;  /* end of the queued bytes */
    gsize cap;
    gsize max;
} HostdOutQueue;

/* Writes up to @n bytes; returns how many, or -1 with errno set (EAGAIN:
 * no room now). */
typedef gssize (*HostdWriteFunc)(void *opaque, const void *buf, gsize n);

void hostd_out_queue_init(HostdOutQueue *q, gsize max);
void hostd_out_queue_clear(HostdOutQueue *q);
/*
 * Queues @n bytes. FALSE, and nothing queued, when bytes are queued
 * already and these would take the queue beyond its bound: the client is
 * not reading. An empty queue takes any answer.
 */
gboolean hostd_out_queue_push(HostdOutQueue *q, const void *data, gsize n);
/* Bytes queued and not written. */
gsize hostd_out_queue_len(const HostdOutQueue *q);
/*
 * Writes queued bytes through @w until it takes no more. 1: all written;
 * 0: some are left (@w said EAGAIN or took less); -errno: @w failed.
 */
int hostd_out_queue_flush(HostdOutQueue *q, HostdWriteFunc w, void *opaque);

#endif
