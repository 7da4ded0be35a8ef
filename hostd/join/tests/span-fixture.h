/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * span-fixture.h: the filter span the join unit tests feed hostd, shared by
 * test-join.c and test-remote-join.c.
 */
#ifndef HOSTD_SPAN_FIXTURE_H
#define HOSTD_SPAN_FIXTURE_H

#include "ingest/hostd-span.h"

#define US  1000LL
#define MS  1000000LL
#define SEC 1000000000LL

/* A top-level span whose trace and span ids are both @id. */
static inline HostdSpan fixture_span(uint64_t id, uint8_t op, uint64_t off,
                                     uint64_t bytes, int64_t start, int64_t end)
{
    HostdSpan s = {.trace_id = id,
                   .span_id = id,
                   .op = op,
                   .offset = off,
                   .bytes = bytes,
                   .start_ns = start,
                   .end_ns = end};
    return s;
}

#endif
