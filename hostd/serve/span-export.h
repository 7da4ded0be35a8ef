/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * span-export.h: joined requests sent to tracing back ends as spans, in
 * Zipkin v2 JSON (POST /api/v2/spans) and OTLP/HTTP, JSON or protobuf
 * (POST /v1/traces), over HTTP or HTTPS with the options of http-client.h
 * (CA, client certificate, basic or bearer auth, headers, gzip).
 *
 * Each exported request becomes one span per layer, linked by parent ids:
 * the guest's request (root; service "guest"), and QEMU's (the filter span,
 * its own trace and span ids; service "qemu"), with the time of the layers
 * below as the tag blkin.backend_ns. Resource/endpoint attributes name the
 * host, domain and disk.
 *
 * What is exported: one joined request in `sample` (deterministic counter)
 * and, always, every request slower than `slow_ns` (tail capture at the
 * exporter: the slow ones are what a tracing UI is opened for).
 *
 * Delivery never slows hostd: requests go to a bounded queue
 * (HOSTD_EXPORT_QUEUE_MAX); a worker thread posts batches of up to
 * HOSTD_EXPORT_BATCH every second, retrying a failed batch with exponential
 * backoff (1 s .. 30 s); a batch the collector refuses for good (a 4xx
 * status other than 408 and 429) is dropped and counted as rejected. One
 * log line when delivery starts failing, one when it works again. When
 * the queue is full, a request of a VM holding
 * fewer queued requests than the VM holding most replaces that VM's oldest;
 * otherwise it is dropped. Either way one drop is counted. Counters are read
 * without locks (atomics).
 *
 * Ownership: the exporter copies what it is offered. Created and offered to
 * from the main thread only.
 */
#ifndef HOSTD_SPAN_EXPORT_H
#define HOSTD_SPAN_EXPORT_H

#include <glib.h>
#include <stdint.h>

#include "http-client.h"
#include "join/joined-request.h"

#define HOSTD_EXPORT_QUEUE_MAX 20000
#define HOSTD_EXPORT_BATCH     1000

typedef enum HostdExportFormat {
    HOSTD_EXPORT_ZIPKIN,
    HOSTD_EXPORT_OTLP,
    HOSTD_EXPORT_CLICKHOUSE, /* store-clickhouse.h */
    HOSTD_EXPORT_OTLP_PROTOBUF,
} HostdExportFormat;

typedef struct HostdExportStats {
    uint64_t queued;   /* offered and accepted */
    uint64_t sent;     /* requests in batches the back end accepted */
    uint64_t dropped;  /* lost to a full queue (offered or evicted) */
    uint64_t failures; /* failed POSTs (each retried) */
    uint64_t rejected; /* requests in batches the back end refused (4xx) */
    uint64_t pending;  /* in the queue now */
} HostdExportStats;

typedef struct HostdSpanExport HostdSpanExport;

/* @url: http://HOST:PORT/PATH. @sample: 1 in N (0: only slow ones). */
HostdSpanExport *hostd_span_export_new(HostdExportFormat fmt, const char *url,
                                       unsigned sample, uint64_t slow_ns,
                                       GError **err);
/* The same with an HTTP(S) configuration (http-client.h), which the
 * exporter takes (freed on failure too). */
HostdSpanExport *hostd_span_export_new_http(HostdExportFormat fmt,
                                            HostdHttpConfig *conf,
                                            unsigned sample, uint64_t slow_ns,
                                            GError **err);
/* Stops the worker (a batch in flight is abandoned) and frees. NULL ok. */
void hostd_span_export_free(HostdSpanExport *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdSpanExport, hostd_span_export_free)

void hostd_span_export_offer(HostdSpanExport *e, const char *domain,
                             const char *disk, const HostdJoinedRequest *r);
/* The same, with when hostd counted the request and when the disk's
 * statistics began (0: unknown), both in Unix ns by the disk's own mapping
 * of its windows onto the wall clock (HostdDisk.wall_offset_ns): the
 * ClickHouse store keeps them so that `blkin report --store` places each
 * request in the second hostd counted it in and computes its rates over the
 * same duration, to the nanosecond. */
void hostd_span_export_offer_counted(HostdSpanExport *e, const char *domain,
                                     const char *disk, int64_t counted_unix_ns,
                                     int64_t since_unix_ns,
                                     const HostdJoinedRequest *r);
void hostd_span_export_stats(HostdSpanExport *e, HostdExportStats *out);
/* "zipkin", "otlp" or "clickhouse". */
const char *hostd_span_export_name(const HostdSpanExport *e);
/* Requests of VM @domain waiting in the queue (not in a batch being sent). */
unsigned hostd_span_export_pending_of(HostdSpanExport *e, const char *domain);
/* A smaller queue than HOSTD_EXPORT_QUEUE_MAX (tests, small hosts). */
void hostd_span_export_set_queue_max(HostdSpanExport *e, unsigned n);

#endif
