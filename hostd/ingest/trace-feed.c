/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-feed.c: a trace input kept read, reopened and accounted
 * (trace-feed.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include "trace-feed.h"

#define LIVE_RETRY_MS 1000
/* Rounds of bounded work per main-loop turn, so agents and clients are
 * served too. */
#define POLL_ROUNDS 64

struct HostdTraceFeed {
    unsigned index;
    char *url; /* live URL or trace directory */
    bool offline;
    const HostdTraceSink *sink;
    void *opaque;
    HostdTraceFeedEnded ended;
    void *ended_opaque;
    bool outage_logged; /* this outage has had its log line */
    HostdTraceSource *src;
    bool established;        /* src has delivered (poll > 0) at least once */
    guint timer;             /* pending poll or reopen */
    HostdTraceStats past;    /* of sources already closed */
    HostdLiveHealth *health; /* live: losses and gaps */
    uint64_t time_ns;
};

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static void stats_add(HostdTraceStats *to, const HostdTraceStats *s)
{
    to->events += s->events;
    to->spans += s->spans;
    to->hung += s->hung;
    to->zipkin += s->zipkin;
    to->disks += s->disks;
    to->rejected += s->rejected;
    to->ignored += s->ignored;
    to->discarded += s->discarded;
    to->discarded_unknown += s->discarded_unknown;
    to->batches += s->batches;
    to->batches_lost += s->batches_lost;
}

static gboolean open_live(gpointer user);

static void close_source(HostdTraceFeed *f)
{
    HostdTraceStats s;

    if (!f->src)
        return;
    hostd_trace_source_get_stats(f->src, &s);
    stats_add(&f->past, &s);
    g_clear_pointer(&f->src, hostd_trace_source_free);
}

/*
 * A live input that cannot be read: one log line per outage, however many
 * times a second the retry fails (the counters and `blkin status` tell the
 * rest); "is back" ends it.
 */
static void outage(HostdTraceFeed *f, const char *why)
{
    if (f->offline) {
        g_warning("trace input %u (%s) failed: %s", f->index, f->url, why);
        return;
    }
    if (f->outage_logged)
        return;
    g_warning("trace input %u (%s) unavailable: %s; retrying every %d ms "
              "(logged once per outage)",
              f->index, f->url, why, LIVE_RETRY_MS);
    f->outage_logged = true;
}

static gboolean poll_feed(gpointer user)
{
    HostdTraceFeed *f = user;
    int ret = 0;

    f->timer = 0;
    for (int i = 0; i < POLL_ROUNDS; i++) {
        ret = hostd_trace_source_poll(f->src);
        if (ret != HOSTD_TRACE_MORE)
            break;
    }
    f->time_ns = MAX(f->time_ns, hostd_trace_source_time_ns(f->src));
    if (f->sink->delivered)
        f->sink->delivered(f->opaque, (uint16_t)f->index, (int64_t)f->time_ns);
    if (ret > 0) {
        /* Delivering means time advancing (events or live beacons): a
         * relay that answers for a session that is not there does not. */
        if (!f->established && hostd_trace_source_time_ns(f->src) > 0) {
            f->established = true;
            if (f->health) {
                if (f->health->state == HOSTD_LIVE_LOST || f->outage_logged)
                    g_message("trace input %u (%s) is back", f->index, f->url);
                hostd_live_health_up(f->health, now_ns());
            }
            f->outage_logged = false;
        }
        f->timer = g_timeout_add(
            ret == HOSTD_TRACE_MORE ? 0 : HOSTD_TRACE_IDLE_MS, poll_feed, f);
        return G_SOURCE_REMOVE;
    }
    if (ret < 0)
        outage(f, hostd_trace_source_error(f->src)
                      ? hostd_trace_source_error(f->src)
                      : g_strerror(-ret));
    close_source(f);
    if (f->offline) {
        if (f->ended)
            f->ended(f->ended_opaque, f);
        return G_SOURCE_REMOVE;
    }
    /* The session was destroyed, its daemons died, or the relay went away:
     * a gap begins; wait for the session to come back. A source that never
     * delivered (the session is not there yet) continues the same wait. */
    if (f->established && !f->outage_logged) {
        g_warning("trace input %u (%s) lost; waiting for it to return",
                  f->index, f->url);
        f->outage_logged = true;
    }
    hostd_live_health_down(f->health, now_ns(),
                           ret < 0 ? g_strerror(-ret) : "session ended");
    f->established = false;
    f->timer = g_timeout_add(LIVE_RETRY_MS, open_live, f);
    return G_SOURCE_REMOVE;
}

static gboolean open_live(gpointer user)
{
    HostdTraceFeed *f = user;
    g_autoptr(GError) err = NULL;

    f->timer = 0;
    f->src = hostd_trace_source_new_live(f->url, f->sink, f->opaque, &err);
    if (!f->src) {
        outage(f, err->message);
        hostd_live_health_down(f->health, now_ns(), err->message);
        f->timer = g_timeout_add(LIVE_RETRY_MS, open_live, f);
        return G_SOURCE_REMOVE;
    }
    hostd_trace_source_set_index(f->src, (uint16_t)f->index);
    f->timer = g_idle_add(poll_feed, f);
    return G_SOURCE_REMOVE;
}

static HostdTraceFeed *feed_alloc(unsigned index, const char *url,
                                  const HostdTraceSink *sink, void *opaque)
{
    HostdTraceFeed *f = g_new0(HostdTraceFeed, 1);

    f->index = index;
    f->url = g_strdup(url);
    f->sink = sink;
    f->opaque = opaque;
    return f;
}

HostdTraceFeed *hostd_trace_feed_new_live(unsigned index, const char *url,
                                          const HostdTraceSink *sink,
                                          void *opaque)
{
    HostdTraceFeed *f = feed_alloc(index, url, sink, opaque);

    f->health = hostd_live_health_new(now_ns());
    f->timer = g_idle_add(open_live, f);
    return f;
}

HostdTraceFeed *hostd_trace_feed_new_offline(unsigned index, const char *dir,
                                             const HostdTraceSink *sink,
                                             void *opaque,
                                             HostdTraceFeedEnded ended,
                                             void *ended_opaque, GError **err)
{
    g_autoptr(HostdTraceFeed) f = feed_alloc(index, dir, sink, opaque);

    f->offline = true;
    f->ended = ended;
    f->ended_opaque = ended_opaque;
    f->src = hostd_trace_source_new_offline(dir, sink, opaque, err);
    if (!f->src)
        return NULL;
    hostd_trace_source_set_index(f->src, (uint16_t)index);
    f->timer = g_idle_add(poll_feed, f);
    return g_steal_pointer(&f);
}

void hostd_trace_feed_free(HostdTraceFeed *f)
{
    if (!f)
        return;
    if (f->timer)
        g_source_remove(f->timer);
    hostd_trace_source_free(f->src);
    hostd_live_health_free(f->health);
    g_free(f->url);
    g_free(f);
}

unsigned hostd_trace_feed_index(const HostdTraceFeed *f)
{
    return f->index;
}

const char *hostd_trace_feed_url(const HostdTraceFeed *f)
{
    return f->url;
}

HostdTraceSource *hostd_trace_feed_source(const HostdTraceFeed *f)
{
    return f->src;
}

const HostdLiveHealth *hostd_trace_feed_health(const HostdTraceFeed *f)
{
    return f->health;
}

void hostd_trace_feed_get_stats(const HostdTraceFeed *f,
                                HostdTraceFeedStats *st)
{
    HostdTraceStats cur;

    *st = (HostdTraceFeedStats){
        .reading = f->src && f->established,
        .time_ns = f->time_ns,
        .source = f->past,
    };
    if (f->src) {
        hostd_trace_source_get_stats(f->src, &cur);
        stats_add(&st->source, &cur);
    }
}
