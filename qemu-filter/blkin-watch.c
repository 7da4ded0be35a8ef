/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-watch.c: a node's periodic tick, off the request path.
 *
 * - Hung requests: every in-flight traced request older than hung-ms gets a
 *   `hung` event, again every hung-ms while it hangs. The fast path only
 *   links requests into a list; all the looking happens here.
 * - The disk map: the `disk` event is re-emitted every map-interval, and at
 *   once when a session starts recording it (the event's enabled state goes
 *   from off to on). So a viewer that attaches late learns the map, and one
 *   can ask for it on demand by enabling `blkin_qemu:disk`.
 *
 * The tick is a bottom half in QEMU's main AioContext, scheduled every
 * 250 ms by one watcher thread per process, and only for nodes that are
 * "watching": while a session records any blkin_qemu event or a traced
 * request is in flight. It is not a main-loop timer: an armed timer costs
 * the main loop a clock read and timer-list work on every iteration, which
 * at queue depth 1 is every request (~75 ns measured, docs/performance.md).
 * The first traced request after a session starts wakes the node
 * (blkin_watch_wake); the tick stops it once nothing records and nothing is
 * in flight; with no node watching the thread sleeps on a condition
 * variable, so a process without a session pays nothing at all.
 *
 * The tick takes the node's AioContext lock, so it runs under the same lock
 * as the node's requests. It is not placed in the node's AioContext:
 * AioContext's layout depends on QEMU's configure options (linux-aio,
 * io_uring), which the filter must not rely on, and the node may move.
 */
#include "blkin-filter.h"
#include "blkin-tp.h"

#include "qemu/main-loop.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#define BLKIN_TICK_MS 250
/* How often the watcher looks at threads' batches while one holds any. */
#define BLKIN_BATCH_WATCH_MS 20

void blkin_emit_disk(BlockDriverState *bs, enum blkin_disk_state state)
{
    BDRVBlkinState *s = bs->opaque;

    lttng_ust_tracepoint(blkin_qemu, disk, blkin_vpid(), s->disk, state, s->id,
                         bs->node_name, bs->file ? bs->file->bs->node_name : "",
                         s->sample, s->device ? s->device : "");
}

static void blkin_watch_hung(BDRVBlkinState *s, uint64_t now)
{
    BlkinReq *r;

    if (!s->hung_ns || !lttng_ust_tracepoint_enabled(blkin_qemu, hung))
        return;
    QLIST_FOREACH(r, &s->reqs, next)
    {
        if (now < r->next_hung_ns)
            continue;
        lttng_ust_tracepoint(blkin_qemu, hung, &r->span, now);
        r->next_hung_ns = now + s->hung_ns;
    }
}

static void blkin_watch_map(BlockDriverState *bs, uint64_t now)
{
    BDRVBlkinState *s = bs->opaque;
    bool enabled = lttng_ust_tracepoint_enabled(blkin_qemu, disk);

    if (enabled && (!s->map_was_enabled ||
                    (s->map_interval_ns && now >= s->next_map_ns))) {
        blkin_emit_disk(bs, BLKIN_DISK_REFRESH);
        s->next_map_ns = now + s->map_interval_ns;
    }
    s->map_was_enabled = enabled;
}

static bool blkin_any_enabled(void)
{
    return lttng_ust_tracepoint_enabled(blkin_qemu, request) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, batch) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, hung) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, disk);
}

/*
 * The watcher thread and the nodes it schedules ticks for. blkin_watch_lock
 * guards the list, the thread's existence and the condition variable; a
 * node's `watching` flag is written under its AioContext lock and read here
 * without it (a late read only delays or adds one harmless tick).
 */
static pthread_mutex_t blkin_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t blkin_watch_cond;
static GSList *blkin_watched; /* BDRVBlkinState * of open nodes */
static bool blkin_watch_thread_up;

