/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * span-tree.h: lower spans (a stacked blkin node, a storage backend) waiting
 * for their parent span, keyed by the parent's span id.
 *
 * Children complete before their parent, and LTTng delivers events in time
 * order, so a parent finds its children already here. What is never claimed
 * (its parent was not recorded, or is not a VM disk's top span) expires.
 * Bounded: at most HOSTD_SPAN_TREE_MAX children are kept; beyond that the
 * oldest parent's children go, counted.
 */
#ifndef HOSTD_SPAN_TREE_H
#define HOSTD_SPAN_TREE_H

#include <glib.h>
#include <stdint.h>

#include "ingest/hostd-span.h"

#define HOSTD_SPAN_TREE_MAX 262144

typedef struct HostdSpanTree HostdSpanTree;

HostdSpanTree *hostd_span_tree_new(void);
void hostd_span_tree_free(HostdSpanTree *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdSpanTree, hostd_span_tree_free)

void hostd_span_tree_add(HostdSpanTree *t, const HostdSpan *child);
/*
 * Removes @parent's direct children and returns how long at least one of
 * them was in flight (the union of their intervals, clipped to the
 * parent's), how many there were in *n, and when there was exactly one, a
 * copy of it in *only (both may be NULL).
 */
uint64_t hostd_span_tree_take(HostdSpanTree *t, const HostdSpan *parent,
                              unsigned *n, HostdSpan *only);
/* Drops children whose end is before @before_ns; returns how many. */
size_t hostd_span_tree_expire(HostdSpanTree *t, uint64_t before_ns);
size_t hostd_span_tree_size(const HostdSpanTree *t);
uint64_t hostd_span_tree_dropped(const HostdSpanTree *t);

#endif
