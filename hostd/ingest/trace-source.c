/*
 * trace-source.c: blkin_qemu events from LTTng, live or offline, decoded
 * in-process with libbabeltrace2 into HostdSpan / HostdDiskMap.
 *
 * Graph: src.ctf.lttng-live (one) or src.ctf.fs (one per trace directory)
 *        -> flt.utils.muxer -> our simple sink, which decodes each event.
 *
 * This is hostd's hot path: per event class the schema is checked once and
 * the payload member indices cached, so decoding an event is a pointer
 * compare plus one indexed borrow and one integer read per field.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include <babeltrace2/babeltrace.h>

#include "trace-source.h"

/* Bounded work per poll, so a daemon's main loop stays responsive. */
#define POLL_BUDGET_MSGS 4096

GQuark hostd_trace_error_quark(void)
{
    return g_quark_from_static_string("hostd-trace-error-quark");
}

enum ev_kind {
    EV_OTHER,    /* not blkin_qemu: ignored */
    EV_REJECTED, /* blkin_qemu, but not the schema: counted, skipped */
    EV_REQUEST,
    EV_HUNG,
    EV_DISK,
    EV_ZK_TIMESTAMP, /* zipkin:* (blkin's schema, docs/backend.md) */
    EV_ZK_STRING,
    EV_ZK_INTEGER,
};

/* Payload members, in one index space for all three events. */
enum fld {
    F_IDS, /* request: u64[3] trace_id, span_id, parent_span_id */
    F_IO,  /* request: u64[3] offset, bytes, start_ns */
    F_REQ, /* request: s32[7] vpid, disk, op, flags, ret, inflight, why */
    F_VPID,
    F_TRACE_ID,
    F_SPAN_ID,
    F_PARENT_SPAN_ID,
    F_DISK,
    F_OP,
    F_FLAGS,
    F_OFFSET,
    F_BYTES,
    F_START_NS,
    F_AGE_NS,
    F_STATE,
    F_ID,
    F_NODE,
    F_CHILD,
    F_SAMPLE,
    F_ZK_TRACE_NAME,
    F_ZK_SERVICE,
    F_ZK_PORT,
    F_ZK_IP,
    F_ZK_KEY,
    F_ZK_VAL,
    F_ZK_EVENT,
    F_MAX,
};

enum fld_type {
    T_U8,
    T_U32,
    T_U64,
    T_S32,
    T_STR,
    T_ANY64,   /* any integer up to 64 bits, signed or not: taken as its bits
                  (blkin declares ids `long`, libblkin int64_t) */
    T_U64_ARR, /* static array of unsigned integers up to 64 bits */
    T_S32_ARR, /* static array of signed integers up to 32 bits */
};

/* Elements of the request event's arrays (docs/tracepoints.md). */
enum { IDS_TRACE, IDS_SPAN, IDS_PARENT, IDS_LEN };
enum { IO_OFFSET, IO_BYTES, IO_START_NS, IO_LEN };
enum {
    REQ_VPID,
    REQ_DISK,
    REQ_OP,
    REQ_FLAGS,
    REQ_RET,
    REQ_INFLIGHT,
    REQ_WHY,
    REQ_LEN,
};

static const struct {
    const char *name;
    enum fld_type type;
    uint64_t len; /* arrays: at least this many elements */
} fld_info[F_MAX] = {
    [F_IDS] = {"ids", T_U64_ARR, IDS_LEN},
    [F_IO] = {"io", T_U64_ARR, IO_LEN},
    [F_REQ] = {"req", T_S32_ARR, REQ_LEN},
    [F_VPID] = {"vpid", T_S32},
    [F_TRACE_ID] = {"trace_id", T_U64},
    [F_SPAN_ID] = {"span_id", T_U64},
    [F_PARENT_SPAN_ID] = {"parent_span_id", T_U64},
    [F_DISK] = {"disk", T_U32},
    [F_OP] = {"op", T_U8},
    [F_FLAGS] = {"flags", T_U32},
    [F_OFFSET] = {"offset", T_U64},
    [F_BYTES] = {"bytes", T_U64},
    [F_START_NS] = {"start_ns", T_U64},
    [F_AGE_NS] = {"age_ns", T_U64},
    [F_STATE] = {"state", T_U8},
    [F_ID] = {"id", T_STR},
    [F_NODE] = {"node", T_STR},
    [F_CHILD] = {"child", T_STR},
    [F_SAMPLE] = {"sample", T_U32},
    [F_ZK_TRACE_NAME] = {"trace_name", T_STR},
    [F_ZK_SERVICE] = {"service_name", T_STR},
    [F_ZK_PORT] = {"port_no", T_ANY64},
    [F_ZK_IP] = {"ip", T_STR},
    [F_ZK_KEY] = {"key", T_STR},
    [F_ZK_VAL] = {"val", T_STR}, /* keyval_integer: T_ANY64 (resolve) */
    [F_ZK_EVENT] = {"event", T_STR},
};

