/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-batch.c: completed requests recorded a batch at a time.
 *
 * One LTTng-UST event costs about as much as everything else the filter
 * does for a request (docs/performance.md), so a thread appends its
 * completed requests to a buffer of its own and emits one `batch` event
 * for up to `batch` of them (docs/tracepoints.md). A batch goes out when it
 * is full, when its oldest request is older than `batch-ms` (seen when the
 * next request completes, or by the watcher thread, which then has the
 * owning thread flush it from a bottom half in its AioContext), and when a
 * node of the thread is drained or closed, the thread ends or QEMU exits.
 * A crash loses at most the unflushed batch of each thread: hostd sees the
 * gap in the thread's batch sequence numbers and counts it.
 *
 * Concurrency: a buffer is only ever written by its thread; the watcher
 * reads its age through atomics and asks the thread to flush. The registry
 * of buffers is guarded by blkin_batch_lock.
 */
#include "blkin-filter.h"
#include "blkin-tp.h"

#include "block/aio.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Words a batch holds: BLKIN_BATCH_MAX requests of one device request
 * each; wider records (merged device requests) fill it sooner. */
#define BLKIN_BATCH_WORDS   (BLKIN_BATCH_MAX * (BLKIN_BW__HEAD + 3))
#define BLKIN_REC_MAX_WORDS (BLKIN_BW__HEAD + 3 * BLKIN_DEV_MAX)

typedef struct BlkinBatch BlkinBatch;
struct BlkinBatch {
    struct blkin_batch_head head;
    uint32_t len;      /* words in data */
    uint32_t max;      /* records: the smallest `batch` of its nodes since */
    uint64_t first_ns; /* end of its oldest record (atomic for the watcher) */
    uint64_t max_age_ns;
    AioContext *ctx;      /* the thread's, for the watcher's flush request */
    bool flush_scheduled; /* atomic: a flush bottom half is on its way */
    BlkinBatch *next;     /* in the registry */
    uint64_t data[BLKIN_BATCH_WORDS];
};

static pthread_mutex_t blkin_batch_lock = PTHREAD_MUTEX_INITIALIZER;
static BlkinBatch *blkin_batches; /* every thread's, under the lock */
static pthread_key_t blkin_batch_key;
static __thread BlkinBatch *blkin_batch_mine;

static void blkin_batch_emit(BlkinBatch *b)
{
    if (!b->head.count)
        return;
    b->head.seq++;
    lttng_ust_tracepoint(blkin_qemu, batch, &b->head, b->data, b->len);
    b->head.count = 0;
    b->len = 0;
    qatomic_set(&b->first_ns, 0);
}

/*
 * The thread ends: what it holds goes out. The buffer stays allocated (a
 * flush bottom half may still name it) and registered, empty and without a
 * context: threads that record requests (the main loop, iothreads) live as
 * long as QEMU does.
 */
static void blkin_batch_thread_end(void *p)
{
    BlkinBatch *b = p;

    blkin_batch_emit(b);
    qatomic_set(&b->ctx, NULL);
    blkin_batch_mine = NULL;
}

/* QEMU exits (or a tool ends): the main thread's batch goes out. */
static void blkin_batch_at_exit(void)
{
    if (blkin_batch_mine)
        blkin_batch_emit(blkin_batch_mine);
}

static void __attribute__((constructor)) blkin_batch_init(void)
{
    pthread_key_create(&blkin_batch_key, blkin_batch_thread_end);
    atexit(blkin_batch_at_exit);
}

static BlkinBatch *blkin_batch_get(void)
{
    BlkinBatch *b = blkin_batch_mine;

    if (likely(b))
        return b;
    b = g_new0(BlkinBatch, 1);
    b->head.vpid = blkin_vpid();
    b->head.tid = (int32_t)syscall(SYS_gettid);
    b->ctx = qemu_get_current_aio_context();
    pthread_setspecific(blkin_batch_key, b);
    pthread_mutex_lock(&blkin_batch_lock);
    b->next = blkin_batches;
    blkin_batches = b;
    pthread_mutex_unlock(&blkin_batch_lock);
    blkin_batch_mine = b;
    return b;
}

void blkin_batch_add(const BDRVBlkinState *s, const struct blkin_span *span,
                     uint64_t end_ns, const struct blkin_dev_record *dev,
                     uint64_t dev_end_ns, uint32_t dev_step_ns)
{
    BlkinBatch *b = blkin_batch_get();
    struct blkin_batch_rec *r;
    uint32_t ndev = dev ? dev->ndev : 0;
    uint32_t need = BLKIN_BW__HEAD + 3 * ndev;

    if (b->len + need > BLKIN_BATCH_WORDS)
        blkin_batch_emit(b);
    r = (struct blkin_batch_rec *)(b->data + b->len);
    r->span = *span;
    r->end_ns = end_ns;
    r->dev_end_ns = dev_end_ns;
    r->ndev = ndev;
    r->dev_step_ns = dev_step_ns;
    if (ndev)
        memcpy(r->dev, dev->dev, 3 * ndev * sizeof(uint64_t));
    b->len += need;
    if (!b->head.count++) {
        b->max = s->batch;
        b->max_age_ns = s->batch_ns;
        qatomic_set(&b->first_ns, end_ns);
    } else {
        b->max = MIN(b->max, s->batch);
        b->max_age_ns = MIN(b->max_age_ns, s->batch_ns);
    }
    /* Signed: a device's completion can come after a later request's. */
    if (b->head.count >= b->max ||
        (int64_t)(end_ns - b->first_ns) >= (int64_t)b->max_age_ns)
        blkin_batch_emit(b);
}

bool blkin_batching(const BDRVBlkinState *s)
{
    return s->batch > 1 && lttng_ust_tracepoint_enabled(blkin_qemu, batch);
}

void blkin_batch_flush(void)
{
    if (blkin_batch_mine)
        blkin_batch_emit(blkin_batch_mine);
}

/* The watcher's request, run by the buffer's own thread. */
static void blkin_batch_flush_bh(void *opaque)
{
    BlkinBatch *b = opaque;

    qatomic_set(&b->flush_scheduled, false);
    /* Only its own thread writes a buffer (a context can move between
     * threads only with its requests drained). */
    if (b == blkin_batch_mine)
        blkin_batch_emit(b);
}

bool blkin_batch_watch(uint64_t now_ns)
{
    bool pending = false;

    pthread_mutex_lock(&blkin_batch_lock);
    for (BlkinBatch *b = blkin_batches; b; b = b->next) {
        uint64_t first = qatomic_read(&b->first_ns);

        if (!first)
            continue;
        pending = true;
        AioContext *ctx = qatomic_read(&b->ctx);

        if (now_ns - first >= b->max_age_ns && ctx &&
            !qatomic_xchg(&b->flush_scheduled, true))
            aio_bh_schedule_oneshot_full(ctx, blkin_batch_flush_bh, b,
                                         "blkin-batch");
    }
    pthread_mutex_unlock(&blkin_batch_lock);
    return pending;
}
