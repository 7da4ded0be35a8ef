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
 * The op and phase enums are the statistics' own dense indexes (array
 * subscripts). Their order matches hostd's join (join.h) so that a phase
 * array can be copied over; ops are converted from the tracepoint schema's
 * numbering with hostd_stats_op_from_schema().
 */
#ifndef HOSTD_STATS_JOINED_REQUEST_H
#define HOSTD_STATS_JOINED_REQUEST_H

#include <stdint.h>

typedef enum HostdStatsOp {
    HOSTD_STATS_OP_READ,
    HOSTD_STATS_OP_WRITE,
    HOSTD_STATS_OP_FLUSH,
    HOSTD_STATS_OP_DISCARD,
    HOSTD_STATS_OP_WRITE_ZEROES,
    HOSTD_STATS_OP__N,
} HostdStatsOp;

/*
 * Phases in the order a request passes them. New phases are appended just
 * before __N: serialized rollups (history store) key histograms by these
 * numbers, so existing numbers must never change. The same holds for ops.
 */
typedef enum HostdStatsPhase {
    HOSTD_STATS_PHASE_GUEST_QUEUE,   /* guest block layer: insert -> issue */
    HOSTD_STATS_PHASE_GUEST_TO_QEMU, /* guest issue -> filter entry */
    HOSTD_STATS_PHASE_QEMU,          /* QEMU block layer minus lower spans */
    HOSTD_STATS_PHASE_BACKEND,       /* lower spans (stacked filter, backend) */
    HOSTD_STATS_PHASE_QEMU_TO_GUEST, /* filter exit -> guest completion */
    HOSTD_STATS_PHASE_TOTAL,         /* guest's own total (else the span's) */
    /* Disks served by another node (hostd/remote-join.h); BACKEND is then
     * that node's storage I/O. */
    HOSTD_STATS_PHASE_NETWORK, /* NBD client span minus server span */
    HOSTD_STATS_PHASE_REMOTE,  /* server span minus its lower spans */
    HOSTD_STATS_PHASE__N,
} HostdStatsPhase;

/* Flags of a joined request. */
enum {
    HOSTD_JR_HAS_GUEST = 1u << 0,       /* the guest agent reported it */
    HOSTD_JR_HAS_SPAN = 1u << 1,        /* a filter span was joined */
    HOSTD_JR_MERGED = 1u << 2,          /* virtio-blk merged it with others */
    HOSTD_JR_UNMATCHED_GUEST = 1u << 3, /* guest request, no span found */
    HOSTD_JR_UNMATCHED_SPAN = 1u << 4,  /* span, no guest request found */
    HOSTD_JR_ERROR = 1u << 5,           /* completed with an error */
    HOSTD_JR_HUNG = 1u << 6,            /* reported while still hanging */
};

/* Which filter disk: (QEMU's pid, the filter's process-local disk index). */
typedef struct HostdDiskKey {
    uint32_t vpid;
    uint32_t disk;
} HostdDiskKey;

typedef struct HostdJoinedRequest {
    HostdDiskKey disk;
    uint8_t op;           /* HostdStatsOp */
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
    uint64_t phase_ns[HOSTD_STATS_PHASE__N];
} HostdJoinedRequest;

/* Schema op (1 read, 2 write, 3 write-zeroes, 4 discard, 5 flush) to
 * HostdStatsOp; -1 for anything else. */
static inline int hostd_stats_op_from_schema(uint8_t op)
{
    switch (op) {
    case 1:
        return HOSTD_STATS_OP_READ;
    case 2:
        return HOSTD_STATS_OP_WRITE;
    case 3:
        return HOSTD_STATS_OP_WRITE_ZEROES;
    case 4:
        return HOSTD_STATS_OP_DISCARD;
    case 5:
        return HOSTD_STATS_OP_FLUSH;
    default:
        return -1;
    }
}

/*
 * What "slow" means for the tail capture: the total phase when known, else
 * the filter span's duration, else 0.
 */
static inline uint64_t hostd_joined_request_latency(const HostdJoinedRequest *r)
{
    if (r->phase_valid & (1u << HOSTD_STATS_PHASE_TOTAL))
        return r->phase_ns[HOSTD_STATS_PHASE_TOTAL];
    if (r->span_end_ns > r->span_start_ns)
        return r->span_end_ns - r->span_start_ns;
    return 0;
}

#endif
