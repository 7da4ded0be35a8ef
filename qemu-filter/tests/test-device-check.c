/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-device-check.c: the filter reads QEMU's virtio-blk request behind a
 * block request only when it is what it should be (blkin-device-check.c):
 * a request that does not match, in any way a wrong layout would show, is
 * refused with a reason, and device timing then goes off for the node.
 */
#include "blkin-device.h"

#include "hw/virtio/virtio-blk.h"

#include <glib.h>

#define US 1000

typedef struct Fixture {
    BlockDriverState bs, other;
    BlkinAioEmAIOCB acb;
    VirtIOBlockReq req[BLKIN_DEV_MAX + 1];
    struct blkin_dev_record rec;
} Fixture;

/* @n adjacent 4 KiB device requests from @offset, merged into one AIOCB. */
static void build(Fixture *f, int64_t offset, unsigned n)
{
    memset(f, 0, sizeof(*f));
    for (unsigned i = 0; i < n; i++) {
        f->req[i].sector_num = (offset + 4096 * i) / 512;
        f->req[i].acct.bytes = 4096;
        f->req[i].acct.start_time_ns = 1000 * US + i * US;
        f->req[i].mr_next = i + 1 < n ? &f->req[i + 1] : NULL;
    }
    f->acb.common.bs = &f->bs;
    f->acb.common.opaque = &f->req[0];
    f->acb.rwco.offset = offset;
    f->acb.bytes = 4096 * (int64_t)n;
}

static const char *check(Fixture *f, int op)
{
    return blkin_device_check(&f->acb, &f->bs, f->acb.rwco.offset, f->acb.bytes,
                              op, &f->rec);
}

static void test_good(void)
{
    g_autofree Fixture *f = g_new(Fixture, 1);

    build(f, 65536, 3);
    g_assert_null(check(f, BLKIN_TP_OP_READ));
    g_assert_cmpuint(f->rec.ndev, ==, 3);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpuint(f->rec.dev[3 * i], ==, 1000 * US + i * US);
        g_assert_cmpuint(f->rec.dev[3 * i + 1], ==, 65536 + 4096 * i);
        g_assert_cmpuint(f->rec.dev[3 * i + 2], ==, 4096);
    }
}

/* Each way a layout that is not QEMU 7.2's would show up. */
static void test_refused(void)
{
    g_autofree Fixture *f = g_new(Fixture, 1);

    build(f, 65536, 2);
    f->acb.common.bs = &f->other; /* another node's request */
    g_assert_nonnull(check(f, BLKIN_TP_OP_READ));

    build(f, 65536, 2);
    f->acb.common.opaque = NULL;
    g_assert_nonnull(check(f, BLKIN_TP_OP_READ));

    build(f, 65536, 2);
    f->req[1].sector_num += 8; /* not adjacent: not where the request is */
    g_assert_nonnull(check(f, BLKIN_TP_OP_WRITE));

    build(f, 65536, 2);
    f->req[0].acct.bytes = 512; /* the parts do not add up */
    g_assert_nonnull(check(f, BLKIN_TP_OP_READ));

    build(f, 65536, 1);
    f->req[0].acct.start_time_ns = 0; /* accounting not started */
    g_assert_nonnull(check(f, BLKIN_TP_OP_READ));

    build(f, 0, BLKIN_DEV_MAX + 1); /* more than virtio-blk merges */
    g_assert_nonnull(check(f, BLKIN_TP_OP_READ));

    build(f, 65536, 2); /* only reads and writes merge */
    g_assert_nonnull(check(f, BLKIN_TP_OP_FLUSH));
}

/* Discards are not accounted by QEMU 7.2: their entry time is unknown. */
static void test_discard(void)
{
    g_autofree Fixture *f = g_new(Fixture, 1);

    build(f, 1 << 20, 1);
    f->acb.bytes = 262144;
    f->req[0].acct.start_time_ns = 0xdeadbeef; /* left over, not set */
    g_assert_null(check(f, BLKIN_TP_OP_DISCARD));
    g_assert_cmpuint(f->rec.dev[0], ==, 0);
    g_assert_cmpuint(f->rec.dev[2], ==, 262144);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/device-check/good", test_good);
    g_test_add_func("/device-check/refused", test_refused);
    g_test_add_func("/device-check/discard", test_discard);
    return g_test_run();
}
