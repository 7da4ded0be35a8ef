/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "bpf-collect.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blk-events.h"
#include "bpf-record.h"
#include "blkin-collect.skel.h"

static bool libbpf_verbose;

static int libbpf_log(enum libbpf_print_level level, const char *fmt,
                      va_list ap)
{
    /* libbpf explains a failed load at length: only when asked. */
    if (!libbpf_verbose || level == LIBBPF_DEBUG)
        return 0;
    fputs("blkin-guest-agent: libbpf: ", stderr);
    return vfprintf(stderr, fmt, ap);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 1;

    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

static uint32_t buckets_for(uint32_t inflight)
{
    uint32_t n = pow2_at_least((uint64_t)inflight * 2 / BPF_BUCKET_KEYS);

    return n < 16 ? 16 : n;
}

uint64_t bpf_collector_memory(uint32_t inflight, size_t ring_bytes)
{
    return (uint64_t)buckets_for(inflight) *
               (sizeof(struct bpf_blk_bucket) +
                BPF_BUCKET_KEYS * sizeof(struct bpf_blk_slot)) +
           ring_bytes + 2 * (uint64_t)sysconf(_SC_PAGESIZE);
}

static size_t buckets_bytes(const struct bpf_collector *c)
{
    return (size_t)c->nbuckets * sizeof(struct bpf_blk_bucket);
}

static size_t slots_bytes(const struct bpf_collector *c)
{
    return (size_t)c->nbuckets * BPF_BUCKET_KEYS * sizeof(struct bpf_blk_slot);
}

static void *map_array(struct bpf_map *m, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   bpf_map__fd(m), 0);

    return p == MAP_FAILED ? NULL : p;
}

/* The BLK_STS_* numbers of include/linux/blk_types.h (stable since 4.13)
 * and the errnos blk_status_to_errno() maps them to (block/blk-core.c). */
int32_t bpf_blk_status_errno(uint8_t status)
{
    static const int32_t map[] = {
        0,       -EOPNOTSUPP, -ETIMEDOUT,    -ENOSPC,    -ENOLINK, -EREMOTEIO,
        -EBADE,  -ENODATA,    -EILSEQ,       -ENOMEM,    -EIO,     -EREMCHG,
        -EAGAIN, -EBUSY,      -ETOOMANYREFS, -EOVERFLOW, -ENODEV,  -ETIME,
    };

    return status < sizeof(map) / sizeof(map[0]) ? map[status] : -EIO;
}

static int on_record(void *ctx, void *data, size_t size)
{
    struct bpf_collector *c = ctx;
    const struct bpf_blk_record *b = data;
    struct blkin_request r;

    if (size < sizeof(*b))
        return 0;
    memset(&r, 0, sizeof(r));
    r.major = blk_dev_major(b->dev);
    r.minor = blk_dev_minor(b->dev);
    r.sector = b->sector;
    r.bytes = b->bytes;
    blk_parse_rwbs(b->rwbs, BPF_RWBS_LEN, &r.op, &r.flags);
    r.error = bpf_blk_status_errno(b->status);
    r.queue_ns = b->queue_ns;
    r.issue_ns = b->issue_ns;
    r.complete_ns = b->complete_ns;
    c->got++;
    c->fn(c->user, &r);
    return 0;
}

