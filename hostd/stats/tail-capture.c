/* SPDX-License-Identifier: GPL-2.0-or-later */
#define G_LOG_DOMAIN "blkin-hostd-stats"

#include <string.h>

#include "tail-capture.h"

#define RING       60
#define BLOCK_MIN  5
#define BLOCKS     12
#define NS_PER_MIN (60 * HOSTD_NS_PER_SEC)

typedef HostdJoinedRequest Rec;

/* A closed slot's records, slowest first, sized exactly. */
typedef struct Slot {
    uint32_t n;
    Rec r[];
} Slot;

struct HostdTailCapture {
    unsigned k;
    uint64_t align_ns;
    uint64_t created; /* internal time (now + align) at creation */
    uint64_t sec;     /* index of the second in progress */
    Rec *heap;        /* the second in progress: min-heap of <= k */
    unsigned heap_n;
    Slot *sec_ring[RING];      /* second s at s % 60 */
    Slot *min_ring[BLOCK_MIN]; /* minutes of the current block, m % 5 */
    Slot *blk_ring[BLOCKS];    /* 5-minute block b at b % 12 */
    unsigned live;             /* non-NULL slots in all rings */
};

static inline uint64_t lat(const Rec *r)
{
    return hostd_joined_request_latency(r);
}

HostdTailCapture *hostd_tail_capture_new(unsigned k, uint64_t now_ns,
                                         uint64_t align_ns)
{
    if (k < 1 || k > HOSTD_TAIL_CAPTURE_MAX_K)
        return NULL;
    HostdTailCapture *tc = g_new0(HostdTailCapture, 1);
    tc->k = k;
    tc->align_ns = align_ns;
    tc->created = now_ns + align_ns;
    tc->sec = tc->created / HOSTD_NS_PER_SEC;
    return tc;
}

static void free_ring(Slot **ring, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        g_clear_pointer(&ring[i], g_free);
}

void hostd_tail_capture_free(HostdTailCapture *tc)
{
    if (!tc)
        return;
    free_ring(tc->sec_ring, RING);
    free_ring(tc->min_ring, BLOCK_MIN);
    free_ring(tc->blk_ring, BLOCKS);
    g_free(tc->heap);
    g_free(tc);
}

unsigned hostd_tail_capture_k(const HostdTailCapture *tc)
{
    return tc->k;
}

/* ---- a bounded min-heap: the root is the fastest of the slowest k ---- */