static const enum fld request_flds[] = {F_IDS, F_IO, F_REQ};
static const enum fld hung_flds[] = {
    F_TRACE_ID, F_SPAN_ID, F_PARENT_SPAN_ID, F_VPID,     F_DISK,   F_OP,
    F_FLAGS,    F_OFFSET,  F_BYTES,          F_START_NS, F_AGE_NS,
};
static const enum fld disk_flds[] = {
    F_VPID, F_DISK, F_STATE, F_ID, F_NODE, F_CHILD, F_SAMPLE,
};
/* zipkin:*'s ids are checked as T_ANY64 (zipkin_any64 below). */
static const enum fld zk_timestamp_flds[] = {
    F_ZK_TRACE_NAME, F_ZK_SERVICE, F_ZK_PORT,        F_ZK_IP,
    F_TRACE_ID,      F_SPAN_ID,    F_PARENT_SPAN_ID, F_ZK_EVENT,
};
static const enum fld zk_keyval_flds[] = {
    F_ZK_TRACE_NAME, F_ZK_SERVICE,     F_ZK_PORT, F_ZK_IP,  F_TRACE_ID,
    F_SPAN_ID,       F_PARENT_SPAN_ID, F_ZK_KEY,  F_ZK_VAL,
};

/* One event class, resolved against the schema on first sight. */
typedef struct EvClass {
    const bt_event_class *ec; /* strong reference: pins the address */
    enum ev_kind kind;
    uint64_t signed_mask; /* bit per enum fld read as a signed integer */
    uint64_t clock_freq;  /* of the stream's default clock; 0: none */
    uint32_t idx[F_MAX];  /* payload member index per field */
} EvClass;

struct HostdTraceSource {
    bt_graph *graph;
    HostdTraceSink sink;
    void *opaque;
    GHashTable *classes; /* bt_event_class * -> EvClass * */
    EvClass *last;       /* consecutive events mostly share a class */
    HostdTraceStats stats;
    int status; /* 0 running, 1 ended, < 0 failed */
    char *error;
    uint64_t budget;  /* messages left in this poll */
    uint64_t time_ns; /* newest event/inactivity time delivered */
    uint16_t index;   /* stamped into what it decodes (HostdSpan.source) */
};

static void ev_class_free(gpointer p)
{
    EvClass *c = p;

    if (!c)
        return;
    bt_event_class_put_ref(c->ec);
    g_free(c);
}

/* Does an integer field class fit the schema's type without loss? */
static bool int_fits(const bt_field_class *fc, enum fld_type want,
                     bool *is_signed)
{
    bt_field_class_type t = bt_field_class_get_type(fc);
    uint64_t bits, limit;
    bool want_signed = want == T_S32;

    if (!bt_field_class_type_is(t, BT_FIELD_CLASS_TYPE_INTEGER))
        return false;
    *is_signed = bt_field_class_type_is(t, BT_FIELD_CLASS_TYPE_SIGNED_INTEGER);
    if (want == T_ANY64)
        return true; /* babeltrace2 integers are at most 64 bits */
    bits = bt_field_class_integer_get_field_value_range(fc);
    limit = want == T_U8 ? 8 : want == T_U64 ? 64 : 32;
    if (*is_signed && !want_signed)
        return false;
    /* An unsigned value needs one bit less than a signed target's width. */
    if (!*is_signed && want_signed)
        return bits < limit;
    return bits <= limit;
}

/*
 * Is an array field class a static array of at least @len integers that fit
 * the schema's element type? Lengths are fixed by the event class, so the
 * check is once per class; decoding then reads elements by index.
 */
static bool array_fits(const bt_field_class *fc, enum fld_type want,
                       uint64_t len)
{
    const bt_field_class *el;
    bool is_signed;

    if (bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STATIC_ARRAY ||
        bt_field_class_array_static_get_length(fc) < len)
        return false;
    el = bt_field_class_array_borrow_element_field_class_const(fc);
    if (!int_fits(el, want == T_S32_ARR ? T_S32 : T_U64, &is_signed))
        return false;
    /* Elements are read with one accessor: their signedness is fixed. */
    return is_signed == (want == T_S32_ARR);
}

static bool find_member(const bt_field_class *st, const char *name,
                        uint32_t *idx, const bt_field_class **fc)
{
    uint64_t n;

    if (!st || bt_field_class_get_type(st) != BT_FIELD_CLASS_TYPE_STRUCTURE)
        return false;
    n = bt_field_class_structure_get_member_count(st);
    for (uint64_t i = 0; i < n; i++) {
        const bt_field_class_structure_member *m =
            bt_field_class_structure_borrow_member_by_index_const(st, i);

        if (strcmp(bt_field_class_structure_member_get_name(m), name) == 0) {
            *idx = (uint32_t)i;
            *fc = bt_field_class_structure_member_borrow_field_class_const(m);
            return true;
        }
    }
    return false;
}

