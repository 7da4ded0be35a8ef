/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tail capture: random traffic (with ties and idle gaps beyond an hour)
 * against a brute-force top-K over the full event log for every window;
 * records come back whole; memory per disk printed for a busy disk and for
 * the worst case.
 */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "stats/tail-capture.h"

#define SEC    HOSTD_NS_PER_SEC
#define MINUTE (60 * SEC)

typedef struct Ev {
    uint64_t t;
    HostdJoinedRequest r;
} Ev;

static HostdJoinedRequest make_req(uint64_t id, uint64_t latency)
{
    HostdJoinedRequest r = {0};
    r.disk = (HostdDiskKey){.vpid = 1234, .disk = 1};
    r.op = id % BLKIN_OP__N;
    r.flags = HOSTD_JR_HAS_GUEST | HOSTD_JR_HAS_SPAN;
    r.offset = id * 4096;
    r.bytes = 4096;
    r.span_id = id; /* identity for the checks */
    r.trace_id = ~id;
    r.guest_issue_ns = 1000 + id;
    r.guest_complete_ns = r.guest_issue_ns + latency;
    if (id % 7 == 0) {
        /* No guest side: the span's duration is the latency. */
        r.span_start_ns = 500 + id;
        r.span_end_ns = r.span_start_ns + latency;
    } else {
        r.phase_valid = 1u << BLKIN_PHASE_TOTAL;
        r.phase_ns[BLKIN_PHASE_TOTAL] = latency;
    }
    return r;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

static void check(HostdTailCapture *tc, const GArray *log, uint64_t now,
                  uint64_t align, uint64_t created, unsigned k)
{
    uint64_t S = (now + align) / SEC * SEC - align;
    uint64_t B = (now + align) / (5 * MINUTE) * (5 * MINUTE) - align;
    /* In internal (aligned) time, clamped at 0 like the capture does. */
    const uint64_t starts[] = {
        S + align > SEC ? S - SEC : 0,
        S + align > MINUTE ? S - MINUTE : 0,
        B + align > 60 * MINUTE ? B - 60 * MINUTE : 0,
    };
    g_autofree HostdJoinedRequest *got = g_new(HostdJoinedRequest, k + 1);
    g_autofree uint64_t *want = g_new(uint64_t, log->len + 1);

    for (int w = 0; w < HOSTD_STATS_WINDOW__N; w++) {
        uint64_t start, end;
        size_t n = hostd_tail_capture_get(tc, now, w, got, k + 1, &start, &end);
        g_assert_cmpuint(start, ==, MAX(starts[w], created));
        g_assert_cmpuint(end, ==, S);

        size_t nw = 0;
        for (guint i = 0; i < log->len; i++) {
            const Ev *e = &g_array_index(log, Ev, i);
            if (e->t >= start && e->t < end)
                want[nw++] = hostd_joined_request_latency(&e->r);
        }
        qsort(want, nw, sizeof(*want), cmp_desc);
        g_assert_cmpuint(n, ==, MIN(nw, k));
        for (size_t i = 0; i < n; i++) {
            /* Slowest first, the right latencies (ties may swap records)... */
            g_assert_cmpuint(hostd_joined_request_latency(&got[i]), ==,
                             want[i]);
            /* ... and each one a real request of the window, whole. */
            uint64_t id = got[i].span_id;
            const Ev *e = NULL;
            for (guint j = 0; j < log->len && !e; j++)
                if (g_array_index(log, Ev, j).r.span_id == id)
                    e = &g_array_index(log, Ev, j);
            g_assert_nonnull(e);
            g_assert_true(e->t >= start && e->t < end);
            g_assert_cmpmem(&got[i], sizeof(got[i]), &e->r, sizeof(e->r));
        }
    }
}

static void test_vs_reference(void)
{
    static const unsigned ks[] = {1, 3, 8};

    for (size_t ki = 0; ki < G_N_ELEMENTS(ks); ki++) {
        unsigned k = ks[ki];
        g_autoptr(GRand) g = g_rand_new_with_seed(31 + k);
        g_autoptr(GArray) log = g_array_new(FALSE, FALSE, sizeof(Ev));
        const uint64_t align = 41 * SEC + 5555;
        const uint64_t created = 777 * SEC + 3;
        g_autoptr(HostdTailCapture) tc =
            hostd_tail_capture_new(k, created, align);
        uint64_t t = created, id = 1;
        unsigned checks = 0;

        for (int round = 0; round < 300; round++) {
            int kind = g_rand_int_range(g, 0, 25);
            if (kind == 0)
                t += (uint64_t)g_rand_int_range(g, 3600, 4200) * SEC;
            else if (kind < 5)
                t += (uint64_t)g_rand_int_range(g, 20, 900) * SEC;
            int n = g_rand_int_range(g, 1, 60);
            /* Some rounds trend down so that pruning has work to do. */
            bool falling = g_rand_int_range(g, 0, 4) == 0;
            for (int i = 0; i < n; i++) {
                t += (uint64_t)g_rand_int_range(g, 1, 500) * 1000000;
                uint64_t l;
                if (falling)
                    l = 10000000 - (uint64_t)i * 1000;
                else if (g_rand_int_range(g, 0, 3) == 0)
                    l = 1000 * g_rand_int_range(g, 1, 5); /* ties */
                else
                    l = (uint64_t)exp(g_rand_double_range(g, 7, 20));
                Ev e = {.t = t, .r = make_req(id++, l)};
                hostd_tail_capture_add(tc, t, &e.r);
                g_array_append_val(log, e);
            }
            if (g_rand_int_range(g, 0, 2) == 0) {
                t += (uint64_t)g_rand_int_range(g, 0, 3) * SEC;
                check(tc, log, t, align, created, k);
                checks++;
            }
        }
        t += 3 * 3600 * SEC;
        check(tc, log, t, align, created, k);
        g_test_message("K=%u: %u requests, %u checks, memory idle %zu B", k,
                       log->len, checks, hostd_tail_capture_memory(tc));
        g_assert_cmpuint(hostd_tail_capture_memory(tc), <,
                         1024 + k * sizeof(HostdJoinedRequest));
    }
}

static size_t run_load(unsigned k, bool falling, unsigned rate,
                       unsigned seconds)
{
    g_autoptr(GRand) g = g_rand_new_with_seed(5);
    g_autoptr(HostdTailCapture) tc = hostd_tail_capture_new(k, 0, 0);
    size_t peak = 0;
    uint64_t id = 0;

    for (uint64_t s = 0; s < seconds; s++) {
        for (unsigned i = 0; i < rate; i++) {
            /* Falling: each request faster than all before it, so none
             * is ever dominated and every slot stays full. */
            uint64_t l =
                falling
                    ? (UINT64_C(1) << 50) - id
                    : (uint64_t)exp(log(200e3) +
                                    0.8 * (g_rand_double(g) + g_rand_double(g) +
                                           g_rand_double(g) - 1.5));
            HostdJoinedRequest r = make_req(id++, l);
            hostd_tail_capture_add(tc, s * SEC + i * (SEC / rate), &r);
        }
        if (s % 60 == 30 || s + 1 == seconds)
            peak = MAX(peak, hostd_tail_capture_memory(tc));
    }
    return peak;
}

static void test_memory(void)
{
    /* 19 phases of 8 bytes since RBD disks (librbd, net_out, osd_queue,
     * osd_exec, net_back); 14 since the device phases, and the device's own
     * entry and completion */
    g_assert_cmpuint(sizeof(HostdJoinedRequest), ==, 280);
    size_t busy = run_load(8, false, 1000, 3660);
    size_t worst = run_load(8, true, 50, 3660);
    size_t bound = (1 + 60 + 5 + 12) * 8 * sizeof(HostdJoinedRequest) + 1024;
    g_test_message("tail capture memory per disk, K=8: busy 1000 req/s "
                   "%zu B, worst case (latencies falling) %zu B, bound %zu B",
                   busy, worst, bound);
    g_assert_cmpuint(worst, <=, bound);
    g_assert_cmpuint(busy, <, bound / 2);

    g_assert_null(hostd_tail_capture_new(0, 0, 0));
    g_assert_null(hostd_tail_capture_new(HOSTD_TAIL_CAPTURE_MAX_K + 1, 0, 0));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tail-capture/vs-reference", test_vs_reference);
    g_test_add_func("/tail-capture/memory", test_memory);
    return g_test_run();
}
