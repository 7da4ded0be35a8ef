/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "recq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t recq_memory(uint32_t cap)
{
    return (size_t)cap * sizeof(struct recq_item);
}

int recq_init(struct recq *q, uint32_t cap)
{
    memset(q, 0, sizeof(*q));
    q->item = calloc(cap ? cap : 1, sizeof(*q->item));
    if (!q->item)
        return -ENOMEM;
    q->cap = cap ? cap : 1;
    return 0;
}

void recq_free(struct recq *q)
{
    if (!q)
        return;
    free(q->item);
    memset(q, 0, sizeof(*q));
}

bool recq_push(struct recq *q, const struct blkin_request *r, uint64_t now)
{
    uint64_t seq = q->next_seq++;
    struct recq_item *it;

    if (q->count == q->cap) {
        q->dropped++;
        return false;
    }
    it = &q->item[(q->head + q->count) % q->cap];
    it->r = *r;
    it->seq = seq;
    it->enq_ns = now;
    q->count++;
    return true;
}

size_t recq_peek_run(const struct recq *q, struct blkin_request *out,
                     size_t max, uint64_t *first_seq)
{
    size_t n = 0;

    if (!q->count)
        return 0;
    *first_seq = q->item[q->head].seq;
    while (n < max && n < q->count) {
        const struct recq_item *it = &q->item[(q->head + n) % q->cap];

        if (it->seq != *first_seq + n)
            break;
        out[n++] = it->r;
    }
    return n;
}

void recq_pop(struct recq *q, size_t n)
{
    if (n > q->count)
        n = q->count;
    q->head = (uint32_t)((q->head + n) % q->cap);
    q->count -= (uint32_t)n;
}

uint64_t recq_oldest_ns(const struct recq *q)
{
    return q->count ? q->item[q->head].enq_ns : 0;
}