int bpf_collector_open(struct bpf_collector *c, uint32_t inflight,
                       size_t ring_bytes, bool queue_events, bool verbose)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int r;

    memset(c, 0, sizeof(c[0]));
    if (ring_bytes < page || (ring_bytes & (ring_bytes - 1)))
        return -EINVAL;
    libbpf_verbose = verbose;
    libbpf_set_print(libbpf_log);
    c->nbuckets = buckets_for(inflight);
    c->ring_bytes = ring_bytes;
    c->queue_events = queue_events;

    c->skel = blkin_collect_bpf__open();
    if (!c->skel)
        return errno ? -errno : -ENOENT;
    c->skel->rodata->bucket_mask = c->nbuckets - 1;
    /* Half full, then each sixteenth beyond (blkin-collect.bpf.c). */
    c->skel->rodata->wakeup_bytes = ring_bytes / 2;
    c->skel->rodata->wakeup_shift = (uint32_t)__builtin_ctzll(ring_bytes / 16);
    r = bpf_map__set_max_entries(c->skel->maps.buckets, c->nbuckets);
    if (r == 0)
        r = bpf_map__set_max_entries(c->skel->maps.slots,
                                     c->nbuckets * BPF_BUCKET_KEYS);
    if (r == 0)
        r = bpf_map__set_max_entries(c->skel->maps.records,
                                     (uint32_t)ring_bytes);
    if (r == 0 && !queue_events)
        r = bpf_program__set_autoload(c->skel->progs.on_insert, false);
    if (r == 0)
        r = blkin_collect_bpf__load(c->skel);
    if (r == 0)
        r = blkin_collect_bpf__attach(c->skel);
    if (r < 0)
        goto fail;

    c->buckets = map_array(c->skel->maps.buckets, buckets_bytes(c));
    c->slots = map_array(c->skel->maps.slots, slots_bytes(c));
    if (!c->buckets || !c->slots) {
        r = -errno;
        goto fail;
    }
    c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.records), on_record, c,
                             NULL);
    if (!c->rb) {
        r = errno ? -errno : -ENOMEM;
        goto fail;
    }
    return 0;
fail:
    bpf_collector_close(c);
    return r < 0 ? r : -EINVAL;
}

void bpf_collector_close(struct bpf_collector *c)
{
    if (!c)
        return;
    ring_buffer__free(c->rb);
    if (c->buckets)
        munmap(c->buckets, buckets_bytes(c));
    if (c->slots)
        munmap(c->slots, slots_bytes(c));
    /* Detaches and unloads: the tracepoints stop costing anything. */
    blkin_collect_bpf__destroy(c->skel);
    memset(c, 0, sizeof(c[0]));
}

int bpf_collector_fd(const struct bpf_collector *c)
{
    return ring_buffer__epoll_fd(c->rb);
}

void bpf_collector_watch(struct bpf_collector *c, const uint32_t *devs,
                         unsigned n)
{
    volatile struct blkin_collect_bpf__bss *bss = c->skel->bss;

    if (n > BPF_WATCH_MAX)
        n = BPF_WATCH_MAX;
    /* Shrink first, fill, then publish the count: the programs never read
     * an entry that is being written. */
    if (n < bss->nwatch)
        bss->nwatch = n;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < n; i++)
        bss->watch_dev[i] = devs[i];
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bss->nwatch = n;
}

unsigned bpf_collector_drain(struct bpf_collector *c, bpf_request_fn fn,
                             void *user)
{
    c->fn = fn;
    c->user = user;
    c->got = 0;
    ring_buffer__consume(c->rb);
    return c->got;
}

void bpf_collector_sweep(struct bpf_collector *c, uint64_t now_ns,
                         uint64_t max_age_ns)
{
    for (uint32_t i = 0; i < c->nbuckets * BPF_BUCKET_KEYS; i++) {
        __u64 *key = &c->buckets[i / BPF_BUCKET_KEYS].rq[i % BPF_BUCKET_KEYS];
        __u64 rq = __atomic_load_n(key, __ATOMIC_ACQUIRE);
        const struct bpf_blk_slot *s = &c->slots[i];
        uint64_t t;
        bool issued;

        if (!rq)
            continue;
        issued = s->issue_ns != 0;
        t = issued ? s->issue_ns : s->queue_ns;
        /* A queued request that never issued was merged into another: not
         * a loss. */
        if (t && t + max_age_ns < now_ns &&
            __atomic_compare_exchange_n(key, &rq, 0, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED) &&
            issued)
            c->swept++;
    }
}

uint32_t bpf_collector_in_flight(const struct bpf_collector *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->nbuckets * BPF_BUCKET_KEYS; i++)
        if (__atomic_load_n(
                &c->buckets[i / BPF_BUCKET_KEYS].rq[i % BPF_BUCKET_KEYS],
                __ATOMIC_ACQUIRE) &&
            c->slots[i].issue_ns)
            n++;
    return n;
}

void bpf_collector_counts(const struct bpf_collector *c, uint64_t *lost,
                          uint64_t *unmatched, uint64_t *evicted)
{
    const volatile struct bpf_blk_counters *k = &c->skel->bss->counters;

    *lost = k->lost;
    *unmatched = k->unmatched;
    *evicted = k->evicted + c->swept;
}
