/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-filter.c: the `blkin` block filter driver.
 *
 * A pass-through filter in the manner of QEMU's filter-compress: every
 * request goes unchanged to the `file` child; blkin_req_begin/end around the
 * call record it (docs/tracepoints.md). Options: docs/filter.md.
 */
#include "blkin-filter.h"

#include "qapi/error.h"
#include "qemu/option.h"
#include "qemu/module.h"
#include "qemu/ctype.h"
#include "qapi/qmp/qdict.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define BLKIN_DEFAULT_HUNG_MS        1000
#define BLKIN_DEFAULT_SLOW_MS        0
#define BLKIN_DEFAULT_MAP_INTERVAL_S 10
#define BLKIN_DEFAULT_BATCH          64
#define BLKIN_DEFAULT_BATCH_MS       100

static uint32_t blkin_next_disk = 1;

static QemuOptsList blkin_runtime_opts = {
    .name = "blkin",
    .head = QTAILQ_HEAD_INITIALIZER(blkin_runtime_opts.head),
    .desc =
        {/* Numbers are parsed here, strictly: QEMU's parser wraps "-1". */
         {
             .name = "sample",
             .type = QEMU_OPT_STRING,
             .help = "Trace one request in N (1 = all, 0 = none; default 1)",
         },
         {
             .name = "slow-ms",
             .type = QEMU_OPT_STRING,
             .help = "Also record unsampled requests slower than this "
                     "(0 = off, the default)",
         },
         {
             .name = "hung-ms",
             .type = QEMU_OPT_STRING,
             .help = "Report requests in flight longer than this, again "
                     "every period while they hang (0 = off; default 1000)",
         },
         {
             .name = "batch",
             .type = QEMU_OPT_STRING,
             .help = "Record completed requests this many to an event "
                     "(1 = an event each; default 64)",
         },
         {
             .name = "batch-ms",
             .type = QEMU_OPT_STRING,
             .help = "A batch goes out at the latest when its oldest request "
                     "is this old (default 100)",
         },
         {
             .name = "device-timing",
             .type = QEMU_OPT_BOOL,
             .help = "On a virtio-blk device, record QEMU's own device "
                     "entry and completion times (default on)",
         },
         {
             .name = "map-interval",
             .type = QEMU_OPT_STRING,
             .help = "Re-emit the disk map event every N seconds "
                     "(0 = only at open and on demand; default 10)",
         },
         {/* end of list */}},
};

