/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-device.c: QEMU's own device-level times of a virtio-blk request.
 *
 * QEMU starts a virtio-blk request's clock when it parses it from the
 * virtqueue (block_acct_start into the request's `acct` cookie), submits only
 * after reading the whole queue, merging adjacent requests, and stops the
 * clock when the device completes them (block_acct_done, in the AIO
 * callback, for requests that did not wait from a later bottom half). The
 * filter sees none of that: it runs between submission and the block layer's
 * return. So for a request of the node a virtio-blk device is attached to,
 * the filter's exit reads the device requests behind it and wraps the AIO
 * callback: the `device_request` event goes out after the device completed
 * it, stamped by LTTng then, carrying each device request's own start.
 *
 * How the device's request is found: the filter runs in the coroutine that
 * BlockBackend made for the request (blk_aio_prwv); its entry argument is
 * the BlkAioEmAIOCB, whose `common.opaque` is virtio-blk's VirtIOBlockReq,
 * merged requests chained by `mr_next`. BlkAioEmAIOCB is private to
 * block/block-backend.c, so its layout is written here as QEMU 7.2 has it;
 * VirtIOBlockReq and Coroutine come from the QEMU source the filter is built
 * against. Every request is checked structurally before anything is read
 * through it (the AIOCB names this node, its offset and bytes are the
 * request's, the device requests add up to it), and the device's type once
 * per BlockBackend; where a check fails, device timing goes off for the node
 * with one log line and the disk event says why (docs/filter.md).
 *
 * Nothing here changes data or the order of completions: the original
 * callback runs first, from the wrapper, with its own arguments.
 */
#include "blkin-device.h"
#include "blkin-filter.h"
#include "blkin-tp.h"

#include "hw/virtio/virtio-blk.h"
#include "qemu/coroutine_int.h"
#include "qemu/error-report.h"
#include "sysemu/block-backend.h"

/*
 * What the wrapped callback needs; from a per-thread free list (a request
 * completes in the AioContext, so on the thread, that submitted it).
 */
typedef struct BlkinDevPending BlkinDevPending;
struct BlkinDevPending {
    struct blkin_dev_record rec;
    const BDRVBlkinState *s; /* the node: open until its requests are done */
    BlockBackend *blk;       /* the device's: its accounting */
    BlockCompletionFunc *cb;
    void *opaque;
    BlkinDevPending *next_free;
};

#define BLKIN_DEV_FREE_MAX 256
static __thread BlkinDevPending *blkin_dev_free;
static __thread unsigned blkin_dev_nfree;

static BlkinDevPending *blkin_dev_get(void)
{
    BlkinDevPending *p = blkin_dev_free;

    if (p) {
        blkin_dev_free = p->next_free;
        blkin_dev_nfree--;
        return p;
    }
    return g_new(BlkinDevPending, 1);
}

static void blkin_dev_put(BlkinDevPending *p)
{
    if (blkin_dev_nfree >= BLKIN_DEV_FREE_MAX) {
        g_free(p);
        return;
    }
    p->next_free = blkin_dev_free;
    blkin_dev_free = p;
    blkin_dev_nfree++;
}

/* The accounting type QEMU 7.2's virtio-blk gives a request of @op, or
 * BLOCK_ACCT_NONE (discards are not accounted). */
static enum BlockAcctType blkin_acct_type(int32_t op)
{
    switch (op) {
    case BLKIN_TP_OP_READ:
        return BLOCK_ACCT_READ;
    case BLKIN_TP_OP_WRITE:
    case BLKIN_TP_OP_WRITE_ZEROES:
        return BLOCK_ACCT_WRITE;
    case BLKIN_TP_OP_FLUSH:
        return BLOCK_ACCT_FLUSH;
    default:
        return BLOCK_ACCT_NONE;
    }
}

/*
 * The device's completion, as QEMU's own accounting has it. The callback
 * (virtio_blk_rw_complete) completes each device request to the guest and
 * then accounts it (block_acct_done: its latency from the start the record
 * holds into total_time_ns, and its end into last_access_time_ns), merged
 * ones one after the other in their chain's order, the record's. So after
 * the callback last_access_time_ns is QEMU's own end of the last of them,
 * and what total_time_ns grew by, plus their starts, the sum of their ends.
 * One device request: its end, exactly. Merged: the last one's exactly, the
 * ones before it spaced evenly (*step_ns apart) so that their sum is exactly
 * QEMU's too; for two, both exact. Where that does not hold (a failure, no
 * accounting, another completion in between), the filter's clock after the
 * callback for all. Never before the filter's exit.
 */
static uint64_t blkin_device_end(const BlkinDevPending *p,
                                 enum BlockAcctType type, uint64_t ops0,
                                 uint64_t time0, int ret, uint32_t *step_ns)
{
    const BlockAcctStats *st = blk_get_stats(p->blk);
    uint64_t now = blkin_now_ns(), n = p->rec.ndev, sum = 0, last, ends, d;
    uint32_t i;

    *step_ns = 0;
    now = MAX(now, p->rec.exit_ns);
    if (ret < 0 || type == BLOCK_ACCT_NONE ||
        qatomic_read(&st->nr_ops[type]) - ops0 != n)
        return now;
    for (i = 0; i < n; i++) {
        if (!p->rec.dev[3 * i])
            return now;
        sum += p->rec.dev[3 * i];
    }
    ends = qatomic_read(&st->total_time_ns[type]) - time0 + sum;
    last = (uint64_t)qatomic_read(&st->last_access_time_ns);
    /* QEMU's clock is CLOCK_MONOTONIC, as ours; its reads came first. */
    if (last > now || last * n < ends || last < p->rec.exit_ns)
        return MAX(MIN(ends / n, now), p->rec.exit_ns);
    if (n > 1) {
        /* The sum of (last - k * step), k = 0..n-1, is ends. */
        d = 2 * (last * n - ends) / (n * (n - 1));
        *step_ns = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    return last;
}

static void blkin_device_done(void *opaque, int ret)
{
    BlkinDevPending *p = opaque;
    enum BlockAcctType type = blkin_acct_type(p->rec.span.op);
    const BlockAcctStats *st = blk_get_stats(p->blk);
    uint64_t ops0 = 0, time0 = 0, end;
    uint32_t step = 0;

    /* Same thread as the accounting (the AioContext's): plain reads. */
    if (type != BLOCK_ACCT_NONE) {
        ops0 = qatomic_read(&st->nr_ops[type]);
        time0 = qatomic_read(&st->total_time_ns[type]);
    }
    p->cb(p->opaque, ret);
    end = blkin_device_end(p, type, ops0, time0, ret, &step);
    if (blkin_batching(p->s))
        blkin_batch_add(p->s, &p->rec.span, p->rec.exit_ns, &p->rec, end, step);
    else
        lttng_ust_tracepoint(blkin_qemu, device_request, &p->rec);
    blkin_dev_put(p);
}

/* Device timing off for the node: one log line, and the disk event says
 * why from now on. */
static void blkin_device_off(BlockDriverState *bs, const char *why)
{
    BDRVBlkinState *s = bs->opaque;

    s->dev_mode = BLKIN_DEV_OFF;
    g_free(s->device);
    s->device = g_strdup_printf("off: %s", why);
    error_report("blkin: %s: device timing off: %s", s->id, why);
    blkin_emit_disk(bs, BLKIN_DISK_REFRESH);
}

/* The device a BlockBackend is attached to, decided once per backend. */
static void blkin_device_learn(BlockDriverState *bs, BlockBackend *blk)
{
    BDRVBlkinState *s = bs->opaque;
    DeviceState *dev = blk_get_attached_dev(blk);
    const char *type = dev ? object_get_typename(OBJECT(dev)) : "none";

    s->dev_blk = blk;
    g_free(s->device);
    if (g_str_equal(type, TYPE_VIRTIO_BLK)) {
        s->dev_mode = BLKIN_DEV_VIRTIO_BLK;
        s->device = g_strdup(BLKIN_DEVICE_VIRTIO_BLK);
    } else {
        s->dev_mode = BLKIN_DEV_OTHER;
        s->device = g_strdup(type);
    }
    blkin_emit_disk(bs, BLKIN_DISK_REFRESH);
}

bool coroutine_fn blkin_device_defer(BlockDriverState *bs, const BlkinReq *r,
                                     uint64_t exit_ns)
{
    BDRVBlkinState *s = bs->opaque;
    const BlkinAioEmAIOCB *acb;
    BlkinDevPending *p;
    const char *bad;

    if (s->dev_mode == BLKIN_DEV_OFF)
        return false;
    acb = qemu_coroutine_self()->entry_arg;
    /* Not a request a BlockBackend made for this node: a lower node's, a
     * block job's, synchronous I/O. */
    if (!acb || acb->common.bs != bs)
        return false;
    if (acb->rwco.blk != s->dev_blk)
        blkin_device_learn(bs, acb->rwco.blk);
    if (s->dev_mode != BLKIN_DEV_VIRTIO_BLK)
        return false;
    p = blkin_dev_get();
    bad = blkin_device_check(acb, bs, r->span.offset, r->span.bytes, r->span.op,
                             &p->rec);
    if (bad) {
        blkin_dev_put(p);
        blkin_device_off(bs, bad);
        return false;
    }
    p->rec.span = r->span;
    p->rec.exit_ns = exit_ns;
    p->s = s;
    p->blk = acb->rwco.blk;
    p->cb = acb->common.cb;
    p->opaque = acb->common.opaque;
    /* The AIOCB is BlockBackend's, alive until its callback has run. */
    ((BlkinAioEmAIOCB *)acb)->common.cb = blkin_device_done;
    ((BlkinAioEmAIOCB *)acb)->common.opaque = p;
    return true;
}
