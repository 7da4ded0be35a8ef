/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-join.h: joins a VM disk's client-side spans (node A: the blkin
 * filter above QEMU's NBD client) with the server-side spans of the node
 * that serves the export (node B: the blkin filter inside qemu-nbd).
 *
 * NBD carries no trace context, so there are no ids to join by. As Magpie
 * correlated events without ids, a client span and a server span are the
 * same request when they agree on op, offset and length and the server
 * span lies inside the client span once node B's clock is put on node A's.
 *
 * That clock offset d (B minus A) is not known in advance and nodes do not
 * share a clock. Each joined pair bounds it by causality, as for the guest
 * clock (join.h): the server cannot see a request before the client sent
 * it, nor finish it after the client saw the reply, so
 *     server.end - client.end <= d <= server.start - client.start.
 * The intersection over the last HOSTD_REMOTE_WINDOW_NS of pairs is d's
 * interval; its middle is the estimate and half its width the bound that
 * reports show. Until a first pair is known, only requests with a single
 * candidate are joined (bootstrap); a contradiction (a clock step, a
 * mismatch) restarts the estimate from the newest pair and is counted.
 *
 * Phases, with client = the lowest local span above the NBD client (a
 * second blkin node there; else the disk's top span) -- durations need no
 * clock offset at all:
 *     network = client - server, remote = server - server's lower spans,
 *     backend = the server's lower spans (node B's storage I/O).
 *
 * Ownership: the join owns copies of what is added; emitted matches are
 * borrowed for the duration of the callback. Bounded: at most
 * HOSTD_REMOTE_MAX_PENDING spans per side, beyond which the oldest go,
 * counted.
 */
#ifndef HOSTD_REMOTE_JOIN_H
#define HOSTD_REMOTE_JOIN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "ingest/hostd-span.h"
#include "join.h"

#define HOSTD_REMOTE_MAX_PENDING 65536
#define HOSTD_REMOTE_WINDOW_NS   (30LL * 1000000000LL)
/* A client span whose server span has not come by then is emitted alone. */
#define HOSTD_REMOTE_MAX_WAIT_NS (10LL * 1000000000LL)

typedef struct HostdRemoteMatch {
    const HostdSpan *top;    /* the VM disk's top span (node A) */
    const HostdSpan *client; /* == top when no lower local filter */
    const HostdSpan *server; /* NULL: no server span was found */
    HostdBelow below;        /* phases below the top span */
} HostdRemoteMatch;

typedef void (*HostdRemoteEmit)(void *opaque, const HostdRemoteMatch *m);

typedef struct HostdRemoteClock {
    bool valid;
    int64_t offset_ns; /* server clock minus client clock */
    int64_t lo_ns, hi_ns;
    uint64_t resets; /* contradictions that restarted the estimate */
} HostdRemoteClock;

typedef struct HostdRemoteCounters {
    uint64_t matched;
    uint64_t unmatched_client; /* no server span found in time */
    uint64_t unmatched_server; /* server spans no client claimed */
    uint64_t overflow;         /* dropped early: pending limit reached */
} HostdRemoteCounters;

typedef struct HostdRemoteJoin HostdRemoteJoin;

HostdRemoteJoin *hostd_remote_join_new(HostdRemoteEmit emit, void *opaque);
void hostd_remote_join_free(HostdRemoteJoin *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdRemoteJoin, hostd_remote_join_free)

/* A top span of the disk, and the span the NBD client's time is read from
 * (the only lower local span, or @top itself), with the local lower
 * spans' union when there is no such single one. */
void hostd_remote_join_add_client(HostdRemoteJoin *j, const HostdSpan *top,
                                  const HostdSpan *client);
/* A span of the export's server-side filter (node B's clock), with the
 * union of its own lower spans. */
void hostd_remote_join_add_server(HostdRemoteJoin *j, const HostdSpan *server,
                                  uint64_t lower_ns);
/*
 * Joins client spans that ended at or before @watermark_ns (node A's
 * clock) and whose server spans must have been delivered: node B's trace
 * has reached @server_time_ns (its own clock; 0 when unknown). What cannot
 * be joined by HOSTD_REMOTE_MAX_WAIT_NS after the watermark is emitted
 * alone. @tol_ns allows for the filter's own delay on either side.
 */
void hostd_remote_join_flush(HostdRemoteJoin *j, int64_t watermark_ns,
                             int64_t server_time_ns, int64_t tol_ns);
/* Start time of the oldest client span still held (INT64_MAX: none): the
 * disk's main join must not decide about guest requests after it. */
int64_t hostd_remote_join_horizon(const HostdRemoteJoin *j);
const HostdRemoteClock *hostd_remote_join_clock(const HostdRemoteJoin *j);
const HostdRemoteCounters *hostd_remote_join_counters(const HostdRemoteJoin *j);
size_t hostd_remote_join_pending(const HostdRemoteJoin *j);

#endif
