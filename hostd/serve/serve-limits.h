/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serve-limits.h: every limit on what local clients of hostd's host-side
 * surfaces (the control socket, the metrics endpoint) may make it hold, in
 * one place (docs/security.md, "Host-side surfaces").
 *
 * hostd serves every VM of the node from one thread, and the same process
 * holds the agent channels and the trace input. A client, however many
 * connections it opens and however it sends or fails to read, must cost a
 * bounded share of hostd's file descriptors, memory and time. Each default
 * is far above what operators, hooks and Prometheus need; the ones an
 * operator may want to change are keys of [hostd] in hostd.conf
 * (hostd_config_load_limits, docs/hostd.md).
 */
#ifndef HOSTD_SERVE_LIMITS_H
#define HOSTD_SERVE_LIMITS_H

/* Plain C: the metrics request reader includes it, and is built without
 * GLib for its fuzzer. */
#include <stddef.h>

/*
 * Connections at once. `blkin` and the hooks hold one connection for one
 * request; Prometheus scrapes one at a time. The total is also kept below
 * half the fd limit (hostd_serve_gate_new), so clients can never take the
 * descriptors the agent channels and the trace input need.
 */
#define HOSTD_SERVE_MAX_CLIENTS         160 /* config max-clients */
#define HOSTD_SERVE_MAX_CONTROL_CLIENTS 128 /* config max-control-clients */
#define HOSTD_SERVE_MAX_METRICS_CLIENTS 64  /* config max-metrics-clients */

/* A control request line, without its line feed. */
#define HOSTD_SERVE_CONTROL_LINE_MAX (64 * 1024)
/* A control client that sends nothing for this long is closed. */
#define HOSTD_SERVE_CONTROL_IDLE_S 30 /* config control-idle-s */
/* A started request line must be finished within this. */
#define HOSTD_SERVE_CONTROL_LINE_S 10
/*
 * Answers queued for a control client that does not read them: beyond
 * this it is closed. One answer is always taken into an empty queue,
 * whatever its size, so a large report still goes out.
 */
#define HOSTD_SERVE_CONTROL_QUEUE_MAX (1024 * 1024) /* control-queue-kib */
/* Requests answered per main-loop turn for one control client, so that a
 * client pipelining thousands cannot hold the loop. */
#define HOSTD_SERVE_CONTROL_BURST 16
/* After "request too long": time to flush that answer before closing. */
#define HOSTD_SERVE_CONTROL_LINGER_S 2

/* A metrics request head (request line and headers). */
#define HOSTD_SERVE_METRICS_REQUEST_MAX 8192
/* A scrape, from accept to the last byte of the answer. */
#define HOSTD_SERVE_METRICS_DEADLINE_S 10
/*
 * Bytes of metrics answers waiting for scrapers, all together; a scrape
 * beyond it gets 503. Bounds what scrapers that never read can pin.
 */
#define HOSTD_SERVE_METRICS_QUEUE_MAX (64 * 1024 * 1024)

/* Connections taken per wake-up of a listener: well below the per-surface
 * limits, so a new client's first request is read before a flood of newer
 * connections could push it out (hostd_serve_gate, "evictable"). */
#define HOSTD_SERVE_ACCEPT_BATCH 16
/* A listener that hit the fd limit rests this long instead of spinning. */
#define HOSTD_SERVE_ACCEPT_PAUSE_MS 500
/* Refusals, evictions and timeouts are summed up in one log line at most
 * once per period. */
#define HOSTD_SERVE_LOG_PERIOD_S 10
/* RLIMIT_NOFILE's soft limit is raised to the hard one at start, up to
 * this (an unlimited hard limit would make the kernel's fd table, not a
 * setting, the bound). */
#define HOSTD_SERVE_NOFILE_MAX 65536

/* The configurable ones, as hostd runs with them. */
typedef struct HostdServeLimits {
    unsigned max_clients;
    unsigned max_control_clients;
    unsigned max_metrics_clients;
    unsigned control_idle_s;
    size_t control_queue_max; /* bytes */
} HostdServeLimits;

#define HOSTD_SERVE_LIMITS_DEFAULT                                             \
    ((HostdServeLimits){                                                       \
        .max_clients = HOSTD_SERVE_MAX_CLIENTS,                                \
        .max_control_clients = HOSTD_SERVE_MAX_CONTROL_CLIENTS,                \
        .max_metrics_clients = HOSTD_SERVE_MAX_METRICS_CLIENTS,                \
        .control_idle_s = HOSTD_SERVE_CONTROL_IDLE_S,                          \
        .control_queue_max = HOSTD_SERVE_CONTROL_QUEUE_MAX,                    \
    })

#endif
