/* SPDX-License-Identifier: GPL-2.0-or-later */
#define G_LOG_DOMAIN "blkin-hostd-stats"

#include <errno.h>
#include <string.h>

#include "disk-stats.h"
#include "varint.h"

#define RING           60 /* seconds in the 1-minute window */
#define BLOCK_MIN      5  /* minutes per block of the 1-hour window */
#define BLOCKS         12 /* blocks in the 1-hour window */
#define NS_PER_MIN     (60 * HOSTD_NS_PER_SEC)
#define ROLLUP_VERSION 1
#define N_OPS          BLKIN_OP__N
#define N_PHASES       BLKIN_PHASE__N
#define N_COUNTERS     HOSTD_STATS_COUNTER__N

const char *const hostd_stats_counter_names[N_COUNTERS] = {
    [HOSTD_STATS_UNMATCHED_GUEST] = "unmatched_guest",
    [HOSTD_STATS_UNMATCHED_SPAN] = "unmatched_spans",
    [HOSTD_STATS_AGENT_DROPS] = "agent_drops",
    [HOSTD_STATS_LTTNG_DISCARDED] = "lttng_discarded",
};

const char *const hostd_stats_window_names[HOSTD_STATS_WINDOW__N] = {
    [HOSTD_STATS_WINDOW_1S] = "1s",
    [HOSTD_STATS_WINDOW_1M] = "1m",
    [HOSTD_STATS_WINDOW_1H] = "1h",
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* ---- rollups ---- */

void hostd_stats_rollup_clear(HostdStatsRollup *r)
{
    if (!r)
        return;
    for (int o = 0; o < N_OPS; o++)
        for (int p = 0; p < N_PHASES; p++)
            hostd_latency_hist_free(r->hist[o][p]);
    memset(r, 0, sizeof(*r));
}

bool hostd_stats_rollup_is_empty(const HostdStatsRollup *r)
{
    for (int o = 0; o < N_OPS; o++) {
        if (r->requests[o] || r->bytes[o])
            return false;
        for (int p = 0; p < N_PHASES; p++)
            if (r->hist[o][p])
                return false;
    }
    for (int c = 0; c < N_COUNTERS; c++)
        if (r->counters[c])
            return false;
    return true;
}

static void merge_interval(HostdStatsRollup *dst, uint64_t start, uint64_t end)
{
    if (start == 0 && end == 0)
        return;
    if (dst->start_ns == 0 && dst->end_ns == 0) {
        dst->start_ns = start;
        dst->end_ns = end;
        return;
    }
    dst->start_ns = MIN(dst->start_ns, start);
    dst->end_ns = MAX(dst->end_ns, end);
}

void hostd_stats_rollup_merge(HostdStatsRollup *dst,
                              const HostdStatsRollup *src)
{
    for (int o = 0; o < N_OPS; o++) {
        dst->requests[o] = sat_add(dst->requests[o], src->requests[o]);
        dst->bytes[o] = sat_add(dst->bytes[o], src->bytes[o]);
        for (int p = 0; p < N_PHASES; p++) {
            if (!src->hist[o][p])
                continue;
            if (!dst->hist[o][p])
                dst->hist[o][p] = hostd_latency_hist_copy(src->hist[o][p]);
            else
                hostd_latency_hist_merge(dst->hist[o][p], src->hist[o][p]);
        }
    }
    for (int c = 0; c < N_COUNTERS; c++)
        dst->counters[c] = sat_add(dst->counters[c], src->counters[c]);
    merge_interval(dst, src->start_ns, src->end_ns);
}

void hostd_stats_rollup_copy(HostdStatsRollup *dst, const HostdStatsRollup *src)
{
    hostd_stats_rollup_clear(dst);
    hostd_stats_rollup_merge(dst, src);
}

static double rate(const HostdStatsRollup *r, uint64_t v)
{
    if (r->end_ns <= r->start_ns)
        return 0;
    return (double)v * 1e9 / (double)(r->end_ns - r->start_ns);
}

double hostd_stats_rollup_iops(const HostdStatsRollup *r, enum blkin_op op)
{
    return op < N_OPS ? rate(r, r->requests[op]) : 0;
}

double hostd_stats_rollup_bytes_per_sec(const HostdStatsRollup *r,
                                        enum blkin_op op)
{
    return op < N_OPS ? rate(r, r->bytes[op]) : 0;
}

/*
 * @dst -= @src, where @src was merged into @dst before. Histograms that
 * empty are freed; stale[o][p] tells which ones lost exact extremes.
 * -ERANGE if @src was not part of @dst (then @dst is left inconsistent
 * and the caller rebuilds it).
 */
static int rollup_subtract(HostdStatsRollup *dst, const HostdStatsRollup *src,
                           bool stale[N_OPS][N_PHASES])
{
    int ret = 0;

    for (int o = 0; o < N_OPS; o++) {
        dst->requests[o] = sat_sub(dst->requests[o], src->requests[o]);
        dst->bytes[o] = sat_sub(dst->bytes[o], src->bytes[o]);
        for (int p = 0; p < N_PHASES; p++) {
            stale[o][p] = false;
            if (!src->hist[o][p])
                continue;
            if (!dst->hist[o][p]) {
                ret = -ERANGE;
                continue;
            }
            int r =
                hostd_latency_hist_subtract(dst->hist[o][p], src->hist[o][p]);
            if (r < 0)
                ret = r;
            stale[o][p] = r == 1;
            if (hostd_latency_hist_count(dst->hist[o][p]) == 0)
                g_clear_pointer(&dst->hist[o][p], hostd_latency_hist_free);
        }
    }
    for (int c = 0; c < N_COUNTERS; c++)
        dst->counters[c] = sat_sub(dst->counters[c], src->counters[c]);
    return ret;
}

static size_t rollup_memory(const HostdStatsRollup *r)
{
    size_t m = 0;
    for (int o = 0; o < N_OPS; o++)
        for (int p = 0; p < N_PHASES; p++)
            if (r->hist[o][p])
                m += hostd_latency_hist_memory(r->hist[o][p]);
    return m;
}

void hostd_stats_rollup_serialize(const HostdStatsRollup *r, GByteArray *out)
{
    const uint8_t version = ROLLUP_VERSION;
    unsigned n_hists = 0;

    g_byte_array_append(out, &version, 1);
    varint_put(out, N_OPS);
    varint_put(out, N_PHASES);
    varint_put(out, N_COUNTERS);
    for (int o = 0; o < N_OPS; o++)
        varint_put(out, r->requests[o]);
    for (int o = 0; o < N_OPS; o++)
        varint_put(out, r->bytes[o]);
    for (int c = 0; c < N_COUNTERS; c++)
        varint_put(out, r->counters[c]);
    for (int o = 0; o < N_OPS; o++)
        for (int p = 0; p < N_PHASES; p++)
            n_hists += r->hist[o][p] && hostd_latency_hist_count(r->hist[o][p]);
    varint_put(out, n_hists);

    g_autoptr(GByteArray) h = g_byte_array_new();
    for (int o = 0; o < N_OPS; o++) {
        for (int p = 0; p < N_PHASES; p++) {
            if (!r->hist[o][p] || !hostd_latency_hist_count(r->hist[o][p]))
                continue;
            g_byte_array_set_size(h, 0);
            hostd_latency_hist_serialize(r->hist[o][p], h);
            varint_put(out, o);
            varint_put(out, p);
            varint_put(out, h->len);
            g_byte_array_append(out, h->data, h->len);
        }
    }
}

/*
 * Walks a serialized rollup. With @out, fills it; with @want_op >= 0, only
 * locates that histogram's bytes (*hp, *hl; NULL if absent) without
 * allocating.
 */
static int parse_rollup(const void *data, size_t len, HostdStatsRollup *out,
                        int want_op, int want_phase, const uint8_t **hp,
                        size_t *hl)
{
    VarintReader r = {data, (const uint8_t *)data + len, false};
    uint64_t v[2 * N_OPS + N_COUNTERS] = {0};

    if (varint_get_byte(&r) != ROLLUP_VERSION)
        return -EBADMSG;
    uint64_t n_ops = varint_get(&r);
    uint64_t n_phases = varint_get(&r);
    uint64_t n_counters = varint_get(&r);
    if (r.bad || n_ops > N_OPS || n_phases > N_PHASES ||
        n_counters > N_COUNTERS)
        return -EBADMSG;
    for (uint64_t i = 0; i < n_ops; i++)
        v[i] = varint_get(&r);
    for (uint64_t i = 0; i < n_ops; i++)
        v[N_OPS + i] = varint_get(&r);
    for (uint64_t i = 0; i < n_counters; i++)
        v[2 * N_OPS + i] = varint_get(&r);
    uint64_t n_hists = varint_get(&r);
    if (r.bad || n_hists > n_ops * n_phases)
        return -EBADMSG;
    if (out) {
        memcpy(out->requests, v, sizeof(out->requests));
        memcpy(out->bytes, v + N_OPS, sizeof(out->bytes));
        memcpy(out->counters, v + 2 * N_OPS, sizeof(out->counters));
    }
    if (hp)
        *hp = NULL;

    int64_t prev_key = -1;
    for (uint64_t i = 0; i < n_hists; i++) {
        uint64_t o = varint_get(&r);
        uint64_t p = varint_get(&r);
        uint64_t l = varint_get(&r);
        if (r.bad || o >= n_ops || p >= n_phases || l > (size_t)(r.end - r.p))
            return -EBADMSG;
        /* Strictly increasing keys: no duplicates, one canonical form. */
        int64_t key = (int64_t)(o * N_PHASES + p);
        if (key <= prev_key)
            return -EBADMSG;
        prev_key = key;
        if (out) {
            HostdLatencyHist *h = NULL;
            if (hostd_latency_hist_deserialize(r.p, l, &h) < 0)
                return -EBADMSG;
            out->hist[o][p] = h;
            if (hostd_latency_hist_count(h) == 0)
                return -EBADMSG;
        } else if ((int)o == want_op && (int)p == want_phase) {
            *hp = r.p;
            *hl = l;
            return 0;
        }
        r.p += l;
    }
    return r.p == r.end ? 0 : -EBADMSG;
}

int hostd_stats_rollup_deserialize(const void *data, size_t len,
                                   HostdStatsRollup *out)
{
    hostd_stats_rollup_clear(out);
    int ret = parse_rollup(data, len, out, -1, -1, NULL, NULL);
    if (ret < 0)
        hostd_stats_rollup_clear(out);
    return ret;
}

/* ---- frozen slots: a 4-byte length, then a serialized rollup ---- */

static uint8_t *freeze(const HostdStatsRollup *r)
{
    if (hostd_stats_rollup_is_empty(r))
        return NULL;
    g_autoptr(GByteArray) a = g_byte_array_new();
    uint32_t len = 0;
    g_byte_array_append(a, (const uint8_t *)&len, sizeof(len));
    hostd_stats_rollup_serialize(r, a);
    len = a->len - sizeof(len);
    memcpy(a->data, &len, sizeof(len));
    /* Exactly sized: frozen slots are most of a busy disk's memory. */
    return g_memdup2(a->data, a->len);
}

static const uint8_t *slot_data(const uint8_t *slot, size_t *len)
{
    uint32_t l;
    memcpy(&l, slot, sizeof(l));
    *len = l;
    return slot + sizeof(l);
}

static void thaw_merge(const uint8_t *slot, HostdStatsRollup *into)
{
    HostdStatsRollup tmp = {0};
    size_t len;
    const uint8_t *d = slot_data(slot, &len);

    /* Our own bytes: failing to parse them is a bug, not bad input. */
    if (hostd_stats_rollup_deserialize(d, len, &tmp) < 0)
        g_error("disk-stats: frozen slot does not parse");
    hostd_stats_rollup_merge(into, &tmp);
    hostd_stats_rollup_clear(&tmp);
}

/* ---- disk stats ---- */

struct HostdDiskStats {
    uint64_t align_ns;
    uint64_t created; /* internal time (now + align) at creation */
    uint64_t sec;     /* index of the second in progress */
    HostdMinuteClosedFn minute_closed;
    void *opaque;
    HostdStatsRollup cur; /* the second in progress */
    /* Running sums, frozen like the slots: they change once a second and
     * once in 5 minutes, so thawing them then costs little, while keeping
     * them mutable would cost 8 bytes a bucket instead of 2-3. */
    uint8_t *minute_sum;          /* sum of sec_ring: [sec - 60, sec) */
    uint8_t *hour_sum;            /* sum of blk_ring: blocks [b - 12, b) */
    uint8_t *sec_ring[RING];      /* second s at s % 60; NULL when empty */
    uint8_t *min_ring[BLOCK_MIN]; /* minutes of the current block, m % 5 */
    uint8_t *blk_ring[BLOCKS];    /* 5-minute block b at b % 12 */
    unsigned sec_live, min_live, blk_live;
};

HostdDiskStats *hostd_disk_stats_new(uint64_t now_ns, uint64_t align_ns,
                                     HostdMinuteClosedFn minute_closed,
                                     void *opaque)
{
    HostdDiskStats *ds = g_new0(HostdDiskStats, 1);

    ds->align_ns = align_ns;
    ds->created = now_ns + align_ns;
    ds->sec = ds->created / HOSTD_NS_PER_SEC;
    ds->minute_closed = minute_closed;
    ds->opaque = opaque;
    return ds;
}

uint64_t hostd_disk_stats_since(const HostdDiskStats *ds)
{
    return ds->created - ds->align_ns;
}

void hostd_disk_stats_free(HostdDiskStats *ds)
{
    if (!ds)
        return;
    hostd_stats_rollup_clear(&ds->cur);
    g_free(ds->minute_sum);
    g_free(ds->hour_sum);
    for (int i = 0; i < RING; i++)
        g_free(ds->sec_ring[i]);
    for (int i = 0; i < BLOCK_MIN; i++)
        g_free(ds->min_ring[i]);
    for (int i = 0; i < BLOCKS; i++)
        g_free(ds->blk_ring[i]);
    g_free(ds);
}

/* Internal time to the caller's monotonic clock, never before creation. */
static uint64_t to_mono(const HostdDiskStats *ds, uint64_t t)
{
    return MAX(t, ds->created) - ds->align_ns;
}

/* Exact extremes for the histograms a subtraction left stale: the min and
 * max over the slots still in the ring, read from their headers. */
static void fix_extremes(HostdStatsRollup *sum, uint8_t *const *ring,
                         unsigned n, bool stale[N_OPS][N_PHASES])
{
    for (int o = 0; o < N_OPS; o++) {
        for (int p = 0; p < N_PHASES; p++) {
            if (!stale[o][p] || !sum->hist[o][p])
                continue;
            uint64_t min = UINT64_MAX, max = 0;
            for (unsigned i = 0; i < n; i++) {
                if (!ring[i])
                    continue;
                size_t len, hl;
                const uint8_t *d = slot_data(ring[i], &len), *h;
                uint64_t c, mn, mx;
                if (parse_rollup(d, len, NULL, o, p, &h, &hl) < 0 || !h ||
                    hostd_latency_hist_peek(h, hl, &c, &mn, &mx) < 0)
                    continue;
                min = MIN(min, mn);
                max = MAX(max, mx);
            }
            /* Refused only if the ring disagrees with the sum, which the
             * bucket bounds then approximate within 1 %. */
            (void)hostd_latency_hist_set_extremes(sum->hist[o][p], min, max);
        }
    }
}

static void rebuild(HostdStatsRollup *sum, uint8_t *const *ring, unsigned n)
{
    hostd_stats_rollup_clear(sum);
    for (unsigned i = 0; i < n; i++)
        if (ring[i])
            thaw_merge(ring[i], sum);
}

/* Drops slot @pos from @ring and its contribution from @sum. */
static void expire(uint8_t **ring, unsigned n, unsigned *live, unsigned pos,
                   HostdStatsRollup *sum)
{
    if (!ring[pos])
        return;
    HostdStatsRollup old = {0};
    bool stale[N_OPS][N_PHASES];

    thaw_merge(ring[pos], &old);
    g_clear_pointer(&ring[pos], g_free);
    (*live)--;
    if (rollup_subtract(sum, &old, stale) < 0) {
        g_warning("disk-stats: window sum lost track, rebuilt");
        rebuild(sum, ring, n);
    } else {
        fix_extremes(sum, ring, n, stale);
    }
    hostd_stats_rollup_clear(&old);
}

static void emit(HostdDiskStats *ds, const HostdStatsRollup *r, uint64_t start,
                 uint64_t end_mono)
{
    if (!ds->minute_closed || hostd_stats_rollup_is_empty(r))
        return;
    /* A borrowed view: same histograms, the observed interval. */
    HostdStatsRollup view = *r;
    view.start_ns = to_mono(ds, start);
    view.end_ns = end_mono;
    ds->minute_closed(ds->opaque, &view);
}

/* Takes the slots out of @ring into one rollup, frozen. */
static uint8_t *collapse(uint8_t **ring, unsigned n, unsigned *live)
{
    HostdStatsRollup sum = {0};

    for (unsigned i = 0; i < n; i++) {
        if (ring[i]) {
            thaw_merge(ring[i], &sum);
            g_clear_pointer(&ring[i], g_free);
            (*live)--;
        }
    }
    uint8_t *blob = freeze(&sum);
    hostd_stats_rollup_clear(&sum);
    return blob;
}

static void close_block(HostdDiskStats *ds, uint64_t b)
{
    unsigned pos = b % BLOCKS;
    uint8_t *blob = collapse(ds->min_ring, BLOCK_MIN, &ds->min_live);

    if (!blob && !ds->blk_ring[pos])
        return; /* the hour sum does not change */
    HostdStatsRollup sum = {0};
    if (ds->hour_sum)
        thaw_merge(ds->hour_sum, &sum);
    expire(ds->blk_ring, BLOCKS, &ds->blk_live, pos, &sum);
    if (blob) {
        thaw_merge(blob, &sum);
        ds->blk_ring[pos] = blob;
        ds->blk_live++;
    }
    g_free(ds->hour_sum);
    ds->hour_sum = freeze(&sum);
    hostd_stats_rollup_clear(&sum);
}

/* @minute: the thawed 1-minute sum, which is this minute now that the
 * second ring holds exactly its 60 seconds. */
static void close_minute(HostdDiskStats *ds, const HostdStatsRollup *minute)
{
    uint64_t m = ds->sec / 60;

    if (ds->minute_sum) {
        size_t len;
        slot_data(ds->minute_sum, &len);
        g_free(ds->min_ring[m % BLOCK_MIN]); /* NULL: blocks collapse */
        ds->min_ring[m % BLOCK_MIN] =
            g_memdup2(ds->minute_sum, sizeof(uint32_t) + len);
        ds->min_live++;
        emit(ds, minute, m * NS_PER_MIN, to_mono(ds, (m + 1) * NS_PER_MIN));
    }
    if (m % BLOCK_MIN == BLOCK_MIN - 1)
        close_block(ds, m / BLOCK_MIN);
}

static void close_second(HostdDiskStats *ds)
{
    unsigned pos = ds->sec % RING;
    bool minute_end = ds->sec % 60 == 59;
    uint8_t *blob = freeze(&ds->cur);

    if (blob || ds->sec_ring[pos] || minute_end) {
        HostdStatsRollup sum = {0};
        if (ds->minute_sum)
            thaw_merge(ds->minute_sum, &sum);
        expire(ds->sec_ring, RING, &ds->sec_live, pos, &sum);
        if (blob) {
            hostd_stats_rollup_merge(&sum, &ds->cur);
            ds->sec_ring[pos] = blob;
            ds->sec_live++;
            hostd_stats_rollup_clear(&ds->cur);
        }
        g_free(ds->minute_sum);
        ds->minute_sum = freeze(&sum);
        if (minute_end)
            close_minute(ds, &sum);
        hostd_stats_rollup_clear(&sum);
    }
    ds->sec++;
}

void hostd_disk_stats_advance(HostdDiskStats *ds, uint64_t now_ns)
{
    uint64_t target = (now_ns + ds->align_ns) / HOSTD_NS_PER_SEC;

    while (ds->sec < target) {
        /* Idle stretches cost nothing: with no second to freeze or expire,
         * skip to the next minute end, or all the way once the hour is
         * empty too. */
        if (ds->sec_live == 0 && hostd_stats_rollup_is_empty(&ds->cur)) {
            uint64_t last = ds->sec / 60 * 60 + 59;
            if ((ds->min_live == 0 && ds->blk_live == 0) || last >= target) {
                ds->sec = target;
                break;
            }
            ds->sec = last;
        }
        close_second(ds);
    }
}

int hostd_disk_stats_add(HostdDiskStats *ds, uint64_t now_ns,
                         const HostdJoinedRequest *r)
{
    if (r->op >= N_OPS)
        return -EINVAL;
    hostd_disk_stats_advance(ds, now_ns);

    HostdStatsRollup *c = &ds->cur;
    c->requests[r->op] = sat_add(c->requests[r->op], 1);
    c->bytes[r->op] = sat_add(c->bytes[r->op], r->bytes);
    for (int p = 0; p < N_PHASES; p++) {
        if (!(r->phase_valid & (1u << p)))
            continue;
        if (!c->hist[r->op][p])
            c->hist[r->op][p] = hostd_latency_hist_new();
        hostd_latency_hist_add(c->hist[r->op][p], r->phase_ns[p]);
    }
    if (r->flags & HOSTD_JR_UNMATCHED_GUEST)
        c->counters[HOSTD_STATS_UNMATCHED_GUEST]++;
    if (r->flags & HOSTD_JR_UNMATCHED_SPAN)
        c->counters[HOSTD_STATS_UNMATCHED_SPAN]++;
    return 0;
}

void hostd_disk_stats_count(HostdDiskStats *ds, uint64_t now_ns,
                            HostdStatsCounter c, uint64_t n)
{
    if (c >= N_COUNTERS)
        return;
    hostd_disk_stats_advance(ds, now_ns);
    ds->cur.counters[c] = sat_add(ds->cur.counters[c], n);
}

int hostd_disk_stats_window(HostdDiskStats *ds, uint64_t now_ns,
                            HostdStatsWindow w, HostdStatsRollup *out)
{
    hostd_stats_rollup_clear(out);
    if (w >= HOSTD_STATS_WINDOW__N)
        return -EINVAL;
    hostd_disk_stats_advance(ds, now_ns);

    uint64_t end = ds->sec * HOSTD_NS_PER_SEC, start;
    switch (w) {
    case HOSTD_STATS_WINDOW_1S:
        start = sat_sub(end, HOSTD_NS_PER_SEC);
        if (ds->sec > 0 && ds->sec_ring[(ds->sec - 1) % RING])
            thaw_merge(ds->sec_ring[(ds->sec - 1) % RING], out);
        break;
    case HOSTD_STATS_WINDOW_1M:
        start = sat_sub(end, NS_PER_MIN);
        if (ds->minute_sum)
            thaw_merge(ds->minute_sum, out);
        break;
    default: {
        /* Complete blocks, complete minutes of the current block, complete
         * seconds of the current minute. */
        uint64_t m = ds->sec / 60, block = m / BLOCK_MIN;
        start = sat_sub(block * BLOCK_MIN * NS_PER_MIN,
                        (uint64_t)BLOCKS * BLOCK_MIN * NS_PER_MIN);
        if (ds->hour_sum)
            thaw_merge(ds->hour_sum, out);
        for (uint64_t i = block * BLOCK_MIN; i < m; i++)
            if (ds->min_ring[i % BLOCK_MIN])
                thaw_merge(ds->min_ring[i % BLOCK_MIN], out);
        for (uint64_t s = m * 60; s < ds->sec; s++)
            if (ds->sec_ring[s % RING])
                thaw_merge(ds->sec_ring[s % RING], out);
        break;
    }
    }
    out->start_ns = to_mono(ds, start);
    out->end_ns = to_mono(ds, end);
    return 0;
}

uint64_t hostd_disk_stats_seconds(HostdDiskStats *ds, uint64_t now_ns,
                                  HostdStatsSecondFn fn, void *opaque)
{
    hostd_disk_stats_advance(ds, now_ns);

    for (uint64_t s = sat_sub(ds->sec, RING); s < ds->sec; s++) {
        if (!ds->sec_ring[s % RING])
            continue;
        HostdStatsRollup r = {0};
        thaw_merge(ds->sec_ring[s % RING], &r);
        r.start_ns = to_mono(ds, s * HOSTD_NS_PER_SEC);
        r.end_ns = to_mono(ds, (s + 1) * HOSTD_NS_PER_SEC);
        fn(opaque, &r);
        hostd_stats_rollup_clear(&r);
    }
    return to_mono(ds, ds->sec * HOSTD_NS_PER_SEC);
}

void hostd_disk_stats_flush(HostdDiskStats *ds, uint64_t now_ns)
{
    hostd_disk_stats_advance(ds, now_ns);

    HostdStatsRollup part = {0};
    uint64_t first = ds->sec / 60 * 60;
    for (uint64_t s = first; s < ds->sec; s++)
        if (ds->sec_ring[s % RING])
            thaw_merge(ds->sec_ring[s % RING], &part);
    hostd_stats_rollup_merge(&part, &ds->cur);
    /* Half-open like every interval: what was accounted at now_ns is in. */
    emit(ds, &part, first * HOSTD_NS_PER_SEC, MAX(now_ns, to_mono(ds, 0)) + 1);
    hostd_stats_rollup_clear(&part);
}

static size_t ring_memory(uint8_t *const *ring, unsigned n)
{
    size_t m = 0, len;

    for (unsigned i = 0; i < n; i++) {
        if (ring[i]) {
            slot_data(ring[i], &len);
            m += sizeof(uint32_t) + len;
        }
    }
    return m;
}

size_t hostd_disk_stats_memory(const HostdDiskStats *ds)
{
    return sizeof(*ds) + rollup_memory(&ds->cur) +
           ring_memory(&ds->minute_sum, 1) + ring_memory(&ds->hour_sum, 1) +
           ring_memory(ds->sec_ring, RING) +
           ring_memory(ds->min_ring, BLOCK_MIN) +
           ring_memory(ds->blk_ring, BLOCKS);
}
