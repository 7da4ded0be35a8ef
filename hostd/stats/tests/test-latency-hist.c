/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Latency histogram: quantiles within 1 % of the exact order statistic over
 * random distributions spanning 1 ns .. beyond an hour, exact count, sum,
 * min and max, merge equal to adding everything, subtraction undoing a
 * merge, serialization round trips, and a deserializer that rejects every
 * truncated or inconsistent blob without reading out of bounds (built with
 * ASan/UBSan).
 */
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "stats/latency-hist.h"

#define N_SAMPLES 20000

typedef uint64_t (*Gen)(GRand *r);

static uint64_t gen_uniform(GRand *r)
{
    return (uint64_t)g_rand_double_range(r, 1, 1e7);
}

static double normal(GRand *r)
{
    double u1 = g_rand_double(r), u2 = g_rand_double(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2 * log(u1)) * cos(2 * G_PI * u2);
}

static uint64_t gen_lognormal(GRand *r)
{
    /* Median 200 us, wide enough to reach seconds in the tail. */
    return (uint64_t)exp(log(200e3) + 1.5 * normal(r)) + 1;
}

static uint64_t gen_bimodal(GRand *r)
{
    /* Cache hits at ~50 us and disk seeks at ~8 ms. */
    double mu = g_rand_boolean(r) ? 50e3 : 8e6;
    double v = mu * (1 + 0.1 * normal(r));
    return v < 1 ? 1 : (uint64_t)v;
}

static uint64_t gen_constant(GRand *r)
{
    return 123457;
}

static uint64_t gen_one_ns(GRand *r)
{
    return g_rand_int_range(r, 0, 4) ? 1 : 2;
}

static uint64_t gen_huge(GRand *r)
{
    /* Hung requests: an hour and beyond, up to the top of the range. */
    switch (g_rand_int_range(r, 0, 3)) {
    case 0:
        return 3600ull * 1000000000ull + g_rand_int(r);
    case 1:
        return (uint64_t)g_rand_double_range(r, 3.6e12, 1e18);
    default:
        return UINT64_MAX - g_rand_int(r);
    }
}

static uint64_t gen_everything(GRand *r)
{
    /* Log-uniform over 1 ns .. 2^63 ns. */
    return (uint64_t)exp2(g_rand_double_range(r, 0, 63));
}

static const struct {
    const char *name;
    Gen gen;
} dists[] = {
    {"uniform", gen_uniform},        {"lognormal", gen_lognormal},
    {"bimodal", gen_bimodal},        {"constant", gen_constant},
    {"one-ns", gen_one_ns},          {"huge", gen_huge},
    {"log-uniform", gen_everything},
};

static const double qs[] = {0,   0.001, 0.01, 0.1,   0.25,   0.5, 0.75,
                            0.9, 0.95,  0.99, 0.999, 0.9999, 1.0};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check_against_exact(const HostdLatencyHist *h, uint64_t *v,
                                size_t n, double *worst)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    uint64_t sum = 0;
    bool sat = false;
    for (size_t i = 0; i < n; i++)
        sat |= __builtin_add_overflow(sum, v[i], &sum);

    g_assert_cmpuint(hostd_latency_hist_count(h), ==, n);
    g_assert_cmpuint(hostd_latency_hist_min(h), ==, v[0]);
    g_assert_cmpuint(hostd_latency_hist_max(h), ==, v[n - 1]);
    g_assert_cmpuint(hostd_latency_hist_sum(h), ==, sat ? UINT64_MAX : sum);

    for (size_t i = 0; i < G_N_ELEMENTS(qs); i++) {
        uint64_t rank = hostd_latency_hist_rank(qs[i], n);
        uint64_t exact = v[rank - 1];
        uint64_t est = hostd_latency_hist_quantile(h, qs[i]);
        double err = fabs((double)est - (double)exact) / (double)exact;
        if (err > *worst)
            *worst = err;
        if (err > 0.01)
            g_error("q=%g: exact %" G_GUINT64_FORMAT
                    " estimate %" G_GUINT64_FORMAT " error %.4f%%",
                    qs[i], exact, est, 100 * err);
    }
}

