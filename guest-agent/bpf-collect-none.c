/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The BPF collector of an agent built without it (-Dagent_bpf=disabled, or
 * no clang, bpftool or static libbpf at build time): it is never available,
 * so the agent uses perf.
 */
#include "bpf-collect.h"

#include <errno.h>
#include <string.h>

int bpf_collector_open(struct bpf_collector *c, uint32_t inflight,
                       size_t ring_bytes, bool queue_events, bool verbose)
{
    memset(c, 0, sizeof(c[0]));
    return -EOPNOTSUPP;
}

void bpf_collector_close(struct bpf_collector *c)
{
}

uint64_t bpf_collector_memory(uint32_t inflight, size_t ring_bytes)
{
    return 0;
}

int bpf_collector_fd(const struct bpf_collector *c)
{
    return -1;
}

void bpf_collector_watch(struct bpf_collector *c, const uint32_t *devs,
                         unsigned n)
{
}

unsigned bpf_collector_drain(struct bpf_collector *c, bpf_request_fn fn,
                             void *user)
{
    return 0;
}

void bpf_collector_sweep(struct bpf_collector *c, uint64_t now_ns,
                         uint64_t max_age_ns)
{
}

uint32_t bpf_collector_in_flight(const struct bpf_collector *c)
{
    return 0;
}

void bpf_collector_counts(const struct bpf_collector *c, uint64_t *lost,
                          uint64_t *unmatched, uint64_t *evicted)
{
    *lost = *unmatched = *evicted = 0;
}

int32_t bpf_blk_status_errno(uint8_t status)
{
    return status ? -EIO : 0;
}
