/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-join.c: client spans on one node, server spans on another, joined
 * without ids (remote-join.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-join"

#include "remote-join.h"

#include <string.h>

/* Pair constraints remembered for the clock estimate. */
#define CONSTRAINTS 4096
/* Contradicting pairs in a row that make a clock step, not an odd pair. */
#define STEP_PAIRS 3
/* Slack for a server span "inside" its client span: timestamps of two
 * clocks, each read once per event. */
#define INSIDE_SLACK_NS 1000

typedef struct Client {
    HostdSpan top;
    HostdSpan client;
    bool has_lower; /* client is a lower span, not the top itself */
} Client;

typedef struct ServerKey {
    uint64_t offset;
    uint64_t bytes;
    uint8_t op;
} ServerKey;

typedef struct Server {
    HostdSpan s;
    uint64_t lower_ns;
} Server;

typedef struct Constraint {
    int64_t at; /* client end: when the pair happened, node A's clock */
    int64_t lo, hi;
} Constraint;

struct HostdRemoteJoin {
    HostdRemoteEmit emit;
    void *opaque;
    GArray *clients;    /* Client, in arrival order */
    GHashTable *by_key; /* ServerKey * -> GPtrArray of Server *, by start */
    size_t servers;
    int64_t newest_server_end;
    int64_t swept_at; /* newest_server_end at the last overload sweep */
    Constraint ring[CONSTRAINTS];
    unsigned ring_len, ring_next;
    unsigned contradicting; /* pairs in a row outside the interval */
    HostdRemoteClock clock;
    HostdRemoteCounters c;
};

static guint key_hash(gconstpointer p)
{
    const ServerKey *k = p;

    return g_int64_hash(&k->offset) ^ (guint)(k->bytes * 2654435761u) ^ k->op;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    const ServerKey *x = a, *y = b;

    return x->offset == y->offset && x->bytes == y->bytes && x->op == y->op;
}

HostdRemoteJoin *hostd_remote_join_new(HostdRemoteEmit emit, void *opaque)
{
    HostdRemoteJoin *j = g_new0(HostdRemoteJoin, 1);

    j->emit = emit;
    j->opaque = opaque;
    j->clients = g_array_new(FALSE, FALSE, sizeof(Client));
    j->by_key = g_hash_table_new_full(key_hash, key_equal, g_free,
                                      (GDestroyNotify)g_ptr_array_unref);
    return j;
}

void hostd_remote_join_free(HostdRemoteJoin *j)
{
    if (!j)
        return;
    g_array_unref(j->clients);
    g_hash_table_unref(j->by_key);
    g_free(j);
}

const HostdRemoteClock *hostd_remote_join_clock(const HostdRemoteJoin *j)
{
    return &j->clock;
}

const HostdRemoteCounters *hostd_remote_join_counters(const HostdRemoteJoin *j)
{
    return &j->c;
}

size_t hostd_remote_join_pending(const HostdRemoteJoin *j)
{
    return j->clients->len + j->servers;
}

int64_t hostd_remote_join_horizon(const HostdRemoteJoin *j)
{
    int64_t h = INT64_MAX;

    for (guint i = 0; i < j->clients->len; i++)
        h = MIN(h, (int64_t)g_array_index(j->clients, Client, i).top.start_ns);
    return h;
}

static void emit(HostdRemoteJoin *j, const Client *c, const Server *srv)
{
    HostdRemoteMatch m = {
        .top = &c->top,
        .client = c->has_lower ? &c->client : &c->top,
        .server = srv ? &srv->s : NULL,
    };
    uint64_t dc = m.client->end_ns - m.client->start_ns;

    if (srv) {
        /* Durations need no clock offset; a server span longer than its
         * client (clock rate noise) is clipped so the phases add up. */
        uint64_t ds = MIN(srv->s.end_ns - srv->s.start_ns, dc);
        uint64_t lower = MIN(srv->lower_ns, ds);

        m.below.remote = true;
        m.below.network_ns = dc - ds;
        m.below.remote_ns = ds - lower;
        m.below.backend_ns = lower;
        m.below.server_trace_id = srv->s.trace_id;
        m.below.server_span_id = srv->s.span_id;
        j->c.matched++;
    } else {
        /* Without the server's view, the NBD request is all "below". */
        m.below.known = c->has_lower;
        m.below.backend_ns = c->has_lower ? dc : 0;
        j->c.unmatched_client++;
    }
    j->emit(j->opaque, &m);
}

void hostd_remote_join_add_client(HostdRemoteJoin *j, const HostdSpan *top,
                                  const HostdSpan *client)
{
    Client c = {.top = *top, .client = *client, .has_lower = client != top};

    if (c.top.end_ns < c.top.start_ns)
        c.top.end_ns = c.top.start_ns;
    if (c.client.end_ns < c.client.start_ns)
        c.client.end_ns = c.client.start_ns;
    if (j->clients->len >= HOSTD_REMOTE_MAX_PENDING) {
        guint n = HOSTD_REMOTE_MAX_PENDING / 16;

        for (guint i = 0; i < n; i++)
            emit(j, &g_array_index(j->clients, Client, i), NULL);
        j->c.overflow += n;
        g_array_remove_range(j->clients, 0, n);
    }
    g_array_append_val(j->clients, c);
}

static void drop_servers_before(HostdRemoteJoin *j, int64_t end_before,
                                bool overflow)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, j->by_key);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        GPtrArray *a = v;

        for (guint i = a->len; i-- > 0;) {
            Server *s = g_ptr_array_index(a, i);

            if ((int64_t)s->s.end_ns >= end_before)
                continue;
            g_ptr_array_remove_index(a, i);
            j->servers--;
            if (overflow)
                j->c.overflow++;
            else
                j->c.unmatched_server++;
        }
        if (!a->len)
            g_hash_table_iter_remove(&it);
    }
}

