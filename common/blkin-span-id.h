/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-span-id.h: trace and span ids that are unique across processes and
 * hosts without any coordination. Shared by the QEMU filter and libblkin.
 *
 * Id number n of the process is blkin_span_id_at(n); numbers are handed out
 * by blkin_span_id_reserve(), so a node can take a block of them at once and
 * draw ids on its request path without an atomic operation.
 */
#ifndef BLKIN_SPAN_ID_H
#define BLKIN_SPAN_ID_H

#include <stdint.h>

#define BLKIN_SPAN_ID_GOLDEN 0x9e3779b97f4a7c15ULL

extern uint64_t blkin_span_id_key; /* drawn once per process */

static inline uint64_t blkin_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/*
 * Id number @n: a bijection of n, so distinct numbers give distinct ids.
 * Exactly one n maps to 0, which means "no span"; it gets a replacement
 * (a collision there has probability 2^-64 and does not break anything).
 */
static inline uint64_t blkin_span_id_at(uint64_t n)
{
    uint64_t id = blkin_mix64(blkin_span_id_key + n * BLKIN_SPAN_ID_GOLDEN);

    if (__builtin_expect(id == 0, 0))
        id = blkin_mix64(blkin_span_id_key + n * BLKIN_SPAN_ID_GOLDEN + 1) | 1;
    return id;
}

/* Reserves @n consecutive id numbers; returns the first. Thread-safe. */
uint64_t blkin_span_id_reserve(uint64_t n);

/*
 * Fills ids[0..n-1] with fresh non-zero 64-bit ids, all distinct from every
 * other id this process has handed out (and, with overwhelming probability,
 * from any other process's). Thread-safe and lock-free.
 */
void blkin_span_ids(uint64_t *ids, unsigned n);

#endif
