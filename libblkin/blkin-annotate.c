/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-annotate.c: annotations become zipkin:* LTTng-UST events.
 *
 * Each function checks, before touching any string, that the trace is
 * sampled and that a session records the event, so that instrumentation
 * left in a service costs a flag test when nobody looks.
 */
#include "blkin.h"

#include <errno.h>
#include <string.h>

#include "blkin-span.h"
#include "blkin-zipkin-tp.h"

/* s itself, or its first max bytes copied into buf (max + 1 bytes). */
static const char *bounded(const char *s, char *buf, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n <= max)
        return s;
    memcpy(buf, s, max);
    buf[max] = '\0';
    return buf;
}

/* Strings of the span come from the init functions, so are bounded and
 * non-NULL there; a struct filled by hand is made safe here. */
struct span_bufs {
    char name[BLKIN_NAME_MAX + 1];
    char service[BLKIN_NAME_MAX + 1];
    char ip[BLKIN_NAME_MAX + 1];
};

static void span_rec(const struct blkin_trace *t, struct blkin_span_rec *rec,
                     struct span_bufs *b)
{
    const struct blkin_endpoint *e = t->endpoint;

    *rec = (struct blkin_span_rec){
        .trace_name = bounded(t->name ? t->name : "", b->name, BLKIN_NAME_MAX),
        .service_name =
            bounded(e->name ? e->name : "", b->service, BLKIN_NAME_MAX),
        .ip = bounded(e->ip ? e->ip : "0.0.0.0", b->ip, BLKIN_NAME_MAX),
        .port = e->port,
        .trace_id = t->info.trace_id,
        .span_id = t->info.span_id,
        .parent_span_id = t->info.parent_span_id,
    };
}

int blkin_annotate_event(const struct blkin_trace *trace, const char *event)
{
    struct blkin_span_rec rec;
    struct span_bufs b;
    char ebuf[BLKIN_ANNOTATION_MAX + 1];

    if (!trace || !event)
        return -EINVAL;
    if (!trace->sampled)
        return 0;
    if (!trace->endpoint)
        return -EINVAL;
    if (!lttng_ust_tracepoint_enabled(zipkin, timestamp))
        return 0;
    span_rec(trace, &rec, &b);
    lttng_ust_do_tracepoint(zipkin, timestamp, &rec,
                            bounded(event, ebuf, BLKIN_ANNOTATION_MAX));
    return 0;
}

int blkin_annotate_string(const struct blkin_trace *trace, const char *key,
                          const char *val)
{
    struct blkin_span_rec rec;
    struct span_bufs b;
    char kbuf[BLKIN_ANNOTATION_MAX + 1], vbuf[BLKIN_ANNOTATION_MAX + 1];

    if (!trace || !key || !val)
        return -EINVAL;
    if (!trace->sampled)
        return 0;
    if (!trace->endpoint)
        return -EINVAL;
    if (!lttng_ust_tracepoint_enabled(zipkin, keyval_string))
        return 0;
    span_rec(trace, &rec, &b);
    lttng_ust_do_tracepoint(zipkin, keyval_string, &rec,
                            bounded(key, kbuf, BLKIN_ANNOTATION_MAX),
                            bounded(val, vbuf, BLKIN_ANNOTATION_MAX));
    return 0;
}

int blkin_annotate_integer(const struct blkin_trace *trace, const char *key,
                           int64_t val)
{
    struct blkin_span_rec rec;
    struct span_bufs b;
    char kbuf[BLKIN_ANNOTATION_MAX + 1];

    if (!trace || !key)
        return -EINVAL;
    if (!trace->sampled)
        return 0;
    if (!trace->endpoint)
        return -EINVAL;
    if (!lttng_ust_tracepoint_enabled(zipkin, keyval_integer))
        return 0;
    span_rec(trace, &rec, &b);
    lttng_ust_do_tracepoint(zipkin, keyval_integer, &rec,
                            bounded(key, kbuf, BLKIN_ANNOTATION_MAX), val);
    return 0;
}