void hostd_remote_join_add_server(HostdRemoteJoin *j, const HostdSpan *server,
                                  uint64_t lower_ns)
{
    ServerKey k = {server->offset, server->bytes, server->op};
    Server *s = g_new(Server, 1);
    GPtrArray *a;
    guint i;

    s->s = *server;
    if (s->s.end_ns < s->s.start_ns)
        s->s.end_ns = s->s.start_ns;
    s->lower_ns = lower_ns;
    /* Full: sweep what is too old to be claimed, at most once per second
     * of node B's time, so a flood costs one pass, not one per span. */
    if (j->servers >= HOSTD_REMOTE_MAX_PENDING &&
        j->newest_server_end - j->swept_at >= 1000000000LL) {
        j->swept_at = j->newest_server_end;
        drop_servers_before(j, j->newest_server_end - HOSTD_REMOTE_MAX_WAIT_NS,
                            true);
    }
    if (j->servers >= HOSTD_REMOTE_MAX_PENDING) {
        /* Still full within the wait: refuse the newcomer, counted. */
        j->c.overflow++;
        g_free(s);
        return;
    }
    a = g_hash_table_lookup(j->by_key, &k);
    if (!a) {
        a = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_insert(j->by_key, g_memdup2(&k, sizeof(k)), a);
    }
    /* Mostly appended in order; keep by start for first-in first-out. */
    g_ptr_array_add(a, s);
    for (i = a->len - 1;
         i > 0 &&
         ((Server *)g_ptr_array_index(a, i - 1))->s.start_ns > s->s.start_ns;
         i--)
        a->pdata[i] = a->pdata[i - 1];
    a->pdata[i] = s;
    j->servers++;
    j->newest_server_end = MAX(j->newest_server_end, (int64_t)s->s.end_ns);
}

/* The clock offset interval a pair implies (remote-join.h). */
static void implied(const Client *c, const Server *s, int64_t *lo, int64_t *hi)
{
    const HostdSpan *cl = c->has_lower ? &c->client : &c->top;

    *lo = (int64_t)s->s.end_ns - (int64_t)cl->end_ns;
    *hi = (int64_t)s->s.start_ns - (int64_t)cl->start_ns;
}

static void clock_recompute(HostdRemoteJoin *j, int64_t now_at)
{
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    bool any = false;

    for (unsigned i = 0; i < j->ring_len; i++) {
        const Constraint *k = &j->ring[i];

        if (k->at < now_at - HOSTD_REMOTE_WINDOW_NS)
            continue;
        lo = MAX(lo, k->lo);
        hi = MIN(hi, k->hi);
        any = true;
    }
    if (!any)
        return; /* keep the last estimate: nothing newer contradicts it */
    j->clock.valid = true;
    j->clock.lo_ns = lo;
    j->clock.hi_ns = hi;
    j->clock.offset_ns = lo + (hi - lo) / 2;
}

static void clock_add(HostdRemoteJoin *j, const Client *c, const Server *s)
{
    Constraint k = {.at = (int64_t)c->top.end_ns};

    implied(c, s, &k.lo, &k.hi);
    if (k.lo > k.hi)
        return; /* within the slack only: no evidence either way */
    if (j->clock.valid && (k.lo > j->clock.hi_ns || k.hi < j->clock.lo_ns)) {
        /* One odd pair (a zero-length flush paired with its neighbour's)
         * is not a clock step; several in a row are: start over from the
         * newest evidence rather than keep an estimate it contradicts. */
        if (++j->contradicting < STEP_PAIRS)
            return;
        j->clock.resets++;
        j->ring_len = 0;
        j->ring_next = 0;
    }
    j->contradicting = 0;
    j->ring[j->ring_next] = k;
    j->ring_next = (j->ring_next + 1) % CONSTRAINTS;
    j->ring_len = MIN(j->ring_len + 1, CONSTRAINTS);
    clock_recompute(j, k.at);
}

