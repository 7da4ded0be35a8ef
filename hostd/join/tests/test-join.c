/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-join.c: unit tests of hostd's per-disk join (join/join.c).
 */
#include <glib.h>
#include <stdbool.h>
#include <string.h>

#include "join/join.h"
#include "span-fixture.h"

#define NOBOUND (G_MAXINT64 / 4)

typedef struct Collected {
    GArray *out; /* HostdJoinedRequest */
} Collected;

static void collect(void *opaque, const HostdJoinedRequest *r)
{
    Collected *c = opaque;

    g_array_append_val(c->out, *r);
}

/* A phase as the join computed it; -1 where it does not apply. */
static int64_t phase(const HostdJoinedRequest *r, int p)
{
    return r->phase_valid & (1u << p) ? (int64_t)r->phase_ns[p] : -1;
}

static bool joined(const HostdJoinedRequest *r)
{
    return (r->flags & HOSTD_JR_HAS_GUEST) && (r->flags & HOSTD_JR_HAS_SPAN);
}

/* The corrected guest times are causal: the filter saw the request after
 * the guest issued it and completed it before the guest saw it complete. */
static void check_causal(const HostdJoinedRequest *r)
{
    g_assert_cmpuint(r->span_start_ns, >=, r->guest_issue_ns);
    g_assert_cmpuint(r->guest_complete_ns, >=, r->span_end_ns);
}

static HostdGuestReq guest(uint8_t op, uint64_t off, uint64_t bytes,
                           int64_t queue, int64_t issue, int64_t complete)
{
    HostdGuestReq g = {.op = op,
                       .offset = off,
                       .bytes = bytes,
                       .queue_ns = queue,
                       .issue_ns = issue,
                       .complete_ns = complete};
    return g;
}

/* The consecutive phases add up to the request's total (a span no guest
 * request joined: to its own time, kept apart as SPAN_ALONE). */
static void check_sums(const HostdJoinedRequest *r)
{
    int64_t sum = 0;
    int64_t total = phase(r, BLKIN_PHASE_TOTAL) >= 0
                        ? phase(r, BLKIN_PHASE_TOTAL)
                        : phase(r, BLKIN_PHASE_SPAN_ALONE);

    for (int p = 0; p < BLKIN_PHASE__N; p++)
        if (!blkin_phase_is_summary(p) && phase(r, p) >= 0)
            sum += phase(r, p);
    g_assert_cmpint(total, >=, 0);
    g_assert_cmpint(sum, ==, total);
}

static void test_exact(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);

    for (int i = 0; i < 100; i++) {
        int64_t t = 1000 * MS + i * MS;
        HostdGuestReq g =
            guest(BLKIN_OP_READ, i * 4096, 4096, t - 5 * US, t, t + 300 * US);
        HostdSpan s = fixture_span(i + 1, BLKIN_OP_READ, i * 4096, 4096,
                                   t + 40 * US, t + 250 * US);

        hostd_join_add_guest(j, &g);
        hostd_join_add_span(
            j, &s, &(HostdBelow){.known = true, .backend_ns = 100 * US});
    }
    /* A probe bound of 0: the clock is known exactly, nothing to correct. */
    hostd_join_flush(j, 2000 * MS, 2 * MS, 0, true);
    hostd_join_flush(j, 10000 * MS, 2 * MS, 0, true);
    g_assert_cmpuint(c.out->len, ==, 100);
    g_assert_cmpuint(hostd_join_counters(j)->matched, ==, 100);
    for (guint i = 0; i < c.out->len; i++) {
        HostdJoinedRequest *r = &g_array_index(c.out, HostdJoinedRequest, i);

        g_assert_true(joined(r));
        g_assert_cmpuint(r->offset, ==, (r->span_id - 1) * 4096);
        g_assert_cmpint(phase(r, BLKIN_PHASE_GUEST_QUEUE), ==, 5 * US);
        g_assert_cmpint(phase(r, BLKIN_PHASE_GUEST_TO_QEMU), ==, 40 * US);
        g_assert_cmpint(phase(r, BLKIN_PHASE_QEMU), ==, 110 * US);
        g_assert_cmpint(phase(r, BLKIN_PHASE_BACKEND), ==, 100 * US);
        g_assert_cmpint(phase(r, BLKIN_PHASE_QEMU_TO_GUEST), ==, 50 * US);
        check_sums(r);
    }
    g_array_unref(c.out);
}

