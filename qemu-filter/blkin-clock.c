/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filter's clock (blkin-clock.h): the slow path, calibration and
 * anchoring, and the decision whether the TSC path may run at all.
 */
#include "blkin-clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An anchor serves this long; past it the next read re-anchors. */
#define BLKIN_CLOCK_ANCHOR_NS 1000000ULL
/* mult is measured over windows at least this long (a pair's own error,
 * ~20-30 ns, is then 0.3 ppm of it). */
#define BLKIN_CLOCK_WINDOW_NS 100000000ULL
/* A pair (TSC, CLOCK_MONOTONIC) pins the clock to within half the ticks
 * between its two TSC reads (~100 when nothing interrupts them): one wider
 * than twice the narrowest seen (plus this slack) is not used. */
#define BLKIN_CLOCK_PAIR_SLACK_TICKS 64
#define BLKIN_CLOCK_PAIR_TRIES       4
/* How long a reader waits for another thread's anchor (~10 us). */
#define BLKIN_CLOCK_SPINS 256

BlkinClockAnchor blkin_clock_anchor = {.seq = 1}; /* odd: not calibrated */

/* Once an anchor is withdrawn (the clock strayed, or the TSC path went
 * off): the most its line handed out. Reads stay at or above it until true
 * time passes it, so the clock never runs backwards. */
static uint64_t blkin_clock_floor;

/* Only the writer, under its lock, touches these. */
static struct {
    uint32_t lock;
    bool off;
    bool published;
    uint32_t misses;
    uint64_t cal_tsc, cal_ns; /* start of the calibration window */
    uint64_t mult_cal;        /* ns per tick measured over the last one */
    uint64_t pair_min;        /* the narrowest pair, relaxed on misses */
    char why[96];             /* why the TSC path is off */
} blkin_clock_w = {
    .off = true, .pair_min = UINT64_MAX, .why = "monotonic: not decided"};

static uint64_t blkin_clock_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *blkin_clock_source(void)
{
    return __atomic_load_n(&blkin_clock_w.off, __ATOMIC_RELAXED)
               ? blkin_clock_w.why
               : "tsc";
}

#ifdef __x86_64__
#include <cpuid.h>
#include <pthread.h>

static uint64_t blkin_clock_floored(uint64_t ns)
{
    uint64_t floor = __atomic_load_n(&blkin_clock_floor, __ATOMIC_RELAXED);

    return ns > floor ? ns : floor;
}

static void blkin_clock_off(const char *why)
{
    snprintf(blkin_clock_w.why, sizeof(blkin_clock_w.why), "monotonic: %s",
             why);
    /* Odd for good: every reader takes the slow path, which is
     * clock_gettime() and nothing else. */
    __atomic_store_n(&blkin_clock_anchor.seq, 1, __ATOMIC_RELEASE);
    blkin_clock_w.published = false;
    __atomic_store_n(&blkin_clock_w.off, true, __ATOMIC_RELAXED);
}

/* A child forked while another thread held the writer's lock, or was
 * between a seqlock's odd and even: neither thread is in the child. */
static void blkin_clock_atfork_child(void)
{
    __atomic_store_n(&blkin_clock_w.lock, 0, __ATOMIC_RELAXED);
    if (blkin_clock_w.published && (blkin_clock_anchor.seq & 1))
        blkin_clock_w.published = false;
}

/* The kernel's choice is the check that matters: it picks the TSC only
 * when it is invariant and in step across CPUs, and leaves it when its
 * watchdog finds it drifting. */
static __attribute__((constructor)) void blkin_clock_init(void)
{
    const char *env = getenv("BLKIN_CLOCK");
    unsigned a, b, c, d;
    char cs[32] = "";
    FILE *f;

    if (env && strcmp(env, "monotonic") == 0) {
        blkin_clock_off("BLKIN_CLOCK=monotonic");
        return;
    }
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8))) {
        blkin_clock_off("the CPU's TSC is not invariant");
        return;
    }
    f = fopen("/sys/devices/system/clocksource/clocksource0/"
              "current_clocksource",
              "re");
    if (f) {
        if (!fgets(cs, sizeof(cs), f))
            cs[0] = '\0';
        fclose(f);
    }
    cs[strcspn(cs, "\n")] = '\0';
    if (strcmp(cs, "tsc") != 0) {
        char why[64];

        snprintf(why, sizeof(why), "the kernel's clocksource is '%s'", cs);
        blkin_clock_off(why);
        return;
    }
    pthread_atfork(NULL, NULL, blkin_clock_atfork_child);
    blkin_clock_w.off = false;
}

