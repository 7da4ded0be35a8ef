/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-CPU perf rings carrying tracepoint samples (time + raw payload).
 * All events of one CPU share that CPU's ring (PERF_EVENT_IOC_SET_OUTPUT);
 * a sample tells its event apart by the raw payload's common_type.
 */
#ifndef AGENT_PERF_RINGS_H
#define AGENT_PERF_RINGS_H

#include <stddef.h>
#include <stdint.h>

struct perf_ring {
    int cpu;
    int fd; /* the ring's owner; other events of this CPU write into it */
    void *base;
    size_t size;   /* data area bytes, a power of two */
    uint8_t *data; /* data area */
};

struct perf_rings {
    int nr;
    struct perf_ring *ring;
    int *extra_fds; /* the events redirected into the rings */
    int nr_extra;
    uint64_t lost; /* PERF_RECORD_LOST totals */
};

/*
 * Opens every tracepoint id in ids[] on every online CPU with samples
 * timestamped by CLOCK_MONOTONIC, rings of ring_pages (a power of two).
 */
int perf_rings_open(struct perf_rings *r, const int *ids, int nr_ids,
                    unsigned ring_pages);
void perf_rings_close(struct perf_rings *r);

/*
 * Calls fn for each sample in every ring (at most max per ring, so a flood
 * cannot starve the rest of the loop). Returns the number of samples.
 */
typedef void (*perf_sample_fn)(void *user, uint64_t time, const uint8_t *raw,
                               uint32_t len);
unsigned perf_rings_drain(struct perf_rings *r, unsigned max, perf_sample_fn fn,
                          void *user);

#endif
