/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics-http.c: the metrics endpoint's request parsing (metrics-http.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "metrics-http.h"

#include <string.h>

/* The end of the head: the first blank line, or NULL. */
static const char *head_end(const char *buf, size_t len)
{
    const char *crlf = memmem(buf, len, "\r\n\r\n", 4);
    const char *lf = memmem(buf, len, "\n\n", 2);

    if (!crlf)
        return lf;
    if (!lf)
        return crlf;
    return crlf < lf ? crlf : lf;
}

/* A target is printable ASCII without spaces (RFC 9112 request-target). */
static int target_ok(const char *t, size_t n)
{
    if (n == 0 || t[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

HostdHttpDecision hostd_metrics_http_decide(const char *buf, size_t len,
                                            size_t max)
{
    const char *end = head_end(buf, len), *eol, *sp1, *sp2, *target;
    size_t line, tlen, mlen, vlen;

    if (!end)
        return len >= max ? HOSTD_HTTP_BAD_REQUEST : HOSTD_HTTP_MORE;
    /* The request line: up to the first LF (there is one by @end), a CR
     * before it dropped. */
    eol = memchr(buf, '\n', len);
    line = (size_t)(eol - buf);
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    sp1 = memchr(buf, ' ', line);
    if (!sp1)
        return HOSTD_HTTP_BAD_REQUEST;
    mlen = (size_t)(sp1 - buf);
    target = sp1 + 1;
    sp2 = memchr(target, ' ', line - mlen - 1);
    if (!sp2)
        return HOSTD_HTTP_BAD_REQUEST;
    tlen = (size_t)(sp2 - target);
    vlen = line - mlen - 1 - tlen - 1;
    if (mlen == 0 || !target_ok(target, tlen) || vlen != 8 ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
        return HOSTD_HTTP_BAD_REQUEST;
    for (size_t i = 0; i < mlen; i++)
        if (buf[i] < 'A' || buf[i] > 'Z')
            return HOSTD_HTTP_BAD_REQUEST;
    if (mlen == 3 && memcmp(buf, "GET", 3) == 0 &&
        ((tlen == 8 && memcmp(target, "/metrics", 8) == 0) ||
         (tlen > 8 && memcmp(target, "/metrics?", 9) == 0)))
        return HOSTD_HTTP_METRICS;
    return HOSTD_HTTP_NOT_FOUND;
}

const char *hostd_metrics_http_status(HostdHttpDecision d)
{
    switch (d) {
    case HOSTD_HTTP_METRICS:
        return "200 OK";
    case HOSTD_HTTP_NOT_FOUND:
        return "404 Not Found";
    case HOSTD_HTTP_BUSY:
        return "503 Service Unavailable";
    case HOSTD_HTTP_BAD_REQUEST:
    case HOSTD_HTTP_MORE:
        break;
    }
    return "400 Bad Request";
}

void hostd_http_reader_init(HostdHttpReader *r)
{
    r->got = 0;
    r->d = HOSTD_HTTP_MORE;
}

char *hostd_http_reader_space(HostdHttpReader *r, size_t *room)
{
    *room = r->d == HOSTD_HTTP_MORE ? sizeof(r->buf) - r->got : 0;
    return r->buf + r->got;
}

HostdHttpDecision hostd_http_reader_commit(HostdHttpReader *r, size_t n)
{
    if (r->d != HOSTD_HTTP_MORE || n > sizeof(r->buf) - r->got)
        return r->d;
    r->got += n;
    /* Without a new line feed nothing changed, unless the buffer is full
     * (then it is a head too long: 400). */
    if (n && !memchr(r->buf + r->got - n, '\n', n) && r->got < sizeof(r->buf))
        return r->d;
    if (n || r->got == sizeof(r->buf))
        r->d = hostd_metrics_http_decide(r->buf, r->got, sizeof(r->buf));
    return r->d;
}

HostdHttpDecision hostd_http_reader_feed(HostdHttpReader *r, const void *data,
                                         size_t n, size_t *taken)
{
    size_t room;
    char *at = hostd_http_reader_space(r, &room);

    if (n < room)
        room = n;
    if (room)
        memcpy(at, data, room);
    *taken = room;
    return hostd_http_reader_commit(r, room);
}