#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

static uint64_t blkin_clock_at_least(uint64_t ns);

static inline uint64_t blkin_clock_tsc_ordered(void)
{
    unsigned aux;

    return __rdtscp(&aux);
}

/* Under the writer's lock: a new anchor at (tsc, ns), the true clock;
 * returns this clock's value there. */
static uint64_t blkin_clock_anchor_at(uint64_t tsc, uint64_t ns)
{
    BlkinClockAnchor *an = &blkin_clock_anchor;
    uint64_t pred = 0, base_ns, lead, mult, d;
    int64_t err;

    if (!blkin_clock_w.cal_tsc || tsc <= blkin_clock_w.cal_tsc ||
        ns <= blkin_clock_w.cal_ns) {
        blkin_clock_w.cal_tsc = tsc;
        blkin_clock_w.cal_ns = ns;
    } else if (ns - blkin_clock_w.cal_ns >= BLKIN_CLOCK_WINDOW_NS) {
        blkin_clock_w.mult_cal =
            (uint64_t)(((unsigned __int128)(ns - blkin_clock_w.cal_ns) << 32) /
                       (tsc - blkin_clock_w.cal_tsc));
        blkin_clock_w.cal_tsc = tsc;
        blkin_clock_w.cal_ns = ns;
    }
    if (!blkin_clock_w.mult_cal) /* a first window: clock_gettime() */
        return blkin_clock_floored(ns);
    /* This CPU's TSC a little behind the anchor's (the kernel keeps CPUs in
     * step within some cycles): the anchor's own time, no new anchor. */
    if (blkin_clock_w.published && tsc <= an->base_tsc)
        return ns > an->base_ns ? ns : an->base_ns;

    /* What readers were handed just before: the old anchor's line. Beyond
     * a few spans nobody used it lately, and true time is past anything
     * it gave (it served at most one span). */
    if (blkin_clock_w.published) {
        d = tsc - an->base_tsc;
        if (tsc > an->base_tsc && d < 4 * an->span)
            pred = an->base_ns +
                   (uint64_t)(((unsigned __int128)d * an->mult) >> 32);
    }
    err = pred ? (int64_t)(pred - ns) : 0;
    if (err > BLKIN_CLOCK_MAX_ERR_NS || err < -BLKIN_CLOCK_MAX_ERR_NS) {
        /* The TSC and CLOCK_MONOTONIC parted: measure afresh, and after
         * too many in a row stop trusting the TSC. */
        if (pred > ns)
            __atomic_store_n(&blkin_clock_floor, pred, __ATOMIC_RELAXED);
        if (++blkin_clock_w.misses >= BLKIN_CLOCK_MAX_MISSES) {
            blkin_clock_off("the TSC strayed from CLOCK_MONOTONIC");
            return blkin_clock_floored(ns);
        }
        __atomic_store_n(&an->seq, an->seq | 1, __ATOMIC_RELEASE);
        blkin_clock_w.published = false;
        blkin_clock_w.mult_cal = 0;
        blkin_clock_w.cal_tsc = tsc;
        blkin_clock_w.cal_ns = ns;
        return blkin_clock_floored(ns);
    }
    if (pred)
        blkin_clock_w.misses = 0;

    /* Ahead of true time: keep the value, lose the lead over the next
     * anchor's span instead of stepping back. */
    base_ns = pred > ns ? pred : ns;
    base_ns = blkin_clock_floored(base_ns);
    lead = base_ns - ns;
    mult = blkin_clock_w.mult_cal;
    d = (uint64_t)(((unsigned __int128)BLKIN_CLOCK_ANCHOR_NS << 32) / mult);
    if (lead) {
        uint64_t slow = (uint64_t)(((unsigned __int128)lead << 32) / d);

        mult = slow < mult / 2 ? mult - slow : mult / 2;
    }

    /* seqlock write: odd, the fields, even. */
    __atomic_store_n(&an->seq, an->seq | 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&an->base_tsc, tsc, __ATOMIC_RELAXED);
    __atomic_store_n(&an->base_ns, base_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&an->mult, mult, __ATOMIC_RELAXED);
    __atomic_store_n(&an->span, d, __ATOMIC_RELAXED);
    __atomic_store_n(&an->seq, (an->seq | 1) + 1, __ATOMIC_RELEASE);
    blkin_clock_w.published = true;
    return base_ns;
}

