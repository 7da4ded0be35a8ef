/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * timeline.c: a disk's columns over time for the heatmap (timeline.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-stats"

#include "timeline.h"

#include <errno.h>
#include <string.h>

#define NS_PER_MIN (60 * HOSTD_NS_PER_SEC)
#define BLOCK_MIN  5 /* disk-stats' 5-minute blocks */

unsigned hostd_timeline_row(uint64_t ns)
{
    unsigned e;

    if (ns < (UINT64_C(1) << HOSTD_TIMELINE_ROW_MIN))
        return 0;
    e = 63 - (unsigned)__builtin_clzll(ns);
    if (e >= HOSTD_TIMELINE_ROW_MAX)
        return HOSTD_TIMELINE_ROWS - 1;
    return 1 + (e - HOSTD_TIMELINE_ROW_MIN) * 4 +
           (unsigned)((ns >> (e - 2)) & 3);
}

uint64_t hostd_timeline_row_lower(unsigned row)
{
    unsigned e;

    if (row == 0)
        return 0;
    if (row >= HOSTD_TIMELINE_ROWS - 1)
        return UINT64_C(1) << HOSTD_TIMELINE_ROW_MAX;
    e = HOSTD_TIMELINE_ROW_MIN + (row - 1) / 4;
    return (UINT64_C(1) << e) +
           (uint64_t)((row - 1) % 4) * (UINT64_C(1) << (e - 2));
}

static void op_init(HostdTimelineOp *o, const HostdStatsRollup *r, int op)
{
    const HostdLatencyHist *h = r->hist[op][BLKIN_PHASE_TOTAL];
    HostdTimelineCell cells[HOSTD_TIMELINE_ROWS];
    HostdLatencyHistIter it;
    HostdLatencyBucket b;
    uint32_t n = 0;

    memset(o, 0, sizeof(*o));
    o->requests = r->requests[op];
    o->bytes = r->bytes[op];
    if (!h)
        return;
    o->samples = hostd_latency_hist_count(h);
    o->p50_ns = hostd_latency_hist_quantile(h, 0.50);
    o->p90_ns = hostd_latency_hist_quantile(h, 0.90);
    o->p99_ns = hostd_latency_hist_quantile(h, 0.99);
    o->max_ns = hostd_latency_hist_max(h);
    /* Buckets come in increasing order and never straddle a row bound. */
    hostd_latency_hist_iter_init(&it, h);
    while (hostd_latency_hist_iter_next(&it, &b)) {
        uint32_t row = hostd_timeline_row(b.lower);
        uint64_t c;

        if (!n || cells[n - 1].row != row)
            cells[n++] = (HostdTimelineCell){.row = row};
        c = (uint64_t)cells[n - 1].count + b.count;
        cells[n - 1].count = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    }
    o->n_cells = n;
    o->cells = g_memdup2(cells, n * sizeof(cells[0]));
}

void hostd_timeline_column_init(HostdTimelineColumn *c,
                                const HostdStatsRollup *r)
{
    c->start_ns = r->start_ns;
    c->end_ns = r->end_ns;
    for (int op = 0; op < BLKIN_OP__N; op++)
        op_init(&c->ops[op], r, op);
}

void hostd_timeline_column_clear(HostdTimelineColumn *c)
{
    if (!c)
        return;
    for (int op = 0; op < BLKIN_OP__N; op++)
        g_free(c->ops[op].cells);
    memset(c, 0, sizeof(*c));
}

static void column_free_func(gpointer p)
{
    hostd_timeline_column_clear(p);
}

GArray *hostd_timeline_columns_new(void)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(HostdTimelineColumn));

    g_array_set_clear_func(a, column_free_func);
    return a;
}

/*
 * A minute as kept: only the ops it saw, each cell in 5 bytes (rows as
 * bytes, counts as 32 bits, apart so nothing pads), in one allocation. An
 * idle disk costs the ring's pointers; a disk doing 100 IOPS of reads and
 * writes some 25 KB for the hour.
 */
typedef struct StoredOp {
    uint32_t op, n_cells;
    uint64_t requests, bytes, samples, p50_ns, p90_ns, p99_ns, max_ns;
} StoredOp;

typedef struct StoredMinute {
    int64_t minute;
    uint64_t start_ns, end_ns;
    uint32_t n_ops, size;
    StoredOp ops[]; /* then per op its counts (uint32) and rows (uint8) */
} StoredMinute;

struct HostdTimeline {
    uint64_t align_ns;
    StoredMinute *ring[HOSTD_TIMELINE_MINUTES]; /* minute m at m % N */
};

