/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-feed.h: one trace input of hostd -- a node's LTTng live session (or
 * a recorded trace) -- kept read on the main loop: polled while it has
 * data, reopened after it ends or fails (live), and accounted
 * (live-health.h) so that a gap in the input is reported, never silent.
 *
 * Feed 0 is the local node's session; further feeds are other nodes' (for
 * disks they serve, remote-join.h). Each feed stamps its index into what
 * it decodes (HostdSpan.source) and tells its sink how far it has been
 * delivered (HostdTraceSink.delivered).
 *
 * Ownership: the feed owns its trace source; the sink's opaque is
 * borrowed and must outlive it.
 */
#ifndef HOSTD_TRACE_FEED_H
#define HOSTD_TRACE_FEED_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "live-health.h"
#include "trace-source.h"

typedef struct HostdTraceFeed HostdTraceFeed;

/* Called once when an offline feed has been read to its end. */
typedef void (*HostdTraceFeedEnded)(void *opaque, HostdTraceFeed *f);

typedef struct HostdTraceFeedStats {
    bool reading;           /* a source is open and has delivered */
    uint64_t time_ns;       /* how far the trace has been delivered */
    HostdTraceStats source; /* summed over every source this feed opened */
} HostdTraceFeedStats;

/* Starts reading at once (the first open happens on the main loop). */
HostdTraceFeed *hostd_trace_feed_new_live(unsigned index, const char *url,
                                          const HostdTraceSink *sink,
                                          void *opaque);
/* Fails (NULL, @err) when the directory holds no trace. */
HostdTraceFeed *hostd_trace_feed_new_offline(unsigned index, const char *dir,
                                             const HostdTraceSink *sink,
                                             void *opaque,
                                             HostdTraceFeedEnded ended,
                                             void *ended_opaque, GError **err);
void hostd_trace_feed_free(HostdTraceFeed *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdTraceFeed, hostd_trace_feed_free)

unsigned hostd_trace_feed_index(const HostdTraceFeed *f);
const char *hostd_trace_feed_url(const HostdTraceFeed *f);
/* The open source, or NULL between sources. */
HostdTraceSource *hostd_trace_feed_source(const HostdTraceFeed *f);
/* A live feed's losses and gaps (live-health.h); NULL offline. */
const HostdLiveHealth *hostd_trace_feed_health(const HostdTraceFeed *f);
void hostd_trace_feed_get_stats(const HostdTraceFeed *f,
                                HostdTraceFeedStats *st);

#endif