/*
 * blkin's own events carry no process context (services add what they
 * like), so zipkin:* are resolved on their payload alone. The ids are
 * whatever 64-bit integer the producer declared; val is a string in
 * keyval_string and an integer in keyval_integer.
 */
static enum ev_kind resolve_zipkin(EvClass *c, const char *name)
{
    const bt_stream_class *sc = bt_event_class_borrow_stream_class_const(c->ec);
    const bt_clock_class *clk =
        bt_stream_class_borrow_default_clock_class_const(sc);
    const bt_field_class *payload =
        bt_event_class_borrow_payload_field_class_const(c->ec);
    const enum fld *flds = zk_keyval_flds;
    size_t nflds = G_N_ELEMENTS(zk_keyval_flds);
    enum ev_kind kind;

    if (strcmp(name, "timestamp") == 0) {
        kind = EV_ZK_TIMESTAMP;
        flds = zk_timestamp_flds;
        nflds = G_N_ELEMENTS(zk_timestamp_flds);
    } else if (strcmp(name, "keyval_string") == 0) {
        kind = EV_ZK_STRING;
    } else if (strcmp(name, "keyval_integer") == 0) {
        kind = EV_ZK_INTEGER;
    } else {
        return EV_OTHER; /* not blkin's: other zipkin producers exist */
    }
    for (size_t i = 0; i < nflds; i++) {
        enum fld f = flds[i];
        enum fld_type want = fld_info[f].type;
        const bt_field_class *fc;
        bool is_signed;

        if (f == F_TRACE_ID || f == F_SPAN_ID || f == F_PARENT_SPAN_ID ||
            (f == F_ZK_VAL && kind == EV_ZK_INTEGER))
            want = T_ANY64;
        if (!find_member(payload, fld_info[f].name, &c->idx[f], &fc))
            return EV_REJECTED;
        if (want == T_STR) {
            if (bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STRING)
                return EV_REJECTED;
            continue;
        }
        if (!int_fits(fc, want, &is_signed))
            return EV_REJECTED;
        if (is_signed)
            c->signed_mask |= UINT64_C(1) << f;
    }
    c->clock_freq = clk ? bt_clock_class_get_frequency(clk) : 0;
    return kind;
}

static enum ev_kind resolve(EvClass *c)
{
    const char *name = bt_event_class_get_name(c->ec);
    const bt_stream_class *sc = bt_event_class_borrow_stream_class_const(c->ec);
    const bt_clock_class *clk =
        bt_stream_class_borrow_default_clock_class_const(sc);
    const bt_field_class *payload, *fc;
    const enum fld *flds;
    size_t nflds;
    enum ev_kind kind;
    bool is_signed;

    if (name && g_str_has_prefix(name, "zipkin:"))
        return resolve_zipkin(c, name + strlen("zipkin:"));
    if (!name || !g_str_has_prefix(name, "blkin_qemu:"))
        return EV_OTHER;
    name += strlen("blkin_qemu:");
    if (strcmp(name, "request") == 0) {
        kind = EV_REQUEST;
        flds = request_flds;
        nflds = G_N_ELEMENTS(request_flds);
    } else if (strcmp(name, "hung") == 0) {
        kind = EV_HUNG;
        flds = hung_flds;
        nflds = G_N_ELEMENTS(hung_flds);
    } else if (strcmp(name, "disk") == 0) {
        kind = EV_DISK;
        flds = disk_flds;
        nflds = G_N_ELEMENTS(disk_flds);
    } else {
        /* A newer schema's event: not ours to guess at. */
        return EV_REJECTED;
    }

    /* A request's end is its event's timestamp. */
    c->clock_freq = clk ? bt_clock_class_get_frequency(clk) : 0;
    if (kind == EV_REQUEST && !c->clock_freq)
        return EV_REJECTED;

    payload = bt_event_class_borrow_payload_field_class_const(c->ec);
    for (size_t i = 0; i < nflds; i++) {
        enum fld f = flds[i];

        if (!find_member(payload, fld_info[f].name, &c->idx[f], &fc))
            return EV_REJECTED;
        if (fld_info[f].type == T_STR) {
            if (bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STRING)
                return EV_REJECTED;
            continue;
        }
        if (fld_info[f].type == T_U64_ARR || fld_info[f].type == T_S32_ARR) {
            if (!array_fits(fc, fld_info[f].type, fld_info[f].len))
                return EV_REJECTED;
            continue;
        }
        if (!int_fits(fc, fld_info[f].type, &is_signed))
            return EV_REJECTED;
        if (is_signed)
            c->signed_mask |= UINT64_C(1) << f;
    }
    return kind;
}

