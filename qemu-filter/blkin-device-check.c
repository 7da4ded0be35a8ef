/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-device-check.c: is this the virtio-blk request we think it is?
 * (blkin-device.h). Reads only memory the AIOCB's own fields point to, in
 * the order that makes each read safe once the one before held.
 */
#include "blkin-device.h"

#include "hw/virtio/virtio-blk.h"

const char *blkin_device_check(const BlkinAioEmAIOCB *acb,
                               const BlockDriverState *bs, int64_t offset,
                               int64_t bytes, int op,
                               struct blkin_dev_record *rec)
{
    const VirtIOBlockReq *req = acb->common.opaque;
    bool rw = op == BLKIN_TP_OP_READ || op == BLKIN_TP_OP_WRITE;
    int64_t at = offset, sum = 0;
    uint32_t n = 0;

    if (acb->common.bs != bs || acb->rwco.offset != offset ||
        acb->bytes != bytes || !req)
        return "the AIOCB does not describe this request";
    for (; req && n < BLKIN_DEV_MAX; req = req->mr_next, n++) {
        /* Discards are not accounted in 7.2: their cookie is not set. */
        int64_t len = op == BLKIN_TP_OP_DISCARD ? bytes : req->acct.bytes;

        /* Only reads and writes set sector_num (and may merge). */
        if (rw && req->sector_num * BDRV_SECTOR_SIZE != at)
            return "a device request is not where the block request is";
        if (op != BLKIN_TP_OP_DISCARD && req->acct.start_time_ns <= 0)
            return "a device request's accounting has not started";
        rec->dev[3 * n] =
            op == BLKIN_TP_OP_DISCARD ? 0 : (uint64_t)req->acct.start_time_ns;
        rec->dev[3 * n + 1] = (uint64_t)at;
        rec->dev[3 * n + 2] = (uint64_t)len;
        at += len;
        sum += len;
        if (!rw && req->mr_next)
            return "a merged request that is not a read or write";
    }
    if (req)
        return "more merged device requests than virtio-blk makes";
    if (sum != bytes)
        return "the device requests do not add up to the block request";
    rec->ndev = n;
    return NULL;
}