/* Parses an unsigned decimal option no larger than @max. */
static int blkin_opt_uint(QemuOpts *opts, const char *name, uint64_t def,
                          uint64_t max, uint64_t *out, Error **errp)
{
    const char *str = qemu_opt_get(opts, name);
    char *end;
    unsigned long long v;

    if (!str) {
        *out = def;
        return 0;
    }
    errno = 0;
    v = strtoull(str, &end, 10);
    if (!qemu_isdigit(str[0]) || *end || errno || v > max) {
        error_setg(errp,
                   "blkin: option '%s' must be a whole number from 0 to "
                   "%" PRIu64 ", not '%s'",
                   name, max, str);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int blkin_parse_opts(BlockDriverState *bs, QDict *options, Error **errp)
{
    BDRVBlkinState *s = bs->opaque;
    QemuOpts *opts;
    uint64_t sample, slow_ms, hung_ms, map_s, batch, batch_ms;
    const char *id;
    int ret = -EINVAL;

    /* QemuOpts keeps "id" for itself, so it is taken from the dict here. */
    if (qdict_haskey(options, "id")) {
        id = qdict_get_try_str(options, "id");
        if (!id || !*id) {
            error_setg(errp, "blkin: option 'id' must be a non-empty string");
            return -EINVAL;
        }
        s->id = g_strdup(id);
        qdict_del(options, "id");
    }

    opts = qemu_opts_create(&blkin_runtime_opts, NULL, 0, &error_abort);
    if (!qemu_opts_absorb_qdict(opts, options, errp))
        goto out;
    if (blkin_opt_uint(opts, "sample", 1, INT32_MAX, &sample, errp) < 0 ||
        blkin_opt_uint(opts, "slow-ms", BLKIN_DEFAULT_SLOW_MS, 24 * 3600 * 1000,
                       &slow_ms, errp) < 0 ||
        blkin_opt_uint(opts, "hung-ms", BLKIN_DEFAULT_HUNG_MS, 24 * 3600 * 1000,
                       &hung_ms, errp) < 0 ||
        blkin_opt_uint(opts, "map-interval", BLKIN_DEFAULT_MAP_INTERVAL_S,
                       24 * 3600, &map_s, errp) < 0 ||
        blkin_opt_uint(opts, "batch", BLKIN_DEFAULT_BATCH, BLKIN_BATCH_MAX,
                       &batch, errp) < 0 ||
        blkin_opt_uint(opts, "batch-ms", BLKIN_DEFAULT_BATCH_MS, 10000,
                       &batch_ms, errp) < 0)
        goto out;
    if (!batch) {
        error_setg(errp, "blkin: option 'batch' must be 1 or more");
        goto out;
    }

    if (!s->id)
        s->id = g_strdup(bs->node_name);
    if (!qemu_opt_get_bool(opts, "device-timing", true)) {
        s->dev_mode = BLKIN_DEV_OFF;
        s->device = g_strdup("off: device-timing=off");
    }
    blkin_set_sample(s, sample);
    s->slow_ns = slow_ms * 1000000;
    s->hung_ns = hung_ms * 1000000;
    s->map_interval_ns = map_s * 1000000000;
    s->batch = (uint32_t)batch;
    s->batch_ns = batch_ms * 1000000;
    ret = 0;
out:
    qemu_opts_del(opts);
    if (ret < 0)
        g_clear_pointer(&s->id, g_free);
    return ret;
}

static int blkin_open(BlockDriverState *bs, QDict *options, int flags,
                      Error **errp)
{
    BDRVBlkinState *s = bs->opaque;
    int ret;

    ret = blkin_parse_opts(bs, options, errp);
    if (ret < 0)
        return ret;

    ret = bdrv_open_file_child(NULL, options, "file", bs, errp);
    if (ret < 0) {
        g_clear_pointer(&s->id, g_free);
        return ret;
    }

    bs->supported_write_flags =
        BDRV_REQ_WRITE_UNCHANGED |
        (BDRV_REQ_FUA & bs->file->bs->supported_write_flags);
    bs->supported_zero_flags =
        BDRV_REQ_WRITE_UNCHANGED |
        ((BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK) &
         bs->file->bs->supported_zero_flags);
    /* As raw-format.c: without it a zeroing truncate is refused here. */
    bs->supported_truncate_flags =
        BDRV_REQ_ZERO_WRITE & bs->file->bs->supported_truncate_flags;

    s->disk = qatomic_fetch_inc(&blkin_next_disk);
    QLIST_INIT(&s->reqs);
    qatomic_inc(&blkin_instances);
    blkin_emit_disk(bs, BLKIN_DISK_OPEN);
    blkin_watch_start(bs);
    return 0;
}

/* What this thread holds of the node's requests goes out before a drain
 * (the thread may not run again for a while, e.g. a paused VM). */
static void coroutine_fn blkin_co_drain_begin(BlockDriverState *bs)
{
    blkin_batch_flush();
}

static void blkin_close(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    blkin_batch_flush();
    blkin_watch_stop(bs);
    blkin_emit_disk(bs, BLKIN_DISK_CLOSE);
    qatomic_dec(&blkin_instances);
    g_clear_pointer(&s->id, g_free);
    g_clear_pointer(&s->device, g_free);
}

static int64_t blkin_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static int coroutine_fn blkin_co_preadv_part(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             QEMUIOVector *qiov,
                                             size_t qiov_offset,
                                             BdrvRequestFlags flags)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_READ, offset, bytes, flags);
    ret =
        bdrv_co_preadv_part(bs->file, offset, bytes, qiov, qiov_offset, flags);
    blkin_req_end(bs, &r, ret);
    return ret;
}

static int coroutine_fn blkin_co_pwritev_part(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              QEMUIOVector *qiov,
                                              size_t qiov_offset,
                                              BdrvRequestFlags flags)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_WRITE, offset, bytes, flags);
    ret =
        bdrv_co_pwritev_part(bs->file, offset, bytes, qiov, qiov_offset, flags);
    blkin_req_end(bs, &r, ret);
    return ret;
}