static void test_quantiles(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(4242);
    g_autofree uint64_t *v = g_new(uint64_t, N_SAMPLES);

    for (size_t d = 0; d < G_N_ELEMENTS(dists); d++) {
        double worst = 0;
        /* Several sizes: small ones stress the rank edges. */
        static const size_t sizes[] = {1, 2, 3, 10, 101, 1000, N_SAMPLES};
        for (size_t s = 0; s < G_N_ELEMENTS(sizes); s++) {
            g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
            for (size_t i = 0; i < sizes[s]; i++) {
                v[i] = dists[d].gen(r);
                hostd_latency_hist_add(h, v[i]);
            }
            check_against_exact(h, v, sizes[s], &worst);
        }
        g_test_message("%-12s worst quantile error %.4f%%", dists[d].name,
                       100 * worst);
        g_assert_cmpfloat(worst, <=, 1.0 / 128 + 1e-12);
    }
}

static void test_bucket_bounds(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(7);
    uint64_t prev_upper = 0;

    /* Exhaustive at the small end, where buckets are exact. */
    for (uint64_t v = 0; v < 300; v++) {
        uint64_t lo, hi;
        hostd_latency_hist_bucket_bounds(v, &lo, &hi);
        g_assert_cmpuint(lo, <=, v);
        g_assert_cmpuint(hi, >=, v);
        if (v < 128)
            g_assert_cmpuint(lo, ==, hi);
        if (v > 0 && lo == v)
            g_assert_cmpuint(lo, ==, prev_upper + 1);
        prev_upper = hi;
    }
    for (int i = 0; i < 200000; i++) {
        uint64_t v = (uint64_t)g_rand_int(r) << 32 | g_rand_int(r);
        v >>= g_rand_int_range(r, 0, 64);
        uint64_t lo, hi;
        hostd_latency_hist_bucket_bounds(v, &lo, &hi);
        g_assert_cmpuint(lo, <=, v);
        g_assert_cmpuint(hi, >=, v);
        /* Width relative to the bucket's start: at most 1/64. */
        if (lo >= 64)
            g_assert_cmpuint((hi - lo + 1) * 64, <=, lo);
        /* Neighbours tile the range without gaps. */
        if (hi < UINT64_MAX) {
            uint64_t lo2, hi2;
            hostd_latency_hist_bucket_bounds(hi + 1, &lo2, &hi2);
            g_assert_cmpuint(lo2, ==, hi + 1);
        }
    }
    uint64_t lo, hi;
    hostd_latency_hist_bucket_bounds(UINT64_MAX, &lo, &hi);
    g_assert_cmpuint(hi, ==, UINT64_MAX);
}

static GBytes *ser(const HostdLatencyHist *h)
{
    GByteArray *a = g_byte_array_new();
    hostd_latency_hist_serialize(h, a);
    return g_byte_array_free_to_bytes(a);
}

static void assert_same(const HostdLatencyHist *a, const HostdLatencyHist *b)
{
    g_autoptr(GBytes) x = ser(a);
    g_autoptr(GBytes) y = ser(b);
    g_assert_true(g_bytes_equal(x, y));
}