/*
 * The server span for @c: same op, offset and length, not yet claimed,
 * lying within the client span under the clock interval. With a known
 * clock the earliest such span wins (identical requests in flight pair
 * first-in first-out); without one, only an unambiguous candidate does.
 */
static int find_server(HostdRemoteJoin *j, const Client *c, int64_t tol,
                       GPtrArray **list)
{
    ServerKey k = {c->top.offset, c->top.bytes, c->top.op};
    const HostdSpan *cl = c->has_lower ? &c->client : &c->top;
    GPtrArray *a;
    int found = -1;

    k.offset = cl->offset;
    k.bytes = cl->bytes;
    k.op = cl->op;
    a = g_hash_table_lookup(j->by_key, &k);
    *list = a;
    if (!a)
        return -1;
    for (guint i = 0; j->clock.valid && i < a->len; i++) {
        const Server *s = g_ptr_array_index(a, i);
        int64_t lo, hi;

        implied(c, s, &lo, &hi);
        if (lo <= hi + INSIDE_SLACK_NS && lo <= j->clock.hi_ns + tol &&
            hi >= j->clock.lo_ns - tol)
            return (int)i;
    }
    /* No clock yet, or none fits it (the clock stepped): an unambiguous
     * candidate still joins, and re-anchors the estimate (clock_add). */
    for (guint i = 0; i < a->len; i++) {
        const Server *s = g_ptr_array_index(a, i);
        int64_t lo, hi;

        implied(c, s, &lo, &hi);
        if (lo > hi + INSIDE_SLACK_NS)
            continue; /* longer than the client span: not this one */
        if (found >= 0)
            return -2;
        found = (int)i;
    }
    return found;
}

static void flush_clients(HostdRemoteJoin *j, int64_t watermark_ns,
                          int64_t server_time_ns, int64_t tol_ns)
{
    guint kept = 0;

    for (guint i = 0; i < j->clients->len; i++) {
        Client c = g_array_index(j->clients, Client, i);
        const HostdSpan *cl = c.has_lower ? &c.client : &c.top;
        GPtrArray *list;
        int idx;
        bool delivered, too_old;

        if ((int64_t)c.top.end_ns > watermark_ns) {
            g_array_index(j->clients, Client, kept++) = c;
            continue;
        }
        idx = find_server(j, &c, tol_ns, &list);
        if (idx >= 0) {
            Server *s = g_ptr_array_steal_index(list, (guint)idx);

            j->servers--;
            if (!list->len) {
                ServerKey k = {cl->offset, cl->bytes, cl->op};

                g_hash_table_remove(j->by_key, &k);
            }
            clock_add(j, &c, s);
            emit(j, &c, s);
            g_free(s);
            continue;
        }
        /* Node B's trace is past where this request's server span would
         * have ended: it is not coming. */
        delivered =
            j->clock.valid && server_time_ns > 0 &&
            server_time_ns > (int64_t)cl->end_ns + j->clock.hi_ns + tol_ns;
        too_old =
            (int64_t)c.top.end_ns < watermark_ns - HOSTD_REMOTE_MAX_WAIT_NS;
        if (delivered || too_old) {
            emit(j, &c, NULL);
            continue;
        }
        g_array_index(j->clients, Client, kept++) = c;
    }
    g_array_set_size(j->clients, kept);
}

void hostd_remote_join_flush(HostdRemoteJoin *j, int64_t watermark_ns,
                             int64_t server_time_ns, int64_t tol_ns)
{
    bool had_clock;

    clock_recompute(j, watermark_ns);
    had_clock = j->clock.valid;
    flush_clients(j, watermark_ns, server_time_ns, tol_ns);
    /* Requests that were ambiguous before the first pair fixed the clock
     * in this same pass need not wait for the next one. */
    if (!had_clock && j->clock.valid)
        flush_clients(j, watermark_ns, server_time_ns, tol_ns);

    /* Server spans no client can claim any more. */
    if (j->clock.valid)
        drop_servers_before(j,
                            watermark_ns + j->clock.lo_ns -
                                HOSTD_REMOTE_MAX_WAIT_NS - tol_ns,
                            false);
    else
        drop_servers_before(
            j, j->newest_server_end - 2 * HOSTD_REMOTE_MAX_WAIT_NS, false);
}
