/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ceph-feed.h: hostd's connection to one blkin-ceph-collector (a Ceph
 * storage node's OSD op trackers, docs/backend-ceph.md). It tells the
 * collector which RBD clients to watch (the gids and addresses of the
 * librbd instances in this node's QEMUs), and delivers what comes back to
 * a sink: the ops of those clients, the collector host's clock offset, how
 * far its OSDs have been read, OSDs going down and up, windows where ops
 * may have been lost.
 *
 * It connects on the main loop and reconnects every second when the
 * collector is not there (one log line per outage), watching again what it
 * watched. Lines are at most 4 KiB; a longer or malformed one is counted
 * and skipped, never trusted.
 *
 * Ownership: the feed owns its connection and its list of watched
 * clients; the sink's opaque is borrowed.
 */
#ifndef HOSTD_CEPH_FEED_H
#define HOSTD_CEPH_FEED_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "blkin-osd-op.h"

typedef struct HostdCephSink {
    void (*op)(void *opaque, unsigned collector, const blkin_osd_op *op);
    /* The collector host's wall minus monotonic clock, within bound_ns;
     * same_host: it runs on this host (same boot id). */
    void (*clock)(void *opaque, unsigned collector, int64_t wall_minus_mono,
                  int64_t bound_ns, bool same_host);
    /* Its OSDs that answer have been read up to @wall_ns (their clock). */
    void (*progress)(void *opaque, unsigned collector, int64_t wall_ns);
    void (*connected)(void *opaque, unsigned collector, bool up);
    /* An OSD stopped (@up false, since @wall_ns) or started answering;
     * ops between @from_ns and @to_ns may not have been read. */
    void (*gap)(void *opaque, unsigned collector, uint32_t osd, int64_t from_ns,
                int64_t to_ns);
    /* How many of its OSDs do not answer now (never did, or went down):
     * their ops cannot come, so a call without an op is not proof that
     * librbd needed none. */
    void (*unreadable)(void *opaque, unsigned collector, unsigned n);
} HostdCephSink;

typedef struct HostdCephOsd {
    uint32_t id;
    bool up;
    bool was_up;      /* answered at least once since hostd connected */
    int64_t since_ns; /* OSD wall: went down or came up */
    char *reason;     /* why down (the collector's words), or NULL */
    uint64_t outages, lost_windows;
} HostdCephOsd;

typedef struct HostdCephFeedStatus {
    const char *addr;
    bool connected;
    const char *host; /* the collector's host name, once it said hello */
    bool same_host;
    uint64_t connects, lines, ops, bad_lines, dropped;
    const char *last_error;
    const GArray *osds; /* HostdCephOsd */
} HostdCephFeedStatus;

typedef struct HostdCephFeed HostdCephFeed;

/* Connects to the collector at @addr ("HOST:PORT") as collector @index. */
HostdCephFeed *hostd_ceph_feed_new(unsigned index, const char *addr,
                                   const HostdCephSink *sink, void *opaque);
void hostd_ceph_feed_free(HostdCephFeed *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdCephFeed, hostd_ceph_feed_free)

/* Asks for client.@gid's ops (its address as librados gave it). */
void hostd_ceph_feed_watch(HostdCephFeed *f, uint64_t gid, const char *addr);
void hostd_ceph_feed_unwatch(HostdCephFeed *f, uint64_t gid);
void hostd_ceph_feed_status(const HostdCephFeed *f, HostdCephFeedStatus *s);

/* One line from a collector (without its newline), as the feed handles
 * it: for the fuzzer and unit tests. FALSE: not understood. */
gboolean hostd_ceph_feed_line(HostdCephFeed *f, const char *line, gsize len);
/* A feed that never connects: hostd_ceph_feed_line() only. */
HostdCephFeed *hostd_ceph_feed_new_detached(unsigned index,
                                            const HostdCephSink *sink,
                                            void *opaque);

#endif
