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
 * The timer is a main-loop timer that takes the node's AioContext lock, so
 * it runs under the same lock as the node's requests. It is not placed in
 * the node's AioContext: AioContext's layout depends on QEMU's configure
 * options (linux-aio, io_uring), which the filter must not rely on.
 */
#include "blkin-filter.h"
#include "blkin-tp.h"

#define BLKIN_TICK_MS 250

void blkin_emit_disk(BlockDriverState *bs, enum blkin_disk_state state)
{
    BDRVBlkinState *s = bs->opaque;

    lttng_ust_tracepoint(blkin_qemu, disk, s->disk, state, s->id, bs->node_name,
                         bs->file ? bs->file->bs->node_name : "", s->sample);
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

static void blkin_watch_tick(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVBlkinState *s = bs->opaque;
    AioContext *ctx = bdrv_get_aio_context(bs);
    uint64_t now = blkin_now_ns();

    aio_context_acquire(ctx);
    blkin_watch_hung(s, now);
    blkin_watch_map(bs, now);
    aio_context_release(ctx);
    timer_mod(s->tick, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + BLKIN_TICK_MS);
}

void blkin_watch_start(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    /* The open event itself told current sessions the map. */
    s->map_was_enabled = lttng_ust_tracepoint_enabled(blkin_qemu, disk);
    s->next_map_ns = blkin_now_ns() + s->map_interval_ns;
    s->tick = timer_new_ms(QEMU_CLOCK_REALTIME, blkin_watch_tick, bs);
    timer_mod(s->tick, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + BLKIN_TICK_MS);
}

void blkin_watch_stop(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    if (!s->tick)
        return;
    timer_free(s->tick);
    s->tick = NULL;
}
