/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-device.h: what blkin-device.c reads of QEMU's BlockBackend request,
 * and its structural check (blkin-device-check.c, unit-tested alone).
 */
#ifndef BLKIN_DEVICE_H
#define BLKIN_DEVICE_H

#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/block.h"

#include "blkin-record.h"

/*
 * block/block-backend.c, QEMU 7.2: BlkRwCo and BlkAioEmAIOCB are private
 * there, so their layout is written here; blkin_device_check() refuses a
 * request whose AIOCB does not look like one of them.
 */
typedef struct BlkinRwCo {
    BlockBackend *blk;
    int64_t offset;
    void *iobuf;
    int ret;
    BdrvRequestFlags flags;
} BlkinRwCo;

typedef struct BlkinAioEmAIOCB {
    BlockAIOCB common;
    BlkinRwCo rwco;
    int64_t bytes;
    bool has_returned;
} BlkinAioEmAIOCB;

/*
 * Checks that @acb is the AIOCB of request (@bs, @op, @offset, @bytes) and
 * that its opaque is virtio-blk's VirtIOBlockReq chain adding up to it;
 * fills @rec's device requests (dev[], ndev). NULL when it holds, else why
 * not (device timing then goes off for the node).
 */
const char *blkin_device_check(const BlkinAioEmAIOCB *acb,
                               const BlockDriverState *bs, int64_t offset,
                               int64_t bytes, int op,
                               struct blkin_dev_record *rec);

#endif
