/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * joined-request.h: one VM disk request as hostd's statistics see it, after
 * the join: what the guest agent saw, what the blkin filter saw, what the
 * lower spans took, and the request's time split into phases.
 *
 * The record is plain old data of fixed size, so that the tail capture can
 * keep copies in preallocated arrays and the statistics never chase
 * pointers. All times are host CLOCK_MONOTONIC nanoseconds (guest times are
 * already corrected with the channel's clock estimate); 0 means "not seen".
 *
 * The join (join.h) emits it; the statistics, the tail capture and the
 * exporters consume it as it is. `op` and the phase subscripts are
 * blkin-schema.h's enum blkin_op and enum blkin_phase.
 */
#ifndef HOSTD_JOINED_REQUEST_H
#define HOSTD_JOINED_REQUEST_H

#include <stdint.h>

#include "blkin-schema.h"

/* Flags of a joined request. */
enum {
    HOSTD_JR_HAS_GUEST = 1u << 0,       /* the guest agent reported it */
    HOSTD_JR_HAS_SPAN = 1u << 1,        /* a filter span was joined */
    HOSTD_JR_MERGED = 1u << 2,          /* virtio-blk merged it with others */
    HOSTD_JR_UNMATCHED_GUEST = 1u << 3, /* guest request, no span found */
    HOSTD_JR_UNMATCHED_SPAN = 1u << 4,  /* span, no guest request found */
    HOSTD_JR_ERROR = 1u << 5,           /* completed with an error */
    HOSTD_JR_HUNG = 1u << 6,            /* reported while still hanging */
    /* A span whose guest record was lost with the agent's channel (QEMU
     * exited before the agent could send it): not UNMATCHED_SPAN. */
    HOSTD_JR_AGENT_GAP = 1u << 7,
    /* On RBD: its span was joined to its librbd call and OSD op(s)
     * (rbd-join.h). */
    HOSTD_JR_OSD = 1u << 8,
};

/* Which filter disk: (QEMU's pid, the filter's process-local disk index). */
typedef struct HostdDiskKey {
    uint32_t vpid;
    uint32_t disk;
} HostdDiskKey;

typedef struct HostdJoinedRequest {
    HostdDiskKey disk;
    uint8_t op;           /* enum blkin_op */
    uint8_t merged;       /* guest requests served by the same span (>= 1) */
    uint16_t reserved;    /* keeps the layout explicit; zero */
    uint32_t flags;       /* HOSTD_JR_* */
    uint32_t phase_valid; /* bit p set: phase_ns[p] applies */
    int32_t ret;          /* span's return value, else guest error */
    uint64_t offset;
    uint64_t bytes;
    /* Guest side, on the host clock. */
    uint64_t guest_queue_ns;
    uint64_t guest_issue_ns;
    uint64_t guest_complete_ns;
    uint64_t clock_error_ns; /* bound on the guest clock correction */
    /* Filter span. */
    uint64_t span_start_ns;
    uint64_t span_end_ns;
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t lower_total_ns; /* time covered by lower spans */
    /* virtio-blk: QEMU's device entry and completion of this request (0:
     * not known: another device, a discard's entry in QEMU 7.2). */
    uint64_t dev_start_ns;
    uint64_t dev_end_ns;
    uint64_t phase_ns[BLKIN_PHASE__N];
} HostdJoinedRequest;

/* The request's completion on the host clock: the guest's, else the span's. */
static inline uint64_t hostd_joined_request_end_ns(const HostdJoinedRequest *r)
{
    return (r->flags & HOSTD_JR_HAS_GUEST) ? r->guest_complete_ns
                                           : r->span_end_ns;
}

/*
 * What "slow" means for the tail capture: the total phase when known, else
 * the filter span's duration, else 0.
 */
static inline uint64_t hostd_joined_request_latency(const HostdJoinedRequest *r)
{
    if (r->phase_valid & (1u << BLKIN_PHASE_TOTAL))
        return r->phase_ns[BLKIN_PHASE_TOTAL];
    if (r->span_end_ns > r->span_start_ns)
        return r->span_end_ns - r->span_start_ns;
    return 0;
}

#endif