static void test_merge(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(99);

    for (size_t d = 0; d < G_N_ELEMENTS(dists); d++) {
        g_autoptr(HostdLatencyHist) all = hostd_latency_hist_new();
        HostdLatencyHist *parts[7];
        for (int p = 0; p < 7; p++)
            parts[p] = hostd_latency_hist_new();
        for (int i = 0; i < 5000; i++) {
            uint64_t v = dists[d].gen(r);
            hostd_latency_hist_add(all, v);
            /* Uneven parts, one left empty. */
            hostd_latency_hist_add(parts[g_rand_int_range(r, 0, 6)], v);
        }
        g_autoptr(HostdLatencyHist) m = hostd_latency_hist_new();
        for (int p = 0; p < 7; p++)
            hostd_latency_hist_merge(m, parts[p]);
        assert_same(m, all);

        /* Merge order does not matter. */
        g_autoptr(HostdLatencyHist) m2 = hostd_latency_hist_copy(parts[6]);
        for (int p = 5; p >= 0; p--)
            hostd_latency_hist_merge(m2, parts[p]);
        assert_same(m2, all);

        /* Subtracting a part undoes its merge, extremes restorable. */
        g_autoptr(HostdLatencyHist) rest = hostd_latency_hist_new();
        for (int p = 1; p < 7; p++)
            hostd_latency_hist_merge(rest, parts[p]);
        int stale = hostd_latency_hist_subtract(m, parts[0]);
        g_assert_cmpint(stale, >=, 0);
        g_assert_cmpuint(hostd_latency_hist_count(m), ==,
                         hostd_latency_hist_count(rest));
        g_assert_cmpuint(hostd_latency_hist_sum(m), ==,
                         hostd_latency_hist_sum(rest));
        if (hostd_latency_hist_count(rest)) {
            g_assert_cmpuint(hostd_latency_hist_min(m), <=,
                             hostd_latency_hist_min(rest));
            g_assert_cmpint(
                hostd_latency_hist_set_extremes(m, hostd_latency_hist_min(rest),
                                                hostd_latency_hist_max(rest)),
                ==, 0);
        }
        assert_same(m, rest);
        /* Subtracting what is not there is refused, m unchanged. */
        g_autoptr(HostdLatencyHist) absent = hostd_latency_hist_new();
        hostd_latency_hist_add_n(absent, 77777,
                                 hostd_latency_hist_count(m) + 1);
        g_assert_cmpint(hostd_latency_hist_subtract(m, absent), ==, -ERANGE);
        hostd_latency_hist_reset(absent);
        hostd_latency_hist_add(absent, 1);
        hostd_latency_hist_add(absent, UINT64_MAX);
        g_assert_cmpint(hostd_latency_hist_subtract(m, absent), ==, -ERANGE);
        assert_same(m, rest);
        for (int p = 0; p < 7; p++)
            hostd_latency_hist_free(parts[p]);
    }

    /* Self-merge doubles. */
    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    g_autoptr(HostdLatencyHist) twice = hostd_latency_hist_new();
    for (uint64_t v = 1; v < 1000000; v = v * 3 + 1) {
        hostd_latency_hist_add(h, v);
        hostd_latency_hist_add_n(twice, v, 2);
    }
    hostd_latency_hist_merge(h, h);
    assert_same(h, twice);

    /* Subtracting everything leaves an empty histogram. */
    g_autoptr(HostdLatencyHist) c = hostd_latency_hist_copy(h);
    g_assert_cmpint(hostd_latency_hist_subtract(h, c), ==, 0);
    g_assert_cmpuint(hostd_latency_hist_count(h), ==, 0);
    g_assert_cmpuint(hostd_latency_hist_min(h), ==, 0);
    g_assert_cmpuint(hostd_latency_hist_n_buckets(h), ==, 0);
    g_autoptr(HostdLatencyHist) empty = hostd_latency_hist_new();
    assert_same(h, empty);
}

static void test_iterate(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(5);
    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    for (int i = 0; i < 10000; i++)
        hostd_latency_hist_add(h, gen_lognormal(r));

    HostdLatencyHistIter it;
    size_t n = 0;
    HostdLatencyBucket b, prev = {0};
    uint64_t total = 0;
    hostd_latency_hist_iter_init(&it, h);
    while (hostd_latency_hist_iter_next(&it, &b)) {
        g_assert_cmpuint(b.lower, <=, b.upper);
        g_assert_cmpuint(b.count, >, 0);
        if (n)
            g_assert_cmpuint(b.lower, >, prev.upper);
        total += b.count;
        g_assert_cmpuint(b.cumulative, ==, total);
        prev = b;
        n++;
    }
    g_assert_cmpuint(n, ==, hostd_latency_hist_n_buckets(h));
    g_assert_cmpuint(total, ==, 10000);
    g_assert_cmpuint(prev.upper, >=, hostd_latency_hist_max(h));
    g_test_message("lognormal, 10000 samples: %zu buckets, %zu bytes", n,
                   hostd_latency_hist_memory(h));
    /* The promise in the header: a few hundred buckets, 8 bytes each. */
    g_assert_cmpuint(n, <, 1000);
    g_assert_cmpuint(hostd_latency_hist_memory(h), <, 48 + 1.3 * 8 * n + 128);
}

