/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "matcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NIL          UINT32_MAX
#define ORPHAN_TRIES 3

enum { ST_FREE, ST_QUEUED, ST_ISSUED };

struct match_entry {
    uint64_t sector;
    uint64_t queue_ns;
    uint64_t issue_ns;
    uint64_t age;
    uint32_t dev;
    uint32_t bytes;
    uint32_t next;
    uint8_t state;
    uint8_t op;
    uint8_t flags;
};

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;

    while (p < n)
        p <<= 1;
    return p;
}

size_t matcher_memory(uint32_t cap)
{
    return (size_t)cap * sizeof(struct match_entry) +
           pow2_at_least(cap) * sizeof(uint32_t) +
           (size_t)(cap / 4 + 16) * (sizeof(struct blk_event) + 1);
}

int matcher_init(struct matcher *m, uint32_t cap)
{
    memset(m, 0, sizeof(*m));
    if (cap < 16)
        cap = 16;
    m->cap = cap;
    m->nbuckets = pow2_at_least(cap);
    m->orphans_cap = cap / 4 + 16;
    m->e = calloc(cap, sizeof(*m->e));
    m->bucket = malloc(m->nbuckets * sizeof(uint32_t));
    m->orphans = calloc(m->orphans_cap, sizeof(*m->orphans));
    if (!m->e || !m->bucket || !m->orphans) {
        matcher_free(m);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->nbuckets; i++)
        m->bucket[i] = NIL;
    /* Free list threaded through next. */
    for (uint32_t i = 0; i < cap; i++)
        m->e[i].next = i + 1 < cap ? i + 1 : NIL;
    m->free_head = 0;
    return 0;
}

void matcher_free(struct matcher *m)
{
    if (!m)
        return;
    free(m->e);
    free(m->bucket);
    free(m->orphans);
    memset(m, 0, sizeof(*m));
}

static uint32_t hash(const struct matcher *m, uint32_t dev, uint64_t sector)
{
    uint64_t h = (sector ^ ((uint64_t)dev << 40)) * 0x9e3779b97f4a7c15ull;

    return (uint32_t)(h >> 32) & (m->nbuckets - 1);
}

static void unlink_entry(struct matcher *m, uint32_t idx)
{
    struct match_entry *e = &m->e[idx];
    uint32_t *pp = &m->bucket[hash(m, e->dev, e->sector)];

    while (*pp != NIL && *pp != idx)
        pp = &m->e[*pp].next;
    if (*pp == idx)
        *pp = e->next;
    e->state = ST_FREE;
    e->next = m->free_head;
    m->free_head = idx;
    m->used--;
}

static void evict_oldest(struct matcher *m)
{
    uint32_t oldest = NIL;

    for (uint32_t i = 0; i < m->cap; i++)
        if (m->e[i].state != ST_FREE &&
            (oldest == NIL || m->e[i].age < m->e[oldest].age))
            oldest = i;
    if (oldest != NIL) {
        /* A queued request that never issued was merged into another. */
        if (m->e[oldest].state == ST_ISSUED)
            m->evicted++;
        unlink_entry(m, oldest);
    }
}

static struct match_entry *add(struct matcher *m, const struct blk_event *ev)
{
    uint32_t idx, b;
    struct match_entry *e;

    if (m->free_head == NIL)
        evict_oldest(m);
    idx = m->free_head;
    e = &m->e[idx];
    m->free_head = e->next;
    memset(e, 0, sizeof(*e));
    e->dev = ev->dev;
    e->sector = ev->sector;
    e->age = ++m->clock;
    b = hash(m, ev->dev, ev->sector);
    e->next = m->bucket[b];
    m->bucket[b] = idx;
    m->used++;
    return e;
}

/* The oldest (or newest) entry for the key in the given state. */
static uint32_t find(const struct matcher *m, uint32_t dev, uint64_t sector,
                     uint8_t state, bool newest)
{
    uint32_t best = NIL;

    for (uint32_t i = m->bucket[hash(m, dev, sector)]; i != NIL;
         i = m->e[i].next) {
        const struct match_entry *e = &m->e[i];

        if (e->state != state || e->dev != dev || e->sector != sector)
            continue;
        if (best == NIL ||
            (newest ? e->age > m->e[best].age : e->age < m->e[best].age))
            best = i;
    }
    return best;
}