/*
 * A backlog converted with a connection's first clock estimate (bound
 * 11 ms, off by 10 ms: the guest's completions seem to come before the
 * spans end) is joined after later estimates narrowed the bound to 0.3 ms:
 * each record is matched within its own estimate's bound (ganeti-cluster,
 * after a live migration under load).
 */
static void test_own_bound(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    const int64_t bound_now = 300 * US, tol_now = 2 * bound_now + 2 * MS;

    for (int i = 0; i < 50; i++) {
        int64_t t = 1000 * MS + i * MS;
        /* Truly: issue t, span [t + 40 us, t + 250 us], complete t + 300 us;
         * the estimate put the guest's times 10 ms early. */
        HostdGuestReq g =
            guest(BLKIN_OP_WRITE, i * 4096, 4096, t - 5 * US - 10 * MS,
                  t - 10 * MS, t + 300 * US - 10 * MS);
        HostdSpan s = fixture_span(i + 1, BLKIN_OP_WRITE, i * 4096, 4096,
                                   t + 40 * US, t + 250 * US);

        g.bound_ns = 11 * MS;
        hostd_join_add_guest(j, &g);
        hostd_join_add_span(j, &s, &(HostdBelow){0});
    }
    /* One more, converted with the current estimate, 5 ms off: no match. */
    HostdGuestReq g = guest(BLKIN_OP_WRITE, 1 << 20, 4096, 1200 * MS - 5 * MS,
                            1200 * MS - 5 * MS, 1200 * MS - 5 * MS + 300 * US);
    HostdSpan s = fixture_span(100, BLKIN_OP_WRITE, 1 << 20, 4096,
                               1200 * MS + 40 * US, 1200 * MS + 250 * US);

    g.bound_ns = bound_now;
    hostd_join_add_guest(j, &g);
    hostd_join_add_span(j, &s, &(HostdBelow){0});
    hostd_join_flush(j, 10000 * MS, tol_now, bound_now, true);
    g_assert_cmpuint(hostd_join_counters(j)->matched, ==, 50);
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_guest, ==, 1);
    /* Their 10 ms say nothing about the current estimate: no correction
     * from them (it would be inconsistent with the current bound). */
    g_assert_false(hostd_join_correction(j)->valid);
    g_assert_cmpuint(hostd_join_correction(j)->inconsistent, ==, 0);
    for (guint i = 0; i < c.out->len; i++) {
        HostdJoinedRequest *r = &g_array_index(c.out, HostdJoinedRequest, i);

        if (joined(r))
            g_assert_cmpuint(r->clock_error_ns, ==, 11 * MS);
    }
    g_array_unref(c.out);
}

/* 32 identical requests in flight: each guest request gets its own span. */
static void test_identical_inflight(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    g_autoptr(GHashTable) used = g_hash_table_new(g_int64_hash, g_int64_equal);

    for (int i = 0; i < 32; i++) {
        int64_t t = 1000 * MS + i * 10 * US;
        HostdGuestReq g =
            guest(BLKIN_OP_WRITE, 0, 65536, 0, t, t + 2 * MS + i * 10 * US);
        HostdSpan s = fixture_span(i + 1, BLKIN_OP_WRITE, 0, 65536, t + 30 * US,
                                   t + 2 * MS + i * 10 * US - 20 * US);

        hostd_join_add_span(j, &s, &(HostdBelow){.backend_ns = 0});
        hostd_join_add_guest(j, &g);
    }
    hostd_join_flush(j, 9000 * MS, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_counters(j)->matched, ==, 32);
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_guest, ==, 0);
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_span, ==, 0);
    for (guint i = 0; i < c.out->len; i++) {
        HostdJoinedRequest *r = &g_array_index(c.out, HostdJoinedRequest, i);

        g_assert_false(g_hash_table_contains(used, &r->span_id));
        g_hash_table_add(used, &r->span_id);
        check_causal(r);
        /* Nothing below QEMU is seen on this disk: its storage time is
         * QEMU's, and no backend phase claims to be 0. */
        g_assert_cmpint(phase(r, BLKIN_PHASE_BACKEND), ==, -1);
        g_assert_cmpint(phase(r, BLKIN_PHASE_QEMU), ==,
                        (int64_t)(r->span_end_ns - r->span_start_ns));
        check_sums(r);
    }
    g_array_unref(c.out);
}