static void test_roundtrip(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(11);

    for (size_t d = 0; d < G_N_ELEMENTS(dists); d++) {
        g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
        for (int i = 0; i < 3000; i++)
            hostd_latency_hist_add(h, dists[d].gen(r));
        g_autoptr(GBytes) b = ser(h);
        gsize len;
        const uint8_t *p = g_bytes_get_data(b, &len);
        g_autoptr(HostdLatencyHist) back = NULL;
        g_assert_cmpint(hostd_latency_hist_deserialize(p, len, &back), ==, 0);
        assert_same(back, h);
        for (size_t i = 0; i < G_N_ELEMENTS(qs); i++)
            g_assert_cmpuint(hostd_latency_hist_quantile(back, qs[i]), ==,
                             hostd_latency_hist_quantile(h, qs[i]));
        uint64_t c, mn, mx;
        g_assert_cmpint(hostd_latency_hist_peek(p, len, &c, &mn, &mx), ==, 0);
        g_assert_cmpuint(c, ==, hostd_latency_hist_count(h));
        g_assert_cmpuint(mn, ==, hostd_latency_hist_min(h));
        g_assert_cmpuint(mx, ==, hostd_latency_hist_max(h));
        g_test_message("%-12s %zu buckets -> %zu bytes serialized",
                       dists[d].name, hostd_latency_hist_n_buckets(h), len);
    }
    /* The empty histogram too. */
    g_autoptr(HostdLatencyHist) e = hostd_latency_hist_new();
    g_autoptr(GBytes) b = ser(e);
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);
    g_autoptr(HostdLatencyHist) back = NULL;
    g_assert_cmpint(hostd_latency_hist_deserialize(p, len, &back), ==, 0);
    g_assert_cmpuint(hostd_latency_hist_count(back), ==, 0);
    g_assert_cmpuint(hostd_latency_hist_quantile(back, 0.5), ==, 0);
}

static int try_parse(const uint8_t *p, size_t len)
{
    /* A copy of exactly @len bytes on the heap, so ASan sees any overrun. */
    g_autofree uint8_t *copy = g_memdup2(p, len);
    HostdLatencyHist *h = NULL;
    int ret = hostd_latency_hist_deserialize(copy, len, &h);
    if (ret == 0) {
        /* Whatever is accepted must be self-consistent. */
        g_assert_nonnull(h);
        HostdLatencyHistIter it;
        HostdLatencyBucket b = {0};
        uint64_t total = 0;
        hostd_latency_hist_iter_init(&it, h);
        while (hostd_latency_hist_iter_next(&it, &b))
            total = b.cumulative;
        /* Less only when a bucket saturated. */
        g_assert_cmpuint(total, <=, hostd_latency_hist_count(h));
        if (total) {
            g_assert_cmpuint(hostd_latency_hist_min(h), <=,
                             hostd_latency_hist_max(h));
            (void)hostd_latency_hist_quantile(h, 0.99);
        }
        hostd_latency_hist_free(h);
    } else {
        g_assert_cmpint(ret, ==, -EBADMSG);
        g_assert_null(h);
    }
    return ret;
}

