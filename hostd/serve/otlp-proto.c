/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * otlp-proto.c: OTLP/HTTP protobuf bodies with protobuf-c (otlp-proto.h).
 *
 * protobuf-c messages point at their parts; everything is allocated in one
 * GLib string chunk and pointer arrays owned by the builder, packed once,
 * then freed together.
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "otlp-proto.h"

#include "otlp-trace.pb-c.h"

#include <string.h>

typedef Blkin__Otlp__ExportTraceServiceRequest Request;
typedef Blkin__Otlp__ResourceSpans ResourceSpans;
typedef Blkin__Otlp__ScopeSpans ScopeSpans;
typedef Blkin__Otlp__Span Span;
typedef Blkin__Otlp__KeyValue KeyValue;
typedef Blkin__Otlp__AnyValue AnyValue;

struct HostdOtlpProto {
    Request req;
    GPtrArray *resources; /* ResourceSpans * */
    GPtrArray *owned;     /* everything else to free: g_free'd */
    GPtrArray *arrays;    /* GPtrArray * backing repeated fields */
    GStringChunk *strings;
    /* The last resource's scope, and its spans and the last span's
     * attributes being collected. */
    ScopeSpans *scope;
    GPtrArray *spans;
    Span *span;
    GPtrArray *attrs;
};

static gpointer own(HostdOtlpProto *p, gpointer mem)
{
    g_ptr_array_add(p->owned, mem);
    return mem;
}

static GPtrArray *array(HostdOtlpProto *p)
{
    GPtrArray *a = g_ptr_array_new();

    g_ptr_array_add(p->arrays, a);
    return a;
}

static char *str(HostdOtlpProto *p, const char *s)
{
    return g_string_chunk_insert_const(p->strings, s);
}

static KeyValue *kv(HostdOtlpProto *p, const char *k)
{
    KeyValue *e = own(p, g_new(KeyValue, 1));
    AnyValue *v = own(p, g_new(AnyValue, 1));

    blkin__otlp__key_value__init(e);
    blkin__otlp__any_value__init(v);
    e->key = str(p, k);
    e->value = v;
    return e;
}

