/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-span.h: what one zipkin event says about its span, with every
 * string resolved (defaults for NULL, bounded length), as the tracepoints
 * take it.
 */
#ifndef BLKIN_SPAN_H
#define BLKIN_SPAN_H

#include <stdint.h>

struct blkin_span_rec {
    const char *trace_name;
    const char *service_name;
    const char *ip;
    int port;
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id;
};

#endif
