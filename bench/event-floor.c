/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * event-floor: what one recorded request costs at the least on this
 * machine, measured outside QEMU in a tight loop: one `request` event of the
 * filter's own provider (qemu-filter/blkin-tp.h), and the clock read that
 * gives a request its start. With a session recording blkin_qemu events,
 * the two together are the floor of the filter's recording cost: no filter
 * that emits one such event per request can cost less (docs/performance.md).
 * bench/filter-bench.py runs it inside its own session.
 *
 *   blkin-event-floor [N]    prints JSON: ns per clock_gettime() read, per
 *                            read of the filter's clock (blkin-clock.h),
 *                            per event, per filter clock read + event;
 *                            medians of 7 rounds of N each, after 4 N
 *                            events of warm-up
 *
 * An event the channel discards (its buffers full) costs less than one it
 * records, so discards only lower the floor: it stays a lower bound.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "blkin-clock.h"
#include "blkin-tp.h"

#define ROUNDS 7

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    double clock[ROUNDS], fclock[ROUNDS], event[ROUNDS], both[ROUNDS];
    struct blkin_span s = {.trace_id = 1, .span_id = 2, .bytes = 4096};
    volatile uint64_t sink = 0;

    if (n <= 0) {
        fprintf(stderr, "usage: blkin-event-floor [N > 0]\n");
        return 2;
    }
    /* Warm-up: the first pass over the ring buffer's pages faults them in
     * (expensive in a VM), which a long-running QEMU has long done. */
    for (long i = 0; i < 4 * n; i++)
        lttng_ust_tracepoint(blkin_qemu, request, &s);
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t t0 = now_ns();

        for (long i = 0; i < n; i++)
            sink += now_ns();
        uint64_t tf = now_ns();

        for (long i = 0; i < n; i++)
            sink += blkin_now_ns();
        uint64_t t1 = now_ns();

        for (long i = 0; i < n; i++) {
            s.offset = (uint64_t)i * 4096;
            lttng_ust_tracepoint(blkin_qemu, request, &s);
        }
        uint64_t t2 = now_ns();

        for (long i = 0; i < n; i++) {
            s.start_ns = blkin_now_ns();
            lttng_ust_tracepoint(blkin_qemu, request, &s);
        }
        uint64_t t3 = now_ns();

        clock[r] = (double)(tf - t0) / n;
        fclock[r] = (double)(t1 - tf) / n;
        event[r] = (double)(t2 - t1) / n;
        both[r] = (double)(t3 - t2) / n;
    }
    qsort(clock, ROUNDS, sizeof(double), cmp_double);
    qsort(fclock, ROUNDS, sizeof(double), cmp_double);
    qsort(event, ROUNDS, sizeof(double), cmp_double);
    qsort(both, ROUNDS, sizeof(double), cmp_double);
    printf("{\"recording\": %s, \"clock_ns\": %.1f, \"filter_clock_ns\": %.1f, "
           "\"filter_clock\": \"%s\", \"event_ns\": %.1f, "
           "\"clock_and_event_ns\": %.1f}\n",
           lttng_ust_tracepoint_enabled(blkin_qemu, request) ? "true" : "false",
           clock[ROUNDS / 2], fclock[ROUNDS / 2], blkin_clock_source(),
           event[ROUNDS / 2], both[ROUNDS / 2]);
    return 0;
}
