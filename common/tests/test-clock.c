/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Clock-offset estimator: the true offset always lies within the reported
 * bound, the bound is at most half the best round trip, drift is tracked.
 */
#include <errno.h>
#include <glib.h>
#include <math.h>

#include "blkin-clock.h"

/* A simulated exchange: guest clock = host * (1 + ppb/1e9) + offset. */
static struct blkin_clock_sample exchange(int64_t h1, int64_t up, int64_t proc,
                                          int64_t down, int64_t offset,
                                          double ppb)
{
    struct blkin_clock_sample s;
    int64_t g1h = h1 + up, g2h = g1h + proc;

    s.host_send_ns = (uint64_t)h1;
    s.guest_recv_ns = (uint64_t)(g1h + offset + (int64_t)(g1h * ppb / 1e9));
    s.guest_send_ns = (uint64_t)(g2h + offset + (int64_t)(g2h * ppb / 1e9));
    s.host_recv_ns = (uint64_t)(g2h + down);
    return s;
}

static void test_symmetric(void)
{
    struct blkin_clock_estimator e;
    struct blkin_clock_estimate est;

    blkin_clock_init(&e);
    blkin_clock_get(&e, &est);
    g_assert_false(est.valid);
    for (int i = 0; i < 10; i++) {
        struct blkin_clock_sample s =
            exchange(1000000 + i * 100000, 20000, 5000, 20000, 123456789, 0);
        g_assert_cmpint(blkin_clock_add(&e, &s), ==, 0);
    }
    blkin_clock_get(&e, &est);
    g_assert_true(est.valid);
    g_assert_cmpint(est.offset_ns, ==, 123456789);
    g_assert_cmpint(est.bound_ns, ==, 20000);
    g_assert_cmpint(est.best_rtt_ns, ==, 45000);
    g_assert_cmpint(est.bound_ns * 2, <=, est.best_rtt_ns);
}

static void test_asymmetric_bound_holds(void)
{
    struct blkin_clock_estimator e;
    struct blkin_clock_estimate est;
    GRand *rng = g_rand_new_with_seed(7);
    int64_t offset = -987654321, min_rtt = INT64_MAX;

    blkin_clock_init(&e);
    for (int i = 0; i < 500; i++) {
        int64_t up = g_rand_int_range(rng, 1000, 400000);
        int64_t down = g_rand_int_range(rng, 1000, 400000);
        int64_t proc = g_rand_int_range(rng, 0, 50000);
        struct blkin_clock_sample s =
            exchange(5000000000ll + i * 1000000ll, up, proc, down, offset, 0);
        int64_t rtt = up + proc + down;

        g_assert_cmpint(blkin_clock_add(&e, &s), ==, 0);
        if (rtt < min_rtt)
            min_rtt = rtt;
        blkin_clock_get(&e, &est);
        /* The bound is honest ... */
        g_assert_cmpint(est.offset_ns - est.bound_ns, <=, offset);
        g_assert_cmpint(est.offset_ns + est.bound_ns, >=, offset);
        /* ... and never worse than half the best recent round trip. */
        g_assert_cmpint(est.bound_ns * 2, <=, est.best_rtt_ns + 1);
        g_assert_cmpint(est.best_rtt_ns, >=, min_rtt);
    }
    g_rand_free(rng);
}

static void test_drift(void)
{
    struct blkin_clock_estimator e;
    struct blkin_clock_estimate est;

    blkin_clock_init(&e);
    /* 50 ppm fast guest clock, one probe every 100 ms for 20 s. */
    for (int i = 0; i < 200; i++) {
        struct blkin_clock_sample s =
            exchange(1000000000ll + i * 100000000ll, 30000 + (i % 7) * 1000,
                     2000, 30000, 5000, 50000.0);
        g_assert_cmpint(blkin_clock_add(&e, &s), ==, 0);
    }
    blkin_clock_get(&e, &est);
    g_assert_true(est.drift_valid);
    g_assert_cmpfloat(est.drift_ppb, >, 49000.0);
    g_assert_cmpfloat(est.drift_ppb, <, 51000.0);
}

static void test_reject(void)
{
    struct blkin_clock_estimator e;
    struct blkin_clock_estimate est;
    struct blkin_clock_sample back = {100, 50, 60, 90};  /* h2 < h1 */
    struct blkin_clock_sample rev = {100, 60, 50, 200};  /* g2 < g1 */
    struct blkin_clock_sample slow = {100, 0, 500, 200}; /* proc > rtt */
    struct blkin_clock_sample neg = {UINT64_MAX, 0, 0, UINT64_MAX};

    blkin_clock_init(&e);
    g_assert_cmpint(blkin_clock_add(&e, &back), ==, -EINVAL);
    g_assert_cmpint(blkin_clock_add(&e, &rev), ==, -EINVAL);
    g_assert_cmpint(blkin_clock_add(&e, &slow), ==, -EINVAL);
    g_assert_cmpint(blkin_clock_add(&e, &neg), ==, -EINVAL);
    blkin_clock_get(&e, &est);
    g_assert_false(est.valid);
    g_assert_cmpuint(est.rejected, ==, 4);
}

/*
 * A guest that answers with absurd times: first near INT64_MAX, then 0.
 * Offsets then differ by more than 64 bits hold; the drift fit must not
 * overflow (UBSan in the sanitizer build) and reports a finite number.
 */
static void test_hostile_offsets(void)
{
    struct blkin_clock_estimator e;
    struct blkin_clock_estimate est;

    blkin_clock_init(&e);
    for (int i = 0; i < 40; i++) {
        uint64_t h1 = 1000000000ull + (uint64_t)i * 100000000ull;
        uint64_t g = i < 8 ? (uint64_t)INT64_MAX - 1000 : 0;
        struct blkin_clock_sample s = {h1, g, g, h1 + 50000};

        blkin_clock_add(&e, &s);
    }
    blkin_clock_get(&e, &est);
    g_assert_true(est.valid);
    g_assert_cmpint(est.bound_ns, <=, 25000);
    if (est.drift_valid)
        g_assert_true(isfinite(est.drift_ppb));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/clock/symmetric", test_symmetric);
    g_test_add_func("/clock/asymmetric-bound-holds",
                    test_asymmetric_bound_holds);
    g_test_add_func("/clock/drift", test_drift);
    g_test_add_func("/clock/reject", test_reject);
    g_test_add_func("/clock/hostile-offsets", test_hostile_offsets);
    return g_test_run();
}