static EvClass *lookup_class(HostdTraceSource *src, const bt_event_class *ec)
{
    EvClass *c = g_hash_table_lookup(src->classes, ec);

    if (!c) {
        c = g_new0(EvClass, 1);
        c->ec = ec;
        bt_event_class_get_ref(ec);
        c->kind = resolve(c);
        g_hash_table_insert(src->classes, (gpointer)ec, c);
    }
    src->last = c;
    return c;
}

static inline const bt_field *member(const bt_field *st, const EvClass *c,
                                     enum fld f)
{
    return bt_field_structure_borrow_member_field_by_index_const(st, c->idx[f]);
}

static inline uint64_t get_u(const bt_field *st, const EvClass *c, enum fld f)
{
    const bt_field *v = member(st, c, f);

    /* Only the schema's signed fields may be signed (int_fits). */
    if (G_UNLIKELY(c->signed_mask & (UINT64_C(1) << f)))
        return (uint64_t)bt_field_integer_signed_get_value(v);
    return bt_field_integer_unsigned_get_value(v);
}

/* Element @i of a static array of unsigned (or of signed) integers. */
static inline uint64_t elem_u(const bt_field *a, uint64_t i)
{
    return bt_field_integer_unsigned_get_value(
        bt_field_array_borrow_element_field_by_index_const(a, i));
}

static inline int64_t elem_s(const bt_field *a, uint64_t i)
{
    return bt_field_integer_signed_get_value(
        bt_field_array_borrow_element_field_by_index_const(a, i));
}

/* blkin_qemu:request: three arrays, and the event's time as the end. */
static inline void decode_request(const bt_field *p, const EvClass *c,
                                  HostdSpan *s)
{
    const bt_field *ids = member(p, c, F_IDS);
    const bt_field *io = member(p, c, F_IO);
    const bt_field *req = member(p, c, F_REQ);

    s->trace_id = elem_u(ids, IDS_TRACE);
    s->span_id = elem_u(ids, IDS_SPAN);
    s->parent_span_id = elem_u(ids, IDS_PARENT);
    s->offset = elem_u(io, IO_OFFSET);
    s->bytes = elem_u(io, IO_BYTES);
    s->start_ns = elem_u(io, IO_START_NS);
    s->vpid = (uint32_t)elem_s(req, REQ_VPID);
    s->disk = (uint32_t)elem_s(req, REQ_DISK);
    s->op = blkin_op_from_tp((unsigned)elem_s(req, REQ_OP));
    s->flags = (uint32_t)elem_s(req, REQ_FLAGS);
    s->ret = (int32_t)elem_s(req, REQ_RET);
    s->inflight = (uint32_t)elem_s(req, REQ_INFLIGHT);
    s->why = (uint8_t)elem_s(req, REQ_WHY);
}

/* blkin_qemu:hung: named fields (off the request path, so not packed). */
static inline void decode_hung(const bt_field *p, const EvClass *c,
                               HostdSpan *s)
{
    s->trace_id = get_u(p, c, F_TRACE_ID);
    s->span_id = get_u(p, c, F_SPAN_ID);
    s->parent_span_id = get_u(p, c, F_PARENT_SPAN_ID);
    s->vpid = (uint32_t)get_u(p, c, F_VPID);
    s->disk = (uint32_t)get_u(p, c, F_DISK);
    s->op = blkin_op_from_tp((unsigned)get_u(p, c, F_OP));
    s->flags = (uint32_t)get_u(p, c, F_FLAGS);
    s->offset = get_u(p, c, F_OFFSET);
    s->bytes = get_u(p, c, F_BYTES);
    s->start_ns = get_u(p, c, F_START_NS);
}

/* The event's own time in ns of its clock (CLOCK_MONOTONIC for LTTng-UST). */
static bool event_time_ns(const bt_message *msg, const EvClass *c, uint64_t *ns)
{
    uint64_t cycles;

    if (!c->clock_freq)
        return false;
    cycles = bt_clock_snapshot_get_value(
        bt_message_event_borrow_default_clock_snapshot_const(msg));
    if (c->clock_freq == UINT64_C(1000000000))
        *ns = cycles;
    else
        *ns =
            (uint64_t)((unsigned __int128)cycles * 1000000000u / c->clock_freq);
    return true;
}

