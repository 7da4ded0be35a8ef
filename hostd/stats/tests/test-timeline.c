/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The heatmap's columns (timeline.h): rows are unions of latency-hist
 * buckets; over 70 minutes of random traffic with idle gaps, the columns of
 * the 1-minute and 1-hour windows add up, per op and row, to exactly what
 * the window's histograms count, read at many instants; each column's
 * quantiles are its own; memory stays bounded.
 */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "stats/disk-stats.h"
#include "stats/timeline.h"

#define SEC    HOSTD_NS_PER_SEC
#define MINUTE (60 * SEC)

static void test_rows(void)
{
    GRand *g = g_rand_new_with_seed(7);

    g_assert_cmpuint(hostd_timeline_row(0), ==, 0);
    g_assert_cmpuint(hostd_timeline_row(1023), ==, 0);
    g_assert_cmpuint(hostd_timeline_row(1024), ==, 1);
    g_assert_cmpuint(hostd_timeline_row(1279), ==, 1);
    g_assert_cmpuint(hostd_timeline_row(1280), ==, 2);
    g_assert_cmpuint(hostd_timeline_row(UINT64_MAX), ==,
                     HOSTD_TIMELINE_ROWS - 1);
    g_assert_cmpuint(hostd_timeline_row(UINT64_C(1) << 34), ==,
                     HOSTD_TIMELINE_ROWS - 1);
    g_assert_cmpuint(hostd_timeline_row((UINT64_C(1) << 34) - 1), ==,
                     HOSTD_TIMELINE_ROWS - 2);
    for (unsigned r = 0; r < HOSTD_TIMELINE_ROWS; r++) {
        uint64_t lo = hostd_timeline_row_lower(r);

        g_assert_cmpuint(hostd_timeline_row(lo), ==, r);
        if (r)
            g_assert_cmpuint(hostd_timeline_row(lo - 1), ==, r - 1);
    }
    /* A latency-hist bucket never straddles a row bound. */
    for (int i = 0; i < 200000; i++) {
        uint64_t ns = (uint64_t)exp(g_rand_double_range(g, 0, 40));
        uint64_t lo, hi;

        hostd_latency_hist_bucket_bounds(ns, &lo, &hi);
        g_assert_cmpuint(hostd_timeline_row(lo), ==, hostd_timeline_row(hi));
    }
    g_rand_free(g);
}

typedef struct Sums {
    uint64_t cells[BLKIN_OP__N][HOSTD_TIMELINE_ROWS];
    uint64_t requests[BLKIN_OP__N];
} Sums;

static void sums_of_window(const HostdStatsRollup *r, Sums *s)
{
    memset(s, 0, sizeof(*s));
    for (int op = 0; op < BLKIN_OP__N; op++) {
        HostdLatencyHistIter it;
        HostdLatencyBucket b;

        s->requests[op] = r->requests[op];
        if (!r->hist[op][BLKIN_PHASE_TOTAL])
            continue;
        hostd_latency_hist_iter_init(&it, r->hist[op][BLKIN_PHASE_TOTAL]);
        while (hostd_latency_hist_iter_next(&it, &b))
            s->cells[op][hostd_timeline_row(b.upper)] += b.count;
    }
}

static void sums_of_columns(GArray *cols, Sums *s, uint64_t start, uint64_t end)
{
    memset(s, 0, sizeof(*s));
    for (guint i = 0; i < cols->len; i++) {
        const HostdTimelineColumn *c =
            &g_array_index(cols, HostdTimelineColumn, i);

        g_assert_cmpuint(c->start_ns, >=, start);
        g_assert_cmpuint(c->end_ns, <=, end);
        if (i)
            g_assert_cmpuint(
                c->start_ns, >=,
                g_array_index(cols, HostdTimelineColumn, i - 1).end_ns);
        for (int op = 0; op < BLKIN_OP__N; op++) {
            const HostdTimelineOp *o = &c->ops[op];
            uint64_t n = 0;

            s->requests[op] += o->requests;
            for (uint32_t k = 0; k < o->n_cells; k++) {
                s->cells[op][o->cells[k].row] += o->cells[k].count;
                n += o->cells[k].count;
                if (k)
                    g_assert_cmpuint(o->cells[k].row, >, o->cells[k - 1].row);
            }
            g_assert_cmpuint(n, ==, o->samples);
            if (o->samples) {
                g_assert_cmpuint(o->p50_ns, <=, o->p90_ns);
                g_assert_cmpuint(o->p90_ns, <=, o->p99_ns);
                g_assert_cmpuint(o->p99_ns, <=, o->max_ns);
            }
        }
    }
}

typedef struct Fixture {
    HostdDiskStats *ds;
    HostdTimeline *tl;
} Fixture;

static void on_minute(void *opaque, const HostdStatsRollup *minute)
{
    hostd_timeline_minute(((Fixture *)opaque)->tl, minute);
}

static void check_window(Fixture *f, uint64_t now, HostdStatsWindow w)
{
    HostdStatsRollup r = {0};
    g_autoptr(GArray) cols = hostd_timeline_columns_new();
    Sums a, b;

    g_assert_cmpint(hostd_timeline_columns(f->tl, f->ds, now, w, cols), ==, 0);
    hostd_disk_stats_window(f->ds, now, w, &r);
    sums_of_window(&r, &a);
    sums_of_columns(cols, &b, r.start_ns, r.end_ns);
    g_assert_cmpmem(&a, sizeof(a), &b, sizeof(b));
    if (w == HOSTD_STATS_WINDOW_1M)
        g_assert_cmpuint(cols->len, <=, 60);
    else
        g_assert_cmpuint(cols->len, <=, 65 + 60);
    hostd_stats_rollup_clear(&r);
}

