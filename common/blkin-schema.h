/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-schema.h: the numbers that cross BlkKin's layers, each defined once
 * with its one name table: request types (ops), the phases hostd splits a
 * request's time into, and the filter's disk states and record reasons.
 *
 * Who speaks which:
 * - enum blkin_op is the one numbering of request types in the agent's wire
 *   protocol (docs/protocol.md), everywhere inside hostd, in its statistics,
 *   its SQLite history and its exports.
 * - enum blkin_tp_op is the tracepoint schema's own numbering of the same
 *   types (docs/tracepoints.md: the filter's `request` and `hung` events).
 *   It is named apart, not unified, so that traces recorded before stay
 *   readable; blkin_op_from_tp() is the one conversion, done where hostd
 *   decodes an event.
 * - enum blkin_phase numbers hostd's phases: array subscripts of its
 *   statistics and keys of the histograms its history store serialises.
 *
 * Plain C (no GLib): the guest agent links it statically and the QEMU filter
 * includes it without QEMU's headers. Numbers already given never change:
 * they are stored (history) and sent (protocol, tracepoints); new ones are
 * appended before the __N / __MAX entries.
 */
#ifndef BLKIN_SCHEMA_H
#define BLKIN_SCHEMA_H

#include <stdint.h>

/* Request types (agent protocol, hostd, history). */
enum blkin_op {
    BLKIN_OP_READ = 0,
    BLKIN_OP_WRITE = 1,
    BLKIN_OP_FLUSH = 2,
    BLKIN_OP_DISCARD = 3,
    BLKIN_OP_WRITE_ZEROES = 4,
    /* The ops hostd keeps statistics for: the ones above. */
    BLKIN_OP__N = 5,
    /* A guest request of a type the agent could not tell (the protocol
     * carries it; hostd counts nothing for it). */
    BLKIN_OP_OTHER = 5,
    BLKIN_OP__MAX = 5,
};

/* "read", "write", "flush", "discard", "write_zeroes", "other"; "invalid"
 * beyond BLKIN_OP__MAX. The names reports, metrics labels and the history's
 * columns use. */
const char *blkin_op_name(unsigned op);
/* The op named @name (as blkin_op_name), or -1. */
int blkin_op_from_name(const char *name);

/* Request types as the tracepoint schema numbers them (`op` field). */
enum blkin_tp_op {
    BLKIN_TP_OP_READ = 1,
    BLKIN_TP_OP_WRITE = 2,
    BLKIN_TP_OP_WRITE_ZEROES = 3,
    BLKIN_TP_OP_DISCARD = 4,
    BLKIN_TP_OP_FLUSH = 5,
};

/* The tracepoint op @tp_op as an enum blkin_op; BLKIN_OP_OTHER for a
 * number the schema does not define. */
enum blkin_op blkin_op_from_tp(unsigned tp_op);

/*
 * Phases of one request, defined in docs/hostd.md ("Phases"), which the
 * README's table follows. Each is a difference of two consecutive
 * timestamps of the request, so the phases that apply to it sum to TOTAL.
 * Numbers are stored (history): append only.
 */
enum blkin_phase {
    BLKIN_PHASE_GUEST_QUEUE = 0,   /* guest block layer: insert -> issue */
    BLKIN_PHASE_GUEST_TO_QEMU = 1, /* guest issue -> filter entry */
    BLKIN_PHASE_QEMU = 2,          /* filter entry -> exit, minus below */
    BLKIN_PHASE_BACKEND = 3,       /* lower spans (stacked node, storage) */
    BLKIN_PHASE_QEMU_TO_GUEST = 4, /* filter exit -> guest completion */
    BLKIN_PHASE_TOTAL = 5,         /* guest's own total (else the span's) */
    /* Disks served by another node; in time order between QEMU and
     * BACKEND, which then is the remote node's storage I/O. */
    BLKIN_PHASE_NETWORK = 6, /* client span minus server span */
    BLKIN_PHASE_REMOTE = 7,  /* server span minus its lower spans */
    /* virtio-blk disks, where QEMU's own device times are known (the
     * filter's device_request event): in place of GUEST_TO_QEMU and
     * QEMU_TO_GUEST, in time order around QEMU and what is below it. */
    BLKIN_PHASE_GUEST_TO_DEVICE = 8,    /* guest issue -> device entry */
    BLKIN_PHASE_DEVICE = 9,             /* device entry -> filter entry */
    BLKIN_PHASE_DEVICE_COMPLETION = 10, /* filter exit -> device completion */
    BLKIN_PHASE_DEVICE_TO_GUEST = 11,   /* device completion -> guest's */
    /* Summaries, not part of the sum: */
    BLKIN_PHASE_IN_QEMU = 12,    /* device entry -> device completion: what
                                    QEMU's own accounting measures */
    BLKIN_PHASE_SPAN_ALONE = 13, /* a filter span no guest request joined,
                                    on a disk with an agent: its own time,
                                    kept out of TOTAL */
    /* Disks on Ceph RBD (docs/backend-ceph.md): the librbd call below the
     * filter, split by the OSD op that served it; in time order between
     * QEMU and what follows the filter's exit, and then no BACKEND. */
    BLKIN_PHASE_LIBRBD = 14,    /* in librbd, beyond the fastest round trip */
    BLKIN_PHASE_NET_OUT = 15,   /* librbd sent -> the OSD began to receive */
    BLKIN_PHASE_OSD_QUEUE = 16, /* OSD: initiated -> started */
    BLKIN_PHASE_OSD_EXEC = 17,  /* OSD: started -> commit (reads: done) */
    BLKIN_PHASE_NET_BACK = 18,  /* OSD commit -> librbd's completion */
    BLKIN_PHASE__N = 19,
};

/* TOTAL, IN_QEMU and SPAN_ALONE summarise; the other phases of a request
 * are consecutive and sum to its TOTAL. */
static inline int blkin_phase_is_summary(unsigned phase)
{
    return phase == BLKIN_PHASE_TOTAL || phase == BLKIN_PHASE_IN_QEMU ||
           phase == BLKIN_PHASE_SPAN_ALONE;
}

/* "guest_queue", "guest_to_qemu", "qemu", "backend", "qemu_to_guest",
 * "total", "network", "remote", "guest_to_device", "device",
 * "device_completion", "device_to_guest", "in_qemu", "span_alone", "librbd",
 * "net_out", "osd_queue", "osd_exec", "net_back"; "invalid" beyond. */
const char *blkin_phase_name(unsigned phase);
/* The phase named @name, or -1. */
int blkin_phase_from_name(const char *name);
/* Every phase once, in the order reports show them: total first, then the
 * order a request passes them, the other summaries last. */
extern const enum blkin_phase blkin_phase_report_order[BLKIN_PHASE__N];

/* Lifecycle of a filter disk (`state` of the `disk` tracepoint). */
enum blkin_disk_state {
    BLKIN_DISK_OPEN = 0,    /* the node was opened */
    BLKIN_DISK_REFRESH = 1, /* periodic or on-demand re-emission */
    BLKIN_DISK_CLOSE = 2,   /* the node is being closed */
    BLKIN_DISK__MAX = 2,
};

/* "open", "refresh", "close"; "invalid" beyond. */
const char *blkin_disk_state_name(unsigned state);

/*
 * One request in a `batch` event's `data` (docs/tracepoints.md): 64-bit
 * words, the request's own and then 3 per device request (start_ns, offset,
 * bytes). Two 32-bit fields share a word, the first in its low half.
 */
enum blkin_batch_word {
    BLKIN_BW_TRACE_ID = 0,
    BLKIN_BW_SPAN_ID = 1,
    BLKIN_BW_PARENT_SPAN_ID = 2,
    BLKIN_BW_OFFSET = 3,
    BLKIN_BW_BYTES = 4,
    BLKIN_BW_START_NS = 5,     /* filter entry */
    BLKIN_BW_VPID_DISK = 6,    /* s32 vpid | u32 disk << 32 */
    BLKIN_BW_OP_FLAGS = 7,     /* enum blkin_tp_op | BdrvRequestFlags << 32 */
    BLKIN_BW_RET_INFLIGHT = 8, /* s32 ret | u32 in flight << 32 */
    BLKIN_BW_WHY = 9,          /* enum blkin_why bits (low half) */
    BLKIN_BW_END_NS = 10,      /* filter exit */
    BLKIN_BW_DEV_END_NS = 11,  /* the device's completion; 0: not a device's */
    BLKIN_BW_NDEV = 12,        /* device requests that follow (low half) */
    BLKIN_BW__HEAD = 13,
};
#define BLKIN_BATCH_MAX 1024 /* requests in one `batch` event, at most */

/* Why the filter recorded a request (`why` bits of the `request` event). */
enum blkin_why {
    BLKIN_WHY_SAMPLED = 1, /* chosen by the node's 1-in-N sampling */
    BLKIN_WHY_SLOW = 2,    /* not sampled, but slower than slow-ms */
    BLKIN_WHY_PARENT = 4,  /* its parent span (a blkin node above) was */
};

#endif