/* Like find(ST_ISSUED, oldest), preferring an entry of the same op. */
static uint32_t find_issued(const struct matcher *m, uint32_t dev,
                            uint64_t sector, uint8_t op)
{
    uint32_t best = NIL, any = NIL;

    for (uint32_t i = m->bucket[hash(m, dev, sector)]; i != NIL;
         i = m->e[i].next) {
        const struct match_entry *e = &m->e[i];

        if (e->state != ST_ISSUED || e->dev != dev || e->sector != sector)
            continue;
        if (any == NIL || e->age < m->e[any].age)
            any = i;
        if (e->op == op && (best == NIL || e->age < m->e[best].age))
            best = i;
    }
    return best != NIL ? best : any;
}

/*
 * A completion that matches no issue is a loss, except the data-less request
 * behind a flush: an empty flush (op flush) or an fdatasync's zero-byte
 * write, which the flush machinery completes without issuing it (it issues
 * its own flush request instead, which is timed).
 */
static bool counts_unmatched(const struct blk_event *ev)
{
    return ev->op != BLKIN_OP_FLUSH && ev->bytes != 0;
}

static bool complete(struct matcher *m, const struct blk_event *ev,
                     matcher_emit_fn emit, void *user)
{
    uint32_t i = find_issued(m, ev->dev, ev->sector, ev->op);
    struct blkin_request r;
    struct match_entry *e;

    if (i == NIL || m->e[i].issue_ns > ev->time)
        return false;
    e = &m->e[i];
    r = (struct blkin_request){
        .major = blk_dev_major(e->dev),
        .minor = blk_dev_minor(e->dev),
        .sector = e->sector,
        .bytes = e->bytes,
        .op = e->op,
        .flags = e->flags,
        .error = ev->error > 0 ? -ev->error : ev->error,
        .queue_ns = e->queue_ns,
        .issue_ns = e->issue_ns,
        .complete_ns = ev->time,
    };
    if (r.error < -4095)
        r.error = -4095;
    unlink_entry(m, i);
    emit(user, &r);
    return true;
}

void matcher_event(struct matcher *m, const struct blk_event *ev,
                   matcher_emit_fn emit, void *user)
{
    uint32_t i;
    struct match_entry *e;

    switch (ev->kind) {
    case BLK_EV_INSERT:
        /* A requeued request keeps its first queue time. */
        if (find(m, ev->dev, ev->sector, ST_QUEUED, false) != NIL)
            break;
        e = add(m, ev);
        e->state = ST_QUEUED;
        e->queue_ns = ev->time;
        break;
    case BLK_EV_ISSUE:
        i = find(m, ev->dev, ev->sector, ST_QUEUED, false);
        e = i != NIL ? &m->e[i] : add(m, ev);
        e->state = ST_ISSUED;
        e->issue_ns = ev->time;
        e->bytes = ev->bytes;
        e->op = ev->op;
        e->flags = ev->flags;
        break;
    case BLK_EV_REQUEUE:
        i = find(m, ev->dev, ev->sector, ST_ISSUED, true);
        if (i != NIL)
            m->e[i].state = ST_QUEUED;
        break;
    case BLK_EV_COMPLETE:
        if (complete(m, ev, emit, user))
            break;
        if (m->norphans < m->orphans_cap) {
            m->orphans[m->norphans++] = *ev;
        } else if (counts_unmatched(ev))
            m->unmatched++;
        break;
    default:
        break;
    }
}

void matcher_retry_orphans(struct matcher *m, matcher_emit_fn emit, void *user)
{
    uint32_t keep = 0;

    for (uint32_t i = 0; i < m->norphans; i++) {
        struct blk_event *o = &m->orphans[i];

        if (complete(m, o, emit, user))
            continue;
        /* The tries counter lives in kind, always COMPLETE for orphans. */
        if (++o->kind - BLK_EV_COMPLETE >= ORPHAN_TRIES) {
            if (counts_unmatched(o))
                m->unmatched++;
            continue;
        }
        m->orphans[keep++] = *o;
    }
    m->norphans = keep;
}

void matcher_sweep(struct matcher *m, uint64_t now_ns, uint64_t max_age_ns)
{
    for (uint32_t i = 0; i < m->cap; i++) {
        struct match_entry *e = &m->e[i];
        uint64_t t = e->issue_ns ? e->issue_ns : e->queue_ns;

        if (e->state != ST_FREE && t + max_age_ns < now_ns) {
            if (e->state == ST_ISSUED)
                m->evicted++;
            unlink_entry(m, i);
        }
    }
}
