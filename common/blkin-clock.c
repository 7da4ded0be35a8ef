/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "blkin-clock.h"

#include <errno.h>
#include <string.h>

void blkin_clock_init(struct blkin_clock_estimator *e)
{
    memset(e, 0, sizeof(*e));
}

static const struct blkin_clock_point *
best_of(const struct blkin_clock_point *p, unsigned n)
{
    const struct blkin_clock_point *best = NULL;

    for (unsigned i = 0; i < n; i++)
        if (!best || p[i].delay_ns < best->delay_ns)
            best = &p[i];
    return best;
}

int blkin_clock_add(struct blkin_clock_estimator *e,
                    const struct blkin_clock_sample *s)
{
    struct blkin_clock_point pt;
    int64_t h1 = (int64_t)s->host_send_ns, h2 = (int64_t)s->host_recv_ns;
    int64_t g1 = (int64_t)s->guest_recv_ns, g2 = (int64_t)s->guest_send_ns;

    /* Values above INT64_MAX would turn negative: reject with the rest. */
    if (h1 < 0 || h2 < 0 || g1 < 0 || g2 < 0 || h2 < h1 || g2 < g1 ||
        g2 - g1 > h2 - h1) {
        e->rejected++;
        return -EINVAL;
    }
    pt.rtt_ns = h2 - h1;
    pt.delay_ns = pt.rtt_ns - (g2 - g1);
    /* Halves taken separately: the sum of two large values may overflow. */
    {
        int64_t a = g1 - h1, b = g2 - h2;

        pt.offset_ns = a / 2 + b / 2 + (a % 2 + b % 2) / 2;
    }
    pt.host_mid_ns = h1 + pt.rtt_ns / 2;

    e->win[e->win_next] = pt;
    e->win_next = (e->win_next + 1) % BLKIN_CLOCK_WINDOW;
    if (e->win_n < BLKIN_CLOCK_WINDOW)
        e->win_n++;
    e->samples++;

    /* Every full window contributes its best sample to the drift history. */
    if (++e->since_point >= BLKIN_CLOCK_WINDOW / 2) {
        e->since_point = 0;
        e->hist[e->hist_next] = *best_of(e->win, e->win_n);
        e->hist_next = (e->hist_next + 1) % BLKIN_CLOCK_HISTORY;
        if (e->hist_n < BLKIN_CLOCK_HISTORY)
            e->hist_n++;
    }
    return 0;
}

/* Least-squares slope of offset over host time, relative to the first. */
static bool drift(const struct blkin_clock_estimator *e, double *ppb)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0, den;
    int64_t x0, y0, min_delay = INT64_MAX, cutoff;

    if (e->hist_n < 2)
        return false;
    /* Points far noisier than the best would dominate the slope. */
    for (unsigned i = 0; i < e->hist_n; i++)
        if (e->hist[i].delay_ns < min_delay)
            min_delay = e->hist[i].delay_ns;
    cutoff = min_delay * 2 + 100000;
    x0 = e->hist[0].host_mid_ns;
    y0 = e->hist[0].offset_ns;
    for (unsigned i = 0; i < e->hist_n; i++) {
        double x = (double)(e->hist[i].host_mid_ns - x0);
        int64_t dy;
        /* Offsets are the guest's word: their difference may not fit in
         * 64 bits (then only the nonsense points lose precision). */
        double y = __builtin_sub_overflow(e->hist[i].offset_ns, y0, &dy)
                       ? (double)e->hist[i].offset_ns - (double)y0
                       : (double)dy;

        if (e->hist[i].delay_ns > cutoff)
            continue;
        n++;

        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    den = n * sxx - sx * sx;
    if (n < 2 || den <= 0)
        return false;
    *ppb = (n * sxy - sx * sy) / den * 1e9;
    return true;
}

void blkin_clock_get(const struct blkin_clock_estimator *e,
                     struct blkin_clock_estimate *out)
{
    const struct blkin_clock_point *best = best_of(e->win, e->win_n);

    memset(out, 0, sizeof(*out));
    out->samples = e->samples;
    out->rejected = e->rejected;
    if (!best)
        return;
    out->valid = true;
    out->offset_ns = best->offset_ns;
    /* Round up: an odd delay must not make the bound optimistic. */
    out->bound_ns = (best->delay_ns + 1) / 2;
    out->best_rtt_ns = best->rtt_ns;
    for (unsigned i = 0; i < e->win_n; i++)
        if (e->win[i].rtt_ns < out->best_rtt_ns)
            out->best_rtt_ns = e->win[i].rtt_ns;
    out->at_host_ns = best->host_mid_ns;
    out->drift_valid = drift(e, &out->drift_ppb);
}