/* virtio-blk merged four 4 KiB guest writes into one 16 KiB request. */
static void test_merged(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    int64_t t = 5000 * MS;
    HostdSpan s =
        fixture_span(7, BLKIN_OP_WRITE, 8192, 16384, t + 50 * US, t + 400 * US);

    hostd_join_add_span(j, &s, &(HostdBelow){.backend_ns = 0});
    for (int i = 0; i < 4; i++) {
        HostdGuestReq g = guest(BLKIN_OP_WRITE, 8192 + i * 4096, 4096, 0,
                                t + i * US, t + 500 * US + i * US);
        hostd_join_add_guest(j, &g);
    }
    hostd_join_flush(j, 9000 * MS, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_counters(j)->matched, ==, 4);
    g_assert_cmpuint(hostd_join_counters(j)->merged, ==, 4);
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_span, ==, 0);
    for (guint i = 0; i < c.out->len; i++) {
        HostdJoinedRequest *r = &g_array_index(c.out, HostdJoinedRequest, i);

        g_assert_cmpuint(r->span_id, ==, 7);
        g_assert_cmpuint(r->merged, >, 1);
        check_sums(r);
    }
    g_array_unref(c.out);
}

/* The same inputs, in any arrival order, give the same joined records. */
static void run_order(GArray *out, gboolean spans_first)
{
    Collected c = {out};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    HostdSpan spans[64];
    HostdGuestReq guests[64];

    for (int i = 0; i < 64; i++) {
        int64_t t = 100 * MS + (i / 8) * 50 * US;
        uint64_t off = (i % 3) * 4096; /* many identical requests */
        guests[i] =
            guest(BLKIN_OP_READ, off, 4096, 0, t, t + 300 * US + (i % 5) * US);
        spans[i] = fixture_span(1000 + i, BLKIN_OP_READ, off, 4096, t + 20 * US,
                                t + 280 * US + (i % 5) * US);
    }
    for (int i = 0; i < 64; i++) {
        if (spans_first)
            hostd_join_add_span(j, &spans[63 - i], &(HostdBelow){0});
        else
            hostd_join_add_guest(j, &guests[63 - i]);
    }
    for (int i = 0; i < 64; i++) {
        if (spans_first)
            hostd_join_add_guest(j, &guests[i]);
        else
            hostd_join_add_span(j, &spans[i], &(HostdBelow){0});
    }
    hostd_join_flush(j, G_MAXINT64, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_counters(j)->matched, ==, 64);
}

static void test_order_independent(void)
{
    g_autoptr(GArray) a = g_array_new(FALSE, TRUE, sizeof(HostdJoinedRequest));
    g_autoptr(GArray) b = g_array_new(FALSE, TRUE, sizeof(HostdJoinedRequest));

    run_order(a, TRUE);
    run_order(b, FALSE);
    g_assert_cmpuint(a->len, ==, b->len);
    for (guint i = 0; i < a->len; i++) {
        HostdJoinedRequest *x = &g_array_index(a, HostdJoinedRequest, i);
        HostdJoinedRequest *y = &g_array_index(b, HostdJoinedRequest, i);

        g_assert_cmpuint(x->span_id, ==, y->span_id);
        g_assert_cmpint(x->guest_issue_ns, ==, y->guest_issue_ns);
    }
}

static void test_unmatched(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    HostdGuestReq g = guest(BLKIN_OP_READ, 0, 4096, 0, 100 * MS, 101 * MS);
    /* Same range, but a write: no match. */
    HostdSpan s = fixture_span(1, BLKIN_OP_WRITE, 0, 4096, 100 * MS + 10 * US,
                               100 * MS + 900 * US);

    hostd_join_add_guest(j, &g);
    hostd_join_add_span(j, &s, &(HostdBelow){.backend_ns = 0});
    hostd_join_flush(j, 200 * MS, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_guest, ==, 1);
    /* The span waits for a guest request that might still come... */
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_span, ==, 0);
    hostd_join_flush(j, 5000 * MS, 1 * MS, NOBOUND, true);
    /* ...and is counted once it cannot. */
    g_assert_cmpuint(hostd_join_counters(j)->unmatched_span, ==, 1);
    g_assert_cmpuint(c.out->len, ==, 2);
    g_assert_cmpuint(hostd_join_pending(j), ==, 0);
    check_sums(&g_array_index(c.out, HostdJoinedRequest, 1));
    /* The span alone is not a request's total on a disk with an agent. */
    g_assert_cmpint(
        phase(&g_array_index(c.out, HostdJoinedRequest, 1), BLKIN_PHASE_TOTAL),
        ==, -1);
    g_assert_cmpint(phase(&g_array_index(c.out, HostdJoinedRequest, 1),
                          BLKIN_PHASE_SPAN_ALONE),
                    ==, 890 * US);
    g_array_unref(c.out);
}

