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
 * The tick runs only while a session records any blkin_qemu event: with
 * none, a pending timer would still cost the main loop a clock read per
 * iteration, which at queue depth 1 is a clock read per request. The first
 * traced request after a session starts wakes it (blkin_watch_wake), and it
 * stops itself once no session records and no traced request is in flight.
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

    lttng_ust_tracepoint(blkin_qemu, disk, blkin_vpid(), s->disk, state, s->id,
                         bs->node_name, bs->file ? bs->file->bs->node_name : "",
                         s->sample);
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
           lttng_ust_tracepoint_enabled(blkin_qemu, hung) ||
           lttng_ust_tracepoint_enabled(blkin_qemu, disk);
}

static void blkin_watch_arm(BDRVBlkinState *s)
{
    timer_mod(s->tick, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + BLKIN_TICK_MS);
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
    s->watching = blkin_any_enabled() || !QLIST_EMPTY(&s->reqs);
    if (s->watching)
        blkin_watch_arm(s);
    aio_context_release(ctx);
}

void blkin_watch_wake(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    if (!s->tick)
        return;
    /* A session that started since the last tick learns the map first. */
    blkin_watch_map(bs, blkin_now_ns());
    s->watching = true;
    blkin_watch_arm(s);
}

void blkin_watch_start(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    /* The open event itself told current sessions the map. */
    s->map_was_enabled = lttng_ust_tracepoint_enabled(blkin_qemu, disk);
    s->next_map_ns = blkin_now_ns() + s->map_interval_ns;
    s->tick = timer_new_ms(QEMU_CLOCK_REALTIME, blkin_watch_tick, bs);
    s->watching = blkin_any_enabled();
    if (s->watching)
        blkin_watch_arm(s);
}

void blkin_watch_stop(BlockDriverState *bs)
{
    BDRVBlkinState *s = bs->opaque;

    timer_free(s->tick);
    s->tick = NULL;
    s->watching = false;
}
