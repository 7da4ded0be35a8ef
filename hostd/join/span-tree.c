/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * span-tree.c: children by parent span id (span-tree.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-join"

#include "span-tree.h"

#include <stdlib.h>

typedef struct Children {
    uint64_t parent;
    uint64_t newest_end;
    GArray *spans; /* HostdSpan */
} Children;

struct HostdSpanTree {
    GHashTable *by_parent; /* uint64 parent id -> Children */
    size_t size;
    uint64_t dropped;
};

static void children_free(gpointer p)
{
    Children *c = p;

    g_array_unref(c->spans);
    g_free(c);
}

HostdSpanTree *hostd_span_tree_new(void)
{
    HostdSpanTree *t = g_new0(HostdSpanTree, 1);

    t->by_parent =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, children_free);
    return t;
}

void hostd_span_tree_free(HostdSpanTree *t)
{
    if (!t)
        return;
    g_hash_table_unref(t->by_parent);
    g_free(t);
}

size_t hostd_span_tree_size(const HostdSpanTree *t)
{
    return t->size;
}

uint64_t hostd_span_tree_dropped(const HostdSpanTree *t)
{
    return t->dropped;
}

void hostd_span_tree_add(HostdSpanTree *t, const HostdSpan *child)
{
    Children *c;

    if (t->size >= HOSTD_SPAN_TREE_MAX) {
        /* Rare and only under overload: expire what is oldest. */
        uint64_t oldest = UINT64_MAX;
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, t->by_parent);
        while (g_hash_table_iter_next(&it, NULL, &v))
            oldest = MIN(oldest, ((Children *)v)->newest_end);
        t->dropped += hostd_span_tree_expire(t, oldest + 1);
    }
    c = g_hash_table_lookup(t->by_parent, &child->parent_span_id);
    if (!c) {
        c = g_new0(Children, 1);
        c->parent = child->parent_span_id;
        c->spans = g_array_sized_new(FALSE, FALSE, sizeof(HostdSpan), 1);
        g_hash_table_insert(t->by_parent, &c->parent, c);
    }
    g_array_append_val(c->spans, *child);
    c->newest_end = MAX(c->newest_end, child->end_ns);
    t->size++;
}

static int by_start(const void *a, const void *b)
{
    const HostdSpan *x = a, *y = b;

    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

uint64_t hostd_span_tree_take(HostdSpanTree *t, const HostdSpan *parent,
                              unsigned *n, HostdSpan *only)
{
    Children *c = g_hash_table_lookup(t->by_parent, &parent->span_id);
    uint64_t total = 0, cur_start = 0, cur_end = 0;

    if (n)
        *n = c ? c->spans->len : 0;
    if (!c)
        return 0;
    if (only && c->spans->len == 1)
        *only = g_array_index(c->spans, HostdSpan, 0);
    qsort(c->spans->data, c->spans->len, sizeof(HostdSpan), by_start);
    for (guint i = 0; i < c->spans->len; i++) {
        const HostdSpan *s = &g_array_index(c->spans, HostdSpan, i);
        uint64_t a = MAX(s->start_ns, parent->start_ns);
        uint64_t b = MIN(s->end_ns, parent->end_ns);

        if (b <= a)
            continue;
        if (a > cur_end) {
            total += cur_end - cur_start;
            cur_start = a;
            cur_end = b;
        } else if (b > cur_end) {
            cur_end = b;
        }
    }
    total += cur_end - cur_start;
    t->size -= c->spans->len;
    g_hash_table_remove(t->by_parent, &parent->span_id);
    return total;
}

size_t hostd_span_tree_expire(HostdSpanTree *t, uint64_t before_ns)
{
    GHashTableIter it;
    gpointer v;
    size_t n = 0;

    g_hash_table_iter_init(&it, t->by_parent);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Children *c = v;

        if (c->newest_end >= before_ns)
            continue;
        n += c->spans->len;
        t->size -= c->spans->len;
        g_hash_table_iter_remove(&it);
    }
    return n;
}