static void sift_down(Rec *h, unsigned n, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, m = i;
        if (l < n && lat(&h[l]) < lat(&h[m]))
            m = l;
        if (l + 1 < n && lat(&h[l + 1]) < lat(&h[m]))
            m = l + 1;
        if (m == i)
            return;
        Rec t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_offer(Rec *h, unsigned *n, unsigned k, const Rec *r)
{
    if (*n < k) {
        unsigned i = (*n)++;
        h[i] = *r;
        while (i > 0 && lat(&h[(i - 1) / 2]) > lat(&h[i])) {
            Rec t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (lat(r) > lat(&h[0])) {
        /* Strictly slower only: on ties the earlier request stays. */
        h[0] = *r;
        sift_down(h, *n, 0);
    }
}

static int cmp_slowest_first(const void *a, const void *b)
{
    uint64_t x = lat(a), y = lat(b);
    return x > y ? -1 : x < y;
}

/* The heap's contents as a slot, slowest first; NULL if empty. */
static Slot *slot_from(const Rec *h, unsigned n)
{
    if (n == 0)
        return NULL;
    Slot *s = g_malloc(sizeof(Slot) + n * sizeof(Rec));
    s->n = n;
    memcpy(s->r, h, n * sizeof(Rec));
    qsort(s->r, n, sizeof(Rec), cmp_slowest_first);
    return s;
}

/* The k slowest over a set of slots, as a slot. */
static Slot *top_of(const HostdTailCapture *tc, Slot *const *slots, unsigned n)
{
    g_autofree Rec *h = g_new(Rec, tc->k);
    unsigned hn = 0;

    for (unsigned i = 0; i < n; i++)
        if (slots[i])
            for (uint32_t j = 0; j < slots[i]->n; j++)
                heap_offer(h, &hn, tc->k, &slots[i]->r[j]);
    return slot_from(h, hn);
}

/*
 * Drops records that can never be shown again. @order lists @n slot
 * pointers from newest to oldest; a record goes once k strictly slower
 * ones sit in newer slots, since every window holding it holds those too.
 */
static void prune(HostdTailCapture *tc, Slot **order[], unsigned n)
{
    g_autofree uint64_t *best = g_new(uint64_t, tc->k); /* descending */
    unsigned nb = 0;

    for (unsigned i = 0; i < n; i++) {
        Slot *s = *order[i];
        if (!s)
            continue;
        uint32_t keep = 0;
        if (i > 0) {
            /* Slots are sorted, so the kept ones are a prefix. */
            while (keep < s->n &&
                   (nb < tc->k || lat(&s->r[keep]) >= best[tc->k - 1]))
                keep++;
        } else {
            keep = s->n;
        }
        /* Merge this slot's latencies into the k largest seen so far. */
        g_autofree uint64_t *m = g_new(uint64_t, tc->k);
        unsigned a = 0, b = 0, w = 0;
        while (w < tc->k && (a < nb || b < keep)) {
            if (b == keep || (a < nb && best[a] >= lat(&s->r[b])))
                m[w++] = best[a++];
            else
                m[w++] = lat(&s->r[b++]);
        }
        memcpy(best, m, w * sizeof(*best));
        nb = w;

        if (keep == s->n)
            continue;
        if (keep == 0) {
            g_clear_pointer(order[i], g_free);
            tc->live--;
        } else {
            s->n = keep;
            *order[i] = g_realloc(s, sizeof(Slot) + keep * sizeof(Rec));
        }
    }
}

static void put(HostdTailCapture *tc, Slot **where, Slot *s)
{
    if (*where) {
        g_free(*where);
        tc->live--;
    }
    *where = s;
    if (s)
        tc->live++;
}

static void close_block(HostdTailCapture *tc, uint64_t b)
{
    Slot *s = top_of(tc, tc->min_ring, BLOCK_MIN);
    for (unsigned i = 0; i < BLOCK_MIN; i++)
        put(tc, &tc->min_ring[i], NULL);
    put(tc, &tc->blk_ring[b % BLOCKS], s);

    Slot **order[BLOCKS];
    for (unsigned i = 0; i < BLOCKS; i++)
        order[i] = &tc->blk_ring[(b + BLOCKS - i) % BLOCKS];
    prune(tc, order, BLOCKS);
}

static void close_minute(HostdTailCapture *tc)
{
    uint64_t m = tc->sec / 60;
    unsigned in_block = m % BLOCK_MIN;

    /* The second ring holds exactly this minute now. */
    put(tc, &tc->min_ring[in_block], top_of(tc, tc->sec_ring, RING));
    Slot **order[BLOCK_MIN];
    for (unsigned i = 0; i <= in_block; i++)
        order[i] = &tc->min_ring[in_block - i];
    prune(tc, order, in_block + 1);
    if (in_block == BLOCK_MIN - 1)
        close_block(tc, m / BLOCK_MIN);
}

static void close_second(HostdTailCapture *tc)
{
    unsigned pos = tc->sec % RING;

    put(tc, &tc->sec_ring[pos], slot_from(tc->heap, tc->heap_n));
    tc->heap_n = 0;
    Slot **order[RING];
    for (unsigned i = 0; i < RING; i++)
        order[i] = &tc->sec_ring[(pos + RING - i) % RING];
    prune(tc, order, RING);
    if (tc->sec % 60 == 59)
        close_minute(tc);
    tc->sec++;
}

void hostd_tail_capture_advance(HostdTailCapture *tc, uint64_t now_ns)
{
    uint64_t target = (now_ns + tc->align_ns) / HOSTD_NS_PER_SEC;

    while (tc->sec < target) {
        if (tc->heap_n == 0) {
            /* Nothing anywhere: jump. Only older minutes and blocks: go
             * minute by minute so that they collapse and expire. */
            bool secs = false;
            for (unsigned i = 0; i < RING && !secs; i++)
                secs = tc->sec_ring[i] != NULL;
            uint64_t last = tc->sec / 60 * 60 + 59;
            if (tc->live == 0 || (!secs && last >= target)) {
                tc->sec = target;
                break;
            }
            if (!secs)
                tc->sec = last;
        }
        close_second(tc);
    }
}

void hostd_tail_capture_add(HostdTailCapture *tc, uint64_t now_ns,
                            const HostdJoinedRequest *r)
{
    hostd_tail_capture_advance(tc, now_ns);
    if (!tc->heap)
        tc->heap = g_new(Rec, tc->k);
    heap_offer(tc->heap, &tc->heap_n, tc->k, r);
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

size_t hostd_tail_capture_get(HostdTailCapture *tc, uint64_t now_ns,
                              HostdStatsWindow w, HostdJoinedRequest *out,
                              size_t max, uint64_t *start_ns, uint64_t *end_ns)
{
    hostd_tail_capture_advance(tc, now_ns);

    Slot *slots[RING + BLOCK_MIN + BLOCKS];
    unsigned n = 0;
    uint64_t end = tc->sec * HOSTD_NS_PER_SEC, start;
    uint64_t m = tc->sec / 60, block = m / BLOCK_MIN;

    switch (w) {
    case HOSTD_STATS_WINDOW_1S:
        start = sat_sub(end, HOSTD_NS_PER_SEC);
        if (tc->sec > 0)
            slots[n++] = tc->sec_ring[(tc->sec - 1) % RING];
        break;
    case HOSTD_STATS_WINDOW_1M:
        start = sat_sub(end, NS_PER_MIN);
        for (unsigned i = 0; i < RING; i++)
            slots[n++] = tc->sec_ring[i];
        break;
    default:
        start = sat_sub(block * BLOCK_MIN * NS_PER_MIN,
                        (uint64_t)BLOCKS * BLOCK_MIN * NS_PER_MIN);
        for (unsigned i = 0; i < BLOCKS; i++)
            slots[n++] = tc->blk_ring[i];
        for (uint64_t i = block * BLOCK_MIN; i < m; i++)
            slots[n++] = tc->min_ring[i % BLOCK_MIN];
        for (uint64_t s = m * 60; s < tc->sec; s++)
            slots[n++] = tc->sec_ring[s % RING];
        break;
    }
    if (start_ns)
        *start_ns = MAX(start, tc->created) - tc->align_ns;
    if (end_ns)
        *end_ns = MAX(end, tc->created) - tc->align_ns;

    g_autofree Slot *top = top_of(tc, slots, n);
    size_t got = top ? MIN(top->n, max) : 0;
    if (got)
        memcpy(out, top->r, got * sizeof(Rec));
    return got;
}

static size_t ring_memory(Slot *const *ring, unsigned n)
{
    size_t m = 0;
    for (unsigned i = 0; i < n; i++)
        if (ring[i])
            m += sizeof(Slot) + ring[i]->n * sizeof(Rec);
    return m;
}

size_t hostd_tail_capture_memory(const HostdTailCapture *tc)
{
    return sizeof(*tc) + (tc->heap ? tc->k * sizeof(Rec) : 0) +
           ring_memory(tc->sec_ring, RING) +
           ring_memory(tc->min_ring, BLOCK_MIN) +
           ring_memory(tc->blk_ring, BLOCKS);
}
