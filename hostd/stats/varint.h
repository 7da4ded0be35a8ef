/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * varint.h: LEB128 unsigned varints, private to hostd/stats. Small numbers
 * dominate histograms (bucket index deltas of 1, counts of a few), so one
 * byte each is the common case.
 */
#ifndef HOSTD_STATS_VARINT_H
#define HOSTD_STATS_VARINT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void varint_put(GByteArray *out, uint64_t v)
{
    uint8_t b[10];
    unsigned n = 0;

    do {
        b[n] = v & 0x7f;
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    g_byte_array_append(out, b, n);
}

/* Reader over untrusted bytes: a failed read latches, so callers check once
 * at the end of a record instead of after every field. */
typedef struct VarintReader {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
} VarintReader;

static inline uint64_t varint_get(VarintReader *r)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            break;
        uint8_t b = *r->p++;
        /* The tenth byte may only carry the top bit of a uint64_t. */
        if (shift == 63 && b > 1)
            break;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = true;
    r->p = r->end;
    return 0;
}

static inline uint8_t varint_get_byte(VarintReader *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

#endif
