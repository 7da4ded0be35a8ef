/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bounded FIFO of finished requests waiting for the host. Every request
 * gets a sequence number whether it is kept or dropped, so the host can see
 * exactly where records are missing; when the queue is full the newest are
 * dropped (the guest's I/O is never held up waiting for room).
 */
#ifndef AGENT_RECQ_H
#define AGENT_RECQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkin-proto.h"

struct recq_item {
    struct blkin_request r;
    uint64_t seq;
    uint64_t enq_ns;
};

struct recq {
    struct recq_item *item;
    uint32_t cap, head, count;
    uint64_t next_seq;
    uint64_t dropped;
};

int recq_init(struct recq *q, uint32_t cap);
void recq_free(struct recq *q);
size_t recq_memory(uint32_t cap);

/* Assigns the next sequence number; false (and counted) when full. */
bool recq_push(struct recq *q, const struct blkin_request *r, uint64_t now);

/*
 * Copies up to max records whose sequence numbers are consecutive from the
 * head into out; returns how many and the first one's number.
 */
size_t recq_peek_run(const struct recq *q, struct blkin_request *out,
                     size_t max, uint64_t *first_seq);
void recq_pop(struct recq *q, size_t n);

/* Enqueue time of the oldest record (0 when empty). */
uint64_t recq_oldest_ns(const struct recq *q);

#endif
