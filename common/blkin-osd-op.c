/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-osd-op.c: the OSD op record's wire line and the op tracker's time
 * stamps (blkin-osd-op.h).
 */
#include "blkin-osd-op.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[BLKIN_OSD_KIND__MAX + 1] = {
    [BLKIN_OSD_KIND_OTHER] = "other",
    [BLKIN_OSD_KIND_READ] = "read",
    [BLKIN_OSD_KIND_WRITE] = "write",
    [BLKIN_OSD_KIND_ZERO] = "zero",
};

const char *blkin_osd_kind_name(unsigned kind)
{
    return kind <= BLKIN_OSD_KIND__MAX ? kind_names[kind] : "invalid";
}

int blkin_osd_op_format(const blkin_osd_op *op, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    int n = snprintf(buf, size,
                     "op %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64
                     " %" PRIu32 " %" PRIu64 " %" PRIu64,
                     op->osd, op->gid, op->inc, op->tid, op->kind, op->offset,
                     op->length);
    size_t used;

    if (n < 0 || (size_t)n >= size)
        return -ENOBUFS;
    used = (size_t)n;
    for (int i = 0; i < BLKIN_OSD_STAMP__N; i++) {
        n = snprintf(buf + used, size - used, " %" PRId64, op->stamp[i]);
        if (n < 0 || (size_t)n >= size - used)
            return -ENOBUFS;
        used += (size_t)n;
    }
    if (used + 2 > size)
        return -ENOBUFS;
    buf[used++] = ' ';
    for (const unsigned char *p = (const unsigned char *)op->object;
         *p && p < (const unsigned char *)op->object + BLKIN_OSD_OBJECT_MAX;
         p++) {
        bool esc = *p <= ' ' || *p == '%' || *p >= 0x7f;

        if (used + (esc ? 3 : 1) + 1 > size)
            return -ENOBUFS;
        if (esc) {
            buf[used++] = '%';
            buf[used++] = hex[*p >> 4];
            buf[used++] = hex[*p & 15];
        } else {
            buf[used++] = (char)*p;
        }
    }
    buf[used] = '\0';
    return (int)used;
}

/* An unsigned decimal at *p (within end), followed by a space or the end. */
static int take_u64(const char **p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    const char *s = *p;

    if (s >= end || *s < '0' || *s > '9')
        return -EBADMSG;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -EBADMSG;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    if (s < end && *s != ' ')
        return -EBADMSG;
    *v = x;
    *p = s < end ? s + 1 : s;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int blkin_osd_op_parse(const char *line, size_t len, blkin_osd_op *op)
{
    const char *p = line, *end = line + len;
    uint64_t v[7];
    size_t o = 0;

    if (len < 3 || memcmp(p, "op ", 3) != 0)
        return -EBADMSG;
    p += 3;
    for (int i = 0; i < 7; i++)
        if (take_u64(&p, end, &v[i]) < 0)
            return -EBADMSG;
    if (v[0] > UINT32_MAX || v[4] > BLKIN_OSD_KIND__MAX)
        return -EBADMSG;
    op->osd = (uint32_t)v[0];
    op->gid = v[1];
    op->inc = v[2];
    op->tid = v[3];
    op->kind = (uint32_t)v[4];
    op->offset = v[5];
    op->length = v[6];
    for (int i = 0; i < BLKIN_OSD_STAMP__N; i++) {
        uint64_t s;

        if (take_u64(&p, end, &s) < 0 || s > INT64_MAX)
            return -EBADMSG;
        op->stamp[i] = (int64_t)s;
    }
    if (p >= end)
        return -EBADMSG; /* an op without an object */
    for (; p < end; p++) {
        char c = *p;
        int hi, lo;

        if ((unsigned char)c <= ' ' || (unsigned char)c >= 0x7f)
            return -EBADMSG;
        if (c == '%') {
            if (end - p < 3 || (hi = hexval(p[1])) < 0 ||
                (lo = hexval(p[2])) < 0 || (hi | lo) == 0)
                return -EBADMSG;
            c = (char)(hi << 4 | lo);
            p += 2;
        }
        if (o + 1 >= BLKIN_OSD_OBJECT_MAX)
            return -EBADMSG;
        op->object[o++] = c;
    }
    op->object[o] = '\0';
    return 0;
}

int64_t blkin_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* H. Hinnant's days_from_civil. */
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Exactly @n digits at s[*i]. */
static int digits(const char *s, size_t len, size_t *i, int n, int64_t *v)
{
    int64_t x = 0;

    if (*i + (size_t)n > len)
        return -EBADMSG;
    for (int k = 0; k < n; k++, (*i)++) {
        if (s[*i] < '0' || s[*i] > '9')
            return -EBADMSG;
        x = x * 10 + (s[*i] - '0');
    }
    *v = x;
    return 0;
}

static int expect(const char *s, size_t len, size_t *i, const char *any)
{
    if (*i >= len || !strchr(any, s[*i]) || !s[*i])
        return -EBADMSG;
    (*i)++;
    return 0;
}

int blkin_osd_parse_time(const char *s, size_t len, int64_t *ns)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, days;
    size_t i = 0;
    int nfrac = 0, sign = 0;

    if (digits(s, len, &i, 4, &y) < 0 || expect(s, len, &i, "-") < 0 ||
        digits(s, len, &i, 2, &mo) < 0 || expect(s, len, &i, "-") < 0 ||
        digits(s, len, &i, 2, &d) < 0 || expect(s, len, &i, "T ") < 0 ||
        digits(s, len, &i, 2, &h) < 0 || expect(s, len, &i, ":") < 0 ||
        digits(s, len, &i, 2, &mi) < 0 || expect(s, len, &i, ":") < 0 ||
        digits(s, len, &i, 2, &sec) < 0)
        return -EBADMSG;
    /* ns since the epoch in 64 bits: 1970 to 2261 (and a stamp before
     * 1970 is no OSD's). */
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -EBADMSG;
    if (i < len && s[i] == '.') {
        i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (nfrac == 9)
                return -EBADMSG;
            frac = frac * 10 + (s[i] - '0');
            nfrac++;
        }
        if (!nfrac)
            return -EBADMSG;
    }
    for (int k = nfrac; k < 9; k++)
        frac *= 10;
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i++] == '-' ? -1 : 1;
        if (digits(s, len, &i, 2, &oh) < 0)
            return -EBADMSG;
        if (i < len && s[i] == ':')
            i++;
        if (digits(s, len, &i, 2, &om) < 0 || oh > 23 || om > 59)
            return -EBADMSG;
    }
    if (i != len)
        return -EBADMSG;
    days = blkin_days_from_civil(y, (unsigned)mo, (unsigned)d);
    *ns = (((days * 24 + h) * 60 + mi) * 60 + sec -
           sign * (oh * 3600 + om * 60)) *
              1000000000LL +
          frac;
    return 0;
}
