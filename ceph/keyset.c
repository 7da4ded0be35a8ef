/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * keyset.c: the collector's set of shipped op keys (keyset.h).
 */
#include "keyset.h"

#include <stdlib.h>
#include <string.h>

static uint64_t norm(uint64_t k)
{
    return k ? k : 1;
}

static size_t slot_of(uint64_t k, size_t cap)
{
    /* The keys are FNV hashes already; mix once more for the low bits. */
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

void blkin_keyset_clear(BlkinKeySet *s)
{
    if (s->slots)
        memset(s->slots, 0, s->cap * sizeof(*s->slots));
    s->len = 0;
}

void blkin_keyset_destroy(BlkinKeySet *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

bool blkin_keyset_has(const BlkinKeySet *s, uint64_t key)
{
    uint64_t k = norm(key);

    if (!s->cap)
        return false;
    for (size_t i = slot_of(k, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == k)
            return true;
        if (!s->slots[i])
            return false;
    }
}

static bool grow(BlkinKeySet *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = calloc(cap, sizeof(*slots));

    if (!slots)
        return false;
    for (size_t i = 0; i < s->cap; i++) {
        size_t j;

        if (!s->slots[i])
            continue;
        for (j = slot_of(s->slots[i], cap); slots[j]; j = (j + 1) & (cap - 1))
            ;
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

bool blkin_keyset_add(BlkinKeySet *s, uint64_t key)
{
    uint64_t k = norm(key);
    size_t i;

    if ((s->len + 1) * 2 > s->cap && !grow(s))
        return false;
    for (i = slot_of(k, s->cap); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (s->slots[i] == k)
            return true;
    s->slots[i] = k;
    s->len++;
    return true;
}
