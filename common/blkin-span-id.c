/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-span-id.c: ids as a keyed bijection of a counter.
 *
 * rand() gives collisions within a process and equal sequences across
 * processes started alike. Here each process draws a 64-bit key from the
 * kernel's CSPRNG once; id number n is mix(key + n * golden), where both the
 * affine step (odd multiplier) and mix (splitmix64's finalizer) are
 * bijections of the 64-bit integers. So ids never repeat inside a process
 * for 2^64 draws, and two processes' ids are independent random sequences:
 * no coordination between hosts is needed.
 */
#include "blkin-span-id.h"

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t blkin_span_id_key;
static _Atomic uint64_t id_counter;

__attribute__((constructor)) static void blkin_span_id_init(void)
{
    if (getrandom(&blkin_span_id_key, sizeof(blkin_span_id_key),
                  GRND_NONBLOCK) == (ssize_t)sizeof(blkin_span_id_key))
        return;
    /* Early boot without entropy: still distinct per process and time. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    blkin_span_id_key =
        blkin_mix64(((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)ts.tv_sec << 20));
}

uint64_t blkin_span_id_reserve(uint64_t n)
{
    return atomic_fetch_add_explicit(&id_counter, n, memory_order_relaxed);
}

void blkin_span_ids(uint64_t *ids, unsigned n)
{
    uint64_t first = blkin_span_id_reserve(n);

    for (unsigned i = 0; i < n; i++)
        ids[i] = blkin_span_id_at(first + i);
}