static void test_windows_add_up(void)
{
    GRand *g = g_rand_new_with_seed(42);
    Fixture f;
    /* Not on a minute: the alignment matters. */
    uint64_t align = 17 * SEC + 123456, t = 5 * SEC + 777;
    uint64_t end = t + 75 * MINUTE;
    unsigned checks = 0;

    f.ds = hostd_disk_stats_new(t, align, on_minute, &f);
    f.tl = hostd_timeline_new(align);
    while (t < end) {
        HostdJoinedRequest r = {0};

        /* Bursts, and two idle gaps of several minutes. */
        if ((t / MINUTE) % 23 == 9) {
            t += MINUTE;
            continue;
        }
        t += (uint64_t)g_rand_int_range(g, 1, 400) * 1000000;
        r.op = g_rand_int_range(g, 0, 4);
        r.bytes = 4096;
        r.phase_ns[BLKIN_PHASE_TOTAL] =
            (uint64_t)exp(g_rand_double_range(g, log(500), log(3e9)));
        if (g_rand_int_range(g, 0, 10))
            r.phase_valid = 1u << BLKIN_PHASE_TOTAL;
        hostd_disk_stats_add(f.ds, t, &r);
        if (g_rand_int_range(g, 0, 300) == 0) {
            /* A checkpoint (history) of the minute in progress. */
            hostd_disk_stats_flush(f.ds, t);
        }
        if (g_rand_int_range(g, 0, 400) == 0) {
            check_window(&f, t, HOSTD_STATS_WINDOW_1M);
            check_window(&f, t, HOSTD_STATS_WINDOW_1H);
            checks++;
        }
    }
    for (int i = 0; i < 70; i++) {
        check_window(&f, end + (uint64_t)i * 17 * SEC, HOSTD_STATS_WINDOW_1H);
        check_window(&f, end + (uint64_t)i * 17 * SEC, HOSTD_STATS_WINDOW_1M);
    }
    g_test_message("%u checks under traffic; timeline memory %zu bytes", checks,
                   hostd_timeline_memory(f.tl));
    g_assert_cmpuint(checks, >, 20);
    /* The bound (timeline.h). */
    g_assert_cmpuint(hostd_timeline_memory(f.tl), <,
                     65 * (5 * HOSTD_TIMELINE_ROWS * 5 + 370) + 600);
    g_assert_cmpint(
        hostd_timeline_columns(f.tl, f.ds, end, HOSTD_STATS_WINDOW_1S, NULL), <,
        0);
    hostd_timeline_free(f.tl);
    hostd_disk_stats_free(f.ds);
    g_rand_free(g);
}

/* A column's quantiles are its own: a slow minute stands out. */
static void test_column_quantiles(void)
{
    HostdStatsRollup r = {0};
    HostdTimelineColumn c;

    r.requests[BLKIN_OP_READ] = 100;
    r.hist[BLKIN_OP_READ][BLKIN_PHASE_TOTAL] = hostd_latency_hist_new();
    for (int i = 1; i <= 100; i++)
        hostd_latency_hist_add(r.hist[BLKIN_OP_READ][BLKIN_PHASE_TOTAL],
                               (uint64_t)i * 100000);
    hostd_timeline_column_init(&c, &r);
    g_assert_cmpuint(c.ops[BLKIN_OP_READ].samples, ==, 100);
    g_assert_cmpfloat(fabs((double)c.ops[BLKIN_OP_READ].p50_ns - 5e6), <,
                      5e6 / 100);
    g_assert_cmpfloat(fabs((double)c.ops[BLKIN_OP_READ].p99_ns - 9.9e6), <,
                      9.9e6 / 100);
    g_assert_cmpuint(c.ops[BLKIN_OP_READ].max_ns, ==, 10000000);
    g_assert_cmpuint(c.ops[BLKIN_OP_WRITE].n_cells, ==, 0);
    hostd_timeline_column_clear(&c);
    hostd_stats_rollup_clear(&r);
}

/* Memory of a disk's hour at 100 IOPS of reads and writes, lognormal
 * latencies around 200 us (what a real disk's spread looks like). */
static void test_memory(void)
{
    GRand *g = g_rand_new_with_seed(3);
    Fixture f;
    uint64_t t = 0, end = 66 * MINUTE;

    f.ds = hostd_disk_stats_new(t, 0, on_minute, &f);
    f.tl = hostd_timeline_new(0);
    g_assert_cmpuint(hostd_timeline_memory(f.tl), <, 1024);
    while (t < end) {
        HostdJoinedRequest r = {0};
        double u1 = g_rand_double_range(g, 1e-12, 1), u2 = g_rand_double(g);

        t += 10 * 1000000;
        r.op = g_rand_int_range(g, 0, 10) < 7 ? BLKIN_OP_READ : BLKIN_OP_WRITE;
        r.phase_ns[BLKIN_PHASE_TOTAL] = (uint64_t)exp(
            log(200e3) + 0.6 * sqrt(-2 * log(u1)) * cos(2 * G_PI * u2));
        r.phase_valid = 1u << BLKIN_PHASE_TOTAL;
        hostd_disk_stats_add(f.ds, t, &r);
    }
    g_test_message("timeline of a disk's hour at 100 IOPS: %zu bytes",
                   hostd_timeline_memory(f.tl));
    g_assert_cmpuint(hostd_timeline_memory(f.tl), <, 32 * 1024);
    hostd_timeline_free(f.tl);
    hostd_disk_stats_free(f.ds);
    g_rand_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/timeline/rows", test_rows);
    g_test_add_func("/timeline/windows-add-up", test_windows_add_up);
    g_test_add_func("/timeline/column-quantiles", test_column_quantiles);
    g_test_add_func("/timeline/memory", test_memory);
    return g_test_run();
}