/*
 * A hostile guest: records claiming hour-long requests, whose search
 * windows cover every pending span of the disk, and a byte range that
 * wraps around. Each search stops after HOSTD_JOIN_SCAN_MAX spans (counted),
 * a real request among them still joins, and no wrapped range "contains".
 */
static void test_hostile_windows(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    int64_t t0 = 3700 * SEC;
    const int spans = 3 * HOSTD_JOIN_SCAN_MAX, hostile = 200;

    for (int i = 0; i < spans; i++) {
        HostdSpan s =
            fixture_span(i + 1, i == spans / 2 ? BLKIN_OP_READ : BLKIN_OP_WRITE,
                         (uint64_t)i * 4096, 4096, t0 + i * 10 * US,
                         t0 + i * 10 * US + 5 * US);

        hostd_join_add_span(j, &s, &(HostdBelow){0});
    }
    for (int i = 0; i < hostile; i++) {
        HostdGuestReq g = guest(BLKIN_OP_READ, (uint64_t)i * 512, 512, 0,
                                t0 - 3600 * SEC, t0 + spans * 10 * US);

        hostd_join_add_guest(j, &g);
    }
    /* Wraps: offset + bytes overflows, and would "contain" span 1's range. */
    hostd_join_add_guest(j, &(HostdGuestReq){.op = BLKIN_OP_WRITE,
                                             .offset = UINT64_MAX - 100,
                                             .bytes = 4096,
                                             .issue_ns = t0 - 1 * MS,
                                             .complete_ns = t0 + 1 * MS});
    /* The real read, in the middle of the pile. */
    int64_t mid = t0 + (spans / 2) * 10 * US;
    hostd_join_add_guest(
        j, &(HostdGuestReq){.op = BLKIN_OP_READ,
                            .offset = (uint64_t)(spans / 2) * 4096,
                            .bytes = 4096,
                            .issue_ns = mid - 2 * US,
                            .complete_ns = mid + 20 * US});
    hostd_join_flush(j, t0 + 10 * SEC, 1 * MS, NOBOUND, true);

    const HostdJoinCounters *k = hostd_join_counters(j);
    g_assert_cmpuint(k->matched, ==, 1);
    g_assert_cmpuint(k->unmatched_guest, ==, hostile + 1);
    g_assert_cmpuint(k->scan_limited, ==, hostile);
    g_array_unref(c.out);
}

/*
 * The guest clock estimate is 300 us off (asymmetric probe delays): the raw
 * phases come out negative on one side. Causality corrects the guest times
 * so both virtio legs are non-negative for every request, within the
 * probe's bound, and says how sure it is.
 */
static void test_causal_correction(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    const HostdClockCorrection *corr;

    for (int i = 0; i < 200; i++) {
        int64_t t = 1000 * MS + i * MS;
        int64_t to_qemu = 20 * US + (i % 7) * US,
                to_guest = 15 * US + (i % 5) * US;
        int64_t start = t + to_qemu, end = start + 100 * US + (i % 13) * US;
        /* True guest issue t, completion end + to_guest; seen 300 us late. */
        HostdGuestReq g = guest(BLKIN_OP_READ, i * 4096, 4096, 0, t + 300 * US,
                                end + to_guest + 300 * US);
        HostdSpan s =
            fixture_span(i + 1, BLKIN_OP_READ, i * 4096, 4096, start, end);

        hostd_join_add_guest(j, &g);
        hostd_join_add_span(j, &s, &(HostdBelow){.backend_ns = 0});
    }
    hostd_join_flush(j, G_MAXINT64, 2 * MS, 400 * US, true);
    corr = hostd_join_correction(j);
    g_assert_true(corr->valid);
    g_assert_cmpint(corr->offset_ns, <=, -300 * US + 15 * US);
    g_assert_cmpint(corr->offset_ns, >=, -300 * US - 20 * US);
    g_assert_cmpint(corr->hi_ns - corr->lo_ns, <=, 35 * US);
    for (guint i = 0; i < c.out->len; i++) {
        HostdJoinedRequest *r = &g_array_index(c.out, HostdJoinedRequest, i);

        g_assert_true(joined(r));
        check_causal(r);
        check_sums(r);
    }
    g_array_unref(c.out);
}