static StoredMinute *store(int64_t minute, const HostdTimelineColumn *c)
{
    uint32_t n_ops = 0, n_cells = 0;
    StoredMinute *s;
    uint8_t *p;
    size_t size;

    for (int op = 0; op < BLKIN_OP__N; op++) {
        if (!c->ops[op].requests && !c->ops[op].samples)
            continue;
        n_ops++;
        n_cells += c->ops[op].n_cells;
    }
    size = sizeof(*s) + n_ops * sizeof(StoredOp) + n_cells * 5;
    s = g_malloc0(size);
    s->minute = minute;
    s->start_ns = c->start_ns;
    s->end_ns = c->end_ns;
    s->n_ops = n_ops;
    s->size = (uint32_t)size;
    p = (uint8_t *)&s->ops[n_ops];
    for (int op = 0, i = 0; op < BLKIN_OP__N; op++) {
        const HostdTimelineOp *o = &c->ops[op];

        if (!o->requests && !o->samples)
            continue;
        s->ops[i++] = (StoredOp){.op = (uint32_t)op,
                                 .n_cells = o->n_cells,
                                 .requests = o->requests,
                                 .bytes = o->bytes,
                                 .samples = o->samples,
                                 .p50_ns = o->p50_ns,
                                 .p90_ns = o->p90_ns,
                                 .p99_ns = o->p99_ns,
                                 .max_ns = o->max_ns};
        for (uint32_t k = 0; k < o->n_cells; k++)
            memcpy(p + 4 * k, &o->cells[k].count, 4);
        for (uint32_t k = 0; k < o->n_cells; k++)
            p[4 * o->n_cells + k] = (uint8_t)o->cells[k].row;
        p += 5 * o->n_cells;
    }
    return s;
}

static void load(HostdTimelineColumn *c, const StoredMinute *s)
{
    const uint8_t *p = (const uint8_t *)&s->ops[s->n_ops];

    memset(c, 0, sizeof(*c));
    c->start_ns = s->start_ns;
    c->end_ns = s->end_ns;
    for (uint32_t i = 0; i < s->n_ops; i++) {
        const StoredOp *so = &s->ops[i];
        HostdTimelineOp *o = &c->ops[so->op];

        *o = (HostdTimelineOp){.requests = so->requests,
                               .bytes = so->bytes,
                               .samples = so->samples,
                               .p50_ns = so->p50_ns,
                               .p90_ns = so->p90_ns,
                               .p99_ns = so->p99_ns,
                               .max_ns = so->max_ns,
                               .n_cells = so->n_cells};
        o->cells = g_new(HostdTimelineCell, so->n_cells);
        for (uint32_t k = 0; k < so->n_cells; k++) {
            memcpy(&o->cells[k].count, p + 4 * k, 4);
            o->cells[k].row = p[4 * so->n_cells + k];
        }
        p += 5 * so->n_cells;
    }
}

HostdTimeline *hostd_timeline_new(uint64_t align_ns)
{
    HostdTimeline *t = g_new0(HostdTimeline, 1);

    t->align_ns = align_ns;
    return t;
}

void hostd_timeline_free(HostdTimeline *t)
{
    if (!t)
        return;
    for (int i = 0; i < HOSTD_TIMELINE_MINUTES; i++)
        g_free(t->ring[i]);
    g_free(t);
}

static int64_t minute_of(const HostdTimeline *t, uint64_t mono_ns)
{
    return (int64_t)((mono_ns + t->align_ns) / NS_PER_MIN);
}

void hostd_timeline_minute(HostdTimeline *t, const HostdStatsRollup *minute)
{
    int64_t m = minute_of(t, minute->start_ns);
    StoredMinute **s = &t->ring[m % HOSTD_TIMELINE_MINUTES];
    HostdTimelineColumn c;

    hostd_timeline_column_init(&c, minute);
    g_free(*s);
    *s = store(m, &c);
    hostd_timeline_column_clear(&c);
}

static void take_second(void *opaque, const HostdStatsRollup *sec)
{
    HostdTimelineColumn c;

    hostd_timeline_column_init(&c, sec);
    g_array_append_val((GArray *)opaque, c);
}

int hostd_timeline_columns(HostdTimeline *t, HostdDiskStats *ds,
                           uint64_t now_ns, HostdStatsWindow w, GArray *out)
{
    g_autoptr(GArray) secs = NULL;
    uint64_t end;
    int64_t cur, first;

    if (w != HOSTD_STATS_WINDOW_1M && w != HOSTD_STATS_WINDOW_1H)
        return -EINVAL;
    secs = hostd_timeline_columns_new();
    end = hostd_disk_stats_seconds(ds, now_ns, take_second, secs);
    /* The minute in progress (the windows end at its second in progress). */
    cur = minute_of(t, end);
    if (w == HOSTD_STATS_WINDOW_1H) {
        /* As disk-stats' hour: 12 whole blocks, then the block's minutes. */
        first = cur / BLOCK_MIN * BLOCK_MIN - 60;
        for (int64_t m = first < 0 ? 0 : first; m < cur; m++) {
            const StoredMinute *s = t->ring[m % HOSTD_TIMELINE_MINUTES];
            HostdTimelineColumn c;

            if (!s || s->minute != m || !s->n_ops)
                continue;
            load(&c, s);
            g_array_append_val(out, c);
        }
    }
    for (guint i = 0; i < secs->len; i++) {
        HostdTimelineColumn *c = &g_array_index(secs, HostdTimelineColumn, i);

        if (w == HOSTD_STATS_WINDOW_1H && minute_of(t, c->start_ns) != cur)
            continue;
        /* Moved: the source no longer owns the cells. */
        g_array_append_val(out, *c);
        memset(c, 0, sizeof(*c));
    }
    return 0;
}

size_t hostd_timeline_memory(const HostdTimeline *t)
{
    size_t m = sizeof(*t);

    for (int i = 0; i < HOSTD_TIMELINE_MINUTES; i++)
        m += t->ring[i] ? t->ring[i]->size : 0;
    return m;
}
