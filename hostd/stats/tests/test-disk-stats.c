/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-disk windows: random traffic (with idle gaps longer than an hour)
 * against a brute-force reference that recomputes every window from the
 * full event log; the minute callback and checkpoints likewise; rollup
 * blobs round trip and reject corruption; memory per disk under a realistic
 * load, printed.
 */
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "stats/disk-stats.h"

#define SEC    HOSTD_NS_PER_SEC
#define MINUTE (60 * SEC)

typedef struct Event {
    uint64_t t;
    bool is_counter;
    HostdStatsCounter counter;
    uint64_t n;
    HostdJoinedRequest r;
} Event;

static double normal(GRand *r)
{
    double u1 = g_rand_double(r), u2 = g_rand_double(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2 * log(u1)) * cos(2 * G_PI * u2);
}

/* Medians per phase: queue, to-qemu, qemu, backend, to-guest, total. */
static const double phase_median[BLKIN_PHASE__N] = {5e3,   15e3, 20e3,
                                                    150e3, 10e3, 0};

static HostdJoinedRequest random_request(GRand *g, bool all_phases)
{
    HostdJoinedRequest r = {0};
    r.op = g_rand_int_range(g, 0, 10) < 7 ? BLKIN_OP_READ
           : g_rand_int_range(g, 0, 10) < 9
               ? BLKIN_OP_WRITE
               : g_rand_int_range(g, 0, BLKIN_OP__N);
    r.bytes = r.op == BLKIN_OP_FLUSH ? 0 : 512u << g_rand_int_range(g, 0, 9);
    uint64_t total = 0;
    for (int p = 0; p < BLKIN_PHASE_TOTAL; p++) {
        if (!all_phases && g_rand_int_range(g, 0, 8) == 0)
            continue;
        uint64_t v = (uint64_t)exp(log(phase_median[p]) + 0.6 * normal(g));
        r.phase_ns[p] = v;
        r.phase_valid |= 1u << p;
        total += v;
    }
    r.phase_ns[BLKIN_PHASE_TOTAL] = total;
    r.phase_valid |= 1u << BLKIN_PHASE_TOTAL;
    if (!all_phases && g_rand_int_range(g, 0, 50) == 0)
        r.flags |= g_rand_boolean(g) ? HOSTD_JR_UNMATCHED_GUEST
                                     : HOSTD_JR_UNMATCHED_SPAN;
    return r;
}

static void ref_add(HostdStatsRollup *ref, const Event *e)
{
    if (e->is_counter) {
        ref->counters[e->counter] += e->n;
        return;
    }
    const HostdJoinedRequest *r = &e->r;
    ref->requests[r->op]++;
    ref->bytes[r->op] += r->bytes;
    for (int p = 0; p < BLKIN_PHASE__N; p++) {
        if (!(r->phase_valid & (1u << p)))
            continue;
        if (!ref->hist[r->op][p])
            ref->hist[r->op][p] = hostd_latency_hist_new();
        hostd_latency_hist_add(ref->hist[r->op][p], r->phase_ns[p]);
    }
    if (r->flags & HOSTD_JR_UNMATCHED_GUEST)
        ref->counters[HOSTD_STATS_UNMATCHED_GUEST]++;
    if (r->flags & HOSTD_JR_UNMATCHED_SPAN)
        ref->counters[HOSTD_STATS_UNMATCHED_SPAN]++;
}

/* Reference rollup of the events with start <= t < end. */
static void reference(const GArray *log, uint64_t start, uint64_t end,
                      HostdStatsRollup *ref)
{
    hostd_stats_rollup_clear(ref);
    for (guint i = 0; i < log->len; i++) {
        const Event *e = &g_array_index(log, Event, i);
        if (e->t >= start && e->t < end)
            ref_add(ref, e);
    }
}

static GBytes *ser_hist(const HostdLatencyHist *h)
{
    GByteArray *a = g_byte_array_new();
    if (h)
        hostd_latency_hist_serialize(h, a);
    return g_byte_array_free_to_bytes(a);
}