static void decode_zipkin(HostdTraceSource *src, const bt_message *msg,
                          const bt_event *ev, const EvClass *c)
{
    const bt_field *p = bt_event_borrow_payload_field_const(ev);
    HostdZipkinEvent e = {
        .source = src->index,
        .trace_id = get_u(p, c, F_TRACE_ID),
        .span_id = get_u(p, c, F_SPAN_ID),
        .parent_span_id = get_u(p, c, F_PARENT_SPAN_ID),
        .port = (int32_t)get_u(p, c, F_ZK_PORT),
        .trace_name = bt_field_string_get_value(member(p, c, F_ZK_TRACE_NAME)),
        .service_name = bt_field_string_get_value(member(p, c, F_ZK_SERVICE)),
        .ip = bt_field_string_get_value(member(p, c, F_ZK_IP)),
    };

    /* An annotation without a time says nothing about the span's. */
    if (!event_time_ns(msg, c, &e.time_ns))
        return;
    switch (c->kind) {
    case EV_ZK_TIMESTAMP:
        e.kind = HOSTD_ZIPKIN_TIMESTAMP;
        e.key = bt_field_string_get_value(member(p, c, F_ZK_EVENT));
        break;
    case EV_ZK_STRING:
        e.kind = HOSTD_ZIPKIN_STRING;
        e.key = bt_field_string_get_value(member(p, c, F_ZK_KEY));
        e.str_val = bt_field_string_get_value(member(p, c, F_ZK_VAL));
        break;
    default:
        e.kind = HOSTD_ZIPKIN_INTEGER;
        e.key = bt_field_string_get_value(member(p, c, F_ZK_KEY));
        e.int_val = (int64_t)get_u(p, c, F_ZK_VAL);
        break;
    }
    src->sink.zipkin(src->opaque, &e);
}

static void handle_event(HostdTraceSource *src, const bt_message *msg)
{
    const bt_event *ev = bt_message_event_borrow_event_const(msg);
    const bt_event_class *ec = bt_event_borrow_class_const(ev);
    EvClass *c = G_LIKELY(src->last && src->last->ec == ec)
                     ? src->last
                     : lookup_class(src, ec);
    const bt_field *p;
    HostdSpan s;

    src->stats.events++;
    switch (c->kind) {
    case EV_REQUEST:
        src->stats.spans++;
        if (!src->sink.span)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        decode_request(p, c, &s);
        event_time_ns(msg, c, &s.end_ns); /* resolve() checked the clock */
        s.source = src->index;
        src->sink.span(src->opaque, &s);
        return;
    case EV_HUNG: {
        uint64_t age;

        src->stats.hung++;
        if (!src->sink.hung)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        decode_hung(p, c, &s);
        age = get_u(p, c, F_AGE_NS);
        if (!event_time_ns(msg, c, &s.end_ns))
            s.end_ns = s.start_ns + age;
        s.ret = 0;
        s.inflight = 0;
        s.why = 0;
        s.source = src->index;
        src->sink.hung(src->opaque, &s, age);
        return;
    }
    case EV_DISK: {
        HostdDiskMap m;

        src->stats.disks++;
        if (!src->sink.disk)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        m.vpid = (uint32_t)get_u(p, c, F_VPID);
        m.source = src->index;
        m.disk = (uint32_t)get_u(p, c, F_DISK);
        m.state = (uint8_t)get_u(p, c, F_STATE);
        m.sample = (uint32_t)get_u(p, c, F_SAMPLE);
        m.id = bt_field_string_get_value(member(p, c, F_ID));
        m.node = bt_field_string_get_value(member(p, c, F_NODE));
        m.child = bt_field_string_get_value(member(p, c, F_CHILD));
        src->sink.disk(src->opaque, &m);
        return;
    }
    case EV_ZK_TIMESTAMP:
    case EV_ZK_STRING:
    case EV_ZK_INTEGER:
        src->stats.zipkin++;
        if (src->sink.zipkin)
            decode_zipkin(src, msg, ev, c);
        return;
    case EV_REJECTED:
        src->stats.rejected++;
        return;
    case EV_OTHER:
        src->stats.ignored++;
        return;
    }
}

static void handle_discarded(HostdTraceSource *src, const bt_message *msg)
{
    uint64_t count;

    if (bt_message_discarded_events_get_count(msg, &count) !=
        BT_PROPERTY_AVAILABILITY_AVAILABLE) {
        /* LTTng always counts; another producer might not. */
        src->stats.discarded_unknown++;
        return;
    }
    src->stats.discarded += count;
    if (src->sink.discarded && count)
        src->sink.discarded(src->opaque, count);
}

static uint64_t snapshot_ns(const bt_clock_snapshot *snap)
{
    uint64_t cycles = bt_clock_snapshot_get_value(snap);
    uint64_t freq = bt_clock_class_get_frequency(
        bt_clock_snapshot_borrow_clock_class_const(snap));

    if (freq == UINT64_C(1000000000) || freq == 0)
        return cycles;
    return (uint64_t)((unsigned __int128)cycles * 1000000000u / freq);
}

