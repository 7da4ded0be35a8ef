/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-source.h: hostd's input from the QEMU filter's tracepoints
 * (provider blkin_qemu, docs/tracepoints.md), read in-process with
 * libbabeltrace2, live from an lttng-relayd or offline from a recorded
 * trace directory. Decoded events go to a HostdTraceSink (hostd-span.h).
 *
 * Single-threaded: every sink callback runs inside hostd_trace_source_poll()
 * on the caller's thread, in timestamp order (babeltrace2's muxer).
 */
#ifndef HOSTD_TRACE_SOURCE_H
#define HOSTD_TRACE_SOURCE_H

#include <stdint.h>
#include <glib.h>

#include "hostd-span.h"

typedef struct HostdTraceSource HostdTraceSource;

/* GError domain of the constructors; codes are positive errno values. */
#define HOSTD_TRACE_ERROR hostd_trace_error_quark()
GQuark hostd_trace_error_quark(void);

/* What a source has seen so far; counters only grow. */
typedef struct HostdTraceStats {
    uint64_t events;            /* event messages of any provider */
    uint64_t spans;             /* blkin_qemu:request delivered */
    uint64_t hung;              /* blkin_qemu:hung delivered */
    uint64_t disks;             /* blkin_qemu:disk delivered */
    uint64_t zipkin;            /* zipkin:* (blkin's schema) delivered */
    uint64_t rbd;               /* blkin_rbd:* (the librbd interposer) */
    uint64_t rejected;          /* blkin_qemu or zipkin events not matching
                                   the schema */
    uint64_t ignored;           /* events of other providers */
    uint64_t discarded;         /* events LTTng reported discarded (sum) */
    uint64_t discarded_unknown; /* discard reports without a count */
    uint64_t batches;           /* blkin_qemu:batch events decoded */
    /* Batches missing in a thread's sequence (LTTng discarded them); their
     * requests are unknown, up to the filter's `batch` each. */
    uint64_t batches_lost;
} HostdTraceStats;

/* Values of hostd_trace_source_poll() above 0. */
enum {
    /* Messages were processed: call again right away. */
    HOSTD_TRACE_MORE = 1,
    /* Nothing available now (live): call again after a short delay. */
    HOSTD_TRACE_IDLE = 2,
};

/* Suggested delay before polling again after HOSTD_TRACE_IDLE. */
#define HOSTD_TRACE_IDLE_MS 100

/*
 * Reads an LTTng live session from lttng-relayd, url
 * "net://HOST[:PORT]/host/HOSTNAME/SESSION".
 *
 * The session must exist when the source first polls: the source uses
 * src.ctf.lttng-live's session-not-found-action "end", so it ends (poll
 * returns 0) when the session is not there or once it has been destroyed
 * and fully read. A daemon that outlives sessions creates a new source
 * for the next one; waiting forever for a session that may never come is
 * not this layer's decision.
 *
 * Connecting to the relay daemon happens at the first poll: a wrong host
 * or port is reported there (negative errno, hostd_trace_source_error()).
 */
HostdTraceSource *hostd_trace_source_new_live(const char *url,
                                              const HostdTraceSink *sink,
                                              void *opaque, GError **err);

/*
 * Reads a recorded trace: @trace_dir is one CTF trace or any directory
 * tree of them (e.g. a session's output directory with ust/uid/UID/64-bit
 * under it); every directory holding a `metadata` file is one trace, and
 * all are merged in timestamp order.
 */
HostdTraceSource *hostd_trace_source_new_offline(const char *trace_dir,
                                                 const HostdTraceSink *sink,
                                                 void *opaque, GError **err);

/*
 * Processes what is available, up to a bounded amount of work, calling
 * the sink. Returns HOSTD_TRACE_MORE or HOSTD_TRACE_IDLE (> 0) while the
 * trace may go on, 0 once it has ended (then always 0), or a negative
 * errno on error (then always the same error; the source is dead).
 */
int hostd_trace_source_poll(HostdTraceSource *src);

/* Which trace input this is (a node's session): stamped into every
 * HostdSpan.source / HostdDiskMap.source it decodes. Default 0. */
void hostd_trace_source_set_index(HostdTraceSource *src, uint16_t index);

/* Why the source failed (after a negative poll), or NULL. */
const char *hostd_trace_source_error(const HostdTraceSource *src);

/*
 * How far the trace has been delivered, in the tracer's clock
 * (CLOCK_MONOTONIC ns for LTTng-UST): the time of the newest event, or of
 * the newest inactivity beacon from lttng-live, so it advances on an idle
 * live session too (every live-timer period). Events come in time order,
 * so a joiner may treat what it has not seen by then as absent, up to the
 * filter's own delay (an event is stamped at request completion). 0 before
 * anything timed arrived.
 */
uint64_t hostd_trace_source_time_ns(const HostdTraceSource *src);

void hostd_trace_source_get_stats(const HostdTraceSource *src,
                                  HostdTraceStats *stats);

/* Accepts NULL. Never calls the sink. */
void hostd_trace_source_free(HostdTraceSource *src);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdTraceSource, hostd_trace_source_free)

#endif