static void assert_rollup_eq(const HostdStatsRollup *a,
                             const HostdStatsRollup *b)
{
    for (int o = 0; o < BLKIN_OP__N; o++) {
        g_assert_cmpuint(a->requests[o], ==, b->requests[o]);
        g_assert_cmpuint(a->bytes[o], ==, b->bytes[o]);
        for (int p = 0; p < BLKIN_PHASE__N; p++) {
            /* Byte-equal serializations: same buckets, count, sum and
             * exact min/max. */
            g_autoptr(GBytes) x = ser_hist(a->hist[o][p]);
            g_autoptr(GBytes) y = ser_hist(b->hist[o][p]);
            if (!g_bytes_equal(x, y))
                g_error(
                    "op %d phase %d: %" G_GUINT64_FORMAT
                    " vs %" G_GUINT64_FORMAT " samples, min %" G_GUINT64_FORMAT
                    " vs %" G_GUINT64_FORMAT,
                    o, p,
                    a->hist[o][p] ? hostd_latency_hist_count(a->hist[o][p]) : 0,
                    b->hist[o][p] ? hostd_latency_hist_count(b->hist[o][p]) : 0,
                    a->hist[o][p] ? hostd_latency_hist_min(a->hist[o][p]) : 0,
                    b->hist[o][p] ? hostd_latency_hist_min(b->hist[o][p]) : 0);
        }
    }
    for (int c = 0; c < HOSTD_STATS_COUNTER__N; c++)
        g_assert_cmpuint(a->counters[c], ==, b->counters[c]);
}

typedef struct Minutes {
    GArray *log;
    uint64_t align;
    unsigned n;
    unsigned checkpoints;
} Minutes;

static void on_minute(void *opaque, const HostdStatsRollup *m)
{
    Minutes *mm = opaque;
    HostdStatsRollup ref = {0};

    /* Closed minutes end on a minute boundary of (time + align); a
     * checkpoint may end anywhere. */
    g_assert_cmpuint(m->end_ns, >, m->start_ns);
    if ((m->end_ns + mm->align) % MINUTE == 0) {
        g_assert_cmpuint(m->end_ns - m->start_ns, <=, MINUTE);
        mm->n++;
        reference(mm->log, m->start_ns, m->end_ns, &ref);
    } else {
        mm->checkpoints++;
        reference(mm->log, m->start_ns, m->end_ns, &ref);
    }
    g_assert_cmpuint((m->start_ns + mm->align) / MINUTE, ==,
                     (m->end_ns - 1 + mm->align) / MINUTE);
    assert_rollup_eq(m, &ref);
    hostd_stats_rollup_clear(&ref);
}

static void check_windows(HostdDiskStats *ds, const GArray *log, uint64_t now,
                          uint64_t align, uint64_t created)
{
    uint64_t S = (now + align) / SEC * SEC - align;
    uint64_t B = (now + align) / (5 * MINUTE) * (5 * MINUTE) - align;
    const struct {
        HostdStatsWindow w;
        uint64_t start;
    } want[] = {
        {HOSTD_STATS_WINDOW_1S, S - SEC},
        {HOSTD_STATS_WINDOW_1M, S - MINUTE},
        {HOSTD_STATS_WINDOW_1H, B - 60 * MINUTE},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        HostdStatsRollup got = {0}, ref = {0};
        g_assert_cmpint(hostd_disk_stats_window(ds, now, want[i].w, &got), ==,
                        0);
        uint64_t start = MAX(want[i].start, created);
        g_assert_cmpuint(got.start_ns, ==, start);
        g_assert_cmpuint(got.end_ns, ==, S);
        reference(log, start, S, &ref);
        assert_rollup_eq(&got, &ref);
        hostd_stats_rollup_clear(&got);
        hostd_stats_rollup_clear(&ref);
    }
}

