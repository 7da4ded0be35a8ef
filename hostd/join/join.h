/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * join.h: joins one VM disk's guest requests (from the guest agent) with its
 * QEMU filter spans, and splits each request's time into phases.
 *
 * Both inputs are in host CLOCK_MONOTONIC nanoseconds (the caller converts
 * guest times with the channel's clock estimate). Matching happens only for
 * data older than a watermark that the caller advances (hostd: now minus the
 * longest delivery delay of either source; offline: +infinity at the end),
 * and over sorted batches, so the result does not depend on the order in
 * which the two streams happened to arrive: live and offline agree.
 *
 * A guest request matches a span of the same op whose byte range contains
 * its own and whose [start, end] lies within [issue - tol, complete + tol].
 * Exact ranges are preferred; a span larger than the request serves several
 * guest requests that virtio-blk merged, up to its size. Among candidates
 * the earliest-starting span wins, which pairs identical requests in flight
 * first-in first-out.
 *
 * Output: one HostdJoinedRequest per guest request and per span no guest
 * request claimed, the record the statistics, the tail capture and the
 * exporters consume as it is.
 *
 * Ownership: the join owns copies of everything added; emitted records are
 * borrowed for the duration of the callback. Memory is bounded by
 * HOSTD_JOIN_MAX_PENDING per side; beyond it the oldest is expired early
 * and counted.
 */
#ifndef HOSTD_JOIN_H
#define HOSTD_JOIN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "ingest/hostd-span.h"
#include "joined-request.h"

#define HOSTD_JOIN_MAX_PENDING 262144
/*
 * Pending spans a guest request's search looks at, at most. A real request's
 * span starts within its guest-to-QEMU time plus the clock tolerance after
 * the search's start (tens to hundreds of spans at 100k IOPS); a guest that
 * claims hour-long requests would otherwise make every one of its records
 * scan all of its disk's pending spans. Beyond it the request goes on
 * unmatched (`scan_limited`).
 */
#define HOSTD_JOIN_SCAN_MAX 4096
/* The most a guest request's own clock bound widens its match window beyond
 * the current estimate's (the bound comes from probe round trips a guest can
 * slow down); the request waits as much longer before it is matched, which
 * must stay well inside the 2 s a span waits for its guest request. */
#define HOSTD_GUEST_BOUND_MAX_NS (250LL * 1000000)

/*
 * What happened below a top span. For a local disk only backend_ns: the
 * union of the lower spans' time. For a disk served by another node
 * (remote-join.h) also the network and the remote service's own time;
 * then backend_ns is the remote node's lower spans (its storage I/O).
 */
typedef struct HostdBelow {
    /* Something below QEMU was seen for this request (a lower span): the
     * backend phase applies to it. A request that passed through nothing
     * below (a qcow2 read of an unallocated cluster; any request of a disk
     * with one blkin node) has no backend phase rather than one of 0. */
    bool known;
    uint64_t backend_ns;
    bool remote; /* a server span was joined: the next two apply */
    uint64_t network_ns;
    uint64_t remote_ns;
    uint64_t server_trace_id, server_span_id; /* the joined server span */
    /* A disk on Ceph RBD (rbd-join.h): the librbd call below the client
     * span, split by the OSD op that served it; rbd_ns[i] is the phase
     * BLKIN_PHASE_LIBRBD + i (librbd, net_out, osd_queue, osd_exec,
     * net_back). Without an OSD op (a flush, a read librbd answered
     * itself, an op not found) only LIBRBD is set: the whole call. */
    bool rbd;
    bool rbd_osd; /* an OSD op was joined: all five apply */
    uint64_t rbd_ns[5];
} HostdBelow;

#define HOSTD_RBD_PHASES 5

/* Each request, joined or alone, once: borrowed for the call. */
typedef void (*HostdJoinEmit)(void *opaque, const HostdJoinedRequest *r);

/*
 * The clock correction causality gives. The probe estimate (agent channel)
 * is exact only if both directions of the probe take equally long; under a
 * busy or emulated vCPU they do not. Joined requests bound the error
 * independently: the filter cannot see a request before the guest issued
 * it, nor the guest see its completion before the filter did. So the
 * correction c to add to guest times satisfies, for every joined request,
 *     span.end - guest.complete <= c <= span.start - guest.issue,
 * and over the last HOSTD_CAUSAL_WINDOW_S seconds (intersected with the
 * probe's own bound) the interval [lo, hi] is tight. c is its middle, and
 * (hi - lo) / 2 the error bound that reports show. When the constraints
 * contradict each other (a mismatch, a clock step), no correction is made
 * and the probe estimate stands.
 */
#define HOSTD_CAUSAL_WINDOW_S 30

typedef struct HostdClockCorrection {
    bool valid;
    int64_t offset_ns; /* added to guest times (already on the host clock) */
    int64_t lo_ns, hi_ns;
    uint64_t inconsistent; /* batches whose constraints contradicted */
} HostdClockCorrection;

typedef struct HostdJoinCounters {
    uint64_t matched;         /* guest requests joined to a span */
    uint64_t merged;          /* of which shared a span with others */
    uint64_t unmatched_guest; /* guest requests no span was found for */
    uint64_t unmatched_span;  /* spans no guest request was found for */
    uint64_t overflow;        /* expired early: pending limit reached */
    uint64_t scan_limited;    /* of unmatched_guest: search cut short */
} HostdJoinCounters;

typedef struct HostdJoin HostdJoin;

HostdJoin *hostd_join_new(HostdJoinEmit emit, void *opaque);
void hostd_join_free(HostdJoin *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdJoin, hostd_join_free)

void hostd_join_add_guest(HostdJoin *j, const HostdGuestReq *g);
/* A span of a disk no guest agent reports for: emitted alone at once. */
void hostd_join_span_alone(HostdJoin *j, const HostdSpan *s,
                           const HostdBelow *below);
/* A top span of this disk, with what happened below it. */
void hostd_join_add_span(HostdJoin *j, const HostdSpan *s,
                         const HostdBelow *below);
/*
 * Matches everything that completed at or before @watermark_ns, allowing
 * @tol_ns of clock error and scheduling slack; what stays unmatched and is
 * older than the watermark is emitted alone and counted. Joined requests
 * are emitted with the causal clock correction applied (guest times
 * shifted), which never moves them by more than @probe_bound_ns. Without
 * @expect_guest (the VM has no agent), spans are emitted alone at once
 * instead of waiting for guest requests that cannot come.
 */
void hostd_join_flush(HostdJoin *j, int64_t watermark_ns, int64_t tol_ns,
                      int64_t probe_bound_ns, bool expect_guest);
const HostdClockCorrection *hostd_join_correction(const HostdJoin *j);
const HostdJoinCounters *hostd_join_counters(const HostdJoin *j);
size_t hostd_join_pending(const HostdJoin *j);
/* Entries the join's arrays keep room for: back near hostd_join_pending()
 * once a burst has drained (a quarter of the peak, or 4,096). */
size_t hostd_join_room(const HostdJoin *j);

#endif
