/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * device-timing.c: what device timing adds to a recorded virtio-blk request
 * (qemu-filter/blkin-device.c), measured in a tight loop, not a test.
 *
 * Per request the filter then does, beyond today's one event: a clock read
 * at its exit (the event's own stamp becomes the device's completion), the
 * structural check of the device requests, a record from a per-thread free
 * list and back, and the AIOCB's callback swapped. This loop does exactly
 * that on a request shaped like QEMU's (1 device request, and 16 merged),
 * against a baseline of one clock read in the same run, and prints ns per
 * request as medians of 9 rounds:
 *     device-timing [REQUESTS]
 */
#include "blkin-device.h"

#include "hw/virtio/virtio-blk.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct Pending {
    struct blkin_dev_record rec;
    void *cb, *opaque;
    struct Pending *next_free;
} Pending;

static __thread Pending *free_list;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static volatile uint64_t sink;

/* ns per request of the device path on @n merged device requests; 0 for
 * the baseline (one clock read). */
static double round_ns(unsigned n, unsigned long count)
{
    static VirtIOBlockReq req[BLKIN_DEV_MAX];
    static BlockDriverState bs;
    BlkinAioEmAIOCB acb = {0};
    uint64_t t0;

    for (unsigned i = 0; i < n; i++) {
        req[i].sector_num = (int64_t)(i * 4096) / 512;
        req[i].acct.bytes = 4096;
        req[i].acct.start_time_ns = 1 + i;
        req[i].mr_next = i + 1 < n ? &req[i + 1] : NULL;
    }
    acb.common.bs = &bs;
    acb.common.opaque = &req[0];
    acb.bytes = 4096 * (int64_t)n;
    t0 = now_ns();
    for (unsigned long k = 0; k < count; k++) {
        uint64_t exit_ns = now_ns();
        Pending *p;

        if (!n) {
            sink += exit_ns;
            continue;
        }
        p = free_list;
        if (p)
            free_list = p->next_free;
        else
            p = malloc(sizeof(*p));
        if (blkin_device_check(&acb, &bs, 0, acb.bytes, BLKIN_TP_OP_READ,
                               &p->rec))
            abort();
        p->rec.exit_ns = exit_ns;
        p->cb = acb.common.cb;
        p->opaque = acb.common.opaque;
        acb.common.opaque = p; /* swapped, and back at "completion" */
        acb.common.opaque = p->opaque;
        sink += p->rec.ndev;
        p->next_free = free_list;
        free_list = p;
    }
    return (double)(now_ns() - t0) / (double)count;
}

int main(int argc, char **argv)
{
    unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    const unsigned shapes[] = {0, 1, 16};
    double med[3];

    uint64_t r[3][9];

    round_ns(16, count); /* warm-up */
    /* Interleaved, round by round, so a slower stretch of the machine
     * hits every shape alike. */
    for (unsigned i = 0; i < 9; i++)
        for (unsigned s = 0; s < 3; s++)
            r[s][i] = (uint64_t)(round_ns(shapes[s], count) * 1000);
    for (unsigned s = 0; s < 3; s++) {
        qsort(r[s], 9, sizeof(r[s][0]), cmp_u64);
        med[s] = r[s][4] / 1000.0;
    }
    printf("| what | ns/request | added over one clock read |\n|---|---|---|\n");
    printf("| one clock read (baseline) | %.1f | |\n", med[0]);
    printf("| device timing, 1 device request | %.1f | %.1f |\n", med[1],
           med[1] - med[0]);
    printf("| device timing, 16 merged | %.1f | %.1f |\n", med[2],
           med[2] - med[0]);
    return 0;
}
