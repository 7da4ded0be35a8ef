/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics.h: hostd's Prometheus endpoint: GET /metrics on a TCP address
 * (hostd binds it to loopback unless configured otherwise).
 *
 * Everything is cumulative since hostd started, as Prometheus expects:
 * per VM disk, op and phase a latency histogram in seconds (classic buckets
 * on a coarse ladder, by default 19 bounds from 10 us to 10 s; and, for a
 * scraper that asks for the protobuf format, a native histogram at 9 %
 * resolution: metrics-proto.h), request and byte counters,
 * unmatched/dropped/discarded counters, and the guest clock's error bound
 * as a gauge. Labels: domain, disk, op, phase.
 *
 * Scrapes are served asynchronously on the main loop, each with a deadline,
 * in limited number, so a slow or hostile peer cannot stall hostd.
 */
#ifndef HOSTD_METRICS_H
#define HOSTD_METRICS_H

#include <glib.h>

#include "serve-gate.h"
#include "vms/model.h"

typedef struct HostdMetrics HostdMetrics;

/* @listen: "HOST:PORT", e.g. "127.0.0.1:9477". Connections are admitted
 * and limited by @gate, which must outlive the endpoint. */
HostdMetrics *hostd_metrics_new(HostdModel *model, HostdServeGate *gate,
                                const char *listen, GError **err);
void hostd_metrics_free(HostdMetrics *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdMetrics, hostd_metrics_free)

/*
 * Other paths on the same port, with the same connection limits (the
 * view: view-serve.c). For a well-formed request that is not GET /metrics,
 * @fn gets the request head; it returns the body (NUL-terminated, freed by
 * the caller) and sets the status line ("200 OK") and content type, or
 * returns NULL to leave the request a 404.
 */
typedef char *(*HostdHttpRouteFn)(void *opaque, const char *head, size_t len,
                                  const char **status, const char **type);
void hostd_metrics_set_route(HostdMetrics *m, HostdHttpRouteFn fn,
                             void *opaque);

/* The exposition text (text format 0.0.4); the caller frees it. */
char *hostd_metrics_render(HostdMetrics *m);

/* The classic buckets' bounds: @n ascending values in seconds (copied). */
void hostd_metrics_set_ladder(HostdMetrics *m, const double *bounds, size_t n);
/*
 * Bounds from their text, seconds separated by commas ("0.0001,0.001,0.01"):
 * ascending, positive, at most HOSTD_METRICS_LADDER_MAX. NULL and an error
 * otherwise.
 */
#define HOSTD_METRICS_LADDER_MAX 64
GArray *hostd_metrics_parse_ladder(const char *text, GError **err);

#endif
