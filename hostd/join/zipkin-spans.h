/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * zipkin-spans.h: spans of storage services instrumented with blkin or
 * libblkin, assembled from their zipkin:* events (docs/backend.md).
 *
 * blkin records annotations, not spans: every event repeats the span's
 * ids and endpoint, and the span is over when its side's closing core
 * annotation comes -- "ss" (server send) for a server span, "cr" (client
 * receive) for a client span. A span is timed by its opening and closing
 * core annotations (sr..ss, cs..cr), else by its first and last
 * annotation. What never closes is emitted after HOSTD_ZIPKIN_KEEP_NS of
 * its trace's time, marked incomplete.
 *
 * Joining: a completed span is a lower span of its parent (hostd's span
 * tree, by parent span id) -- of a filter span when the service received
 * a filter's context, or of another service's span -- so a VM request's
 * backend time includes it, and `blkin trace` shows the whole tree.
 *
 * Ownership: everything is copied in; strings are truncated to fixed
 * buffers (services are outside input too). Bounded: at most
 * HOSTD_ZIPKIN_MAX_OPEN spans open; beyond that the oldest are emitted
 * incomplete, counted.
 */
#ifndef HOSTD_ZIPKIN_SPANS_H
#define HOSTD_ZIPKIN_SPANS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "ingest/hostd-span.h"

#define HOSTD_ZIPKIN_MAX_OPEN 65536
#define HOSTD_ZIPKIN_KEEP_NS  (30LL * 1000000000LL)

typedef struct HostdZipkinSpan {
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id;
    uint16_t source; /* trace input (node) */
    bool complete;   /* closed by ss / cr, not by time */
    bool server;     /* it has sr or ss */
    int32_t port;
    uint32_t annotations;
    uint64_t start_ns, end_ns;
    uint64_t cs_ns, sr_ns, ss_ns, cr_ns; /* 0 when absent */
    char name[64];                       /* blkin's trace_name */
    char service[64];
    char ip[48];
} HostdZipkinSpan;

typedef void (*HostdZipkinEmit)(void *opaque, const HostdZipkinSpan *s);

typedef struct HostdZipkinCounters {
    uint64_t events;
    uint64_t spans;      /* emitted complete */
    uint64_t incomplete; /* emitted by time, never closed */
    uint64_t overflow;   /* emitted early: too many open */
} HostdZipkinCounters;

typedef struct HostdZipkinSpans HostdZipkinSpans;

HostdZipkinSpans *hostd_zipkin_spans_new(HostdZipkinEmit emit, void *opaque);
void hostd_zipkin_spans_free(HostdZipkinSpans *z);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdZipkinSpans, hostd_zipkin_spans_free)

void hostd_zipkin_spans_add(HostdZipkinSpans *z, const HostdZipkinEvent *e);
/* Emits, incomplete, the spans of @source whose last annotation is older
 * than @source_time_ns - HOSTD_ZIPKIN_KEEP_NS (INT64_MAX: all). */
void hostd_zipkin_spans_expire(HostdZipkinSpans *z, uint16_t source,
                               int64_t source_time_ns);
size_t hostd_zipkin_spans_open(const HostdZipkinSpans *z);
const HostdZipkinCounters *
hostd_zipkin_spans_counters(const HostdZipkinSpans *z);

#endif
