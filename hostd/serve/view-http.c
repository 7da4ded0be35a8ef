/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * view-http.c: the view's paths on the metrics port (view-http.h).
 */
#include "view-http.h"

#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* ":PORT" (1 to 5 digits) or nothing, exactly to @end. */
static bool port_ok(const char *p, const char *end)
{
    size_t n;

    if (p == end)
        return true;
    if (*p != ':')
        return false;
    n = (size_t)(end - ++p);
    if (n < 1 || n > 5)
        return false;
    for (; p < end; p++)
        if (!is_digit(*p))
            return false;
    return true;
}

/* An IP address or localhost, with an optional port: what a browser sends
 * when it was pointed at hostd by address, never by a name. */
static bool host_ok(const char *v, size_t n)
{
    const char *p = v, *end = v + n;

    if (n >= 9 && memcmp(v, "localhost", 9) == 0)
        return port_ok(v + 9, end);
    if (n && *p == '[') {
        const char *close = memchr(p, ']', n);

        if (!close || close == p + 1)
            return false;
        for (p++; p < close; p++)
            if (hexval(*p) < 0 && *p != ':' && *p != '.')
                return false;
        return port_ok(close + 1, end);
    }
    for (int part = 0; part < 4; part++) {
        unsigned val = 0, digits = 0;

        if (part) {
            if (p == end || *p != '.')
                return false;
            p++;
        }
        for (; p < end && is_digit(*p) && digits < 4; p++, digits++)
            val = val * 10 + (unsigned)(*p - '0');
        if (digits < 1 || digits > 3 || val > 255)
            return false;
    }
    return port_ok(p, end);
}

/* Percent-decodes [@p, @end) into @out (room for @max bytes and a NUL);
 * the result must be 1..@max printable ASCII bytes without spaces. */
static const char *decode(const char *p, const char *end, char *out, size_t max)
{
    size_t n = 0;

    while (p < end) {
        int c = (unsigned char)*p++;

        if (c == '%') {
            int hi = end - p >= 2 ? hexval(p[0]) : -1;
            int lo = end - p >= 2 ? hexval(p[1]) : -1;

            if (hi < 0 || lo < 0)
                return "malformed percent-encoding";
            c = hi * 16 + lo;
            p += 2;
        }
        if (c <= 0x20 || c >= 0x7f)
            return "a name is printable ASCII without spaces";
        if (n == max)
            return "a name is at most 255 bytes";
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n ? NULL : "an empty parameter";
}

static const char *parse_query(const char *p, const char *end,
                               HostdViewQuery *q)
{
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *err;
        size_t klen;

        if (!eq)
            return "a parameter without a value (vm=, disk=, window=)";
        klen = (size_t)(eq - p);
        if (eq + 1 == stop) {
            /* "vm=": the same as leaving it out. */
        } else if (klen == 2 && memcmp(p, "vm", 2) == 0) {
            if (q->has_vm)
                return "vm given twice";
            if ((err = decode(eq + 1, stop, q->vm, HOSTD_VIEW_NAME_MAX)))
                return err;
            q->has_vm = true;
        } else if (klen == 4 && memcmp(p, "disk", 4) == 0) {
            if (q->has_disk)
                return "disk given twice";
            if ((err = decode(eq + 1, stop, q->disk, HOSTD_VIEW_NAME_MAX)))
                return err;
            q->has_disk = true;
        } else if (klen == 6 && memcmp(p, "window", 6) == 0) {
            if (q->has_window)
                return "window given twice";
            if (decode(eq + 1, stop, q->window, 2) ||
                (strcmp(q->window, "1m") != 0 && strcmp(q->window, "1h") != 0))
                return "window is 1m or 1h";
            q->has_window = true;
        } else {
            return "unknown parameter (vm, disk and window are known)";
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return NULL;
}

/* The Host headers of the head after the request line: at most one, and
 * an address. */
static const char *check_host(const char *p, const char *end)
{
    int seen = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end, *v;

        if (stop > p && stop[-1] == '\r')
            stop--;
        if (stop == p)
            break; /* the blank line: end of the head */
        if (stop - p >= 5 && lower(p[0]) == 'h' && lower(p[1]) == 'o' &&
            lower(p[2]) == 's' && lower(p[3]) == 't' && p[4] == ':') {
            if (seen++)
                return "more than one Host header";
            for (v = p + 5; v < stop && (*v == ' ' || *v == '\t'); v++)
                ;
            while (stop > v && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            if (!host_ok(v, (size_t)(stop - v)))
                return "the Host must be an IP address or localhost (the "
                       "view is not served under a name: DNS rebinding)";
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

HostdViewRoute hostd_view_http_route(const char *head, size_t len,
                                     HostdViewQuery *q)
{
    const char *end = head + len, *eol, *sp1, *sp2, *path, *qmark, *pend;
    HostdViewRoute route;
    size_t plen;

    memset(q, 0, sizeof(*q));
    eol = memchr(head, '\n', len);
    if (!eol)
        return HOSTD_VIEW_ROUTE_NONE;
    sp1 = memchr(head, ' ', (size_t)(eol - head));
    if (!sp1)
        return HOSTD_VIEW_ROUTE_NONE;
    path = sp1 + 1;
    sp2 = memchr(path, ' ', (size_t)(eol - path));
    if (!sp2)
        return HOSTD_VIEW_ROUTE_NONE;
    qmark = memchr(path, '?', (size_t)(sp2 - path));
    pend = qmark ? qmark : sp2;
    plen = (size_t)(pend - path);
    if ((plen == 1 && path[0] == '/') ||
        (plen == 5 && memcmp(path, "/view", 5) == 0) ||
        (plen == 11 && memcmp(path, "/index.html", 11) == 0))
        route = HOSTD_VIEW_ROUTE_PAGE;
    else if (plen == 10 && memcmp(path, "/view.json", 10) == 0)
        route = HOSTD_VIEW_ROUTE_JSON;
    else
        return HOSTD_VIEW_ROUTE_NONE;
    if (sp1 - head != 3 || memcmp(head, "GET", 3) != 0)
        q->error = "only GET is served here";
    else if (qmark && (q->error = parse_query(qmark + 1, sp2, q)))
        ;
    else
        q->error = check_host(eol + 1, end);
    return q->error ? HOSTD_VIEW_ROUTE_BAD : route;
}