/* Big-endian id bytes, as OTLP (and its JSON hex) spell them. */
static ProtobufCBinaryData id_bytes(HostdOtlpProto *p, uint64_t hi, uint64_t lo,
                                    size_t n)
{
    uint8_t *b = own(p, g_malloc(n));
    ProtobufCBinaryData d = {n, b};

    for (size_t i = 0; i < 8; i++) {
        if (n == 16)
            b[i] = (uint8_t)(hi >> (56 - 8 * i));
        b[n - 8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    return d;
}

HostdOtlpProto *hostd_otlp_proto_new(void)
{
    HostdOtlpProto *p = g_new0(HostdOtlpProto, 1);

    blkin__otlp__export_trace_service_request__init(&p->req);
    p->resources = g_ptr_array_new();
    p->owned = g_ptr_array_new_with_free_func(g_free);
    p->arrays =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    p->strings = g_string_chunk_new(4096);
    return p;
}

/* Closes the last span's attributes and the last resource's spans. */
static void seal_span(HostdOtlpProto *p)
{
    if (p->span && p->attrs) {
        p->span->n_attributes = p->attrs->len;
        p->span->attributes = (KeyValue **)p->attrs->pdata;
    }
    p->span = NULL;
    p->attrs = NULL;
}

static void seal_resource(HostdOtlpProto *p)
{
    seal_span(p);
    if (p->scope && p->spans) {
        p->scope->n_spans = p->spans->len;
        p->scope->spans = (Span **)p->spans->pdata;
    }
    p->scope = NULL;
    p->spans = NULL;
}

void hostd_otlp_proto_resource(HostdOtlpProto *p, const char *scope,
                               const char *const *attrs)
{
    ResourceSpans *rs = own(p, g_new(ResourceSpans, 1));
    Blkin__Otlp__Resource *res = own(p, g_new(Blkin__Otlp__Resource, 1));
    Blkin__Otlp__InstrumentationScope *is =
        own(p, g_new(Blkin__Otlp__InstrumentationScope, 1));
    ScopeSpans *ss = own(p, g_new(ScopeSpans, 1));
    ScopeSpans **ssv = own(p, g_new(ScopeSpans *, 1));
    GPtrArray *ra = array(p);

    seal_resource(p);
    blkin__otlp__resource_spans__init(rs);
    blkin__otlp__resource__init(res);
    blkin__otlp__instrumentation_scope__init(is);
    blkin__otlp__scope_spans__init(ss);
    for (const char *const *a = attrs; a && a[0] && a[1]; a += 2) {
        KeyValue *e = kv(p, a[0]);

        e->value->value_case = BLKIN__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
        e->value->string_value = str(p, a[1]);
        g_ptr_array_add(ra, e);
    }
    res->n_attributes = ra->len;
    res->attributes = (KeyValue **)ra->pdata;
    is->name = str(p, scope);
    is->version = str(p, BLKIN_VERSION);
    ss->scope = is;
    ssv[0] = ss;
    rs->resource = res;
    rs->n_scope_spans = 1;
    rs->scope_spans = ssv;
    g_ptr_array_add(p->resources, rs);
    p->scope = ss;
    p->spans = array(p);
}

void hostd_otlp_proto_span(HostdOtlpProto *p, uint64_t trace, uint64_t id,
                           uint64_t parent, const char *name, int kind,
                           uint64_t start_ns, uint64_t end_ns, int status)
{
    Span *s = own(p, g_new(Span, 1));

    g_return_if_fail(p->spans);
    seal_span(p);
    blkin__otlp__span__init(s);
    /* BlkKin's 64-bit trace id in the low half of OTLP's 16 bytes. */
    s->trace_id = id_bytes(p, 0, trace, 16);
    s->span_id = id_bytes(p, 0, id, 8);
    if (parent)
        s->parent_span_id = id_bytes(p, 0, parent, 8);
    s->name = str(p, name);
    s->kind = (Blkin__Otlp__Span__SpanKind)kind;
    s->start_time_unix_nano = start_ns;
    s->end_time_unix_nano = end_ns;
    if (status) {
        Blkin__Otlp__Status *st = own(p, g_new(Blkin__Otlp__Status, 1));

        blkin__otlp__status__init(st);
        st->code = (Blkin__Otlp__Status__StatusCode)status;
        s->status = st;
    }
    g_ptr_array_add(p->spans, s);
    p->span = s;
    p->attrs = array(p);
}

void hostd_otlp_proto_attr_str(HostdOtlpProto *p, const char *k, const char *v)
{
    KeyValue *e;

    g_return_if_fail(p->attrs);
    e = kv(p, k);
    e->value->value_case = BLKIN__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    e->value->string_value = str(p, v);
    g_ptr_array_add(p->attrs, e);
}

void hostd_otlp_proto_attr_int(HostdOtlpProto *p, const char *k, int64_t v)
{
    KeyValue *e;

    g_return_if_fail(p->attrs);
    e = kv(p, k);
    e->value->value_case = BLKIN__OTLP__ANY_VALUE__VALUE_INT_VALUE;
    e->value->int_value = v;
    g_ptr_array_add(p->attrs, e);
}

GBytes *hostd_otlp_proto_finish(HostdOtlpProto *p)
{
    size_t n;
    uint8_t *buf;

    seal_resource(p);
    p->req.n_resource_spans = p->resources->len;
    p->req.resource_spans = (ResourceSpans **)p->resources->pdata;
    n = blkin__otlp__export_trace_service_request__get_packed_size(&p->req);
    buf = g_malloc(n ? n : 1);
    blkin__otlp__export_trace_service_request__pack(&p->req, buf);
    g_ptr_array_unref(p->resources);
    g_ptr_array_unref(p->owned);
    g_ptr_array_unref(p->arrays);
    g_string_chunk_free(p->strings);
    g_free(p);
    return g_bytes_new_take(buf, n);
}
