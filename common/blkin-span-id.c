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

#define GOLDEN 0x9e3779b97f4a7c15ULL

static uint64_t id_key;
static _Atomic uint64_t id_counter;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__attribute__((constructor)) static void blkin_span_id_init(void)
{
    if (getrandom(&id_key, sizeof(id_key), GRND_NONBLOCK) ==
        (ssize_t)sizeof(id_key))
        return;
    /* Early boot without entropy: still distinct per process and time. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    id_key = mix64(((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                   ((uint64_t)ts.tv_sec << 20));
}

void blkin_span_ids(uint64_t *ids, unsigned n)
{
    uint64_t first =
        atomic_fetch_add_explicit(&id_counter, n, memory_order_relaxed);

    for (unsigned i = 0; i < n; i++) {
        uint64_t id = mix64(id_key + (first + i) * GOLDEN);
        /* Exactly one counter value maps to 0, which means "no span". */
        ids[i] = id ? id : mix64(id_key + (first + i) * GOLDEN + 1) | 1;
    }
}
