/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * keyset.h: a set of 64-bit keys (open addressing, linear probing), for
 * the collector to tell the ops of an op-tracker dump it has shipped
 * before. Grows as needed; emptied without freeing; bounded by its caller
 * (the OSD's history size).
 */
#ifndef CEPH_KEYSET_H
#define CEPH_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct BlkinKeySet {
    uint64_t *slots; /* 0: empty (key 0 is stored as 1) */
    size_t cap;      /* power of two */
    size_t len;
} BlkinKeySet;

void blkin_keyset_clear(BlkinKeySet *s);   /* empties it, keeps memory */
void blkin_keyset_destroy(BlkinKeySet *s); /* frees it */
bool blkin_keyset_has(const BlkinKeySet *s, uint64_t key);
/* Adds @key; false when out of memory. */
bool blkin_keyset_add(BlkinKeySet *s, uint64_t key);

#endif
