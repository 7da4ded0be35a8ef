/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-zipkin-tp.h: the LTTng-UST tracepoint provider `zipkin`.
 *
 * Field names, types and order are ceph/blkin's (blkin-lib/zipkin_trace.h),
 * so traces of services instrumented with either library read the same:
 * docs/backend.md documents the schema. Ids are signed 64-bit integers as
 * there (blkin's `long` on LP64); int64_t keeps them whole on 32-bit
 * platforms too. Probes are compiled into blkin-zipkin-tp.c only.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER zipkin

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./blkin-zipkin-tp.h"

#if !defined(BLKIN_ZIPKIN_TP_H) ||                                             \
    defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BLKIN_ZIPKIN_TP_H

#include <lttng/tracepoint.h>
#include "blkin-span.h"

/* The macro arguments read best as one field a line. */
// clang-format off

/* The fields every zipkin event starts with: the span and its endpoint. */
#define BLKIN_ZIPKIN_SPAN_FIELDS(s)                                           \
    lttng_ust_field_string(trace_name, (s)->trace_name)                      \
    lttng_ust_field_string(service_name, (s)->service_name)                  \
    lttng_ust_field_integer(int, port_no, (s)->port)                         \
    lttng_ust_field_string(ip, (s)->ip)                                      \
    lttng_ust_field_integer(int64_t, trace_id, (int64_t)(s)->trace_id)       \
    lttng_ust_field_integer(int64_t, span_id, (int64_t)(s)->span_id)         \
    lttng_ust_field_integer(int64_t, parent_span_id,                         \
                            (int64_t)(s)->parent_span_id)

LTTNG_UST_TRACEPOINT_EVENT(
    zipkin, keyval_string,
    LTTNG_UST_TP_ARGS(const struct blkin_span_rec *, s, const char *, key,
                      const char *, val),
    LTTNG_UST_TP_FIELDS(
        BLKIN_ZIPKIN_SPAN_FIELDS(s)
        lttng_ust_field_string(key, key)
        lttng_ust_field_string(val, val)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(zipkin, keyval_string,
                              LTTNG_UST_TRACEPOINT_LOGLEVEL_WARNING)

LTTNG_UST_TRACEPOINT_EVENT(
    zipkin, keyval_integer,
    LTTNG_UST_TP_ARGS(const struct blkin_span_rec *, s, const char *, key,
                      int64_t, val),
    LTTNG_UST_TP_FIELDS(
        BLKIN_ZIPKIN_SPAN_FIELDS(s)
        lttng_ust_field_string(key, key)
        lttng_ust_field_integer(int64_t, val, val)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(zipkin, keyval_integer,
                              LTTNG_UST_TRACEPOINT_LOGLEVEL_WARNING)

LTTNG_UST_TRACEPOINT_EVENT(
    zipkin, timestamp,
    LTTNG_UST_TP_ARGS(const struct blkin_span_rec *, s, const char *, event),
    LTTNG_UST_TP_FIELDS(
        BLKIN_ZIPKIN_SPAN_FIELDS(s)
        lttng_ust_field_string(event, event)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(zipkin, timestamp,
                              LTTNG_UST_TRACEPOINT_LOGLEVEL_WARNING)
// clang-format on

#endif /* BLKIN_ZIPKIN_TP_H */

#include <lttng/tracepoint-event.h>
