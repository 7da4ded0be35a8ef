/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-trace.c: what the filter does around each forwarded request.
 *
 * Cost model (docs/performance.md): with no LTTng session enabling our
 * events, begin/end are one load and a branch each. With a session, a
 * request costs one clock read (its start; the end is the `request` event's
 * own timestamp), two ids from the node's block of id numbers, a list
 * insert and remove and, when recorded, one LTTng event at completion.
 */
#include "blkin-filter.h"
#include "blkin-span-id.h"
#include "blkin-tp.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

/*
 * Id numbers a node takes from the process-wide counter at once: its
 * requests then draw ids without an atomic operation (the node's state is
 * under its AioContext lock, blkin-filter.h).
 */
#define BLKIN_ID_BLOCK 4096

/*
 * getpid() is a system call in glibc >= 2.25, far too slow for every
 * request; the cached value is refreshed in a forked child (QEMU's
 * -daemonize forks after the filter is loaded).
 */
static int32_t blkin_pid;

static void blkin_pid_refresh(void)
{
    blkin_pid = (int32_t)getpid();
}

static void __attribute__((constructor)) blkin_pid_init(void)
{
    blkin_pid_refresh();
    pthread_atfork(NULL, NULL, blkin_pid_refresh);
}

int32_t blkin_vpid(void)
{
    return blkin_pid;
}

void blkin_set_sample(BDRVBlkinState *s, uint32_t sample)
{
    uint64_t seed;

    s->sample = sample;
    /* Sampled when the next random draw is <= cut: P = 1/N, exact for 1. */
    s->sample_cut = sample ? UINT64_MAX / sample : 0;
    blkin_span_ids(&seed, 1);
    s->rng = seed;
}

/* xorshift64*: cheap, and random so periodic workloads do not alias. */
static uint64_t blkin_rng(BDRVBlkinState *s)
{
    uint64_t x = s->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* The next id number of the node's block; @n numbers are left after it. */
static inline uint64_t blkin_id_numbers(BDRVBlkinState *s, unsigned n)
{
    uint64_t first;

    if (unlikely(s->id_end - s->id_next < n)) {
        s->id_next = blkin_span_id_reserve(BLKIN_ID_BLOCK);
        s->id_end = s->id_next + BLKIN_ID_BLOCK;
    }
    first = s->id_next;
    s->id_next += n;
    return first;
}

static bool blkin_tracing(void)
{
    return lttng_ust_tracepoint_enabled(blkin_qemu, request) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, batch) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, hung);
}

void coroutine_fn blkin_req_begin(BlockDriverState *bs, BlkinReq *r,
                                  enum blkin_tp_op op, int64_t offset,
                                  int64_t bytes, BdrvRequestFlags flags)
{
    BDRVBlkinState *s = bs->opaque;
    const BlkinReq *parent = NULL;
    uint64_t n;

    r->traced = blkin_tracing();
    if (!r->traced)
        return;
    if (unlikely(!s->watching))
        blkin_watch_wake(bs);

    r->span.start_ns = blkin_now_ns();
    r->span.vpid = blkin_pid;
    r->span.disk = (int32_t)s->disk;
    r->span.op = op;
    r->span.flags = (int32_t)flags;
    r->span.offset = offset;
    r->span.bytes = bytes;
    r->span.inflight = (int32_t)s->inflight;
    r->next_hung_ns = r->span.start_ns + s->hung_ns;
    r->co = NULL;

    /* Only a second blkin node in the process can be below or above us. */
    if (qatomic_read(&blkin_instances) > 1)
        parent = blkin_parent_find();
    if (parent) {
        /* Sampling is decided once per trace, at its root. */
        r->span.span_id = blkin_span_id_at(blkin_id_numbers(s, 1));
        r->span.trace_id = parent->span.trace_id;
        r->span.parent_span_id = parent->span.span_id;
        r->sampled = parent->sampled;
        r->span.why = parent->sampled ? BLKIN_WHY_PARENT : 0;
    } else {
        n = blkin_id_numbers(s, 2);
        r->span.trace_id = blkin_span_id_at(n);
        r->span.span_id = blkin_span_id_at(n + 1);
        r->span.parent_span_id = 0;
        r->sampled = s->sample && blkin_rng(s) <= s->sample_cut;
        r->span.why = r->sampled ? BLKIN_WHY_SAMPLED : 0;
    }
    if (qatomic_read(&blkin_instances) > 1)
        blkin_parent_push(r);

    s->inflight++;
    QLIST_INSERT_HEAD(&s->reqs, r, next);
}

/* The request's exit: the filter's clock never runs backwards, and this
 * keeps a request on another CPU (or the rare fallback read, blkin-clock.c)
 * from ending before it started; hostd refuses such a record. */
static inline uint64_t blkin_exit_ns(const BlkinReq *r)
{
    uint64_t now = blkin_now_ns();

    return now > r->span.start_ns ? now : r->span.start_ns;
}

void coroutine_fn blkin_req_end(BlockDriverState *bs, BlkinReq *r, int ret)
{
    BDRVBlkinState *s = bs->opaque;
    uint64_t exit_ns = 0;

    if (!r->traced)
        return;

    r->span.ret = ret < 0 ? ret : 0;
    QLIST_REMOVE(r, next);
    s->inflight--;
    if (r->co) /* only with stacked blkin nodes: no call otherwise */
        blkin_parent_pop(r);

    /* The one clock read at the end: for slow-ms, for a batch (whose event
     * is stamped later) and for device timing (whose event stamps the
     * device's completion). Without any the `request` event's stamp is the
     * end. */
    if (!r->sampled && s->slow_ns) {
        exit_ns = blkin_exit_ns(r);
        if (exit_ns - r->span.start_ns >= s->slow_ns)
            r->span.why |= BLKIN_WHY_SLOW;
    }
    if (!r->span.why)
        return;
    if (s->dev_mode != BLKIN_DEV_OFF && s->dev_mode != BLKIN_DEV_OTHER &&
        blkin_device_defer(bs, r, exit_ns ? exit_ns : blkin_exit_ns(r)))
        return;
    if (blkin_batching(s)) {
        blkin_batch_add(s, &r->span, exit_ns ? exit_ns : blkin_exit_ns(r), NULL,
                        0, 0);
        return;
    }
    lttng_ust_tracepoint(blkin_qemu, request, &r->span);
}
