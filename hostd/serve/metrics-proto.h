/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics-proto.h: /metrics in Prometheus' protobuf exposition format
 * (prom-metrics.proto), with native histograms, for scrapers that ask for
 * it (metrics.c; a Prometheus with --enable-feature=native-histograms).
 *
 * Native histograms: exponential buckets, schema 3 (each bucket 2^(1/8) =
 * 9 % wider than the one before), one series per histogram whatever its
 * spread; histogram_quantile() on them interpolates within a bucket 9 %
 * wide. Filled from hostd's histograms (latency-hist.h, 64 buckets per
 * power of two): each of those goes to the native bucket holding its middle,
 * so a value may land one native bucket off by at most the width of one of
 * hostd's buckets (under 1.6 %). Zero threshold 1 ns. The same message also
 * carries the classic buckets of the ladder (for scrapers that ignore native
 * ones).
 *
 * Everything else (counters, gauges) is converted from the text exposition
 * hostd renders anyway, so the two formats cannot say different things.
 *
 * Ownership: the builder owns what is added until finish() returns the
 * bytes and frees it.
 */
#ifndef HOSTD_SERVE_METRICS_PROTO_H
#define HOSTD_SERVE_METRICS_PROTO_H

#include <glib.h>
#include <stdbool.h>

#include "stats/latency-hist.h"

/* What a scrape sends as Content-Type for this format. */
#define HOSTD_PROM_PROTO_TYPE                                                  \
    "application/vnd.google.protobuf; "                                        \
    "proto=io.prometheus.client.MetricFamily; encoding=delimited"
#define HOSTD_PROM_NATIVE_SCHEMA 3

/* Whether the request head @head (@len bytes) accepts the protobuf
 * format (its Accept header names it with a q above 0). */
bool hostd_prom_proto_wanted(const char *head, size_t len);

typedef struct HostdPromProto HostdPromProto;

HostdPromProto *hostd_prom_proto_new(void);
/*
 * The families of a text exposition @text, as counters and gauges (or
 * untyped), except family @skip. FALSE if a line cannot be read (then
 * nothing of @text is added).
 */
bool hostd_prom_proto_add_text(HostdPromProto *p, const char *text,
                               const char *skip);
/* Starts a histogram family; the histograms that follow belong to it. */
void hostd_prom_proto_histogram_family(HostdPromProto *p, const char *name,
                                       const char *help);
/* A histogram of hostd's nanosecond values, exposed in seconds: @labels
 * name, value, ..., NULL; classic buckets at @ladder (seconds, ascending),
 * native buckets of @schema. */
void hostd_prom_proto_histogram(HostdPromProto *p, const char *const *labels,
                                const HostdLatencyHist *h, const double *ladder,
                                size_t n_ladder, int schema);
/* The delimited messages; frees @p. */
GBytes *hostd_prom_proto_finish(HostdPromProto *p);

/* The native bucket index of @v seconds (> 0) in @schema: the i with
 * base^(i-1) < v <= base^i. */
int hostd_prom_native_index(double v, int schema);

#endif
