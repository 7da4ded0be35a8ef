/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-parent.c: links a lower blkin node's span to the request above it.
 *
 * A request passes down a block graph as nested calls in one coroutine, so
 * the traced request a lower node serves is the innermost one registered
 * for the running coroutine. Format drivers that split a request (qcow2's
 * parallel tasks) run the parts in new coroutines entered from the
 * request's coroutine; while such a part has not yet yielded, its `caller`
 * is that coroutine, so the search walks the caller chain. A part that
 * yielded before reaching the lower node becomes a root span: best effort,
 * and documented in docs/filter.md.
 *
 * Used only while more than one blkin node is open in the process, so a
 * single filter pays nothing for it.
 */
#include "blkin-filter.h"

#include "qemu/coroutine_int.h"
#include "qemu/thread.h"

int blkin_instances;

/* Coroutine * -> innermost BlkinReq * registered for it. */
static GHashTable *blkin_co_reqs;
static QemuMutex blkin_co_lock;

static void __attribute__((constructor)) blkin_parent_init(void)
{
    qemu_mutex_init(&blkin_co_lock);
    blkin_co_reqs = g_hash_table_new(NULL, NULL);
}

void blkin_parent_push(BlkinReq *r)
{
    Coroutine *co = qemu_coroutine_self();

    qemu_mutex_lock(&blkin_co_lock);
    r->co = co;
    r->co_prev = g_hash_table_lookup(blkin_co_reqs, co);
    g_hash_table_insert(blkin_co_reqs, co, r);
    qemu_mutex_unlock(&blkin_co_lock);
}

void blkin_parent_pop(BlkinReq *r)
{
    if (!r->co)
        return;
    qemu_mutex_lock(&blkin_co_lock);
    if (r->co_prev)
        g_hash_table_insert(blkin_co_reqs, r->co, r->co_prev);
    else
        g_hash_table_remove(blkin_co_reqs, r->co);
    qemu_mutex_unlock(&blkin_co_lock);
    r->co = NULL;
}

const BlkinReq *blkin_parent_find(void)
{
    const BlkinReq *found = NULL;
    Coroutine *co;

    qemu_mutex_lock(&blkin_co_lock);
    for (co = qemu_coroutine_self(); co && !found; co = co->caller)
        found = g_hash_table_lookup(blkin_co_reqs, co);
    qemu_mutex_unlock(&blkin_co_lock);
    return found;
}