static void test_corrupt(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(13);
    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    for (int i = 0; i < 2000; i++)
        hostd_latency_hist_add(h, gen_bimodal(r));
    g_autoptr(GBytes) b = ser(h);
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);

    /* Every truncation, and any trailing byte, is rejected. */
    for (size_t l = 0; l < len; l++)
        g_assert_cmpint(try_parse(p, l), ==, -EBADMSG);
    g_autofree uint8_t *longer = g_malloc(len + 1);
    memcpy(longer, p, len);
    longer[len] = 0;
    g_assert_cmpint(try_parse(longer, len + 1), ==, -EBADMSG);

    /* Single-byte corruption: rejected or still self-consistent. */
    g_autofree uint8_t *m = g_memdup2(p, len);
    size_t rejected = 0, tries = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            m[i] ^= 1u << bit;
            rejected += try_parse(m, len) < 0;
            tries++;
            m[i] ^= 1u << bit;
        }
    }
    g_test_message("bit flips: %zu of %zu rejected", rejected, tries);
    g_assert_cmpuint(rejected, >, tries * 9 / 10);

    /* Random garbage, with and without a valid header. */
    uint8_t junk[256];
    for (int i = 0; i < 20000; i++) {
        size_t l = g_rand_int_range(r, 0, sizeof(junk));
        for (size_t k = 0; k < l; k++)
            junk[k] = g_rand_int(r);
        if (l >= 2 && (i & 1)) {
            junk[0] = 1;
            junk[1] = HOSTD_LATENCY_HIST_SUB_BITS;
        }
        try_parse(junk, l);
    }

    /* Hand-made inconsistencies, each otherwise well-formed. */
    static const struct {
        const char *what;
        uint8_t bytes[24];
        size_t len;
    } bad[] = {
        {"version", {2, 6, 0, 0, 0, 0, 0}, 7},
        {"sub-bits", {1, 7, 0, 0, 0, 0, 0}, 7},
        {"empty with min", {1, 6, 0, 0, 0, 5, 5}, 7},
        {"count without buckets", {1, 6, 0, 1, 5, 5, 5}, 7},
        {"count mismatch", {1, 6, 1, 2, 10, 5, 5, 10}, 8},
        {"min above max", {1, 6, 1, 1, 5, 6, 5, 10}, 8},
        {"min not in first bucket", {1, 6, 1, 1, 5, 4, 5, 10}, 8},
        {"zero delta", {1, 6, 2, 2, 10, 5, 5, 10, 0}, 9},
        {"index out of range", {1, 6, 1, 1, 5, 5, 5, 0x80, 0x3b}, 9},
        {"sum below min*count", {1, 6, 1, 2, 9, 5, 5, 11, 0}, 9},
        {"sum above max*count", {1, 6, 1, 2, 11, 5, 5, 11, 0}, 9},
        {"bucket count too big",
         {1, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 1, 1},
         11},
        {"bucket count beyond 2^52",
         {1, 6, 1, 1, 5, 5, 5, 11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0x0f},
         16},
        {"overlong varint",
         {1, 6, 1, 1, 5, 5, 5, 0x8a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
          0x80, 0x02},
         17},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("crafted: %s", bad[i].what);
        g_assert_cmpint(try_parse(bad[i].bytes, bad[i].len), ==, -EBADMSG);
    }
    /* ... and the well-formed neighbour of those is accepted. */
    static const uint8_t good[] = {1, 6, 1, 2, 10, 5, 5, 11, 0};
    g_assert_cmpint(try_parse(good, sizeof(good)), ==, 0);
}

static void test_saturation(void)
{
    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    hostd_latency_hist_add_n(h, UINT64_MAX, 3);
    g_assert_cmpuint(hostd_latency_hist_sum(h), ==, UINT64_MAX);
    hostd_latency_hist_add_n(h, 10, HOSTD_LATENCY_HIST_COUNT_MAX);
    hostd_latency_hist_add_n(h, 10, 5);
    g_assert_cmpuint(hostd_latency_hist_count(h), ==,
                     HOSTD_LATENCY_HIST_COUNT_MAX + 8);
    g_assert_cmpuint(hostd_latency_hist_quantile(h, 0.5), ==, 10);
    g_assert_cmpuint(hostd_latency_hist_quantile(h, 1), ==, UINT64_MAX);
    /* Still serializable and parseable even though counts saturated. */
    g_autoptr(GBytes) b = ser(h);
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);
    g_assert_cmpint(try_parse(p, len), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/latency-hist/quantiles-vs-exact", test_quantiles);
    g_test_add_func("/latency-hist/bucket-bounds", test_bucket_bounds);
    g_test_add_func("/latency-hist/merge-subtract", test_merge);
    g_test_add_func("/latency-hist/iterate", test_iterate);
    g_test_add_func("/latency-hist/serialize-roundtrip", test_roundtrip);
    g_test_add_func("/latency-hist/corrupt-blobs", test_corrupt);
    g_test_add_func("/latency-hist/saturation", test_saturation);
    return g_test_run();
}