/* Advances the source's time to an event's or an inactivity beacon's. */
static void note_time(HostdTraceSource *src, const bt_message *msg)
{
    const bt_clock_snapshot *snap;
    uint64_t ns;

    if (bt_message_get_type(msg) == BT_MESSAGE_TYPE_EVENT) {
        if (!bt_message_event_borrow_stream_class_default_clock_class_const(
                msg))
            return;
        snap = bt_message_event_borrow_default_clock_snapshot_const(msg);
    } else {
        snap =
            bt_message_message_iterator_inactivity_borrow_clock_snapshot_const(
                msg);
    }
    ns = snapshot_ns(snap);
    if (ns > src->time_ns)
        src->time_ns = ns;
}

static bt_graph_simple_sink_component_consume_func_status
sink_consume(bt_message_iterator *it, void *data)
{
    HostdTraceSource *src = data;
    bt_message_array_const msgs;
    uint64_t n;
    int64_t timed = -1;

    switch (bt_message_iterator_next(it, &msgs, &n)) {
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_OK:
        break;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_END:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_END;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_AGAIN:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_AGAIN;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_MEMORY_ERROR:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_MEMORY_ERROR;
    default:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_ERROR;
    }

    for (uint64_t i = 0; i < n; i++) {
        const bt_message *msg = msgs[i];

        switch (bt_message_get_type(msg)) {
        case BT_MESSAGE_TYPE_EVENT:
            handle_event(src, msg);
            timed = (int64_t)i;
            break;
        case BT_MESSAGE_TYPE_DISCARDED_EVENTS:
            handle_discarded(src, msg);
            break;
        case BT_MESSAGE_TYPE_MESSAGE_ITERATOR_INACTIVITY:
            timed = (int64_t)i;
            break;
        default:
            break;
        }
    }
    /* Messages come in time order: the batch's newest timed one is enough. */
    if (timed >= 0)
        note_time(src, msgs[timed]);
    for (uint64_t i = 0; i < n; i++)
        bt_message_put_ref(msgs[i]);
    src->budget = src->budget > n ? src->budget - n : 0;
    return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_OK;
}

/*
 * Takes the thread's libbabeltrace2 error, if any, as one line. The
 * plugins' causes say what is wrong with the trace; the library's own
 * (actor unknown) mostly repeat that a component failed, with addresses:
 * they are kept only when nothing else was said.
 */
static char *take_bt_error(const char *what)
{
    const bt_error *e = bt_current_thread_take_error();
    g_autoptr(GString) s = g_string_new(what);
    uint64_t n = e ? bt_error_get_cause_count(e) : 0;
    bool have_actor = false;

    for (uint64_t i = 0; i < n; i++)
        if (bt_error_cause_get_actor_type(bt_error_borrow_cause_by_index(
                e, i)) != BT_ERROR_CAUSE_ACTOR_TYPE_UNKNOWN)
            have_actor = true;
    for (uint64_t i = 0; i < n; i++) {
        const bt_error_cause *cause = bt_error_borrow_cause_by_index(e, i);
        const char *m = bt_error_cause_get_message(cause);

        if (have_actor && bt_error_cause_get_actor_type(cause) ==
                              BT_ERROR_CAUSE_ACTOR_TYPE_UNKNOWN)
            continue;
        if (m && *m)
            g_string_append_printf(s, "%s%s", s->len ? ": " : "", m);
    }
    if (e)
        bt_error_release(e);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static void set_bt_error(GError **err, int code, const char *what)
{
    g_autofree char *m = take_bt_error(what);

    g_set_error_literal(err, HOSTD_TRACE_ERROR, code, m);
}

static const bt_plugin *find_plugin(const char *name, GError **err)
{
    const bt_plugin *p = NULL;

    if (bt_plugin_find(name, BT_TRUE, BT_TRUE, BT_TRUE, BT_TRUE, BT_FALSE,
                       &p) != BT_PLUGIN_FIND_STATUS_OK) {
        g_autofree char *m = take_bt_error("");

        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "babeltrace2 plugin '%s' not found%s", name, m);
        return NULL;
    }
    return p;
}

void hostd_trace_source_free(HostdTraceSource *src)
{
    if (!src)
        return;
    /* The graph first: its sink may still hold messages of our classes. */
    bt_graph_put_ref(src->graph);
    g_clear_pointer(&src->classes, g_hash_table_destroy);
    g_free(src->error);
    g_free(src);
}

static HostdTraceSource *source_alloc(const HostdTraceSink *sink, void *opaque)
{
    HostdTraceSource *src = g_new0(HostdTraceSource, 1);

    if (sink)
        src->sink = *sink;
    src->opaque = opaque;
    src->classes = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                         ev_class_free);
    src->graph = bt_graph_create(0);
    return src;
}

/*
 * Adds the muxer and our sink, connects every output port of @sources to
 * the muxer (which grows an input port per connection).
 */
