/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * zipkin-spans.c: zipkin:* annotations into spans (zipkin-spans.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-join"

#include "zipkin-spans.h"

#include <string.h>

typedef struct Open {
    HostdZipkinSpan s;
    uint64_t first_ns, last_ns;
} Open;

struct HostdZipkinSpans {
    HostdZipkinEmit emit;
    void *opaque;
    GHashTable *open; /* span id -> Open * (owned) */
    HostdZipkinCounters c;
};

HostdZipkinSpans *hostd_zipkin_spans_new(HostdZipkinEmit emit, void *opaque)
{
    HostdZipkinSpans *z = g_new0(HostdZipkinSpans, 1);

    z->emit = emit;
    z->opaque = opaque;
    z->open = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
    return z;
}

void hostd_zipkin_spans_free(HostdZipkinSpans *z)
{
    if (!z)
        return;
    g_hash_table_unref(z->open);
    g_free(z);
}

size_t hostd_zipkin_spans_open(const HostdZipkinSpans *z)
{
    return g_hash_table_size(z->open);
}

const HostdZipkinCounters *
hostd_zipkin_spans_counters(const HostdZipkinSpans *z)
{
    return &z->c;
}

static void copy_str(char *dst, size_t len, const char *src)
{
    g_strlcpy(dst, src ? src : "", len);
}

/* Times the span and hands it on; the caller frees @o. */
static void finish(HostdZipkinSpans *z, Open *o, bool complete)
{
    HostdZipkinSpan *s = &o->s;
    uint64_t open_ns = s->sr_ns ? s->sr_ns : s->cs_ns;
    uint64_t close_ns = s->ss_ns ? s->ss_ns : s->cr_ns;

    s->complete = complete;
    s->start_ns = open_ns ? open_ns : o->first_ns;
    s->end_ns = close_ns ? close_ns : o->last_ns;
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;
    if (complete)
        z->c.spans++;
    else
        z->c.incomplete++;
    z->emit(z->opaque, s);
}

static void set_core(HostdZipkinSpan *s, const char *ev, uint64_t t)
{
    /* The first of each counts: a retried send does not move the span. */
    if (strcmp(ev, "cs") == 0 && !s->cs_ns)
        s->cs_ns = t;
    else if (strcmp(ev, "sr") == 0 && !s->sr_ns)
        s->sr_ns = t;
    else if (strcmp(ev, "ss") == 0 && !s->ss_ns)
        s->ss_ns = t;
    else if (strcmp(ev, "cr") == 0 && !s->cr_ns)
        s->cr_ns = t;
    s->server = s->sr_ns || s->ss_ns;
}

static void evict_oldest(HostdZipkinSpans *z)
{
    GHashTableIter it;
    gpointer v;
    Open *oldest = NULL;

    g_hash_table_iter_init(&it, z->open);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (!oldest || ((Open *)v)->last_ns < oldest->last_ns)
            oldest = v;
    if (!oldest)
        return;
    z->c.overflow++;
    g_hash_table_steal(z->open, &oldest->s.span_id);
    finish(z, oldest, false);
    g_free(oldest);
}

void hostd_zipkin_spans_add(HostdZipkinSpans *z, const HostdZipkinEvent *e)
{
    Open *o;
    bool closes;

    z->c.events++;
    if (!e->span_id)
        return; /* an unsampled context records nothing real */
    o = g_hash_table_lookup(z->open, &e->span_id);
    if (o && o->s.trace_id != e->trace_id)
        o = NULL; /* a colliding id of another trace: keep the first */
    if (!o) {
        if (g_hash_table_size(z->open) >= HOSTD_ZIPKIN_MAX_OPEN)
            evict_oldest(z);
        if (g_hash_table_lookup(z->open, &e->span_id))
            return;
        o = g_new0(Open, 1);
        o->s.trace_id = e->trace_id;
        o->s.span_id = e->span_id;
        o->s.parent_span_id = e->parent_span_id;
        o->s.source = e->source;
        o->s.port = e->port;
        copy_str(o->s.name, sizeof(o->s.name), e->trace_name);
        copy_str(o->s.service, sizeof(o->s.service), e->service_name);
        copy_str(o->s.ip, sizeof(o->s.ip), e->ip);
        o->first_ns = e->time_ns;
        g_hash_table_insert(z->open, &o->s.span_id, o);
    }
    o->s.annotations++;
    o->first_ns = MIN(o->first_ns, e->time_ns);
    o->last_ns = MAX(o->last_ns, e->time_ns);
    if (e->kind != HOSTD_ZIPKIN_TIMESTAMP || !e->key)
        return;
    set_core(&o->s, e->key, e->time_ns);
    closes = (o->s.ss_ns && strcmp(e->key, "ss") == 0) ||
             (o->s.cr_ns && strcmp(e->key, "cr") == 0);
    if (!closes)
        return;
    g_hash_table_steal(z->open, &o->s.span_id);
    finish(z, o, true);
    g_free(o);
}

void hostd_zipkin_spans_expire(HostdZipkinSpans *z, uint16_t source,
                               int64_t source_time_ns)
{
    GHashTableIter it;
    gpointer v;
    g_autoptr(GPtrArray) done = g_ptr_array_new_with_free_func(g_free);

    g_hash_table_iter_init(&it, z->open);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Open *o = v;

        if (o->s.source != source ||
            (source_time_ns != INT64_MAX &&
             (int64_t)o->last_ns >= source_time_ns - HOSTD_ZIPKIN_KEEP_NS))
            continue;
        g_hash_table_iter_steal(&it);
        g_ptr_array_add(done, o);
    }
    for (guint i = 0; i < done->len; i++)
        finish(z, g_ptr_array_index(done, i), false);
}