/* A virtio-blk request with QEMU's own device times: the phases say where
 * the time is, the device's part is QEMU's accounting, and they add up. */
static void test_device_phases(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);
    int64_t t = 7000 * MS;
    HostdGuestReq g = guest(BLKIN_OP_WRITE, 4096, 4096, 0, t, t + 500 * US);
    HostdSpan s =
        fixture_span(9, BLKIN_OP_WRITE, 4096, 4096, t + 50 * US, t + 300 * US);
    HostdJoinedRequest *r;

    s.dev_start_ns = t + 20 * US;
    s.dev_end_ns = t + 350 * US;
    s.dev_merged = 1;
    hostd_join_add_guest(j, &g);
    hostd_join_add_span(j, &s,
                        &(HostdBelow){.known = true, .backend_ns = 100 * US});
    hostd_join_flush(j, 9000 * MS, 1 * MS, 0, true);
    g_assert_cmpuint(c.out->len, ==, 1);
    r = &g_array_index(c.out, HostdJoinedRequest, 0);
    g_assert_true(joined(r));
    g_assert_cmpint(phase(r, BLKIN_PHASE_GUEST_TO_DEVICE), ==, 20 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_DEVICE), ==, 30 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_QEMU), ==, 150 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_BACKEND), ==, 100 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_DEVICE_COMPLETION), ==, 50 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_DEVICE_TO_GUEST), ==, 150 * US);
    g_assert_cmpint(phase(r, BLKIN_PHASE_IN_QEMU), ==, 330 * US);
    /* Not the filter-level phases: the device ones replace them. */
    g_assert_cmpint(phase(r, BLKIN_PHASE_GUEST_TO_QEMU), ==, -1);
    g_assert_cmpint(phase(r, BLKIN_PHASE_QEMU_TO_GUEST), ==, -1);
    g_assert_cmpuint(r->dev_start_ns, ==, t + 20 * US);
    g_assert_cmpuint(r->dev_end_ns, ==, t + 350 * US);
    check_sums(r);
    g_array_unref(c.out);
}

/* A burst of 100,000 requests drains: the join gives its room back. */
static void test_room_given_back(void)
{
    Collected c = {g_array_new(FALSE, FALSE, sizeof(HostdJoinedRequest))};
    g_autoptr(HostdJoin) j = hostd_join_new(collect, &c);

    for (int i = 0; i < 100000; i++) {
        HostdGuestReq g = guest(BLKIN_OP_READ, (uint64_t)i * 4096, 4096, 0,
                                SEC + i * US, SEC + i * US + 100 * US);
        hostd_join_add_guest(j, &g);
    }
    hostd_join_flush(j, 0, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_room(j), >=, 100000);
    hostd_join_flush(j, G_MAXINT64, 1 * MS, NOBOUND, true);
    g_assert_cmpuint(hostd_join_pending(j), ==, 0);
    g_assert_cmpuint(c.out->len, ==, 100000);
    g_assert_cmpuint(hostd_join_room(j), <, 4096);
    g_array_unref(c.out);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/join/exact", test_exact);
    g_test_add_func("/join/identical-inflight", test_identical_inflight);
    g_test_add_func("/join/merged", test_merged);
    g_test_add_func("/join/order-independent", test_order_independent);
    g_test_add_func("/join/unmatched", test_unmatched);
    g_test_add_func("/join/hostile-windows", test_hostile_windows);
    g_test_add_func("/join/causal-correction", test_causal_correction);
    g_test_add_func("/join/room-given-back", test_room_given_back);
    g_test_add_func("/join/device-phases", test_device_phases);
    g_test_add_func("/join/own-bound", test_own_bound);
    return g_test_run();
}