/* @ns, or more: not below what the current anchor's line handed out by
 * now (it serves one span at most), nor below the floor. */
static uint64_t blkin_clock_at_least(uint64_t ns)
{
    for (int i = 0; i < 4; i++) {
        BlkinClockLine l;
        int r = blkin_clock_read_line(&l);
        uint64_t line;

        if (r == 0)
            break;
        if (r < 0)
            continue;
        if ((int64_t)l.d < 0) /* this CPU's TSC a little behind the anchor's */
            l.d = 0;
        line = l.base_ns + ((MIN_U64(l.d, l.span) * l.mult) >> 32);
        return blkin_clock_floored(ns > line ? ns : line);
    }
    return blkin_clock_floored(ns);
}

/* Under the writer's lock: a read served by the anchor another thread
 * made while this one waited for the lock, or 0. */
static uint64_t blkin_clock_fresh(void)
{
    BlkinClockAnchor *an = &blkin_clock_anchor;
    uint64_t d;

    if (!blkin_clock_w.published)
        return 0;
    d = __rdtsc() - an->base_tsc;
    return d < an->span ? an->base_ns + ((d * an->mult) >> 32) : 0;
}

uint64_t blkin_clock_slow(void)
{
    uint64_t t0, t1, ns, ret;
    int spins;

    if (__atomic_load_n(&blkin_clock_w.off, __ATOMIC_RELAXED))
        return blkin_clock_floored(blkin_clock_mono_ns());
    /* Wait for a thread that is anchoring (~100 ns) rather than hand out
     * true time, which may be a few ns behind what it just gave; a writer
     * preempted mid-anchor is not waited for. */
    for (spins = 0;; spins++) {
        if (!__atomic_load_n(&blkin_clock_w.lock, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(&blkin_clock_w.lock, 1, __ATOMIC_ACQUIRE))
            break;
        if (spins >= BLKIN_CLOCK_SPINS)
            return blkin_clock_at_least(blkin_clock_mono_ns());
        _mm_pause();
    }
    ret = blkin_clock_fresh();
    if (ret)
        goto out;
    /* A pair stretched by an interrupt or preemption would skew the
     * anchor by half its width: take another, and after a few give the
     * true time without anchoring. Widths only grow slowly back: a CPU
     * gone slower must not leave every pair refused. */
    for (int i = 0; i < BLKIN_CLOCK_PAIR_TRIES; i++) {
        uint64_t w;

        t0 = blkin_clock_tsc_ordered();
        ns = blkin_clock_mono_ns();
        t1 = blkin_clock_tsc_ordered();
        w = t1 - t0;
        if (w < blkin_clock_w.pair_min)
            blkin_clock_w.pair_min = w;
        if (w <= 2 * blkin_clock_w.pair_min + BLKIN_CLOCK_PAIR_SLACK_TICKS)
            break;
        blkin_clock_w.pair_min += blkin_clock_w.pair_min / 64 + 1;
        t1 = t0 = 0;
    }
    if (__atomic_load_n(&blkin_clock_w.off, __ATOMIC_RELAXED) || !t1)
        ret = blkin_clock_at_least(ns);
    else
        ret = blkin_clock_anchor_at(t0 + (t1 - t0) / 2, ns);
out:
    __atomic_store_n(&blkin_clock_w.lock, 0, __ATOMIC_RELEASE);
    return ret;
}

#else /* !__x86_64__ */

uint64_t blkin_clock_slow(void)
{
    return blkin_clock_mono_ns();
}

static __attribute__((constructor)) void blkin_clock_init(void)
{
    snprintf(blkin_clock_w.why, sizeof(blkin_clock_w.why),
             "monotonic: no TSC path on this architecture");
}

#endif