static int finish_graph(HostdTraceSource *src,
                        const bt_component_source *const *sources,
                        size_t nsources, GError **err)
{
    const bt_plugin *utils = NULL;
    const bt_component_filter *mux;
    const bt_component_sink *sink;
    uint64_t nin = 0;

    utils = find_plugin("utils", err);
    if (!utils)
        return -ENOENT;
    if (bt_graph_add_filter_component(
            src->graph,
            bt_plugin_borrow_filter_component_class_by_name_const(utils,
                                                                  "muxer"),
            "muxer", NULL, BT_LOGGING_LEVEL_WARNING,
            &mux) != BT_GRAPH_ADD_COMPONENT_STATUS_OK)
        goto fail;
    for (size_t i = 0; i < nsources; i++) {
        uint64_t nout = bt_component_source_get_output_port_count(sources[i]);

        for (uint64_t j = 0; j < nout; j++) {
            const bt_port_output *out =
                bt_component_source_borrow_output_port_by_index_const(
                    sources[i], j);
            const bt_port_input *in =
                bt_component_filter_borrow_input_port_by_index_const(mux, nin);

            if (!in || bt_graph_connect_ports(src->graph, out, in, NULL) !=
                           BT_GRAPH_CONNECT_PORTS_STATUS_OK)
                goto fail;
            nin++;
        }
    }
    if (bt_graph_add_simple_sink_component(src->graph, "hostd", NULL,
                                           sink_consume, NULL, src, &sink) !=
        BT_GRAPH_ADD_COMPONENT_STATUS_OK)
        goto fail;
    if (bt_graph_connect_ports(
            src->graph,
            bt_component_filter_borrow_output_port_by_name_const(mux, "out"),
            bt_component_sink_borrow_input_port_by_name_const(sink, "in"),
            NULL) != BT_GRAPH_CONNECT_PORTS_STATUS_OK)
        goto fail;
    bt_plugin_put_ref(utils);
    return 0;

fail:
    set_bt_error(err, EINVAL, "cannot build the trace graph");
    bt_plugin_put_ref(utils);
    return -EINVAL;
}

/*
 * A new source with its (empty) graph, and the `ctf` plugin that every
 * source of hostd reads with; the caller puts @ctf.
 */
static HostdTraceSource *source_new_ctf(const HostdTraceSink *sink,
                                        void *opaque, const bt_plugin **ctf,
                                        GError **err)
{
    g_autoptr(HostdTraceSource) src = source_alloc(sink, opaque);

    if (!src->graph) {
        g_set_error_literal(err, HOSTD_TRACE_ERROR, ENOMEM,
                            "cannot create a babeltrace2 graph");
        return NULL;
    }
    *ctf = find_plugin("ctf", err);
    if (!*ctf)
        return NULL;
    return g_steal_pointer(&src);
}

/*
 * Adds the `ctf` plugin's component class @cls reading @input, named @name.
 * @live: ask lttng-live to end (not fail) when the session is gone. A
 * failure names @input and what babeltrace2 said, after @what.
 */
static int add_ctf_source(HostdTraceSource *src, const bt_plugin *ctf,
                          const char *cls, const char *name, const char *input,
                          bool live, const char *what,
                          const bt_component_source **out, GError **err)
{
    bt_value *params = bt_value_map_create(), *inputs = NULL;
    bt_graph_add_component_status st;

    if (!params ||
        bt_value_map_insert_empty_array_entry(params, "inputs", &inputs) ||
        bt_value_array_append_string_element(inputs, input) ||
        (live && bt_value_map_insert_string_entry(
                     params, "session-not-found-action", "end"))) {
        bt_value_put_ref(params);
        g_set_error_literal(err, HOSTD_TRACE_ERROR, ENOMEM, "out of memory");
        return -ENOMEM;
    }
    st = bt_graph_add_source_component(
        src->graph,
        bt_plugin_borrow_source_component_class_by_name_const(ctf, cls), name,
        params, live ? BT_LOGGING_LEVEL_WARNING : BT_LOGGING_LEVEL_ERROR, out);
    bt_value_put_ref(params);
    if (st != BT_GRAPH_ADD_COMPONENT_STATUS_OK) {
        g_autofree char *m = take_bt_error(what);

        g_set_error(err, HOSTD_TRACE_ERROR, EINVAL, "%s: %s", input, m);
        return -EINVAL;
    }
    return 0;
}