static void test_windows_vs_reference(void)
{
    g_autoptr(GRand) g = g_rand_new_with_seed(2024);
    g_autoptr(GArray) log = g_array_new(FALSE, FALSE, sizeof(Event));
    /* Odd alignment and start so boundaries are not round numbers. */
    const uint64_t align = 17 * SEC + 123456789;
    const uint64_t created = 5000 * SEC + 987654321;
    Minutes mm = {log, align, 0, 0};
    g_autoptr(HostdDiskStats) ds =
        hostd_disk_stats_new(created, align, on_minute, &mm);
    uint64_t t = created;
    unsigned queries = 0;

    /* Busy stretches, pauses of seconds, minutes, and over an hour. */
    for (int phase = 0; phase < 400; phase++) {
        int kind = g_rand_int_range(g, 0, 20);
        if (kind == 0)
            t += (uint64_t)g_rand_int_range(g, 3600, 4000) * SEC;
        else if (kind < 4)
            t += (uint64_t)g_rand_int_range(g, 30, 700) * SEC;
        int n = g_rand_int_range(g, 1, 80);
        for (int i = 0; i < n; i++) {
            t += (uint64_t)g_rand_int_range(g, 1, 400) * 1000000;
            Event e = {.t = t};
            if (g_rand_int_range(g, 0, 30) == 0) {
                e.is_counter = true;
                e.counter = g_rand_int_range(g, 0, HOSTD_STATS_COUNTER__N);
                e.n = g_rand_int_range(g, 1, 1000);
                hostd_disk_stats_count(ds, t, e.counter, e.n);
            } else {
                e.r = random_request(g, false);
                g_assert_cmpint(hostd_disk_stats_add(ds, t, &e.r), ==, 0);
            }
            g_array_append_val(log, e);
        }
        if (g_rand_int_range(g, 0, 3) == 0) {
            t += g_rand_int_range(g, 0, 3) * SEC;
            check_windows(ds, log, t, align, created);
            queries++;
        }
        if (g_rand_int_range(g, 0, 10) == 0)
            hostd_disk_stats_flush(ds, t);
    }
    /* Let everything age out: windows end up empty. */
    t += 2 * 3600 * SEC;
    check_windows(ds, log, t, align, created);
    HostdStatsRollup w = {0};
    hostd_disk_stats_window(ds, t, HOSTD_STATS_WINDOW_1H, &w);
    g_assert_true(hostd_stats_rollup_is_empty(&w));
    g_test_message("%u events, %u window checks, %u minutes closed, "
                   "%u checkpoints, memory after idling %zu bytes",
                   log->len, queries, mm.n, mm.checkpoints,
                   hostd_disk_stats_memory(ds));
    g_assert_cmpuint(mm.n, >, 50);
    g_assert_cmpuint(hostd_disk_stats_memory(ds), <, 4096);
}

