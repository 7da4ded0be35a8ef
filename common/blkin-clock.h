/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host-side guest clock offset estimator.
 *
 * Each probe gives four timestamps: host send (h1), guest receive (g1),
 * guest send (g2), host receive (h2). With symmetric-unknown path delays
 * the guest-minus-host offset lies in
 *     [ (g1 - h1) - delay/2 ... ] centred on ((g1 - h1) + (g2 - h2)) / 2
 * with delay = (h2 - h1) - (g2 - g1), i.e. it is off by at most delay/2.
 * The estimate is the sample with the smallest delay among the recent
 * ones, so the bound never exceeds half the best observed round trip.
 * Drift is the least-squares slope through the best sample of each
 * window of probes.
 */
#ifndef BLKIN_CLOCK_H
#define BLKIN_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define BLKIN_CLOCK_WINDOW  16 /* recent samples the estimate is drawn from */
#define BLKIN_CLOCK_HISTORY 64 /* per-window best points used for drift */

struct blkin_clock_sample {
    uint64_t host_send_ns;
    uint64_t guest_recv_ns;
    uint64_t guest_send_ns;
    uint64_t host_recv_ns;
};

struct blkin_clock_point {
    int64_t host_mid_ns; /* host time the point refers to */
    int64_t offset_ns;   /* guest - host */
    int64_t delay_ns;    /* round trip minus guest processing */
    int64_t rtt_ns;      /* host-observed round trip */
};

struct blkin_clock_estimate {
    bool valid;
    int64_t offset_ns;   /* guest CLOCK_MONOTONIC - host CLOCK_MONOTONIC */
    int64_t bound_ns;    /* |true offset - offset_ns| <= bound_ns */
    int64_t best_rtt_ns; /* smallest round trip among the recent samples */
    int64_t at_host_ns;  /* host time of the sample the estimate uses */
    bool drift_valid;
    double drift_ppb; /* guest clock rate minus host rate, parts per 1e9 */
    uint64_t samples;
    uint64_t rejected;
};

struct blkin_clock_estimator {
    struct blkin_clock_point win[BLKIN_CLOCK_WINDOW];
    unsigned win_n, win_next;
    unsigned since_point; /* samples since the last history point */
    struct blkin_clock_point hist[BLKIN_CLOCK_HISTORY];
    unsigned hist_n, hist_next;
    uint64_t samples, rejected;
};

void blkin_clock_init(struct blkin_clock_estimator *e);

/*
 * Adds one probe. Returns 0, or -EINVAL (counted, ignored) for timestamps
 * that cannot be a real exchange: host receive before host send, guest send
 * before guest receive, or guest processing longer than the round trip.
 */
int blkin_clock_add(struct blkin_clock_estimator *e,
                    const struct blkin_clock_sample *s);

void blkin_clock_get(const struct blkin_clock_estimator *e,
                     struct blkin_clock_estimate *out);

/* Host time for a guest timestamp, using an estimate. */
static inline int64_t blkin_clock_to_host(const struct blkin_clock_estimate *e,
                                          uint64_t guest_ns)
{
    return (int64_t)guest_ns - e->offset_ns;
}

#endif
