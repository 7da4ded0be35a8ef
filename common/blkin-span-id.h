/*
 * blkin-span-id.h: trace and span ids that are unique across processes and
 * hosts without any coordination. Shared by the QEMU filter and libblkin.
 */
#ifndef BLKIN_SPAN_ID_H
#define BLKIN_SPAN_ID_H

#include <stdint.h>

/*
 * Fills ids[0..n-1] with fresh non-zero 64-bit ids, all distinct from every
 * other id this process has handed out (and, with overwhelming probability,
 * from any other process's). Thread-safe and lock-free.
 */
void blkin_span_ids(uint64_t *ids, unsigned n);

#endif