static int coroutine_fn blkin_co_pwrite_zeroes(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_WRITE_ZEROES, offset, bytes, flags);
    ret = bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
    blkin_req_end(bs, &r, ret);
    return ret;
}

/* qemu-img convert -c, backup with compress=on: QEMU asks the top node. */
static int coroutine_fn blkin_co_pwritev_compressed_part(BlockDriverState *bs,
                                                         int64_t offset,
                                                         int64_t bytes,
                                                         QEMUIOVector *qiov,
                                                         size_t qiov_offset)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_WRITE, offset, bytes,
                    BDRV_REQ_WRITE_COMPRESSED);
    ret = bdrv_co_pwritev_part(bs->file, offset, bytes, qiov, qiov_offset,
                               BDRV_REQ_WRITE_COMPRESSED);
    blkin_req_end(bs, &r, ret);
    return ret;
}

static int coroutine_fn blkin_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                          int64_t bytes)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_DISCARD, offset, bytes, 0);
    ret = bdrv_co_pdiscard(bs->file, offset, bytes);
    blkin_req_end(bs, &r, ret);
    return ret;
}

static int coroutine_fn blkin_co_flush(BlockDriverState *bs)
{
    BlkinReq r;
    int ret;

    blkin_req_begin(bs, &r, BLKIN_TP_OP_FLUSH, 0, 0, 0);
    ret = bdrv_co_flush(bs->file->bs);
    blkin_req_end(bs, &r, ret);
    return ret;
}

static int coroutine_fn blkin_co_truncate(BlockDriverState *bs, int64_t offset,
                                          bool exact, PreallocMode prealloc,
                                          BdrvRequestFlags flags, Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

/*
 * Read-only switches (snapshots, block-stream, commit) reopen the whole
 * chain. Nothing of the node's own changes; QEMU's generic code refuses
 * any option whose value would.
 */
static int blkin_reopen_prepare(BDRVReopenState *state, BlockReopenQueue *queue,
                                Error **errp)
{
    return 0;
}

static void blkin_eject(BlockDriverState *bs, bool eject_flag)
{
    bdrv_eject(bs->file->bs, eject_flag);
}

static void blkin_lock_medium(BlockDriverState *bs, bool locked)
{
    bdrv_lock_medium(bs->file->bs, locked);
}

/* None of the options changes the data seen through the node. */
static const char *const blkin_strong_runtime_opts[] = {NULL};

static BlockDriver bdrv_blkin = {
    .format_name = "blkin",
    .instance_size = sizeof(BDRVBlkinState),

    .bdrv_open = blkin_open,
    .bdrv_close = blkin_close,
    .bdrv_reopen_prepare = blkin_reopen_prepare,
    .bdrv_child_perm = bdrv_default_perms,

    .bdrv_getlength = blkin_getlength,
    .bdrv_co_truncate = blkin_co_truncate,

    .bdrv_co_preadv_part = blkin_co_preadv_part,
    .bdrv_co_pwritev_part = blkin_co_pwritev_part,
    .bdrv_co_pwrite_zeroes = blkin_co_pwrite_zeroes,
    .bdrv_co_pwritev_compressed_part = blkin_co_pwritev_compressed_part,
    .bdrv_co_pdiscard = blkin_co_pdiscard,
    .bdrv_co_flush = blkin_co_flush,

    .bdrv_co_drain_begin = blkin_co_drain_begin,

    .bdrv_eject = blkin_eject,
    .bdrv_lock_medium = blkin_lock_medium,

    .strong_runtime_opts = blkin_strong_runtime_opts,
    .has_variable_length = true,
    .is_filter = true,
};

static void bdrv_blkin_init(void)
{
    bdrv_register(&bdrv_blkin);
}

/*
 * A constructor that queues bdrv_blkin_init on QEMU's MODULE_INIT_BLOCK list;
 * the preload shim dlopen()s this object before QEMU's main() runs
 * bdrv_init(), so the driver is known before any option is parsed.
 */
block_init(bdrv_blkin_init);
