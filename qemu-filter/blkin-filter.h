/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-filter.h: state shared by the blkin filter's files (private).
 *
 * Ownership: BDRVBlkinState belongs to the node (bs->opaque, freed by QEMU);
 * its id string and tick bottom half are created in open and freed in close. A
 * BlkinReq lives on the stack of the coroutine serving the request; it is
 * linked into its node's in-flight list and, for stacked filters, the coroutine
 * registry only between blkin_req_begin() and blkin_req_end().
 *
 * Concurrency: QEMU 7.2 runs all requests and callbacks of a node in the
 * node's AioContext under that context's lock, and the watchdog tick takes
 * that lock too, so the per-node state needs no lock of its own. Only
 * process-wide state is atomic or locked.
 */
#ifndef BLKIN_FILTER_H
#define BLKIN_FILTER_H

#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/queue.h"
#include "qemu/timer.h"

#include "blkin-clock.h"
#include "blkin-record.h"

typedef struct BlkinReq BlkinReq;
struct BlkinReq {
    struct blkin_span span;
    QLIST_ENTRY(BlkinReq) next; /* in the node's in-flight list */
    Coroutine *co;              /* non-NULL while in the registry */
    BlkinReq *co_prev;          /* what co's registry entry was before */
    uint64_t next_hung_ns;      /* when the watchdog may report it again */
    bool traced;                /* begin did the bookkeeping, end must too */
    bool sampled;
};

typedef struct BDRVBlkinState {
    char *id;        /* the operator's name for the disk */
    uint32_t disk;   /* process-local index in events */
    uint32_t sample; /* 1 in N; 0 = none */
    uint64_t sample_cut;
    uint64_t rng;     /* xorshift state for sampling */
    uint64_t slow_ns; /* 0 = off */
    uint64_t hung_ns; /* 0 = off */
    uint64_t map_interval_ns;
    uint64_t next_map_ns;
    bool map_was_enabled;
    bool watching; /* the watcher thread schedules tick_bh (blkin-watch.c) */
    uint32_t inflight;
    uint64_t id_next; /* the node's block of id numbers (blkin-trace.c) */
    uint64_t id_end;
    QLIST_HEAD(, BlkinReq) reqs;
    QEMUBH *tick_bh;
    /* Device timing (blkin-device.c): what the node's BlockBackend is
     * attached to, learned from its first recorded request. */
    uint32_t batch;        /* requests per `batch` event; 1: one each */
    uint64_t batch_ns;     /* a batch goes out at the latest this old */
    int dev_mode;          /* BLKIN_DEV_* */
    BlockBackend *dev_blk; /* the backend dev_mode was learned for */
    char *device;          /* the disk event's `device`; NULL: unknown */
} BDRVBlkinState;

enum {
    BLKIN_DEV_UNKNOWN,    /* no request of a BlockBackend seen yet */
    BLKIN_DEV_VIRTIO_BLK, /* device timing on */
    BLKIN_DEV_OTHER,      /* another device: the filter's own times only */
    BLKIN_DEV_OFF,        /* device-timing=off, or a check failed */
};

/* blkin-trace.c: per-request bookkeeping around the forwarded call. */
void coroutine_fn blkin_req_begin(BlockDriverState *bs, BlkinReq *r,
                                  enum blkin_tp_op op, int64_t offset,
                                  int64_t bytes, BdrvRequestFlags flags);
void coroutine_fn blkin_req_end(BlockDriverState *bs, BlkinReq *r, int ret);
int32_t blkin_vpid(void); /* getpid(), cached */
void blkin_set_sample(BDRVBlkinState *s, uint32_t sample);

/* blkin-device.c: a virtio-blk request's device times. At the filter's
 * exit of a recorded request: true when the `device_request` event will go
 * out at the device's completion instead of `request` now. */
bool coroutine_fn blkin_device_defer(BlockDriverState *bs, const BlkinReq *r,
                                     uint64_t exit_ns);

/* blkin-batch.c: completed requests, a batch per event (per thread). Adds
 * a request whose filter exit was @end_ns (and, for a virtio-blk request,
 * its device requests and completion: the last of them at @dev_end_ns, each
 * one before it @dev_step_ns earlier). */
void blkin_batch_add(const BDRVBlkinState *s, const struct blkin_span *span,
                     uint64_t end_ns, const struct blkin_dev_record *dev,
                     uint64_t dev_end_ns, uint32_t dev_step_ns);
/* Emits this thread's batch now (drain, close). */
void blkin_batch_flush(void);
/* The watcher: has each thread whose batch is older than its bound flush it;
 * true while any thread holds requests. */
bool blkin_batch_watch(uint64_t now_ns);
/* A recorded request goes into a batch rather than an event of its own. */
bool blkin_batching(const BDRVBlkinState *s);

/* blkin-parent.c: which traced request a lower filter runs on behalf of. */
extern int blkin_instances; /* open blkin nodes in this process */
void blkin_parent_push(BlkinReq *r);
void blkin_parent_pop(BlkinReq *r);
const BlkinReq *blkin_parent_find(void);

/* blkin-watch.c: the node's periodic tick (hung requests, disk map). */
void blkin_watch_start(BlockDriverState *bs);
void blkin_watch_stop(BlockDriverState *bs);
void blkin_watch_wake(BlockDriverState *bs);
void blkin_emit_disk(BlockDriverState *bs, enum blkin_disk_state state);

#endif
