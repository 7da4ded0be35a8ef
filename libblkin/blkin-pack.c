/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-pack.c: the 24-byte wire form of a trace context, three big-endian
 * 64-bit ids (ceph/blkin's struct blkin_trace_info_packed). Written byte by
 * byte: buffers in messages need not be aligned.
 */
#include "blkin.h"

#include <errno.h>

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int blkin_trace_info_pack(const struct blkin_trace_info *info, void *buf,
                          size_t len)
{
    uint8_t *p = buf;

    if (!info || !buf)
        return -EINVAL;
    if (len < BLKIN_TRACE_INFO_PACKED_SIZE)
        return -ENOBUFS;
    put_be64(p, info->trace_id);
    put_be64(p + 8, info->span_id);
    put_be64(p + 16, info->parent_span_id);
    return BLKIN_TRACE_INFO_PACKED_SIZE;
}

int blkin_trace_info_unpack(const void *buf, size_t len,
                            struct blkin_trace_info *info)
{
    const uint8_t *p = buf;

    if (!buf || !info || len < BLKIN_TRACE_INFO_PACKED_SIZE)
        return -EINVAL;
    info->trace_id = get_be64(p);
    info->span_id = get_be64(p + 8);
    info->parent_span_id = get_be64(p + 16);
    return BLKIN_TRACE_INFO_PACKED_SIZE;
}

int blkin_trace_pack(const struct blkin_trace *trace, void *buf, size_t len)
{
    static const struct blkin_trace_info none;

    if (!trace)
        return -EINVAL;
    return blkin_trace_info_pack(trace->sampled ? &trace->info : &none, buf,
                                 len);
}