static void test_semantics(void)
{
    /* Hand-checked: one request per second at second s with latency
     * 1000 + s us, from t = 0, no alignment. */
    g_autoptr(HostdDiskStats) ds = hostd_disk_stats_new(0, 0, NULL, NULL);
    for (uint64_t s = 0; s < 3 * 3600; s++) {
        HostdJoinedRequest r = {.op = BLKIN_OP_WRITE, .bytes = 4096};
        r.phase_valid = 1u << BLKIN_PHASE_TOTAL;
        r.phase_ns[BLKIN_PHASE_TOTAL] = (1000 + s) * 1000;
        hostd_disk_stats_add(ds, s * SEC + SEC / 2, &r);
    }
    /* now = 3 h + 30.5 s: the current second is 10830. */
    uint64_t now = 3 * 3600 * SEC + 30 * SEC + SEC / 2;
    HostdStatsRollup w = {0};
    const HostdLatencyHist *h;

    hostd_disk_stats_window(ds, now, HOSTD_STATS_WINDOW_1S, &w);
    /* Nothing was added in second 10829 (the log ended at 10799). */
    g_assert_true(hostd_stats_rollup_is_empty(&w));
    g_assert_cmpuint(w.start_ns, ==, 10829 * SEC);

    hostd_disk_stats_window(ds, now, HOSTD_STATS_WINDOW_1M, &w);
    g_assert_cmpuint(w.start_ns, ==, 10770 * SEC);
    g_assert_cmpuint(w.end_ns, ==, 10830 * SEC);
    g_assert_cmpuint(w.requests[BLKIN_OP_WRITE], ==, 30);
    g_assert_cmpfloat(hostd_stats_rollup_iops(&w, BLKIN_OP_WRITE), ==, 0.5);
    g_assert_cmpfloat(hostd_stats_rollup_bytes_per_sec(&w, BLKIN_OP_WRITE), ==,
                      2048);
    h = w.hist[BLKIN_OP_WRITE][BLKIN_PHASE_TOTAL];
    g_assert_cmpuint(hostd_latency_hist_min(h), ==, (1000 + 10770) * 1000);
    g_assert_cmpuint(hostd_latency_hist_max(h), ==, (1000 + 10799) * 1000);
    g_assert_null(w.hist[BLKIN_OP_READ][BLKIN_PHASE_TOTAL]);

    hostd_disk_stats_window(ds, now, HOSTD_STATS_WINDOW_1H, &w);
    /* Blocks 24..35 (minutes 120..179) complete, plus seconds
     * 10800..10829. */
    g_assert_cmpuint(w.start_ns, ==, 7200 * SEC);
    g_assert_cmpuint(w.end_ns, ==, 10830 * SEC);
    g_assert_cmpuint(w.requests[BLKIN_OP_WRITE], ==, 3600);
    h = w.hist[BLKIN_OP_WRITE][BLKIN_PHASE_TOTAL];
    g_assert_cmpuint(hostd_latency_hist_min(h), ==, (1000 + 7200) * 1000);
    g_assert_cmpuint(hostd_latency_hist_count(h), ==, 3600);
    hostd_stats_rollup_clear(&w);

    /* Unknown op and window are refused. */
    HostdJoinedRequest bad = {.op = BLKIN_OP__N};
    g_assert_cmpint(hostd_disk_stats_add(ds, now, &bad), ==, -EINVAL);
    g_assert_cmpint(hostd_disk_stats_window(ds, now, HOSTD_STATS_WINDOW__N, &w),
                    ==, -EINVAL);
    /* Late data (time going back) lands in the current second. */
    HostdJoinedRequest r = {.op = BLKIN_OP_READ, .bytes = 1};
    hostd_disk_stats_add(ds, 5 * SEC, &r);
    hostd_disk_stats_window(ds, now + SEC, HOSTD_STATS_WINDOW_1S, &w);
    g_assert_cmpuint(w.requests[BLKIN_OP_READ], ==, 1);
    hostd_stats_rollup_clear(&w);
}

