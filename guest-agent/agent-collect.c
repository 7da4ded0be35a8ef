/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The collector -> finished requests -> the record queue. The BPF collector
 * hands over finished requests; perf samples are decoded into block events
 * and matched here.
 */
#include <stdlib.h>

#include "agent-int.h"
#include "devmap.h"

static void on_sample(void *user, uint64_t time, const uint8_t *raw,
                      uint32_t len)
{
    struct agent *a = user;
    struct blk_event ev;

    if (a->nbatch >= EVENT_BATCH || !blk_decode(&a->bd, time, raw, len, &ev))
        return;
    /* Only the mapped disks: the host cannot place anything else. */
    if (!devmap_has_dev(&a->map, ev.dev))
        return;
    a->batch[a->nbatch++] = ev;
}

static void on_request(void *user, const struct blkin_request *r)
{
    struct agent *a = user;

    /* One clock read per drain is precise enough for the flush timer. */
    recq_push(&a->q, r, a->drain_ns);
}

static int cmp_time(const void *x, const void *y)
{
    const struct blk_event *a = x, *b = y;

    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    /* Same instant: let an issue precede its completion. */
    return (int)a->kind - (int)b->kind;
}

static bool sorted(const struct blk_event *e, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++)
        if (cmp_time(&e[i - 1], &e[i]) > 0)
            return false;
    return true;
}

static void agent_collect_perf(struct agent *a);

void agent_collector_counts(const struct agent *a, uint64_t *lost,
                            uint64_t *unmatched, uint64_t *evicted)
{
    if (a->mech == AGENT_MECH_BPF) {
        bpf_collector_counts(&a->bpf, lost, unmatched, evicted);
        return;
    }
    *lost = a->rings.lost;
    *unmatched = a->match.unmatched;
    *evicted = a->match.evicted;
}

static void on_bpf_request(void *user, const struct blkin_request *r)
{
    struct agent *a = user;

    /* The programs time only mapped disks; a disk that just left the map
     * may still have a record in the ring. */
    if (!devmap_has_dev(&a->map, r->major << 20 | r->minor))
        return;
    recq_push(&a->q, r, a->drain_ns);
}

void agent_collect(struct agent *a)
{
    if (a->mech == AGENT_MECH_BPF) {
        a->drain_ns = mono_now();
        bpf_collector_drain(&a->bpf, on_bpf_request, a);
        return;
    }
    agent_collect_perf(a);
}

static void agent_collect_perf(struct agent *a)
{
    /* Each ring may fill its share of the batch; loop while they do. */
    unsigned per_ring = EVENT_BATCH / (unsigned)a->rings.nr;

    for (int round = 0; round < 64; round++) {
        unsigned got;

        a->nbatch = 0;
        a->drain_ns = mono_now();
        got = perf_rings_drain(&a->rings, per_ring, on_sample, a);
        /* One CPU's ring is already in time order: sort only a mix. */
        if (!sorted(a->batch, a->nbatch))
            qsort(a->batch, a->nbatch, sizeof(a->batch[0]), cmp_time);
        for (uint32_t i = 0; i < a->nbatch; i++)
            matcher_event(&a->match, &a->batch[i], on_request, a);
        matcher_retry_orphans(&a->match, on_request, a);
        if (got < per_ring)
            break;
    }
}
