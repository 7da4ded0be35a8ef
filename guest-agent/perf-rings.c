/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "perf-rings.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int perf_open(struct perf_event_attr *a, int cpu)
{
    return (int)syscall(SYS_perf_event_open, a, -1, cpu, -1,
                        PERF_FLAG_FD_CLOEXEC);
}

static void attr_for(struct perf_event_attr *a, int id, size_t ring_bytes)
{
    memset(a, 0, sizeof(*a));
    a->size = sizeof(*a);
    a->type = PERF_TYPE_TRACEPOINT;
    a->config = (uint64_t)id;
    a->sample_period = 1;
    a->sample_type = PERF_SAMPLE_TIME | PERF_SAMPLE_RAW;
    /* Timestamps comparable with the guest's clock_gettime(MONOTONIC). */
    a->use_clockid = 1;
    a->clockid = CLOCK_MONOTONIC;
    /* The agent drains on a timer; a wakeup is only needed to keep a
     * burst from overflowing, so it comes when half the ring is used. */
    a->watermark = 1;
    a->wakeup_watermark = (uint32_t)(ring_bytes / 2);
}

int perf_rings_open(struct perf_rings *r, const int *ids, int nr_ids,
                    unsigned ring_pages)
{
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (size_t)ring_pages * page;
    int err = 0;

    memset(r, 0, sizeof(*r));
    if (ncpu < 1 || nr_ids < 1 || (ring_pages & (ring_pages - 1)))
        return -EINVAL;
    r->ring = calloc((size_t)ncpu, sizeof(*r->ring));
    r->extra_fds = calloc((size_t)(ncpu * (nr_ids - 1) + 1), sizeof(int));
    if (!r->ring || !r->extra_fds) {
        err = -ENOMEM;
        goto fail;
    }
    for (int cpu = 0; cpu < ncpu; cpu++) {
        struct perf_event_attr a;
        struct perf_ring *ring = &r->ring[r->nr];
        int fd;

        attr_for(&a, ids[0], data);
        fd = perf_open(&a, cpu);
        if (fd < 0) {
            if (errno == ENODEV || errno == EINVAL)
                continue; /* offline or absent CPU */
            err = -errno;
            goto fail;
        }
        ring->cpu = cpu;
        ring->fd = fd;
        ring->size = data;
        ring->base =
            mmap(NULL, page + data, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (ring->base == MAP_FAILED) {
            err = -errno;
            close(fd);
            goto fail;
        }
        ring->data = (uint8_t *)ring->base + page;
        r->nr++;
        for (int i = 1; i < nr_ids; i++) {
            int efd;

            attr_for(&a, ids[i], data);
            efd = perf_open(&a, cpu);
            if (efd < 0) {
                err = -errno;
                goto fail;
            }
            r->extra_fds[r->nr_extra++] = efd;
            if (ioctl(efd, PERF_EVENT_IOC_SET_OUTPUT, fd) < 0) {
                err = -errno;
                goto fail;
            }
        }
    }
    return r->nr > 0 ? 0 : -ENODEV;
fail:
    perf_rings_close(r);
    return err;
}

void perf_rings_close(struct perf_rings *r)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    if (!r)
        return;
    for (int i = 0; i < r->nr_extra; i++)
        close(r->extra_fds[i]);
    for (int i = 0; i < r->nr; i++) {
        munmap(r->ring[i].base, page + r->ring[i].size);
        close(r->ring[i].fd);
    }
    free(r->ring);
    free(r->extra_fds);
    memset(r, 0, sizeof(*r));
}

/* Copies len bytes at ring offset pos, unwrapping the end of the ring. */
static void ring_copy(const struct perf_ring *ring, uint64_t pos, void *dst,
                      size_t len)
{
    size_t off = (size_t)(pos & (ring->size - 1));
    size_t first = ring->size - off;

    if (first >= len) {
        memcpy(dst, ring->data + off, len);
    } else {
        memcpy(dst, ring->data + off, first);
        memcpy((uint8_t *)dst + first, ring->data, len - first);
    }
}

unsigned perf_rings_drain(struct perf_rings *r, unsigned max, perf_sample_fn fn,
                          void *user)
{
    /* A sample larger than this is not one of ours; it is skipped. */
    static uint8_t rec[4096] __attribute__((aligned(8)));
    unsigned total = 0;

    for (int i = 0; i < r->nr; i++) {
        struct perf_ring *ring = &r->ring[i];
        struct perf_event_mmap_page *meta = ring->base;
        uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
        uint64_t tail = meta->data_tail;
        unsigned n = 0;

        while (tail < head && n < max) {
            struct perf_event_header h;

            ring_copy(ring, tail, &h, sizeof(h));
            if (h.size < sizeof(h))
                break; /* corrupt ring: stop rather than spin */
            if (h.size <= sizeof(rec)) {
                size_t off = (size_t)(tail & (ring->size - 1));
                const uint8_t *p = ring->data + off;

                /* Copy only a record that wraps around the ring's end. */
                if (off + h.size > ring->size) {
                    ring_copy(ring, tail, rec, h.size);
                    p = rec;
                }
                if (h.type == PERF_RECORD_SAMPLE && h.size >= 20) {
                    uint64_t time;
                    uint32_t raw_len;

                    memcpy(&time, p + 8, 8);
                    memcpy(&raw_len, p + 16, 4);
                    if (20 + (size_t)raw_len <= h.size) {
                        fn(user, time, p + 20, raw_len);
                        n++;
                    }
                } else if (h.type == PERF_RECORD_LOST && h.size >= 24) {
                    uint64_t lost;

                    memcpy(&lost, p + 16, 8);
                    r->lost += lost;
                }
            }
            tail += h.size;
        }
        __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
        total += n;
    }
    return total;
}
