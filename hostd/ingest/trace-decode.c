/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-decode.c: blkin_qemu and zipkin events decoded into the source's
 * sink (HostdSpan, HostdDiskMap, HostdZipkinEvent).
 *
 * This is hostd's hot path: per event class the schema is checked once and
 * the payload member indices cached, so decoding an event is a pointer
 * compare plus one indexed borrow and one integer read per field.
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include <stdbool.h>
#include <string.h>

#include "trace-source-priv.h"

enum ev_kind {
    EV_OTHER,    /* not blkin_qemu: ignored */
    EV_REJECTED, /* blkin_qemu, but not the schema: counted, skipped */
    EV_REQUEST,
    EV_DEVICE_REQUEST, /* a virtio-blk request, with QEMU's device times */
    EV_BATCH,          /* up to `batch` requests of one thread */
    EV_HUNG,
    EV_DISK,
    EV_ZK_TIMESTAMP, /* zipkin:* (blkin's schema, docs/backend.md) */
    EV_ZK_STRING,
    EV_ZK_INTEGER,
    EV_RBD_REQUEST, /* blkin_rbd:* (the librbd interposer) */
    EV_RBD_IMAGE,
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
    F_EXIT_NS, /* device_request: when the request left the filter */
    F_DEV,     /* device_request: u64 sequence, (start_ns, offset, bytes)... */
    F_DEVICE,  /* disk: what the node's requests come from (optional) */
    F_TID,     /* batch: the recording thread */
    F_SEQ,     /* batch: the thread's batch number */
    F_COUNT,   /* batch: requests in data */
    F_DATA,    /* batch: u64 sequence, enum blkin_batch_word per request */
    F_RBD_IO,  /* blkin_rbd:request: u64[3] offset, length, start_ns */
    F_RBD_REQ, /* blkin_rbd:request: s32[4] vpid, image, op, ret */
    F_RBD_IMAGE,
    F_RBD_GID,
    F_RBD_NONCE,
    F_RBD_ADDR,
    F_RBD_POOL,
    F_RBD_NAME,
    F_RBD_PREFIX,
    F_RBD_SIZE,
    F_RBD_OBJECT_SIZE,
    F_RBD_STRIPE_UNIT,
    F_RBD_STRIPE_COUNT,
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
    T_U64_SEQ, /* dynamic array of unsigned integers up to 64 bits */
};

/* Elements of the request event's arrays (docs/tracepoints.md). */
enum { IDS_TRACE, IDS_SPAN, IDS_PARENT, IDS_LEN };
enum { IO_OFFSET, IO_BYTES, IO_START_NS, IO_LEN };
enum { RBD_IO_OFFSET, RBD_IO_LENGTH, RBD_IO_START_NS, RBD_IO_LEN };
enum { RBD_REQ_VPID, RBD_REQ_IMAGE, RBD_REQ_OP, RBD_REQ_RET, RBD_REQ_LEN };
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
    [F_EXIT_NS] = {"exit_ns", T_U64},
    [F_DEV] = {"dev", T_U64_SEQ},
    [F_DEVICE] = {"device", T_STR},
    [F_TID] = {"tid", T_S32},
    [F_SEQ] = {"seq", T_U64},
    [F_COUNT] = {"count", T_U32},
    [F_DATA] = {"data", T_U64_SEQ},
    [F_RBD_IO] = {"io", T_U64_ARR, RBD_IO_LEN},
    [F_RBD_REQ] = {"req", T_S32_ARR, RBD_REQ_LEN},
    [F_RBD_IMAGE] = {"image", T_U32},
    [F_RBD_GID] = {"gid", T_U64},
    [F_RBD_NONCE] = {"nonce", T_U32},
    [F_RBD_ADDR] = {"addr", T_STR},
    [F_RBD_POOL] = {"pool", T_STR},
    [F_RBD_NAME] = {"image_name", T_STR},
    [F_RBD_PREFIX] = {"prefix", T_STR},
    [F_RBD_SIZE] = {"size", T_U64},
    [F_RBD_OBJECT_SIZE] = {"object_size", T_U64},
    [F_RBD_STRIPE_UNIT] = {"stripe_unit", T_U64},
    [F_RBD_STRIPE_COUNT] = {"stripe_count", T_U64},
};

static const enum fld request_flds[] = {F_IDS, F_IO, F_REQ};
static const enum fld device_request_flds[] = {F_IDS, F_IO, F_REQ, F_EXIT_NS,
                                               F_DEV};