static void test_rollup_blob(void)
{
    g_autoptr(GRand) g = g_rand_new_with_seed(77);
    HostdStatsRollup r = {0}, back = {0};

    for (int i = 0; i < 500; i++) {
        Event e = {.r = random_request(g, false)};
        ref_add(&r, &e);
    }
    r.counters[HOSTD_STATS_AGENT_DROPS] = 12345678901ull;
    g_autoptr(GByteArray) a = g_byte_array_new();
    hostd_stats_rollup_serialize(&r, a);
    g_assert_cmpint(hostd_stats_rollup_deserialize(a->data, a->len, &back), ==,
                    0);
    assert_rollup_eq(&back, &r);
    g_test_message("500 requests: rollup blob %u bytes", a->len);

    /* Truncations, a trailing byte and bit flips: rejected or consistent,
     * never out of bounds (ASan). */
    for (guint l = 0; l < a->len; l++) {
        g_autofree uint8_t *c = g_memdup2(a->data, l);
        g_assert_cmpint(hostd_stats_rollup_deserialize(c, l, &back), ==,
                        -EBADMSG);
        g_assert_true(hostd_stats_rollup_is_empty(&back));
    }
    g_autofree uint8_t *longer = g_malloc0(a->len + 1);
    memcpy(longer, a->data, a->len);
    g_assert_cmpint(hostd_stats_rollup_deserialize(longer, a->len + 1, &back),
                    ==, -EBADMSG);
    g_autofree uint8_t *m = g_memdup2(a->data, a->len);
    for (guint i = 0; i < a->len; i++) {
        m[i] ^= 1u << g_rand_int_range(g, 0, 8);
        int ret = hostd_stats_rollup_deserialize(m, a->len, &back);
        g_assert_true(ret == 0 || ret == -EBADMSG);
        hostd_stats_rollup_clear(&back);
        m[i] = a->data[i];
    }
    /* A blob from a writer that knew fewer ops/phases/counters is fine;
     * one that knew more is refused. */
    static const uint8_t older_ok[] = {1, 2, 3, 1, 7, 8, 100, 0, 5, 0};
    g_assert_cmpint(
        hostd_stats_rollup_deserialize(older_ok, sizeof(older_ok), &back), ==,
        0);
    g_assert_cmpuint(back.requests[BLKIN_OP_WRITE], ==, 8);
    g_assert_cmpuint(back.counters[0], ==, 5);
    static const uint8_t newer[] = {1, 9, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    g_assert_cmpint(hostd_stats_rollup_deserialize(newer, sizeof(newer), &back),
                    ==, -EBADMSG);
    hostd_stats_rollup_clear(&r);
    hostd_stats_rollup_clear(&back);
}

static size_t busy_disk_memory(unsigned iops, unsigned seconds)
{
    g_autoptr(GRand) g = g_rand_new_with_seed(iops);
    g_autoptr(HostdDiskStats) ds = hostd_disk_stats_new(0, 0, NULL, NULL);
    size_t peak = 0;

    for (uint64_t s = 0; s < seconds; s++) {
        for (unsigned i = 0; i < iops; i++) {
            HostdJoinedRequest r = random_request(g, true);
            hostd_disk_stats_add(ds, s * SEC + i * (SEC / iops), &r);
        }
        if (s % 60 == 30 || s + 1 == seconds)
            peak = MAX(peak, hostd_disk_stats_memory(ds));
    }
    return peak;
}

static void test_memory(void)
{
    /*
     * Disks kept busy for an hour and a minute (both rings full): 70 %
     * reads, 20 % writes, the rest spread over the other ops, every phase
     * lognormal. The numbers printed are the ones quoted in disk-stats.h.
     */
    g_autoptr(HostdDiskStats) idle = hostd_disk_stats_new(0, 0, NULL, NULL);
    hostd_disk_stats_advance(idle, 3660 * SEC);
    size_t m100 = busy_disk_memory(100, 3660);
    size_t m1000 = busy_disk_memory(1000, 3660);
    g_test_message("memory per disk: idle %zu B; 100 IOPS %zu B (%.0f KiB); "
                   "1000 IOPS %zu B (%.0f KiB)",
                   hostd_disk_stats_memory(idle), m100, m100 / 1024.0, m1000,
                   m1000 / 1024.0);
    /* The header promises these bounds. */
    g_assert_cmpuint(hostd_disk_stats_memory(idle), <, 4096);
    g_assert_cmpuint(m100, <, 320 * 1024);
    g_assert_cmpuint(m1000, <, 800 * 1024);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/disk-stats/semantics", test_semantics);
    g_test_add_func("/disk-stats/windows-vs-reference",
                    test_windows_vs_reference);
    g_test_add_func("/disk-stats/rollup-blob", test_rollup_blob);
    g_test_add_func("/disk-stats/memory", test_memory);
    return g_test_run();
}