static void *blkin_watch_thread(void *arg)
{
    pthread_mutex_lock(&blkin_watch_lock);
    for (;;) {
        bool any = false, batches;
        struct timespec due;

        for (GSList *l = blkin_watched; l; l = l->next) {
            BDRVBlkinState *s = l->data;

            if (qatomic_read(&s->watching)) {
                any = true;
                qemu_bh_schedule(s->tick_bh); /* thread-safe */
            }
        }
        /* Threads holding a batch past its bound flush it: while any
         * holds one, the watcher looks more often than it ticks. */
        batches = blkin_batch_watch(blkin_now_ns());
        if (!any && !batches) {
            pthread_cond_wait(&blkin_watch_cond, &blkin_watch_lock);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &due);
        due.tv_nsec +=
            (batches ? BLKIN_BATCH_WATCH_MS : BLKIN_TICK_MS) * 1000000L;
        if (due.tv_nsec >= 1000000000L) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&blkin_watch_cond, &blkin_watch_lock, &due);
    }
    return NULL;
}

/* Starts the watcher thread if needed and wakes it; under blkin_watch_lock. */
static void blkin_watch_kick_locked(void)
{
    pthread_t tid;
    sigset_t all, old;

    if (!blkin_watch_thread_up) {
        /* QEMU's own threads block all signals; so does this one. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        blkin_watch_thread_up =
            pthread_create(&tid, NULL, blkin_watch_thread, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (blkin_watch_thread_up)
            pthread_detach(tid);
    }
    pthread_cond_signal(&blkin_watch_cond);
}

static void blkin_watch_cond_init(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&blkin_watch_cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* QEMU's -daemonize forks: the child has no watcher thread until a kick. */
static void blkin_watch_prefork(void)
{
    pthread_mutex_lock(&blkin_watch_lock);
}

static void blkin_watch_postfork_parent(void)
{
    pthread_mutex_unlock(&blkin_watch_lock);
}

static void blkin_watch_postfork_child(void)
{
    /* Not watching: the next traced request wakes the node and the thread. */
    for (GSList *l = blkin_watched; l; l = l->next)
        ((BDRVBlkinState *)l->data)->watching = false;
    blkin_watch_thread_up = false;
    blkin_watch_cond_init();
    pthread_mutex_unlock(&blkin_watch_lock);
}

static void __attribute__((constructor)) blkin_watch_init(void)
{
    blkin_watch_cond_init();
    pthread_atfork(blkin_watch_prefork, blkin_watch_postfork_parent,
                   blkin_watch_postfork_child);
}

static void blkin_watch_tick(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVBlkinState *s = bs->opaque;
    AioContext *ctx = bdrv_get_aio_context(bs);
    uint64_t now = blkin_now_ns();

    aio_context_acquire(ctx);
    blkin_watch_hung(s, now);
    blkin_watch_map(bs, now);
    qatomic_set(&s->watching, blkin_any_enabled() || !QLIST_EMPTY(&s->reqs));
    aio_context_release(ctx);
}

static void blkin_watch_set(BDRVBlkinState *s)
{
    pthread_mutex_lock(&blkin_watch_lock);
    qatomic_set(&s->watching, true);
    blkin_watch_kick_locked();
    pthread_mutex_unlock(&blkin_watch_lock);
}

void blkin_watch_wake(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    if (!s->tick_bh)
        return;
    /* A session that started since the last tick learns the map first. */
    blkin_watch_map(bs, blkin_now_ns());
    blkin_watch_set(s);
}

void blkin_watch_start(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    /* The open event itself told current sessions the map. */
    s->map_was_enabled = lttng_ust_tracepoint_enabled(blkin_qemu, disk);
    s->next_map_ns = blkin_now_ns() + s->map_interval_ns;
    s->tick_bh = aio_bh_new(qemu_get_aio_context(), blkin_watch_tick, bs);
    pthread_mutex_lock(&blkin_watch_lock);
    blkin_watched = g_slist_prepend(blkin_watched, s);
    pthread_mutex_unlock(&blkin_watch_lock);
    if (blkin_any_enabled())
        blkin_watch_set(s);
}

void blkin_watch_stop(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    /* Off the list first: then the thread cannot schedule the BH again. */
    pthread_mutex_lock(&blkin_watch_lock);
    blkin_watched = g_slist_remove(blkin_watched, s);
    qatomic_set(&s->watching, false);
    pthread_mutex_unlock(&blkin_watch_lock);
    /* A scheduled but not yet run BH is dropped by qemu_bh_delete. */
    qemu_bh_delete(s->tick_bh);
    s->tick_bh = NULL;
}