static const enum fld batch_flds[] = {F_VPID, F_TID, F_SEQ, F_COUNT, F_DATA};
static const enum fld hung_flds[] = {
    F_TRACE_ID, F_SPAN_ID, F_PARENT_SPAN_ID, F_VPID,     F_DISK,   F_OP,
    F_FLAGS,    F_OFFSET,  F_BYTES,          F_START_NS, F_AGE_NS,
};
static const enum fld disk_flds[] = {
    F_VPID, F_DISK, F_STATE, F_ID, F_NODE, F_CHILD, F_SAMPLE,
};
static const enum fld rbd_request_flds[] = {F_RBD_IO, F_RBD_REQ};
static const enum fld rbd_image_flds[] = {
    F_VPID,
    F_RBD_IMAGE,
    F_STATE,
    F_RBD_GID,
    F_RBD_NONCE,
    F_RBD_ADDR,
    F_RBD_POOL,
    F_RBD_NAME,
    F_RBD_PREFIX,
    F_RBD_SIZE,
    F_RBD_OBJECT_SIZE,
    F_RBD_STRIPE_UNIT,
    F_RBD_STRIPE_COUNT,
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

void hostd_trace_ev_class_free(gpointer p)
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

/* The filter's events (blkin_qemu:) and the librbd interposer's
 * (blkin_rbd:), docs/tracepoints.md, and the fields each must have. */
static const struct {
    const char *name;
    enum ev_kind kind;
    const enum fld *flds;
    size_t nflds;
} schema_events[] = {
    {"blkin_qemu:request", EV_REQUEST, request_flds,
     G_N_ELEMENTS(request_flds)},
    {"blkin_qemu:batch", EV_BATCH, batch_flds, G_N_ELEMENTS(batch_flds)},
    {"blkin_qemu:device_request", EV_DEVICE_REQUEST, device_request_flds,
     G_N_ELEMENTS(device_request_flds)},
    {"blkin_qemu:hung", EV_HUNG, hung_flds, G_N_ELEMENTS(hung_flds)},
    {"blkin_qemu:disk", EV_DISK, disk_flds, G_N_ELEMENTS(disk_flds)},
    {"blkin_rbd:request", EV_RBD_REQUEST, rbd_request_flds,
     G_N_ELEMENTS(rbd_request_flds)},
    {"blkin_rbd:image", EV_RBD_IMAGE, rbd_image_flds,
     G_N_ELEMENTS(rbd_image_flds)},
};

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
    size_t e;

    if (name && g_str_has_prefix(name, "zipkin:"))
        return resolve_zipkin(c, name + strlen("zipkin:"));
    for (e = 0; e < G_N_ELEMENTS(schema_events); e++)
        if (name && strcmp(name, schema_events[e].name) == 0)
            break;
    if (e == G_N_ELEMENTS(schema_events))
        /* One of a newer schema's events is not ours to guess at. */
        return name && (g_str_has_prefix(name, "blkin_qemu:") ||
                        g_str_has_prefix(name, "blkin_rbd:"))
                   ? EV_REJECTED
                   : EV_OTHER;
    kind = schema_events[e].kind;
    flds = schema_events[e].flds;
    nflds = schema_events[e].nflds;

    /* A request's end (the device's completion) is its event's timestamp. */
    c->clock_freq = clk ? bt_clock_class_get_frequency(clk) : 0;
    if ((kind == EV_REQUEST || kind == EV_DEVICE_REQUEST ||
         kind == EV_RBD_REQUEST) &&
        !c->clock_freq)
        return EV_REJECTED;

    payload = bt_event_class_borrow_payload_field_class_const(c->ec);
    /* The disk event's `device` came later: a trace without it reads on. */
    c->idx[F_DEVICE] = UINT32_MAX;
    if (kind == EV_DISK &&
        find_member(payload, "device", &c->idx[F_DEVICE], &fc) &&
        bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STRING)
        return EV_REJECTED;
    for (size_t i = 0; i < nflds; i++) {
        enum fld f = flds[i];

        if (!find_member(payload, fld_info[f].name, &c->idx[f], &fc))
            return EV_REJECTED;
        if (fld_info[f].type == T_STR) {
            if (bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STRING)
                return EV_REJECTED;
            continue;
        }
        if (fld_info[f].type == T_U64_SEQ) {
            bool el_signed;

            if (bt_field_class_get_type(fc) !=
                    BT_FIELD_CLASS_TYPE_DYNAMIC_ARRAY_WITH_LENGTH_FIELD &&
                bt_field_class_get_type(fc) !=
                    BT_FIELD_CLASS_TYPE_DYNAMIC_ARRAY_WITHOUT_LENGTH_FIELD)
                return EV_REJECTED;
            if (!int_fits(
                    bt_field_class_array_borrow_element_field_class_const(fc),
                    T_U64, &el_signed) ||
                el_signed)
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

/*
 * blkin_qemu:device_request: the request event's arrays, the filter's exit,
 * the device requests; the event's time is the device's completion. Fills
 * @dev (at most BLKIN_DEV_MAX); the count, or -1 for a malformed list.
 */
static int decode_device_request(const bt_field *p, const EvClass *c,
                                 HostdSpan *s, HostdDevReq *dev)
{
    const bt_field *seq = member(p, c, F_DEV);
    uint64_t len = bt_field_array_get_length(seq);
    int n = (int)(len / 3);

    decode_request(p, c, s);
    s->dev_end_ns = s->end_ns;
    s->end_ns = get_u(p, c, F_EXIT_NS);
    if (len % 3 || n < 1 || n > HOSTD_DEV_MAX)
        return -1;
    for (int i = 0; i < n; i++) {
        dev[i].start_ns = elem_u(seq, 3 * i);
        dev[i].offset = elem_u(seq, 3 * i + 1);
        dev[i].bytes = elem_u(seq, 3 * i + 2);
    }
    /* The device's order of events: entry, filter, exit, completion. */
    if (s->end_ns < s->start_ns || s->dev_end_ns < s->end_ns)
        return -1;
    return n;
}

/* Recording threads whose batch numbers are followed, at most. */
#define HOSTD_BATCH_THREADS_MAX 65536

/*
 * blkin_qemu:batch: @count requests of one thread, enum blkin_batch_word
 * each. A thread's batches are numbered: a gap is batches LTTng discarded.
 */
static void decode_batch(HostdTraceSource *src, const bt_field *p,
                         const EvClass *c)
{
    const bt_field *data = member(p, c, F_DATA);
    uint64_t words = bt_field_array_get_length(data);
    uint64_t count = get_u(p, c, F_COUNT), seq = get_u(p, c, F_SEQ);
    uint32_t vpid = (uint32_t)get_u(p, c, F_VPID);
    uint64_t key = (uint64_t)vpid << 32 | (uint32_t)get_u(p, c, F_TID);
    uint64_t *last = g_hash_table_lookup(src->batch_seq, &key);
    HostdDevReq dev[HOSTD_DEV_MAX];
    uint64_t at = 0;

    src->stats.batches++;
    if (!last && g_hash_table_size(src->batch_seq) >= HOSTD_BATCH_THREADS_MAX)
        g_hash_table_remove_all(src->batch_seq); /* QEMUs come and go */
    if (!last) {
        last = g_new0(uint64_t, 1);
        g_hash_table_insert(src->batch_seq, g_memdup2(&key, sizeof(key)), last);
    } else if (seq > *last + 1) {
        src->stats.batches_lost += seq - *last - 1;
    }
    if (seq > *last)
        *last = seq;
    for (uint64_t i = 0; i < count; i++) {
        HostdSpan s = {.source = src->index};
        uint64_t w[BLKIN_BW__HEAD], ndev;

        if (words - at < BLKIN_BW__HEAD)
            goto bad;
        for (int k = 0; k < BLKIN_BW__HEAD; k++)
            w[k] = elem_u(data, at + k);
        ndev = w[BLKIN_BW_NDEV] & 0xffffffff;
        if (ndev > HOSTD_DEV_MAX || words - at - BLKIN_BW__HEAD < 3 * ndev)
            goto bad;
        s.trace_id = w[BLKIN_BW_TRACE_ID];
        s.span_id = w[BLKIN_BW_SPAN_ID];
        s.parent_span_id = w[BLKIN_BW_PARENT_SPAN_ID];
        s.offset = w[BLKIN_BW_OFFSET];
        s.bytes = w[BLKIN_BW_BYTES];
        s.start_ns = w[BLKIN_BW_START_NS];
        s.vpid = (uint32_t)w[BLKIN_BW_VPID_DISK];
        s.disk = (uint32_t)(w[BLKIN_BW_VPID_DISK] >> 32);
        s.op = blkin_op_from_tp((uint32_t)w[BLKIN_BW_OP_FLAGS]);
        s.flags = (uint32_t)(w[BLKIN_BW_OP_FLAGS] >> 32);
        s.ret = (int32_t)(uint32_t)w[BLKIN_BW_RET_INFLIGHT];
        s.inflight = (uint32_t)(w[BLKIN_BW_RET_INFLIGHT] >> 32);
        s.why = (uint8_t)w[BLKIN_BW_WHY];
        s.end_ns = w[BLKIN_BW_END_NS];
        s.dev_end_ns = w[BLKIN_BW_DEV_END_NS];
        s.dev_step_ns = (uint32_t)(w[BLKIN_BW_NDEV] >> 32);
        for (uint64_t d = 0; d < ndev; d++) {
            dev[d].start_ns = elem_u(data, at + BLKIN_BW__HEAD + 3 * d);
            dev[d].offset = elem_u(data, at + BLKIN_BW__HEAD + 3 * d + 1);
            dev[d].bytes = elem_u(data, at + BLKIN_BW__HEAD + 3 * d + 2);
        }
        at += BLKIN_BW__HEAD + 3 * ndev;
        /* What the filter's own order of events makes impossible. */
        if (s.end_ns < s.start_ns ||
            (s.dev_end_ns && (s.dev_end_ns < s.end_ns || !ndev)))
            goto bad;
        src->stats.spans++;
        if (ndev && s.dev_end_ns && src->sink.device_span)
            src->sink.device_span(src->opaque, &s, dev, (unsigned)ndev);
        else if (src->sink.span)
            src->sink.span(src->opaque, &s);
    }
    if (at == words)
        return;
bad:
    /* What went out before stands; the rest of a malformed batch goes. */
    src->stats.rejected++;
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

void hostd_trace_decode_event(HostdTraceSource *src, const bt_message *msg)
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
        memset(&s, 0, sizeof(s));
        decode_request(p, c, &s);
        event_time_ns(msg, c, &s.end_ns); /* resolve() checked the clock */
        s.source = src->index;
        src->sink.span(src->opaque, &s);
        return;
    case EV_DEVICE_REQUEST: {
        HostdDevReq dev[HOSTD_DEV_MAX];
        int n;

        src->stats.spans++;
        if (!src->sink.span)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        memset(&s, 0, sizeof(s));
        event_time_ns(msg, c, &s.end_ns); /* resolve() checked the clock */
        n = decode_device_request(p, c, &s, dev);
        if (n < 0) {
            src->stats.rejected++;
            return;
        }
        s.source = src->index;
        if (src->sink.device_span)
            src->sink.device_span(src->opaque, &s, dev, (unsigned)n);
        else
            src->sink.span(src->opaque, &s);
        return;
    }
    case EV_BATCH:
        decode_batch(src, bt_event_borrow_payload_field_const(ev), c);
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
        m.device = c->idx[F_DEVICE] == UINT32_MAX
                       ? NULL
                       : bt_field_string_get_value(member(p, c, F_DEVICE));
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
    case EV_RBD_REQUEST: {
        HostdRbdCall rc;
        const bt_field *io, *req;

        src->stats.rbd++;
        if (!src->sink.rbd_call)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        io = member(p, c, F_RBD_IO);
        req = member(p, c, F_RBD_REQ);
        rc.source = src->index;
        rc.offset = elem_u(io, RBD_IO_OFFSET);
        rc.length = elem_u(io, RBD_IO_LENGTH);
        rc.start_ns = elem_u(io, RBD_IO_START_NS);
        rc.vpid = (uint32_t)elem_s(req, RBD_REQ_VPID);
        rc.image = (uint32_t)elem_s(req, RBD_REQ_IMAGE);
        rc.op = blkin_op_from_tp((unsigned)elem_s(req, RBD_REQ_OP));
        rc.ret = (int32_t)elem_s(req, RBD_REQ_RET);
        event_time_ns(msg, c, &rc.end_ns); /* resolve() checked the clock */
        src->sink.rbd_call(src->opaque, &rc);
        return;
    }
    case EV_RBD_IMAGE: {
        HostdRbdImage im;

        src->stats.rbd++;
        if (!src->sink.rbd_image)
            return;
        p = bt_event_borrow_payload_field_const(ev);
        im.source = src->index;
        im.vpid = (uint32_t)get_u(p, c, F_VPID);
        im.image = (uint32_t)get_u(p, c, F_RBD_IMAGE);
        im.state = (uint8_t)get_u(p, c, F_STATE);
        im.gid = get_u(p, c, F_RBD_GID);
        im.nonce = (uint32_t)get_u(p, c, F_RBD_NONCE);
        im.addr = bt_field_string_get_value(member(p, c, F_RBD_ADDR));
        im.pool = bt_field_string_get_value(member(p, c, F_RBD_POOL));
        im.name = bt_field_string_get_value(member(p, c, F_RBD_NAME));
        im.prefix = bt_field_string_get_value(member(p, c, F_RBD_PREFIX));
        im.size = get_u(p, c, F_RBD_SIZE);
        im.object_size = get_u(p, c, F_RBD_OBJECT_SIZE);
        im.stripe_unit = get_u(p, c, F_RBD_STRIPE_UNIT);
        im.stripe_count = get_u(p, c, F_RBD_STRIPE_COUNT);
        src->sink.rbd_image(src->opaque, &im);
        return;
    }
    case EV_REJECTED:
        src->stats.rejected++;
        return;
    case EV_OTHER:
        src->stats.ignored++;
        return;
    }
}

void hostd_trace_decode_discarded(HostdTraceSource *src, const bt_message *msg)
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
void hostd_trace_note_time(HostdTraceSource *src, const bt_message *msg)
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
