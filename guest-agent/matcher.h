/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Joins insert/issue/complete events of one request by device and sector
 * (never by order: flushes and merges add events that pair with nothing).
 * Fixed-size table: when full, the oldest entry is evicted and counted.
 *
 * Events must be fed in time order. A completion whose issue has not been
 * seen yet (the issue sits in another CPU's ring that was drained first)
 * is parked briefly and retried after the next batch. An empty flush, and
 * the zero-byte write of an fdatasync, complete without ever being issued
 * (the flush machinery issues its own request instead); those are not
 * counted as unmatched.
 */
#ifndef AGENT_MATCHER_H
#define AGENT_MATCHER_H

#include <stdint.h>

#include "blk-events.h"
#include "blkin-proto.h"

typedef void (*matcher_emit_fn)(void *user, const struct blkin_request *r);

struct match_entry;

struct matcher {
    struct match_entry *e;
    uint32_t *bucket;
    uint32_t nbuckets;
    uint32_t cap, used;
    uint32_t free_head;
    uint64_t clock; /* insertion counter: smaller is older */
    struct blk_event *orphans;
    uint32_t norphans, orphans_cap;
    uint64_t unmatched; /* completions that never found an issue */
    uint64_t evicted;   /* issues that never completed */
};

int matcher_init(struct matcher *m, uint32_t capacity);
void matcher_free(struct matcher *m);

/* Bytes of memory the matcher holds, for the documented bound. */
size_t matcher_memory(uint32_t capacity);

void matcher_event(struct matcher *m, const struct blk_event *ev,
                   matcher_emit_fn emit, void *user);

/* After each batch: parked completions retry, or become unmatched. */
void matcher_retry_orphans(struct matcher *m, matcher_emit_fn emit, void *user);

/* Entries older than max_age_ns at now_ns are dropped as evicted. */
void matcher_sweep(struct matcher *m, uint64_t now_ns, uint64_t max_age_ns);

#endif