HostdTraceSource *hostd_trace_source_new_live(const char *url,
                                              const HostdTraceSink *sink,
                                              void *opaque, GError **err)
{
    g_autoptr(HostdTraceSource) src = NULL;
    const bt_plugin *ctf = NULL;
    const bt_component_source *live = NULL;
    HostdTraceSource *ret = NULL;

    g_return_val_if_fail(url, NULL);
    bt_current_thread_clear_error();
    src = source_new_ctf(sink, opaque, &ctf, err);
    if (!src)
        return NULL;
    if (add_ctf_source(src, ctf, "lttng-live", "live", url, true,
                       "cannot read LTTng live", &live, err) < 0 ||
        finish_graph(src, &live, 1, err) < 0)
        goto out;
    ret = g_steal_pointer(&src);
out:
    bt_plugin_put_ref(ctf);
    return ret;
}

/* Collects every directory holding a CTF `metadata` file under @dir. */
static void find_traces(const char *dir, int depth, GPtrArray *out)
{
    g_autofree char *meta = g_build_filename(dir, "metadata", NULL);
    g_autoptr(GDir) d = NULL;
    g_autoptr(GPtrArray) subdirs = NULL;
    const char *name;

    if (g_file_test(meta, G_FILE_TEST_IS_REGULAR)) {
        g_ptr_array_add(out, g_strdup(dir));
        return;
    }
    /* Deep enough for ust/uid/UID/64-bit and relayd's host/session. */
    if (depth > 8)
        return;
    d = g_dir_open(dir, 0, NULL);
    if (!d)
        return;
    subdirs = g_ptr_array_new_with_free_func(g_free);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        struct stat st;

        /* lstat: never follow a symlink loop. */
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            g_ptr_array_add(subdirs, g_steal_pointer(&p));
    }
    /* A stable order makes component names and errors reproducible. */
    g_ptr_array_sort(subdirs, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < subdirs->len; i++)
        find_traces(g_ptr_array_index(subdirs, i), depth + 1, out);
}

static int cmp_str_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

HostdTraceSource *hostd_trace_source_new_offline(const char *trace_dir,
                                                 const HostdTraceSink *sink,
                                                 void *opaque, GError **err)
{
    g_autoptr(HostdTraceSource) src = NULL;
    g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func(g_free);
    g_autofree const bt_component_source **comps = NULL;
    const bt_plugin *ctf = NULL;
    HostdTraceSource *ret = NULL;

    g_return_val_if_fail(trace_dir, NULL);
    bt_current_thread_clear_error();
    if (!g_file_test(trace_dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "trace directory %s does not exist", trace_dir);
        return NULL;
    }
    find_traces(trace_dir, 0, dirs);
    if (dirs->len == 0) {
        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "no CTF trace (no 'metadata' file) under %s", trace_dir);
        return NULL;
    }
    g_ptr_array_sort(dirs, cmp_str_ptr);

    src = source_new_ctf(sink, opaque, &ctf, err);
    if (!src)
        return NULL;
    comps = g_new0(const bt_component_source *, dirs->len);
    for (guint i = 0; i < dirs->len; i++) {
        g_autofree char *cname = g_strdup_printf("trace%u", i);

        if (add_ctf_source(src, ctf, "fs", cname, g_ptr_array_index(dirs, i),
                           false, "not a readable CTF trace", &comps[i],
                           err) < 0)
            goto out;
    }
    if (finish_graph(src, comps, dirs->len, err) < 0)
        goto out;
    ret = g_steal_pointer(&src);
out:
    bt_plugin_put_ref(ctf);
    return ret;
}

int hostd_trace_source_poll(HostdTraceSource *src)
{
    if (src->status < 0)
        return src->status;
    if (src->status > 0)
        return 0;

    src->budget = POLL_BUDGET_MSGS;
    while (src->budget > 0) {
        switch (bt_graph_run_once(src->graph)) {
        case BT_GRAPH_RUN_ONCE_STATUS_OK:
            continue;
        case BT_GRAPH_RUN_ONCE_STATUS_AGAIN:
            return src->budget < POLL_BUDGET_MSGS ? HOSTD_TRACE_MORE
                                                  : HOSTD_TRACE_IDLE;
        case BT_GRAPH_RUN_ONCE_STATUS_END:
            src->status = 1;
            return 0;
        case BT_GRAPH_RUN_ONCE_STATUS_MEMORY_ERROR:
            src->status = -ENOMEM;
            break;
        default:
            /* Corrupt trace data, a lost relay daemon, ... */
            src->status = -EIO;
            break;
        }
        src->error = take_bt_error("reading the trace failed");
        return src->status;
    }
    return HOSTD_TRACE_MORE;
}

void hostd_trace_source_set_index(HostdTraceSource *src, uint16_t index)
{
    src->index = index;
}

const char *hostd_trace_source_error(const HostdTraceSource *src)
{
    return src->error;
}

uint64_t hostd_trace_source_time_ns(const HostdTraceSource *src)
{
    return src->time_ns;
}

void hostd_trace_source_get_stats(const HostdTraceSource *src,
                                  HostdTraceStats *stats)
{
    *stats = src->stats;
}
