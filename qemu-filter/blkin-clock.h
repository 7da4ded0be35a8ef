/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filter's clock: CLOCK_MONOTONIC nanoseconds, the clock LTTng-UST
 * stamps events with and QEMU's own block accounting reads, so that the
 * filter's fields, the events' stamps and the device's times compare.
 *
 * Why not clock_gettime() each time: a recorded request needs two or three
 * clock reads, and in the vDSO each is an ordered TSC read (a fence), a
 * seqlock and a scaling, ~21-40 ns on these machines against ~9-16 ns for a
 * plain RDTSC (docs/performance.md). Where the kernel's own clocksource is
 * the TSC (invariant, synchronised across CPUs: the kernel checked both
 * before choosing it), CLOCK_MONOTONIC is a linear function of the TSC that
 * NTP slews slowly; so is this clock:
 *   ns = base_ns + (tsc - base_tsc) * mult / 2^32
 * re-anchored on a real clock_gettime() at least every millisecond, with
 * mult measured against CLOCK_MONOTONIC over windows of 100 ms. It never
 * runs backwards: an anchor that finds it ahead of CLOCK_MONOTONIC keeps
 * its value and slows the next millisecond down instead of stepping back.
 * Anywhere else (another clocksource, another architecture, BLKIN_CLOCK=
 * monotonic in the environment, or a clock that strays by more than
 * BLKIN_CLOCK_MAX_ERR_NS repeatedly) it is clock_gettime() itself.
 *
 * Plain C (no QEMU headers): the unit test and the benches link it alone.
 */
#ifndef BLKIN_CLOCK_H
#define BLKIN_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#ifdef __x86_64__
#include <x86intrin.h>
#endif

/* Read by every caller of blkin_now_ns(), written under the writer's lock
 * by the one that re-anchors (a seqlock: seq is odd while it writes, and
 * stays odd while the TSC path is off or not yet calibrated). */
typedef struct BlkinClockAnchor {
    uint32_t seq;
    uint64_t base_tsc; /* the anchor's TSC value ... */
    uint64_t base_ns;  /* ... and this clock's ns at it */
    uint64_t mult;     /* ns per tick, 32.32 fixed point */
    uint64_t span;     /* ticks after base_tsc the anchor serves */
} BlkinClockAnchor;

extern BlkinClockAnchor blkin_clock_anchor;

/* The slow path: clock_gettime(), and a new anchor when this thread may
 * write it. */
uint64_t blkin_clock_slow(void);

/* "tsc" or "monotonic: <why>", for logs, tests and benches. */
const char *blkin_clock_source(void);

/* Anchors that found the clock off by more than this drop its calibration;
 * BLKIN_CLOCK_MAX_MISSES of them in a row turn the TSC path off. */
#define BLKIN_CLOCK_MAX_ERR_NS 50000
#define BLKIN_CLOCK_MAX_MISSES 8

#ifdef __x86_64__
/* The anchor's line as one consistent reading, and the ticks since its
 * base (d: wrapped when this CPU's TSC reads a little behind it). */
typedef struct BlkinClockLine {
    uint64_t base_ns, mult, span, d;
} BlkinClockLine;

/* 1: read; 0: seq odd (being written, withdrawn, or never set); -1: it
 * changed while read. */
static inline int blkin_clock_read_line(BlkinClockLine *l)
{
    BlkinClockAnchor *a = &blkin_clock_anchor;
    uint32_t seq = __atomic_load_n(&a->seq, __ATOMIC_ACQUIRE);
    uint64_t base_tsc;

    if (__builtin_expect(seq & 1, 0))
        return 0;
    base_tsc = __atomic_load_n(&a->base_tsc, __ATOMIC_RELAXED);
    l->base_ns = __atomic_load_n(&a->base_ns, __ATOMIC_RELAXED);
    l->mult = __atomic_load_n(&a->mult, __ATOMIC_RELAXED);
    l->span = __atomic_load_n(&a->span, __ATOMIC_RELAXED);
    /* Unordered on purpose: the fence is what clock_gettime() pays for. A
     * read a few cycles early or late is a few cycles of error. */
    l->d = __rdtsc() - base_tsc;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&a->seq, __ATOMIC_RELAXED) == seq ? 1 : -1;
}
#endif

static inline uint64_t blkin_now_ns(void)
{
#ifdef __x86_64__
    BlkinClockLine l;

    /* Past the anchor's span, or a TSC read from before its base (d
     * wrapped): the slow path. */
    if (__builtin_expect(blkin_clock_read_line(&l) <= 0 || l.d >= l.span, 0))
        return blkin_clock_slow();
    /* d < span (~1 ms of ticks) keeps d * mult far below 2^64. */
    return l.base_ns + ((l.d * l.mult) >> 32);
#else
    return blkin_clock_slow();
#endif
}

#endif /* BLKIN_CLOCK_H */
