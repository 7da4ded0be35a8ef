/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-record.h: the plain-C records the filter hands to its tracepoints.
 *
 * Kept free of QEMU types so the tracepoint provider (blkin-tp.h) compiles
 * without QEMU's headers. The fields and their meaning are the tracepoint
 * schema documented in docs/tracepoints.md; change both together.
 */
#ifndef BLKIN_RECORD_H
#define BLKIN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "blkin-schema.h"

/*
 * One traced request, laid out as the `request` event's three array fields
 * (docs/tracepoints.md), so recording it is three copies into the ring
 * buffer: LTTng-UST writes each field with a call of its own, and at ~1 M
 * requests/s per field costs show. Keep the member order: it is the schema.
 */
struct blkin_span {
    /* `ids`: trace_id, span_id, parent_span_id (0 when no traced request
     * of a blkin node above). */
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id;
    /* `io`: offset, bytes, start_ns (CLOCK_MONOTONIC, LTTng-UST's clock). */
    uint64_t offset;
    uint64_t bytes;
    uint64_t start_ns;
    /* `req`, all signed 32-bit: */
    int32_t vpid;     /* getpid(): the disk index is unique per process */
    int32_t disk;     /* process-local index, see the `disk` event */
    int32_t op;       /* enum blkin_tp_op */
    int32_t flags;    /* QEMU's BdrvRequestFlags bits (all below 2^31) */
    int32_t ret;      /* 0 or a negative errno */
    int32_t inflight; /* requests in flight in this node at entry */
    int32_t why;      /* enum blkin_why bits */
};

#define BLKIN_SPAN_IDS(s) (&(s)->trace_id)
#define BLKIN_SPAN_IO(s)  (&(s)->offset)
#define BLKIN_SPAN_REQ(s) (&(s)->vpid)
#define BLKIN_SPAN_NIDS   3
#define BLKIN_SPAN_NIO    3
#define BLKIN_SPAN_NREQ   7

/* The tracepoint copies each array from its first member: no padding. */
_Static_assert(offsetof(struct blkin_span, parent_span_id) ==
                       offsetof(struct blkin_span, trace_id) + 2 * 8 &&
                   offsetof(struct blkin_span, start_ns) ==
                       offsetof(struct blkin_span, offset) + 2 * 8 &&
                   offsetof(struct blkin_span, why) ==
                       offsetof(struct blkin_span, vpid) + 6 * 4,
               "struct blkin_span must match the request event's arrays");

/*
 * One traced request of a virtio-blk device (the `device_request` event,
 * docs/tracepoints.md): its block-layer span as above, when it left the
 * filter, and the device requests QEMU's virtio-blk merged into it, each
 * with the time its accounting started (`block_acct_start`), its offset and
 * bytes. The event's own timestamp is the device's completion (after
 * `block_acct_done`).
 */
#define BLKIN_DEV_MAX 32 /* virtio-blk merges at most 32 requests */

struct blkin_dev_record {
    struct blkin_span span;
    uint64_t exit_ns; /* when the request left the filter */
    uint32_t ndev;    /* device requests below, 1..BLKIN_DEV_MAX */
    /* `dev`: per device request start_ns, offset, bytes; start_ns 0 where
     * QEMU does not account the request (discards in 7.2). */
    uint64_t dev[3 * BLKIN_DEV_MAX];
};

/* A `batch` event's header; its `data` is blkin_batch_rec after another. */
struct blkin_batch_head {
    int32_t vpid;
    int32_t tid;    /* the thread that recorded them */
    uint64_t seq;   /* the thread's batch number: a gap is a lost batch */
    uint32_t count; /* requests in data */
};

/* One request in a batch, laid out as enum blkin_batch_word says. */
struct blkin_batch_rec {
    struct blkin_span span; /* words 0..9 */
    uint64_t end_ns;        /* filter exit */
    uint64_t dev_end_ns;    /* device completion, 0: none */
    uint32_t ndev;
    uint32_t dev_step_ns; /* merged: completions this far apart */
    uint64_t dev[];       /* 3 per device request */
};

_Static_assert(
    sizeof(struct blkin_span) == 10 * 8 &&
        offsetof(struct blkin_batch_rec, end_ns) == BLKIN_BW_END_NS * 8 &&
        offsetof(struct blkin_batch_rec, ndev) == BLKIN_BW_NDEV * 8 &&
        sizeof(struct blkin_batch_rec) == BLKIN_BW__HEAD * 8 &&
        offsetof(struct blkin_span, vpid) == BLKIN_BW_VPID_DISK * 8 &&
        offsetof(struct blkin_span, why) == BLKIN_BW_WHY * 8,
    "a batch record is the words enum blkin_batch_word says");

/* What the disk event's `device` field says. */
#define BLKIN_DEVICE_VIRTIO_BLK "virtio-blk"

#endif
